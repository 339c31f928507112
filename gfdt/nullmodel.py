r"""Null models for responses: red-noise (AR(1)) and VAR(1) surrogate bands.

Climate users judge a lagged statistic against red noise: series with the same mean,
variance and lag-1 autocorrelation as the data but nothing else. Here

* :func:`fit_ar1` fits :math:`x_{t+1} - \mu = \phi (x_t - \mu) + \sigma \varepsilon_t`
  to every coordinate (Yule-Walker: :math:`\phi` the lag-1 autocorrelation,
  :math:`\sigma^2 = c_0 (1 - \phi^2)`), :func:`fit_var1` the vector version
  :math:`x_{t+1} - \mu = A (x_t - \mu) + \xi_t`, :math:`A = C_1 C_0^{-1}`,
  :math:`\mathrm{cov}\,\xi = Q = C_0 - A C_0 A^T`, with :math:`C_k` the lag-:math:`k`
  covariance (:math:`C_1 = \langle x_{t+1} x_t^T \rangle`);
* :func:`ar1_surrogates` simulates surrogate series of the same shape, members and time
  axis, started in the stationary law of the fitted model;
* :func:`surrogate_bands` re-fits a clone of any response estimator on each surrogate
  and returns the quantile band of its response: the range of responses that the null
  model gives by chance. With ``kind="ar1"`` every cross response (source
  :math:`\ne` observable) of the null model is zero; with ``kind="var1"`` the null
  model is the linear (Gaussian) one, so the band asks whether the response differs
  from that of a linear Markov process.

Statistics pool all members and times; seeds flow explicitly (surrogate ``k`` draws
from its own stream spawned from ``seed``, so it does not depend on ``n``).
"""

from __future__ import annotations

import inspect
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from gfdt._quantiles import StreamQuantiles
from gfdt.conventions import attrs as cf_attrs
from gfdt.response._checks import MaxLagWarning, NonStationarityWarning
from gfdt.stats import _real_array as _finite

__all__ = ["ar1_surrogates", "fit_ar1", "fit_var1", "surrogate_bands"]

logger = logging.getLogger("gfdt")

_KINDS = ("ar1", "var1")


# ----------------------------------------------------------------- data in
def _members(X, name: str = "X") -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """Data as float64 ``(member, time, feature)`` plus a function that puts an array
    of that shape back into the layout (and coordinates) of ``X``."""
    if isinstance(X, xr.Dataset):
        names = list(X.data_vars)
        if len(names) != 1:
            raise ValueError(f"{name} is a Dataset with variables {names}; pass one DataArray")
        X = X[names[0]]
    if isinstance(X, xr.DataArray):
        if "time" not in X.dims:
            raise ValueError(f"{name} must have a 'time' dimension, dims are {X.dims}")
        order = (("member",) if "member" in X.dims else ()) + ("time",) + tuple(
            d for d in X.dims if d not in ("member", "time"))
        da = X.transpose(*order)
        arr = _finite(da.values, name)
        lead = 2 if "member" in da.dims else 1
        shape = arr.shape
        flat = arr.reshape((shape[0], shape[1], -1) if lead == 2 else (1, shape[0], -1))

        def back(a: np.ndarray) -> xr.DataArray:
            return da.copy(data=a.reshape(shape)).transpose(*X.dims)

        return flat, back
    if isinstance(X, (list, tuple)):
        raise TypeError(f"{name}: pass members as a DataArray with a 'member' dim, or one "
                        "array of shape (time, *state)")
    arr = _finite(X, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have shape (time, *state), got a scalar")
    shape = arr.shape
    return arr.reshape(1, shape[0], -1), lambda a: a.reshape(shape)


def _moments(x: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Mean, lag-0 and lag-1 covariance (feature x feature), pooled over members."""
    if x.shape[1] < 3:
        raise ValueError(f"{name} needs at least 3 time samples, got {x.shape[1]}")
    mu = x.mean(axis=(0, 1))
    xc = x - mu
    n0 = x.shape[0] * x.shape[1]
    c0 = np.einsum("mti,mtj->ij", xc, xc) / n0
    c1 = np.einsum("mti,mtj->ij", xc[:, 1:], xc[:, :-1]) / (x.shape[0] * (x.shape[1] - 1))
    return mu, c0, c1, n0


# ----------------------------------------------------------------- fits
def fit_ar1(X) -> dict[str, np.ndarray]:
    """Independent AR(1) fits to every coordinate of ``X`` (Yule-Walker).

    Parameters
    ----------
    X : xarray.DataArray or numpy.ndarray
        Dims ``(member?, time, *state)`` (a DataArray needs ``time``), or an array of
        shape ``(time, *state)``; finite.

    Returns
    -------
    dict
        ``mean``, ``phi`` (lag-1 autocorrelation, dimensionless), ``sigma`` (innovation
        standard deviation, units of ``X``) and ``variance``, each of shape ``state``
        (``()`` for a 1-D series).

    Raises
    ------
    ValueError
        A constant coordinate (zero variance) or :math:`|\\phi| \\ge 1`.
    """
    x, _ = _members(X)
    if x.shape[1] < 3:
        raise ValueError(f"X needs at least 3 time samples, got {x.shape[1]}")
    mu = x.mean(axis=(0, 1))
    xc = x - mu
    c0 = (xc**2).mean(axis=(0, 1))
    c1 = (xc[:, 1:] * xc[:, :-1]).mean(axis=(0, 1))
    const = c0 <= 1e-300 + 1e-24 * mu**2
    if const.any():
        raise ValueError(f"X is constant in {int(const.sum())} coordinate(s) (first: "
                         f"{int(np.flatnonzero(const)[0])}): a red-noise model needs variance")
    phi = c1 / c0
    if np.any(np.abs(phi) >= 1):
        raise ValueError(f"X: lag-1 autocorrelation {float(np.max(np.abs(phi))):.6g} >= 1, "
                         "not a stationary AR(1); remove trends first")
    state = _state_shape(X)
    return {"mean": mu.reshape(state), "phi": phi.reshape(state),
            "sigma": np.sqrt(c0 * (1 - phi**2)).reshape(state), "variance": c0.reshape(state)}


def fit_var1(X) -> dict[str, np.ndarray]:
    """A VAR(1) fit to the flattened state of ``X`` (Yule-Walker).

    Parameters
    ----------
    X : xarray.DataArray or numpy.ndarray
        As in :func:`fit_ar1`; the state (``d`` values) must be small enough for
        ``d x d`` matrices.

    Returns
    -------
    dict
        ``mean`` (d,), ``A`` (d, d) with :math:`E[x_{t+1} - \\mu \\mid x_t] = A (x_t - \\mu)`,
        ``Q`` (d, d) the innovation covariance, ``C0`` (d, d) the covariance.

    Raises
    ------
    ValueError
        A singular covariance (a constant or linearly dependent coordinate), or a
        fitted :math:`A` with spectral radius >= 1.
    """
    x, _ = _members(X)
    mu, c0, c1, _ = _moments(x, "X")
    scale = float(np.max(np.diag(c0)))
    if scale <= 0 or np.linalg.cond(c0) > 1e12:
        raise ValueError("X: the covariance is singular (a constant or linearly dependent "
                         "coordinate); a VAR(1) needs a full-rank covariance")
    A = np.linalg.solve(c0.T, c1.T).T  # C1 C0^-1
    rho = float(np.max(np.abs(np.linalg.eigvals(A))))
    if rho >= 1:
        raise ValueError(f"X: the fitted VAR(1) has spectral radius {rho:.6g} >= 1, not "
                         "stationary; remove trends first")
    Q = c0 - A @ c0 @ A.T
    Q = 0.5 * (Q + Q.T)
    return {"mean": mu, "A": A, "Q": Q, "C0": c0}


def _state_shape(X) -> tuple[int, ...]:
    if isinstance(X, xr.Dataset):
        X = X[next(iter(X.data_vars))]
    if isinstance(X, xr.DataArray):
        return tuple(X.sizes[d] for d in X.dims if d not in ("member", "time"))
    return tuple(np.shape(X)[1:])


def _sqrt_psd(M: np.ndarray) -> np.ndarray:
    lam, vec = np.linalg.eigh(M)
    return vec * np.sqrt(np.clip(lam, 0.0, None))


# ----------------------------------------------------------------- surrogates
def _simulate(params: dict, kind: str, shape: tuple[int, int, int],
              rng: np.random.Generator) -> np.ndarray:
    """One surrogate of shape ``(member, time, feature)`` in the stationary law."""
    T = shape[1]
    out = np.empty(shape)
    if kind == "ar1":
        phi, sig = params["phi"].reshape(-1), params["sigma"].reshape(-1)
        mu, sd = params["mean"].reshape(-1), np.sqrt(params["variance"].reshape(-1))
        z = rng.standard_normal(shape)
        y = sd * z[:, 0]
        out[:, 0] = y
        for t in range(1, T):
            y = phi * y + sig * z[:, t]
            out[:, t] = y
        return out + mu
    A, mu = params["A"], params["mean"]
    L0, Lq = _sqrt_psd(params["C0"]), _sqrt_psd(params["Q"])
    z = rng.standard_normal(shape)
    y = z[:, 0] @ L0.T
    out[:, 0] = y
    for t in range(1, T):
        y = y @ A.T + z[:, t] @ Lq.T
        out[:, t] = y
    return out + mu


def _check_kind(kind) -> str:
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    return kind


def _check_count(n, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name} must be an int >= 1, got {n!r}")
    return int(n)


def _fit(X, kind: str) -> dict:
    return fit_ar1(X) if kind == "ar1" else fit_var1(X)


def ar1_surrogates(X, n: int, seed: int | np.random.SeedSequence = 0, *,
                   kind: str = "ar1") -> list:
    """Red-noise surrogates of ``X``: same shape, members, coordinates and time axis.

    Parameters
    ----------
    X : xarray.DataArray or numpy.ndarray
        Dims ``(member?, time, *state)`` (a DataArray needs ``time``; its coordinates,
        including a datetime or cftime time axis, are kept), or an array of shape
        ``(time, *state)``; finite.
    n : int
        Number of surrogates (>= 1).
    seed : int or numpy.random.SeedSequence
        Surrogate ``k`` draws from child ``k`` of ``SeedSequence(seed)``.
    kind : {"ar1", "var1"}
        Independent AR(1) per coordinate (:func:`fit_ar1`), or one VAR(1) of the
        whole state (:func:`fit_var1`; coupled coordinates, e.g. a response matrix).

    Returns
    -------
    list of length ``n``
        Surrogates like ``X`` (DataArrays with its dims and coordinates, or arrays),
        each started in the stationary law of the fitted model (no spin-up needed).
    """
    kind = _check_kind(kind)
    n = _check_count(n, "n")
    x, back = _members(X)
    params = _fit(X, kind)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return [back(_simulate(params, kind, x.shape, np.random.default_rng(child)))
            for child in ss.spawn(n)]


def _clone(estimator):
    """An unfitted copy with the same parameters (sklearn's clone when it applies)."""
    if hasattr(estimator, "get_params"):
        try:
            from sklearn.base import clone
        except ImportError:
            params = {k: _clone_param(v) for k, v in estimator.get_params(deep=False).items()}
            return type(estimator)(**params)
        return clone(estimator)
    sig = inspect.signature(type(estimator).__init__)
    names = [p for p in sig.parameters if p != "self"
             and sig.parameters[p].kind not in (inspect.Parameter.VAR_POSITIONAL,
                                                inspect.Parameter.VAR_KEYWORD)]
    missing = [p for p in names if not hasattr(estimator, p)]
    if missing:
        raise TypeError(f"estimator: cannot clone {type(estimator).__name__} (no attribute "
                        f"for parameters {missing}); give it get_params()")
    return type(estimator)(**{p: _clone_param(getattr(estimator, p)) for p in names})


def _clone_param(v):
    return _clone(v) if hasattr(v, "get_params") and not isinstance(v, type) else v


def surrogate_bands(estimator, X, *, n_surrogates: int = 100, level: float = 0.95,
                    seed: int = 0, kind: str = "ar1", attribute: str = "response_",
                    return_samples: bool = False) -> xr.Dataset:
    """Quantile band of a response under a red-noise (or VAR(1)) null model.

    Each of ``n_surrogates`` surrogates of ``X`` (:func:`ar1_surrogates`) is fitted by
    an unfitted clone of ``estimator`` (same parameters; its bootstrap and progress
    bars switched off when it has them); the band is the central ``level`` range of
    the surrogates' ``attribute`` at every lag and position.

    Memory is planned before the first surrogate (for a
    :class:`~gfdt.ResponseEstimator`: its fit's plan, within its ``memory_budget`` or
    the default budget): surrogates are drawn and fitted one at a time, and the band's
    quantiles are kept exactly in bounded buffers of order statistics
    (:class:`gfdt._quantiles.StreamQuantiles`: the tails of a 95% band of 100
    surrogates keep 4 + 4 responses, the median about half of them). When the
    median's buffer does not fit, ``median`` holds the surrogates' mean (attribute
    ``center`` says so); when the tails do not fit, a ValueError
    (:class:`~gfdt.response.MemoryPlanError`) says so before any buffer is allocated.

    Parameters
    ----------
    estimator : ResponseEstimator or any estimator with ``fit(X)``
        Its parameters define the response; it need not be fitted.
    X : xarray.DataArray or numpy.ndarray
        The data ``estimator`` is (or would be) fitted on.
    n_surrogates : int
        Number of surrogates (>= 2; the band's quantiles need about ``40 / (1 -
        level)`` for a stable edge, 100 gives a rough 95% band).
    level : float
        Central probability of the band, in (0, 1).
    seed : int
        Seed of the surrogates.
    kind : {"ar1", "var1"}
        Null model (see the module notes).
    attribute : str
        Fitted attribute to band (an xarray.DataArray), default ``"response_"``.
    return_samples : bool
        Also return every surrogate's response (``samples``, dim ``surrogate``).

    Returns
    -------
    xarray.Dataset
        ``lower`` and ``upper`` (and ``median``), each with the dims and coordinates of
        the estimator's ``attribute``; attributes ``level``, ``n_surrogates``,
        ``null_model``.
    """
    kind = _check_kind(kind)
    n_surrogates = _check_count(n_surrogates, "n_surrogates")
    if n_surrogates < 2:
        raise ValueError("n_surrogates must be >= 2 for a band")
    if isinstance(level, bool) or not isinstance(level, (float, int, np.floating)) \
            or not 0 < level < 1:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if not hasattr(estimator, "fit"):
        raise TypeError(f"estimator must have a fit method, got {type(estimator).__name__}")
    x, back = _members(X)
    params = _fit(X, kind)
    q = (1 - float(level)) / 2
    probs = [q, 0.5, 1 - q]
    plan = _plan_bands(estimator, X, n_surrogates, probs, return_samples, x.nbytes)
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    samples, stats, like, total = [], None, None, None
    for k, child in enumerate(ss.spawn(n_surrogates)):
        # one surrogate at a time (same draws as ar1_surrogates)
        surrogate = back(_simulate(params, kind, x.shape, np.random.default_rng(child)))
        est = _clone(estimator)
        for param, value in (("bootstrap", False), ("progress", False)):
            if param in inspect.signature(type(est).__init__).parameters:
                setattr(est, param, value)
        with warnings.catch_warnings():  # said once for the data, not per surrogate
            warnings.simplefilter("ignore", MaxLagWarning)
            warnings.simplefilter("ignore", NonStationarityWarning)
            est.fit(surrogate)
        r = getattr(est, attribute, None)
        if not isinstance(r, xr.DataArray):
            raise TypeError(f"attribute: the fitted estimator's {attribute!r} is not an "
                            f"xarray.DataArray ({type(r).__name__})")
        del est, surrogate
        if like is None:
            like = r
            plan = plan.with_item(r.nbytes) if plan is not None else _plan_after(
                estimator, n_surrogates, probs, return_samples, r.nbytes)
            logger.info("surrogate_bands: memory plan %s", plan.describe())
            stats = StreamQuantiles(n_surrogates, probs if plan.exact_median else [q, 1 - q],
                                    r.shape)
            if not plan.exact_median:
                total = np.zeros(r.shape)
        stats.add(r.values)
        if total is not None:
            total += r.values
        if return_samples:
            samples.append(r)
        logger.info("surrogate_bands: surrogate %d of %d fitted", k + 1, n_surrogates)
    found = stats.quantiles()
    lo, hi = found[0], found[-1]
    med = found[1] if plan.exact_median else total / n_surrogates
    out = xr.Dataset({"lower": like.copy(data=lo), "median": like.copy(data=med),
                      "upper": like.copy(data=hi)},
                     attrs={"level": float(level), "n_surrogates": n_surrogates,
                            "null_model": kind})
    if not plan.exact_median:
        out.attrs["center"] = "mean (the median's buffer did not fit the memory plan)"
    for v in ("lower", "median", "upper"):
        out[v].attrs = {**like.attrs,
                        **(cf_attrs("null_band_edge", edge=v, level=f"{level:.0%}", kind=kind)
                           if v != "median" else cf_attrs("null_median", kind=kind))}
    if return_samples:
        out["samples"] = xr.concat(samples, dim="surrogate")
    return out


# ----------------------------------------------------------------- memory
class _BandPlan:
    """Memory of a band: a surrogate fit, the quantile buffers, the surrogate data."""

    def __init__(self, n: int, probs: list, fit_bytes: int, data_bytes: int, samples: bool,
                 budget: int, source: str, item: int | None = None) -> None:
        self.n, self.probs, self.fit_bytes, self.data_bytes = n, probs, fit_bytes, data_bytes
        self.samples, self.budget, self.source = samples, budget, source
        self.item, self.exact_median, self.peak = item, True, 0
        if item is not None:
            self._decide()

    def with_item(self, item: int) -> _BandPlan:
        """The plan for the attribute's real size (known after the first fit)."""
        return _BandPlan(self.n, self.probs, self.fit_bytes, self.data_bytes, self.samples,
                         self.budget, self.source, item)

    def need(self, exact_median: bool) -> int:
        probs = self.probs if exact_median else [self.probs[0], self.probs[-1]]
        buffers = StreamQuantiles.bytes(self.n, probs, self.item) + (
            0 if exact_median else self.item)
        kept = self.n * self.item if self.samples else 0
        return self.fit_bytes + 2 * self.data_bytes + self.item + buffers + kept

    def _decide(self) -> None:
        from gfdt._memory import format_bytes, reserve
        from gfdt.response._plan import MemoryPlanError

        avail = self.budget - reserve(self.budget)
        self.exact_median = self.need(True) <= avail
        self.peak = self.need(self.exact_median)
        if self.peak > avail:
            raise MemoryPlanError(
                f"null_bands needs about {format_bytes(self.peak)} beyond the data (a "
                f"surrogate fit {format_bytes(self.fit_bytes)}, the quantile buffers of "
                f"{self.n} responses of {format_bytes(self.item)}"
                + (", every surrogate's response (return_samples)" if self.samples else "")
                + f"), more than the memory budget of {format_bytes(self.budget)} "
                f"({self.source}) allows after a reserve of {format_bytes(reserve(self.budget))}."
                " Options that would fit: a smaller max_lag or state (the response's size), "
                "fewer surrogates or a wider level (smaller tails), return_samples=False, or "
                "a larger memory_budget")

    def describe(self) -> str:
        from gfdt._memory import format_bytes

        return (f"peak {format_bytes(self.peak)} (surrogate fit {format_bytes(self.fit_bytes)}"
                f", response {format_bytes(self.item or 0)}, "
                f"{'exact median' if self.exact_median else 'mean as centre'}) of a budget of "
                f"{format_bytes(self.budget)} ({self.source})")


def _plan_bands(estimator, X, n: int, probs: list, samples: bool,
                data_bytes: int) -> _BandPlan | None:
    """The band's plan before any surrogate is fitted, for a ResponseEstimator (it
    raises MemoryPlanError when a surrogate fit alone, or the buffers, cannot fit)."""
    from gfdt.response._plan import fit_plan, resolve_budget

    clone = _clone(estimator)
    if not hasattr(clone, "_plan_state"):
        return None
    clone.bootstrap = False
    fit = fit_plan(clone, X, what="null_bands (one surrogate's fit)")
    if fit is None:
        return None
    budget, source = resolve_budget(getattr(estimator, "memory_budget", None))
    return _BandPlan(n, probs, fit.peak, data_bytes, samples, budget, source,
                     fit.output_bytes)


def _plan_after(estimator, n: int, probs: list, samples: bool, item: int) -> _BandPlan:
    from gfdt.response._plan import resolve_budget

    budget, source = resolve_budget(getattr(estimator, "memory_budget", None))
    return _BandPlan(n, probs, 0, 0, samples, budget, source, item)
