"""Checks of degenerate data at the response estimator (no silent wrong results)."""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import xarray as xr

from gfdt._duration import parse_max_lag
from gfdt.data import Trajectories

__all__ = ["MaxLagWarning", "NonStationarityWarning", "SteinWarning", "check_coords_agree",
           "check_not_constant", "check_params", "check_periodic", "check_rank", "check_record",
           "check_samples", "check_stationary", "check_stein"]

logger = logging.getLogger("gfdt")

#: max_lag beyond this fraction of the shortest member warns.
MAX_LAG_FRACTION = 0.2
#: Family-wise false-alarm probability of the stationarity check (over coordinates).
STATIONARITY_ALPHA = 1e-3


class NonStationarityWarning(UserWarning):
    """The record's mean drifts: a trend or forced signal is not stationary noise.

    Trends inflate lagged covariances (a response that decays too slowly) and pass
    red-noise tests. Remove them first, e.g. with :func:`gfdt.anomalies`
    (``detrend=True``), or filter with
    ``warnings.simplefilter("ignore", gfdt.response.NonStationarityWarning)`` once
    judged.
    """


class MaxLagWarning(UserWarning):
    """``max_lag`` is a large fraction of the record: few pairs and few bootstrap blocks."""


def _warn(msg: str, category: type, stacklevel: int = 4) -> None:
    logger.warning(msg)
    warnings.warn(msg, category, stacklevel=stacklevel)


def check_samples(data: Trajectories, name: str = "X") -> None:
    """Raise ValueError when a member has fewer than 2 time samples."""
    short = [k for k, T in enumerate(data.lengths) if T < 2]
    if short:
        which = (f"has {data.lengths[0]} time sample" if data.n_members == 1 else
                 f"has {len(short)} member(s) of fewer than 2 time samples (first: member "
                 f"{short[0]}, {data.lengths[short[0]]} sample)")
        raise ValueError(f"{name} {which}: a response needs a time series (at least 2 "
                         "samples, and more than max_lag) per member")


def check_record(data: Trajectories, L: int, name: str = "X") -> None:
    """Warn when ``max_lag`` is long against the record, or when the mean drifts."""
    T = data.min_length
    if L > MAX_LAG_FRACTION * T:
        _warn(f"max_lag = {L} samples is {L / T:.0%} of the shortest member ({T} samples): "
              f"the lag-{L} estimate rests on {T - L} pairs per member, and bootstrap blocks "
              f"of at least max_lag + 1 samples leave about {T // (L + 1)} blocks per member; "
              f"use max_lag <= {int(MAX_LAG_FRACTION * T)} (a fifth of the record) unless the "
              "long lags are needed, or more/longer members", MaxLagWarning, 4)
    check_stationary(data, name)


def _label(data: Trajectories, flat: int) -> str:
    idx = np.unravel_index(flat, data.state_shape)
    if data.scalar:
        return "the series"
    parts = []
    for dim, i in zip(data.state_dims, idx, strict=True):
        c = data.state_coords.get(dim)
        v = c.values[i] if c is not None else i
        parts.append(f"{dim}={v.item() if hasattr(v, 'item') else v}")
    return ", ".join(parts)


def _smooth_basis(T: int) -> np.ndarray:
    """Orthonormal columns spanning the quadratic and cubic in time orthogonal to a
    constant and a line, shape ``(T, 2)`` (the rest of a cubic fit after the linear one)."""
    t = np.linspace(-1.0, 1.0, T)
    basis = np.stack([np.ones(T), t, t**2, t**3], axis=1)
    q = np.linalg.qr(basis)[0]
    return q[:, 2:]


def _integrated_time(acv: np.ndarray, n: int) -> np.ndarray:
    """Integrated autocorrelation time per column, :math:`\\sigma^2_\\infty/\\gamma(0)`, from
    autocovariance sums ``acv`` (lags 0..m_max, columns) of ``n`` samples in all: the
    flat-top estimate of the long-run variance with Politis and White's bandwidth rule
    (:func:`gfdt.response._blocklength.flat_top`), at least 1."""
    from gfdt.response._blocklength import flat_top

    g0 = np.where(acv[0] > 0, acv[0], 1.0)
    long_run = flat_top(acv, np.abs(acv) / g0, n)[1]
    return np.maximum(long_run / g0, 1.0)


def _smooth_basis(T: int) -> np.ndarray:
    """Orthonormal columns spanning the quadratic and cubic in time orthogonal to a
    constant and a line, shape ``(T, 2)`` (the rest of a cubic fit after the linear one)."""
    t = np.linspace(-1.0, 1.0, T)
    basis = np.stack([np.ones(T), t, t**2, t**3], axis=1)
    q = np.linalg.qr(basis)[0]
    return q[:, 2:]


def _integrated_time(acv: np.ndarray, n: int) -> np.ndarray:
    """Integrated autocorrelation time per column, :math:`\\sigma^2_\\infty/\\gamma(0)`, from
    autocovariance sums ``acv`` (lags 0..m_max, columns) of ``n`` samples in all: the
    flat-top kernel estimate of the long-run variance with Politis and White's
    bandwidth rule (:mod:`gfdt.response._blocklength`), at least 1."""
    m_max = acv.shape[0] - 1
    g0 = acv[0]
    rho = np.abs(acv) / np.where(g0 > 0, g0, 1.0)
    kn = max(5, int(math.log10(n)))
    band = 2 * math.sqrt(math.log10(n) / n)
    small = rho < band
    m = np.full(acv.shape[1], m_max)
    found = np.zeros(acv.shape[1], dtype=bool)
    for i in range(kn, m_max + 1):  # first run of kn small autocorrelations (after lag 0)
        run = small[i - kn + 1:i + 1].all(axis=0) & ~found
        m = np.where(run, np.minimum(2 * max(i - kn + 1, 1), m_max), m)
        found |= run
    k = np.arange(1, m_max + 1)[:, None]
    lam = np.where(k <= m / 2, 1.0, np.clip(2 * (1 - k / np.maximum(m, 1)), 0, None))
    long_run = g0 + 2 * (lam * acv[1:]).sum(axis=0)
    return np.maximum(long_run / np.where(g0 > 0, g0, 1.0), 1.0)


def drift_z(members: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    r"""Linear drift of the mean over the record, per coordinate, against its error.

    Coordinates are taken in groups, so the temporaries stay about 16 MB whatever the
    size of the data.

    The least-squares slope of every coordinate on time (each member about its own
    time and value means, pooled), and its standard error from the residuals'
    variance times an AR(1)-type integrated time :math:`\tau = (1 + \rho)/(1 -
    \rho)`, :math:`\rho = \max(\rho_1, \sqrt{\rho_2})` from the lag-1 and lag-2
    autocorrelations of the residuals of a *cubic* fit in time, corrected for the
    small-sample bias of the autocorrelation of regression residuals (:math:`+ (4 +
    6\rho)/n`: Kendall's :math:`(1 + 3\rho)/n` plus about :math:`(1 + \rho)/n` per
    fitted trend term). The noise's memory is taken after a smooth trend is removed
    because a curved forced signal (an accelerating warming) left in linear residuals
    looks like memory of nearly one (the first EOF of the A1B scenario: :math:`\rho`
    at its cap, under 2 degrees of freedom, no warning), and hides itself. The ratio is
    a t statistic with :math:`n/\tau - 2` degrees of freedom.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray, numpy.ndarray) or None
        Per coordinate: the t statistic, its degrees of freedom and the change of the
        fitted mean over the longest member (data units); None when the members are
        too short (< 16 samples in all).
    """
    xs = [np.asarray(m).reshape(m.shape[0], -1) for m in members if m.shape[0] >= 4]
    n = sum(x.shape[0] for x in xs)
    if n < 16:
        return None
    stt = sum(float(np.sum((np.arange(x.shape[0]) - (x.shape[0] - 1) / 2) ** 2)) for x in xs)
    d = xs[0].shape[1]
    slope, c0 = np.zeros(d), np.zeros(d)
    m_max = min(math.ceil(math.sqrt(n)) + max(5, int(math.log10(n))),
                min(x.shape[0] for x in xs) - 1)
    acv = np.zeros((m_max + 1, d))  # autocovariance sums of the cubic fit's residuals
    qs = [_smooth_basis(x.shape[0]) for x in xs]  # (T, 2) each: two columns of the data
    step = max(1, 2**21 // max(x.shape[0] for x in xs))  # columns per pass: ~16 MB arrays
    for a in range(0, d, step):
        cols = slice(a, min(a + step, d))
        sxt = 0.0
        for x in xs:
            t = np.arange(x.shape[0]) - (x.shape[0] - 1) / 2
            sxt = sxt + t @ np.asarray(x[:, cols], dtype=float)
        slope[cols] = sxt / stt
        for x, q in zip(xs, qs, strict=True):
            t = np.arange(x.shape[0]) - (x.shape[0] - 1) / 2
            e = np.asarray(x[:, cols], dtype=float)
            e = e - e.mean(axis=0) - np.outer(t, slope[cols])
            c0[cols] += (e * e).sum(axis=0)
            e = e - q @ (q.T @ e)  # residuals of the cubic fit: the noise's memory
            for k in range(m_max + 1):
                acv[k, cols] += (e[k:] * e[:e.shape[0] - k]).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # AR(1)-type time from the lag-1 and lag-2 autocorrelations (bias-corrected for
        # residuals of a 4-term fit), or the flat-top estimate, whichever is longer: the
        # first holds persistent single-scale noise the short kernel cannot reach, the
        # second a mixture of time scales whose lag-1 correlation understates its memory
        r1 = np.nan_to_num(acv[1] / acv[0]) if m_max >= 1 else np.zeros(d)
        r2 = np.nan_to_num(acv[2] / acv[0]) if m_max >= 2 else np.zeros(d)
        rho = np.maximum(r1, np.sqrt(np.clip(r2, 0, None)))
        rho = np.clip(rho + (4 + 6 * np.clip(rho, 0, None)) * len(xs) / n, 0.0, 0.98)
        tau = np.maximum((1 + rho) / (1 - rho), _integrated_time(acv, n))
        var = c0 / max(n - 2 * len(xs), 1) * tau / stt
        z = slope / np.sqrt(var)
    dof = np.maximum(n / tau - 2, 1.0)
    span = max(x.shape[0] for x in xs) - 1
    return np.nan_to_num(z), dof, slope * span


def check_stationary(data: Trajectories, name: str = "X") -> None:
    """Warn (:class:`NonStationarityWarning`) when the mean of in-memory data drifts.

    The linear drift of every coordinate is tested against its standard error
    (:func:`drift_z`, a t test); the threshold is Bonferroni-corrected over the coordinates for a
    family-wise false alarm of :data:`STATIONARITY_ALPHA`. Dask-backed data are not
    checked.
    """
    if data.lazy:
        return
    found = drift_z(data.members)
    if found is None:
        return
    from scipy.special import stdtr

    z, dof, change = found
    p = 2 * stdtr(dof, -np.abs(z))
    bad = p < STATIONARITY_ALPHA / z.size
    if not bad.any():
        return
    p = np.where(np.isfinite(p), p, 1.0)
    worst = int(np.argmin(p))
    where = _label(data, worst)
    count = (f" ({int(bad.sum())} of {z.size} coordinates with p < {STATIONARITY_ALPHA:g} / "
             f"{z.size})" if z.size > 1 else "")
    _warn(f"{name} is not stationary: its mean drifts by {change[worst]:+.3g} over the record "
          f"at {where}, {abs(z[worst]):.1f} times the standard error of a linear trend "
          f"(t test, p = {p[worst]:.2g}){count}. A trend or "
          "forced signal inflates lagged covariances (a slowly decaying response) and passes "
          "red-noise tests; fit anomalies instead (gfdt.anomalies(X, detrend=True) removes a "
          "climatology and a linear trend). If nothing forces X, the record is short for "
          "its slowest variability, and the response at long lags is uncertain too",
          NonStationarityWarning, 5)


#: Stein error of R(0) above which a fit warns that the response may be wrong.
STEIN_WARN = 0.3

_FIX = ("reduce the state first: ResponseEstimator(..., reduce=gfdt.EOF()) computes the "
        "response on the leading EOFs and maps it back to the grid (response_to)")


class SteinWarning(UserWarning):
    """The raw response at lag 0 is far from the identity: the score does not satisfy the
    Stein sum rule on the data, and the response may be wrong by as much."""


def check_periodic(data: Trajectories) -> None:
    """``homogeneous=True``: raise unless every state axis may be periodic.

    Latitude never is; a longitude only when it closes the 360-degree circle; a gfdt
    system's grid is; a coordinate can say so with the attribute ``periodic``. Axes
    without a coordinate (plain arrays) are taken at the caller's word.
    """
    from gfdt._axes import periodic_axes

    axes = periodic_axes(data.template, data.state_dims, data.attrs)
    bad = [why for ok, why in axes.values() if ok is False]
    if bad:
        raise ValueError("homogeneous=True averages over translations of a periodic field, "
                         f"but {'; '.join(bad)}. Use homogeneous=False (the full response "
                         f"matrix), or for a large grid {_FIX}; if the axis is periodic, "
                         "set the attribute periodic=True on its coordinate")


def check_rank(data: Trajectories, homogeneous: bool, score) -> None:
    """A score estimated from fewer samples than state coordinates: an error, before any
    work (the covariance has rank at most samples - 1, so R(0) cannot be the identity).
    ``score``: the estimator's score option (names other than ``"exact"`` and unfitted
    estimators are estimated from the data)."""
    estimated = (isinstance(score, str) and score.lower() != "exact") or (
        hasattr(score, "is_fitted") and not score.is_fitted)
    if homogeneous or not estimated:
        return
    d, n = int(np.prod(data.state_shape)), data.n_samples
    if n - 1 < d:
        raise ValueError(f"X has {d} state coordinates but only {n} samples: the covariance "
                         f"has rank at most {n - 1} < {d}, so no score can be estimated in "
                         f"{d - n + 1} directions and R(0) would not be the identity; "
                         f"{_FIX}, or use fewer coordinates")


def check_stein(est) -> None:
    """Warn (:class:`SteinWarning`) when the raw R(0) is far from the identity."""
    err = getattr(est, "stein_error_", float("nan"))
    if np.isfinite(err) and err > STEIN_WARN:
        warnings.warn(f"the raw response at lag 0 differs from the identity by {err:.3g} "
                      "(stein_error_): the score does not satisfy the Stein sum rule on these "
                      "data, so the response may be wrong by as much. Check the score "
                      "(score_model_.quality_), use more data, stein_correction=True or "
                      f"normalize=True; for high-dimensional data {_FIX}", SteinWarning,
                      stacklevel=3)


def check_not_constant(data: Trajectories, homogeneous: bool, name: str = "X") -> None:
    """Raise ValueError when ``data`` do not vary: the response is then undefined.

    In-memory data only (Dask-backed data are checked through the Gaussian fit). For
    a homogeneous field the whole field must vary; otherwise every state coordinate
    must (a constant coordinate makes the covariance singular, and a pseudo-inverse
    would silently give a zero response).
    """
    if data.lazy:
        return
    flat = _flat_coordinates(data, stop_at_first=homogeneous).reshape(-1)
    if homogeneous and flat.all():
        raise ValueError(f"{name} is constant (zero variance): the response is undefined")
    if not homogeneous and flat.any():
        idx = np.flatnonzero(flat)
        what = ("is constant (zero variance)" if flat.all() else
                f"has {idx.size} constant state coordinate(s) (zero variance; flat "
                f"positions {idx[:5].tolist()})")
        raise ValueError(f"{name} {what}: the response to a kick of a coordinate that never "
                         "varies is undefined; drop those coordinates")


def _flat_coordinates(data: Trajectories, stop_at_first: bool) -> np.ndarray:
    """Mask of the state coordinates that never leave their first value.

    Scans growing time windows and stops as soon as the answer is known (every
    coordinate varies, or with ``stop_at_first`` one does), so varying data cost a few
    frames, not a pass over everything.
    """
    ref = np.asarray(data.members[0][0])
    flat = np.ones(ref.shape, dtype=bool)
    for m in data.members:
        a, width = 0, 4
        while a < m.shape[0]:
            flat &= ~(np.asarray(m[a:a + width]) != ref).any(axis=0)
            if not flat.any() or (stop_at_first and not flat.all()):
                return flat
            a, width = a + width, 4 * width
    return flat


def check_gaussian_fit(model, name: str = "X", n_samples: int | None = None) -> None:
    """Raise ValueError when a fitted Gaussian score has zero variance somewhere, or a
    covariance that is singular to working precision (its pseudo-inverse would give an
    R(0) off the identity without any sign)."""
    cov = getattr(model, "covariance_", None)
    spec = getattr(model, "spectrum_", None)
    if cov is not None and np.any(np.diag(np.atleast_2d(cov)) <= 0):
        raise ValueError(f"{name} has constant state coordinates (zero variance): the "
                         "response is undefined; drop them")
    if cov is not None and np.ndim(cov) == 2 and cov.shape[0] > 1:
        ev = np.linalg.eigvalsh(cov)
        rcond = float(getattr(model, "rcond", 1e-12))
        rank = int(np.sum(ev > rcond * ev[-1]))
        if rank < cov.shape[0]:
            raise ValueError(f"{name}: the covariance of the {cov.shape[0]} state coordinates "
                             f"has numerical rank {rank} (condition number above "
                             f"{1 / rcond:.0e}"
                             + (f", {n_samples} samples" if n_samples is not None else "")
                             + f"): some combinations of coordinates (almost) never vary, "
                             f"and R(0) would not be the identity; {_FIX}, or drop redundant "
                             "coordinates")
    if spec is not None and np.all(np.asarray(spec) <= 0):
        raise ValueError(f"{name} is constant (zero variance): the response is undefined")


def check_coords_agree(response: xr.DataArray, forcing: xr.DataArray, dims,
                       name: str = "forcing") -> None:
    """A forcing's coordinates on the response's dims must equal the response's."""
    for dim in dims:
        if dim in forcing.coords and dim in response.coords and forcing[dim].ndim == 1 \
                and response[dim].ndim == 1:
            a, b = np.asarray(forcing[dim].values), np.asarray(response[dim].values)
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError(f"{name}'s {dim!r} coordinate {a.tolist()[:6]} differs from "
                                 f"the response's {b.tolist()[:6]}")


def check_params(est, data: Trajectories) -> int:
    """The estimator's options checked against the data; returns max_lag in samples."""
    check_samples(data, "X")
    L = parse_max_lag(est.max_lag, data.step)
    if L >= data.min_length:
        raise ValueError(f"max_lag = {L} must be smaller than the length of every time "
                         f"series (shortest has {data.min_length} samples): pass a smaller "
                         f"max_lag, e.g. max_lag={max(1, data.min_length // 5)} (a fifth of "
                         "the record)")
    b = est.batch_size
    if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
        raise ValueError(f"batch_size must be a positive int, got {b!r}")
    if not isinstance(est.normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be True or False, got {est.normalize!r}")
    k = est.source_stride
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"source_stride must be a positive int, got {k!r}")
    if est.score_options is not None and not isinstance(est.score_options, dict):
        raise TypeError(f"score_options must be a dict of keyword arguments, got "
                        f"{type(est.score_options).__name__}")
    if not isinstance(est.kick, str) or est.kick not in ("pixel", "resolved"):
        raise ValueError(f"kick must be 'pixel' or 'resolved', got {est.kick!r}")
    return int(L)
