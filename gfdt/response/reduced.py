"""The GFDT on EOF principal components (``ResponseEstimator(reduce=EOF(...))``).

The score is fitted and the response computed on the principal components (PCs)
:math:`a = E^T w (x - m)` of :class:`gfdt.EOF`, so the response ``R_a(t)`` is a
``modes x modes`` matrix per lag. A unit impulse with spatial pattern :math:`f` moves
the PCs by :math:`E^T (w f)`, and the field responds with

.. math:: R(t) f = \\frac{1}{w} E\\, R_a(t)\\, E^T (w f),

applied to the pattern, never formed as a ``points x points x lags`` array. Its
bootstrap standard error comes from the replicates of :math:`R_a`: the covariance of
:math:`R_a^{(b)}(t) E^T (w f)` over replicates, mapped to a variance per grid point
(:meth:`gfdt.EOF.grid_variance`).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import xarray as xr

from gfdt.data import as_trajectories
from gfdt.scores.base import NotFittedError

__all__ = ["ReducedResponse"]

logger = logging.getLogger("gfdt")

#: Fraction of a pattern's weighted norm below which response_to warns.
CAPTURED_WARN = 0.5

_MODE_DIMS = {"observable": "mode", "source": "source_mode"}


class ReducedResponse:
    """Methods of :class:`gfdt.ResponseEstimator` for ``reduce=EOF(...)``."""

    # ------------------------------------------------------------------- fit
    def _fit_reduced(self, X):
        from gfdt.reduce import EOF

        eof = self.reduce
        if not isinstance(eof, EOF):
            raise TypeError(f"reduce must be a gfdt.EOF or None, got {type(eof).__name__}")
        if self.homogeneous:
            raise ValueError("homogeneous=True does not apply with reduce: the principal "
                             "components have no translation symmetry; leave homogeneous "
                             "unset")
        if self.observable is not None or self.perturbation is not None:
            raise ValueError("observable and perturbation do not apply with reduce: fit, then "
                             "use response_to(pattern) for the response to a spatial impulse, "
                             "or predict((pattern, series)) for a forcing")
        if self.kick != "pixel":
            raise ValueError("kick='resolved' applies to homogeneous fields, not with reduce")
        if eof.is_fitted:
            pcs = eof.transform(X)
        else:
            eof = type(eof)(**eof.get_params(deep=False))  # fit a copy: the user's stays as is
            pcs = eof.fit_transform(X)
        self.reduce_ = eof
        self._fit_data(as_trajectories(_as_pcs(pcs), "X"))
        for name in ("response_", "response_raw_", "response_stderr_", "response_raw_stderr_",
                     "stein_"):
            value = getattr(self, name, None)
            if isinstance(value, xr.DataArray):
                setattr(self, name, _mode_dims(value))
        self.response_kind_ = "reduced"
        logger.info("GFDT on %d EOF modes: Stein error %.3g", eof.n_modes_, self.stein_error_)
        return self

    def _check_reduced(self) -> None:
        if not hasattr(self, "response_"):
            raise NotFittedError("this ResponseEstimator is not fitted yet: call fit() first")
        if getattr(self, "reduce_", None) is None:
            raise ValueError("response_to needs a fit with reduce=gfdt.EOF(...); without "
                             "reduce, response_ already holds the response on the grid")

    # ----------------------------------------------------------- response_to
    def response_to(self, pattern) -> xr.Dataset:
        """Response of the whole field to a unit impulse with spatial pattern ``pattern``.

        :math:`R(t) f = \\frac{1}{w} E R_a(t) E^T (w f)` (``R_a`` is ``response_``), with
        its bootstrap standard error; never a ``points x points`` matrix.

        Parameters
        ----------
        pattern : xarray.DataArray or numpy.ndarray
            The impulse on the fitted grid, in field units (a single point, a region
            mask, a forcing map); NaN allowed where the EOFs mask the grid. Extra dims
            (e.g. several patterns) come first in the result.

        Returns
        -------
        xarray.Dataset
            ``response`` with dims ``(*extra, "lag", *space)``, NaN where masked, and
            ``stderr`` (same dims; with ``bootstrap``). Attributes: ``n_modes`` and
            ``captured``, the fraction of the pattern's area-weighted norm that the
            modes represent: at lag 0 the response is the pattern's projection on them,
            the truncation (1 for a pattern in their span).

        Warns
        -----
        UserWarning
            When the modes capture less than half of the pattern (e.g. a single grid
            point): most of the impulse lies outside the reduced space, whose response
            is taken as zero.
        """
        self._check_reduced()
        eof = self.reduce_
        p = eof.project(pattern)  # (..., k)
        extra = _extra_dims(pattern, eof)
        captured = np.asarray(eof.captured(pattern))
        if np.any(captured < CAPTURED_WARN):
            warnings.warn(f"response_to: the {eof.n_modes_} EOF modes represent only "
                          f"{float(np.min(captured)):.0%} of the pattern's area-weighted norm; "
                          "the rest of the impulse lies outside the reduced space and its "
                          "response is taken as zero (R(0) is the pattern's projection on "
                          "the modes). Use a larger-scale pattern or more modes (n_modes)",
                          UserWarning, stacklevel=2)
        R = self.response_.values  # (L + 1, k, k)
        v = np.einsum("lij,...j->...li", R, p)  # (..., L + 1, k)
        lag = self.response_["lag"]
        coords = {"lag": lag, **_extra_coords(pattern, extra)}
        dims = (*extra, "lag")
        resp = eof.to_grid(v, dims, coords, "response")
        resp.attrs = {"long_name": "response of the field to a unit impulse with the given "
                                   "pattern", "units": "field units per unit impulse",
                      "n_modes": int(eof.n_modes_), "method": self._method(),
                      "normalized": int(bool(self.normalize)),
                      "captured": float(np.min(captured)), "response_kind": "pattern"}
        out = xr.Dataset({"response": resp})
        reps = getattr(self, "_replicates", None)
        if reps is not None:
            vb = np.einsum("blij,...j->b...li", reps, p)  # (b, ..., L + 1, k)
            dev = vb - vb.mean(axis=0)
            cov = np.einsum("b...i,b...j->...ij", dev, dev) / max(vb.shape[0] - 1, 1)
            se = np.sqrt(eof.grid_variance(cov))
            out["stderr"] = resp.copy(data=se).assign_attrs(
                {"long_name": "bootstrap standard error of the response",
                 "n_bootstrap": int(vb.shape[0])})
        elif getattr(self, "response_stderr_", None) is not None:  # bootstrap, no replicates
            out["stderr"] = resp.copy(data=np.where(np.isnan(resp.values), np.nan, np.nan))
            out["stderr"].attrs = {"long_name": "bootstrap standard error of the response "
                                                "(not available: NaN)"}
            logger.warning("response_to: no bootstrap replicates were kept (fewer than 2 "
                           "blocks, or more than the memory plan keeps): the standard error "
                           "is NaN; use fewer lags or modes, or more data")
        return out

    # ------------------------------------------------------------ null model
    def _null_bands_reduced(self, X, **kw) -> xr.Dataset:
        """:meth:`null_bands` with ``reduce``: red-noise surrogates of the principal
        components (on the fitted EOFs, or EOFs fitted to ``X`` here), fitted without
        the reduction; the band has the mode-space layout of ``response_``."""
        from gfdt.nullmodel import surrogate_bands

        eof = getattr(self, "reduce_", None)
        if eof is None:
            eof = type(self.reduce)(**self.reduce.get_params(deep=False)).fit(X)
        plain = type(self)(**{**self.get_params(deep=False), "reduce": None})
        band = surrogate_bands(plain, _as_pcs(eof.transform(X)), **kw)
        return band.rename({k: v for k, v in _MODE_DIMS.items() if k in band.dims})

    # --------------------------------------------------------------- predict
    def _predict_reduced(self, forcing, return_stderr: bool):
        """:meth:`predict` with ``reduce``: a forcing field ``(time, *space)`` or a pair
        ``(pattern, series)``; the prediction on the grid, ``(time, *space)``."""
        from gfdt.response.forcing import response_to_forcing

        self._check_reduced()
        eof = self.reduce_
        if isinstance(forcing, tuple):
            if len(forcing) != 2:
                raise ValueError("forcing as a tuple must be (pattern, series)")
            pattern, series = forcing
            s = series if isinstance(series, xr.DataArray) else xr.DataArray(
                np.asarray(series, dtype=float), dims="time")
            if s.dims != ("time",):
                raise ValueError(f"series must be 1-D along 'time', got dims {s.dims}")
            F = s.expand_dims(source=eof.n_modes_, axis=1).copy(
                data=np.asarray(s.values, dtype=float)[:, None] * eof.project(pattern)[None])
        elif isinstance(forcing, xr.DataArray) and "time" in forcing.dims:
            other = [d for d in forcing.dims if d != "time"]
            if sorted(other) != sorted(eof.space_dims_):
                raise ValueError(f"forcing must have dims ('time', *{eof.space_dims_}), got "
                                 f"{forcing.dims}; or pass (pattern, series)")
            f = forcing.transpose("time", *eof.space_dims_)
            F = xr.DataArray(eof.project(f.values), dims=("time", "source"),
                             coords={"time": f["time"]} if "time" in f.coords else {})
        else:
            raise TypeError("with reduce, forcing is a DataArray (time, *space) or a pair "
                            "(pattern, series)")
        resp = self.response_.rename({v: k for k, v in _MODE_DIMS.items()}).drop_vars(
            ["observable", "source"], errors="ignore")
        pred = response_to_forcing(resp, F, kind="matrix")  # (time, k)
        tcoords = {"time": pred["time"]}
        out = eof.to_grid(pred.values, ("time",), tcoords, "predicted_response")
        out.attrs = dict(pred.attrs)
        if not return_stderr:
            return out
        reps = getattr(self, "_replicates", None)
        if reps is None:
            raise ValueError("return_stderr=True needs the bootstrap replicates: fit with "
                             "bootstrap=True")
        preds = np.stack([response_to_forcing(resp.copy(data=r), F, kind="matrix").values
                          for r in reps])  # (b, time, k)
        dev = preds - preds.mean(axis=0)
        cov = np.einsum("bti,btj->tij", dev, dev) / max(len(reps) - 1, 1)
        se = out.copy(data=np.sqrt(eof.grid_variance(cov)))
        se.name = "stderr"
        se.attrs = {"long_name": "bootstrap standard error of the prediction"}
        return out, se


def _as_pcs(pcs):
    """PCs as DataArrays ``(time, mode)`` (arrays get a ``mode`` coordinate)."""
    if isinstance(pcs, list):
        return [_as_pcs(p) for p in pcs]
    if isinstance(pcs, xr.DataArray):
        return pcs
    a = np.asarray(pcs)
    return xr.DataArray(a, dims=("time", "mode"), coords={"mode": np.arange(1, a.shape[1] + 1)})


def _mode_dims(da: xr.DataArray) -> xr.DataArray:
    """``observable``/``source`` (mode numbers) renamed ``mode``/``source_mode``."""
    ren = {k: v for k, v in _MODE_DIMS.items() if k in da.dims}
    return da.rename(ren) if ren else da


def _extra_dims(pattern, eof) -> tuple[str, ...]:
    if isinstance(pattern, xr.DataArray):
        return tuple(d for d in pattern.dims if d not in eof.space_dims_)
    nd = np.ndim(pattern) - len(eof.space_shape_)
    return tuple(f"pattern_{i}" for i in range(nd))


def _extra_coords(pattern, extra: tuple[str, ...]) -> dict:
    if not isinstance(pattern, xr.DataArray):
        return {}
    return {d: pattern[d] for d in extra if d in pattern.coords}
