"""EOF reduction of gridded fields: area weights, masks, modes and the map back to the grid."""

from __future__ import annotations

import logging
import numbers
import warnings

import numpy as np
import xarray as xr

from gfdt.reduce import _rule
from gfdt.reduce._field import Field, as_field, read, scan
from gfdt.reduce._svd import Anomalies, leading_modes
from gfdt.reduce._weights import area_weights
from gfdt.scores.base import NotFittedError, ScoreEstimator

__all__ = ["EOF"]

logger = logging.getLogger("gfdt")

_SOLVERS = ("auto", "exact", "randomized", "gram", "covariance")


class EOF:
    """Empirical orthogonal functions of a gridded field (area-weighted PCA with masks).

    With area weights :math:`w` (default :math:`\\sqrt{\\cos\\varphi}` per point, so that
    the Euclidean norm of :math:`w (x - m)` approximates the area integral) and the data
    mean :math:`m`, the weighted anomalies of the valid points are decomposed as
    :math:`w (x - m) \\approx E a` with orthonormal components :math:`E` (points x modes)
    and principal components (PCs) :math:`a = E^T w (x - m)`. Points that are NaN or
    constant in time (land, a masked region) are left out of the decomposition and come
    back as NaN on every output on the grid. A grid x grid matrix is never formed: see
    ``solver``.

    Parameters
    ----------
    n_modes : int, float or "auto"
        Modes kept. An int; a float in (0, 1): the smallest number of modes explaining
        that fraction of the weighted variance; ``"auto"`` (default): the smallest number
        whose cross-validated forecast error (1 and 2 steps ahead) with the Gaussian
        (linear) propagator on the PCs is within one standard error of the best (see
        :mod:`gfdt.reduce._rule` for the rule and why), among at most ``max_modes``.
    weights : "coslat", None or array_like
        ``"coslat"``: :math:`\\sqrt{\\cos\\varphi}` when a latitude coordinate is found
        (CF attributes or a usual name, through cf-xarray; 2-D latitudes of curvilinear
        grids too), else uniform (logged). None: uniform. An array (or DataArray) on the
        space dims: the weights :math:`w` themselves (square roots of the area weights),
        non-negative.
    solver : {"auto", "exact", "randomized"}
        ``"exact"``: eigendecomposition of the samples x samples Gram matrix (in-memory
        data with fewer samples than points) or of the points x points covariance (at
        most 3000 valid points). ``"randomized"``: randomized SVD with power iterations,
        which multiplies the data by thin matrices only and reads Dask-backed data block
        by block. ``"auto"``: exact when the dense side is at most 3000, else randomized.
        The memory a route needs is checked against the default budget (half of the
        memory available) before it allocates; beyond it, a ValueError names the fix.
    max_modes : int, optional
        Modes computed (the candidates of ``n_modes="auto"`` or a fraction). Default:
        ``n_modes`` for an int; for ``"auto"``, ``min(50, samples // 10)``; for a fraction,
        ``min(200, samples - 1)``.
    seed : int
        Seed of the randomized solver.

    Attributes
    ----------
    n_modes_ : int
        Modes kept.
    components_ : xarray.DataArray, dims ``("mode", *space)``
        The orthonormal components :math:`E` (unit norm over the valid points, in the
        weighted space), NaN where masked. ``mode`` counts from 1.
    patterns_ : xarray.DataArray, dims ``("mode", *space)``
        :math:`E / w`: the anomaly field of a unit PC, in data units (what
        :meth:`inverse_transform` adds per unit PC), finite also where :math:`w = 0`.
    explained_variance_ : xarray.DataArray, dims ``("mode",)``
        Variance of each PC (divisor ``samples - 1``).
    explained_variance_ratio_ : xarray.DataArray, dims ``("mode",)``
        Fraction of the total weighted variance of the valid points.
    singular_values_ : xarray.DataArray, dims ``("mode",)``
    mean_ : xarray.DataArray, dims ``space``
        The data mean (NaN where masked).
    weights_ : xarray.DataArray, dims ``space``
        The weights :math:`w` used.
    mask_ : xarray.DataArray of bool, dims ``space``
        True at the valid points (used), False where masked.
    cv_error_ : xarray.Dataset or None
        With ``n_modes="auto"``: the held-out forecast error (``mean`` and ``stderr``
        over the folds) against the number of modes (0 = forecast zero).
    solver_ : str
        The route used (``"gram"``, ``"covariance"`` or ``"randomized"``).
    n_samples_ : int

    Examples
    --------
    >>> import numpy as np, xarray as xr, gfdt
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = np.linspace(-60, 60, 13), np.arange(0, 360, 20.0)
    >>> pattern = np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))
    >>> x = rng.standard_normal((200, 1, 1)) * pattern + 0.1 * rng.standard_normal((200, 13, 18))
    >>> da = xr.DataArray(x, dims=("time", "lat", "lon"), coords={"lat": lat, "lon": lon})
    >>> eof = gfdt.EOF(n_modes=1).fit(da)
    >>> round(float(eof.explained_variance_ratio_[0]), 2)
    0.97
    """

    def __init__(self, n_modes: int | float | str = "auto", *, weights="coslat",
                 solver: str = "auto", max_modes: int | None = None, seed: int = 0) -> None:
        self.n_modes = n_modes
        self.weights = weights
        self.solver = solver
        self.max_modes = max_modes
        self.seed = seed

    get_params = ScoreEstimator.get_params
    set_params = ScoreEstimator.set_params

    def __repr__(self) -> str:
        return f"EOF(n_modes={self.n_modes!r}, weights={_short(self.weights)})"

    @property
    def is_fitted(self) -> bool:
        return hasattr(self, "n_modes_")

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError("this EOF is not fitted yet: call fit() first")

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        k = self.n_modes
        if isinstance(k, str):
            if k != "auto":
                raise ValueError(f"n_modes must be an int, a fraction in (0, 1) or 'auto', "
                                 f"got {k!r}")
        elif isinstance(k, bool) or not isinstance(k, numbers.Real):
            raise TypeError(f"n_modes must be an int, a fraction in (0, 1) or 'auto', got "
                            f"{type(k).__name__}")
        elif isinstance(k, numbers.Integral):
            if k < 1:
                raise ValueError(f"n_modes must be at least 1, got {k}")
        elif not 0 < k < 1:
            raise ValueError(f"n_modes as a float is a fraction of variance in (0, 1), got {k}")
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver must be 'auto', 'exact' or 'randomized', got "
                             f"{self.solver!r}")
        m = self.max_modes
        if m is not None and (isinstance(m, bool) or not isinstance(m, numbers.Integral)
                              or m < 1):
            raise ValueError(f"max_modes must be a positive int or None, got {m!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise TypeError(f"seed must be an int, got {self.seed!r}")

    def _n_compute(self, n: int, d: int) -> int:
        k = self.n_modes
        if self.max_modes is not None:
            m = int(self.max_modes)
        elif k == "auto":
            m = min(50, max(1, n // 10))
        elif isinstance(k, numbers.Integral):
            m = int(k)
        else:
            m = min(200, n - 1)
        if isinstance(k, numbers.Integral) and not isinstance(k, bool) and m < k:
            raise ValueError(f"max_modes = {m} is smaller than n_modes = {k}")
        return max(1, min(m, n, d))

    # --------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> EOF:
        """Find the masks, weights, mean and leading modes of ``X``.

        Parameters
        ----------
        X : xarray.DataArray, xarray.Dataset, numpy.ndarray or list
            A DataArray with a ``time`` dim, optionally ``member`` (independent members),
            all other dims space (any number, e.g. ``("lat", "lon")``, or one stacked
            dim with a MultiIndex); a Dataset with one such variable; an array
            ``(time, *space)``; or a list of members. NaN marks masked points. Samples
            in time order (``n_modes="auto"`` forecasts 1 and 2 steps ahead).
        y : ignored

        Returns
        -------
        EOF
            ``self``, fitted.
        """
        self._fit(as_field(X))
        return self

    def fit_transform(self, X, y=None):
        """:meth:`fit`, then the PCs of ``X`` (see :meth:`transform`), in one pass less."""
        field = as_field(X)
        pcs = self._fit(field)
        return self._pcs_out(field, [pcs[a:b, :self.n_modes_] for a, b in
                                     _bounds(field.lengths)])

    def _fit(self, field: Field) -> np.ndarray:
        self._check_params()
        n = field.n_samples
        if n < 3:
            raise ValueError(f"X has {n} sample(s): an EOF analysis needs at least 3")
        valid, mean, total = scan(field)
        w_full, self.latitude_ = area_weights(field, self.weights)
        cols = np.flatnonzero(valid)
        if cols.size == 0:
            raise ValueError("X has no point that is finite at every time and varies: nothing "
                             "to reduce")
        w = w_full[cols]
        Y = Anomalies(field, cols, mean, w)
        k = self._n_compute(n, cols.size)
        s, pcs, P = leading_modes(Y, k, "exact" if self.solver == "exact" else self.solver,
                                  int(self.seed))[:3]
        self.solver_ = _route(self.solver, n, cols.size, field.lazy)
        total_var = float(np.sum(w**2 * total))  # weighted variance of the valid points
        ratio = s**2 / (n - 1) / total_var if total_var > 0 else np.zeros_like(s)
        self.cv_error_ = None
        self.n_modes_ = self._choose(s, ratio, pcs, field.lengths, cols.size)
        m = self.n_modes_
        self._cols, self._w, self._mean = cols, w, mean
        self._P, self._V = P[:, :m], P[:, :m] * w[:, None]
        self.n_samples_ = n
        self.space_dims_, self.space_shape_ = field.space_dims, field.space_shape
        self._template = field.template
        self._name, self._units = field.name, field.attrs.get("units")
        mode = np.arange(1, m + 1)
        self.singular_values_ = _mode_array(s[:m], mode, "singular value")
        self.explained_variance_ = _mode_array(s[:m] ** 2 / (n - 1), mode,
                                               "variance of the principal component")
        self.explained_variance_ratio_ = _mode_array(ratio[:m], mode,
                                                     "fraction of the weighted variance")
        self.components_ = self._on_grid(self._V.T, ("mode",), {"mode": mode}, "EOF")
        self.patterns_ = self._on_grid(self._P.T, ("mode",), {"mode": mode},
                                       "anomaly of a unit principal component")
        self.mean_ = self._on_grid(mean, (), {}, "mean")
        self.weights_ = self._space_array(w_full, "area weight sqrt(cell area)")
        self.mask_ = self._space_array(valid, "valid (unmasked) point")
        logger.info("EOF: %d of %d points valid, %d modes kept (%.3g of the weighted "
                    "variance)", cols.size, field.n_space, m, float(ratio[:m].sum()))
        return pcs

    def _choose(self, s: np.ndarray, ratio: np.ndarray, pcs: np.ndarray, lengths: list[int],
                d: int) -> int:
        k = self.n_modes
        if k == "auto":
            k_max = s.size
            curves = sum(_rule.forecast_cv(pcs, lengths, k_max, lag=lead)
                         for lead in _rule.LEADS) / len(_rule.LEADS)
            k, mean, se = _rule.one_se_choice(curves)
            self.cv_error_ = xr.Dataset(
                {"mean": ("n_modes", mean), "stderr": ("n_modes", se)},
                coords={"n_modes": np.arange(k_max + 1)},
                attrs={"long_name": "held-out forecast error (1 and 2 steps ahead) of the "
                                    "linear propagator on the leading PCs"})
            if k == 0:
                k = 1
                warnings.warn("EOF n_modes='auto': no number of modes forecasts held-out data "
                              "1-2 steps ahead better than zero within its standard error (the "
                              "PCs look like white noise); 1 mode kept. Its response beyond lag "
                              "0 is noise: check the time step and that the data have memory, "
                              "or pass n_modes", stacklevel=3)
            elif k == k_max and k_max > 1:
                logger.warning("EOF n_modes='auto' chose max_modes = %d: more modes may help "
                               "(pass a larger max_modes)", k_max)
            logger.info("EOF n_modes='auto': %d modes (held-out forecast error %.4g +- %.2g; "
                        "zero forecast %.4g)", k, mean[k], se[k], mean[0])
            return int(k)
        if isinstance(k, numbers.Integral):
            if k > s.size:
                raise ValueError(f"n_modes = {k} but the data resolve only {s.size} modes "
                                 f"(the rank of the anomalies is at most samples - 1 = "
                                 f"{sum(lengths) - 1}, and there are {d} valid points): pass "
                                 "fewer modes")
            return int(k)
        cum = np.cumsum(ratio)
        if cum[-1] < k - 1e-12:
            raise ValueError(f"n_modes = {k}: the {s.size} modes computed explain {cum[-1]:.4f} "
                             "of the variance; pass a larger max_modes or an int n_modes")
        return int(np.searchsorted(cum, k - 1e-12) + 1)

    # --------------------------------------------------------------- outputs
    def _space_array(self, values: np.ndarray, long_name: str) -> xr.DataArray:
        values = np.asarray(values).reshape(self.space_shape_)
        coords = {} if self._template is None else self._template.coords
        return xr.DataArray(values, dims=self.space_dims_, coords=coords,
                            attrs={"long_name": long_name})

    def _on_grid(self, values: np.ndarray, lead: tuple[str, ...], lead_coords: dict,
                 long_name: str) -> xr.DataArray:
        """Values on the valid points ``(*lead, n_valid)`` as a DataArray on the grid."""
        values = np.asarray(values)
        out = np.full((*values.shape[:-1], int(np.prod(self.space_shape_))), np.nan)
        out[..., self._cols] = values
        out = out.reshape(values.shape[:-1] + tuple(self.space_shape_))
        coords = dict(lead_coords)
        if self._template is not None:
            coords.update(self._template.coords)
        return xr.DataArray(out, dims=(*lead, *self.space_dims_), coords=coords,
                            attrs={"long_name": long_name})

    # -------------------------------------------------------------- transforms
    def transform(self, X):
        """Principal components of ``X`` on the fitted modes.

        Parameters
        ----------
        X : as for :meth:`fit`
            On the fitted grid; NaN allowed only at masked points.

        Returns
        -------
        xarray.DataArray, numpy.ndarray or list
            For a DataArray: dims ``(member?, time, mode)`` with the input's time (and
            member) coordinates; for an array ``(time, *space)``: ``(time, n_modes)``; for
            a list: a list of those.
        """
        self._check_fitted()
        field = as_field(X)
        self._check_grid(field)
        out = []
        for k, m in enumerate(field.members):
            rows = field.block_rows()
            a = np.empty((m.shape[0], self.n_modes_))
            for start in range(0, m.shape[0], rows):
                block = read(m, start, start + rows).reshape(-1, field.n_space)
                a[start:start + block.shape[0]] = self._project_rows(block, f"X (member {k})")
            out.append(a)
        return self._pcs_out(field, out)

    def _project_rows(self, block: np.ndarray, name: str) -> np.ndarray:
        x = block[:, self._cols]
        bad = ~np.isfinite(x)
        if bad.any():
            raise ValueError(f"{name} has {int(bad.sum())} NaN or inf values at points that "
                             "were valid when the EOFs were fitted")
        return ((x - self._mean) * self._w) @ self._V

    def _check_grid(self, field: Field) -> None:
        if tuple(field.space_shape) != tuple(self.space_shape_):
            raise ValueError(f"X has space shape {field.space_shape}; the EOFs were fitted on "
                             f"{self.space_shape_}")
        if field.template is not None and self._template is not None:
            for dim in self.space_dims_:
                if dim in self._template.coords and dim in field.template.coords:
                    a = np.asarray(self._template[dim].values)
                    b = np.asarray(field.template[dim].values)
                    if not _same_coord(a, b):
                        raise ValueError(f"X's {dim!r} coordinate differs from the one the "
                                         "EOFs were fitted on")

    def _pcs_out(self, field: Field, pcs: list[np.ndarray]):
        mode = np.arange(1, self.n_modes_ + 1)
        attrs = {"long_name": "principal component", "n_modes": int(self.n_modes_)}
        if field.kind == "array":
            return pcs[0]

        def one(a, time):
            coords = {"mode": mode}
            if time is not None:
                coords["time"] = time
            return xr.DataArray(a, dims=("time", "mode"), coords=coords, name="pcs",
                                attrs=attrs)

        if field.kind == "list":
            return [one(a, t) if field.template is not None else a
                    for a, t in zip(pcs, field.times, strict=True)]
        if not field.has_member:
            return one(pcs[0], field.times[0])
        da = xr.concat([one(a, t) for a, t in zip(pcs, field.times, strict=True)], "member")
        if field.member_coord is not None:
            da = da.assign_coords(member=field.member_coord.values)
        return da

    def inverse_transform(self, pcs) -> xr.DataArray | np.ndarray:
        """The field :math:`m + E a / w` of principal components ``pcs``, NaN where masked.

        Parameters
        ----------
        pcs : xarray.DataArray with a ``mode`` dim, or numpy.ndarray ``(..., n_modes)``

        Returns
        -------
        xarray.DataArray or numpy.ndarray
            Dims ``(*other dims, *space)`` with the grid's coordinates (an array for an
            array).
        """
        self._check_fitted()
        if isinstance(pcs, xr.DataArray):
            if "mode" not in pcs.dims or pcs.sizes["mode"] != self.n_modes_:
                raise ValueError(f"pcs must have a 'mode' dim of size {self.n_modes_}, got "
                                 f"{dict(pcs.sizes)}")
            other = [d for d in pcs.dims if d != "mode"]
            a = pcs.transpose(*other, "mode").values
            field = self._on_grid(a @ self._P.T + self._mean, tuple(other),
                                  {d: pcs[d] for d in other if d in pcs.coords}, "field")
            field.attrs = {"long_name": "field reconstructed from the EOFs"}
            if self._units is not None:
                field.attrs["units"] = self._units
            return field.rename(self._name)
        a = np.asarray(pcs, dtype=float)
        if a.shape[-1] != self.n_modes_:
            raise ValueError(f"pcs must end with {self.n_modes_} modes, got shape {a.shape}")
        return self._on_grid(a @ self._P.T + self._mean, tuple(f"dim_{i}" for i in
                                                                range(a.ndim - 1)), {},
                             "field").values

    # ------------------------------------------------------- patterns <-> modes
    def project(self, pattern) -> np.ndarray:
        """Mode amplitudes of a spatial pattern as an impulse: :math:`E^T (w f)`.

        A unit impulse with pattern :math:`f` moves the PCs by :math:`E^T (w f)`.

        Parameters
        ----------
        pattern : xarray.DataArray or array_like, the space dims (any order) or shape
            NaN is allowed at masked points only.

        Returns
        -------
        numpy.ndarray, shape ``(..., n_modes)``
            One row per extra leading dim of ``pattern``.
        """
        self._check_fitted()
        f = self._pattern_values(pattern)
        return (f * self._w) @ self._V

    def captured(self, pattern) -> np.ndarray:
        """Fraction of the weighted norm of ``pattern`` that the modes represent:
        :math:`\\|E^T w f\\| / \\|w f\\|` over the valid points (1 when it lies in their span)."""
        f = self._pattern_values(pattern)
        wf = f * self._w
        norm = np.linalg.norm(wf, axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(norm > 0, np.linalg.norm(wf @ self._V, axis=-1) / norm, np.nan)

    def _pattern_values(self, pattern) -> np.ndarray:
        if isinstance(pattern, xr.DataArray):
            missing = [d for d in self.space_dims_ if d not in pattern.dims]
            if missing:
                raise ValueError(f"pattern has dims {pattern.dims}; it needs the space dims "
                                 f"{self.space_dims_}")
            if self._template is not None:
                for dim in self.space_dims_:
                    if dim in pattern.coords and dim in self._template.coords:
                        a, b = pattern[dim].values, self._template[dim].values
                        if not _same_coord(a, b):
                            raise ValueError(f"pattern's {dim!r} coordinate differs from the "
                                             "grid the EOFs were fitted on")
            other = [d for d in pattern.dims if d not in self.space_dims_]
            arr = pattern.transpose(*other, *self.space_dims_).values
        else:
            arr = np.asarray(pattern, dtype=float)
        arr = np.asarray(arr, dtype=float)
        if arr.shape[arr.ndim - len(self.space_shape_):] != tuple(self.space_shape_):
            raise ValueError(f"pattern has shape {arr.shape}; the grid is {self.space_shape_}")
        flat = arr.reshape((*arr.shape[:arr.ndim - len(self.space_shape_)], -1))
        f = flat[..., self._cols]
        if not np.all(np.isfinite(f)):
            raise ValueError("pattern has NaN or inf at valid (unmasked) points; NaN is "
                             "allowed only where the EOFs mask the grid")
        return f

    def to_grid(self, amplitudes: np.ndarray, dims: tuple[str, ...] | None = None,
                coords: dict | None = None, name: str | None = None
                ) -> np.ndarray | xr.DataArray:
        """Anomaly fields :math:`E a / w` of mode amplitudes, NaN where masked (no mean).

        Parameters
        ----------
        amplitudes : numpy.ndarray, shape ``(..., n_modes)``
        dims : tuple of str, optional
            Names of the leading dims: the result is then a DataArray with dims
            ``(*dims, *space)`` and the grid's coordinates (plus ``coords``).
        coords : dict, optional
        name : str, optional

        Returns
        -------
        numpy.ndarray ``(..., *space)`` or xarray.DataArray
        """
        self._check_fitted()
        a = np.asarray(amplitudes, dtype=float)
        if a.shape[-1] != self.n_modes_:
            raise ValueError(f"amplitudes must end with {self.n_modes_} modes, got {a.shape}")
        values = a @ self._P.T
        if dims is None:
            out = np.full((*a.shape[:-1], int(np.prod(self.space_shape_))), np.nan)
            out[..., self._cols] = values
            return out.reshape(a.shape[:-1] + tuple(self.space_shape_))
        return self._on_grid(values, tuple(dims), dict(coords or {}), name or "field").rename(
            name)

    def grid_variance(self, cov: np.ndarray) -> np.ndarray:
        """Variance on the grid of fields :math:`E a / w` whose amplitudes have covariance
        ``cov`` ``(..., n_modes, n_modes)``: :math:`\\sum_{jl} P_{ij} C_{jl} P_{il}` per
        point, shape ``(..., *space)``, NaN where masked. Never forms a points x points
        matrix (one ``points x modes`` product per leading index)."""
        self._check_fitted()
        c = np.asarray(cov, dtype=float)
        lead = c.shape[:-2]
        flat = c.reshape(-1, self.n_modes_, self.n_modes_)
        out = np.full((flat.shape[0], int(np.prod(self.space_shape_))), np.nan)
        for i, ci in enumerate(flat):
            out[i, self._cols] = np.einsum("ij,ij->i", self._P @ ci, self._P)
        return out.reshape(lead + tuple(self.space_shape_))

    def summary(self) -> str:
        """The grid, masks, weights, solver and modes kept, as text."""
        self._check_fitted()
        n_valid = int(self._cols.size)
        total = int(np.prod(self.space_shape_))
        grid = dict(zip(self.space_dims_, self.space_shape_, strict=True))
        lines = [f"EOF: {self.n_modes_} modes of {grid}"
                 f" ({n_valid} valid points, {total - n_valid} masked), "
                 f"{self.n_samples_} samples, solver {self.solver_}",
                 f"weights: {_short(self.weights)}"
                 + (f" (latitude {self.latitude_!r})" if getattr(self, "latitude_", None)
                    else ""),
                 "explained variance ratio: " + ", ".join(
                     f"{v:.3f}" for v in self.explained_variance_ratio_.values[:10])
                 + (" ..." if self.n_modes_ > 10 else "")
                 + f" (total {float(self.explained_variance_ratio_.sum()):.3f})"]
        if self.cv_error_ is not None:
            lines.append(f"n_modes='auto': held-out forecast error "
                         f"{float(self.cv_error_['mean'][self.n_modes_]):.4g} at "
                         f"{self.n_modes_} modes (zero forecast "
                         f"{float(self.cv_error_['mean'][0]):.4g}, best "
                         f"{float(self.cv_error_['mean'].min()):.4g})")
        return "\n".join(lines)


def _short(w) -> str:
    return repr(w) if w is None or isinstance(w, str) else f"<{type(w).__name__}>"


def _same_coord(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal coordinates; numbers to float32 precision (a float64 copy of a float32
    latitude is the same grid)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        return bool(np.allclose(a, b, rtol=1e-6, atol=1e-9))
    return bool(np.array_equal(a, b))


def _bounds(lengths: list[int]):
    start = 0
    for n in lengths:
        yield start, start + n
        start += n


def _route(solver: str, n: int, d: int, lazy: bool) -> str:
    from gfdt.reduce._svd import choose_solver

    return choose_solver(solver, n, d, lazy)


def _mode_array(values: np.ndarray, mode: np.ndarray, long_name: str) -> xr.DataArray:
    return xr.DataArray(np.asarray(values, dtype=float), dims=("mode",),
                        coords={"mode": mode}, attrs={"long_name": long_name})
