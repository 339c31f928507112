"""Error metrics for responses, as reported in the paper."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gfdt.conventions import attrs as cf_attrs
from gfdt.scores.quality import stein_error as stein_sum_rule_error

__all__ = ["relative_fisher_error", "response_error", "stein_error", "summarize_errors"]


def _real(values, name: str) -> np.ndarray:
    """A finite, non-empty float64 array; errors name the argument."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _as_response(r, name: str) -> xr.DataArray:
    if isinstance(r, xr.Dataset):
        if "response" not in r:
            raise ValueError(f"{name} is a Dataset without a 'response' variable")
        r = r["response"]
    if isinstance(r, xr.DataArray):
        if "lag" not in r.dims:
            raise ValueError(f"{name} must have a 'lag' dimension, dims are {r.dims}")
        r = r.transpose("lag", ...)
        return r.copy(data=_real(r.values, name))
    arr = _real(r, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (lag, ...), got {arr.shape}")
    return xr.DataArray(arr, dims=("lag", *[f"dim_{i}" for i in range(arr.ndim - 1)]))


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    if np.issubdtype(a.dtype, np.number) and np.issubdtype(b.dtype, np.number):
        scale = max(float(np.max(np.abs(a), initial=0.0)), float(np.max(np.abs(b), initial=0.0)))
        return bool(np.all(np.abs(a.astype(float) - b.astype(float)) <= 1e-9 * scale))
    return bool(np.array_equal(a, b))


def _lag_positions(a: xr.DataArray, b: xr.DataArray, na: str, nb: str) -> np.ndarray | None:
    """Positions in ``b`` of the lags of ``a`` (None: both have no lag coordinate)."""
    if "lag" not in a.coords or "lag" not in b.coords:
        if a.sizes["lag"] != b.sizes["lag"]:
            raise ValueError(f"{na} has {a.sizes['lag']} lags and {nb} has {b.sizes['lag']} "
                             "(without lag coordinates to match them)")
        return None
    ua, ub = a["lag"].attrs.get("units"), b["lag"].attrs.get("units")
    if ua is not None and ub is not None and ua != ub:
        raise ValueError(f"{na}'s lags are in {ua!r} and {nb}'s in {ub!r}: convert one first")
    la = np.asarray(a["lag"].values, dtype=float)
    lb = np.asarray(b["lag"].values, dtype=float)
    tol = 1e-9 * max(float(np.max(np.abs(lb), initial=0.0)), 1e-300)
    pos = np.full(len(la), -1)
    for i, v in enumerate(la):
        hit = np.flatnonzero(np.abs(lb - v) <= tol)
        if hit.size:
            pos[i] = hit[0]
    if np.any(pos < 0):
        missing = la[pos < 0]
        raise ValueError(f"{na} has lags that {nb} lacks ({missing[:5].tolist()}"
                         f"{' ...' if missing.size > 5 else ''}); every lag of {na} must be in "
                         f"{nb} (select them first, e.g. {na}.sel(lag=slice(...)))")
    return pos


def _aligned(a: xr.DataArray, b: xr.DataArray, na: str, nb: str) -> xr.DataArray:
    """``b`` on the grid of ``a``: same dims, sizes and coordinates, or a ValueError.

    ``b`` may hold more lags than ``a`` (a longer reference); nothing else is
    intersected, so every point of ``a`` is scored.
    """
    if set(a.dims) != set(b.dims):
        raise ValueError(f"{na} and {nb} have different dims: {a.dims} and {b.dims}")
    b = b.transpose(*a.dims)
    pos = _lag_positions(a, b, na, nb)
    if pos is not None:
        b = b.isel(lag=pos)
    for d in a.dims[1:]:
        if a.sizes[d] != b.sizes[d]:
            raise ValueError(f"{na} and {nb} differ in size along {d!r}: {a.sizes[d]} and "
                             f"{b.sizes[d]}")
        if d in a.coords and d in b.coords and not _same_values(a[d].values, b[d].values):
            raise ValueError(f"{na} and {nb} have different {d!r} coordinates; select the "
                             f"same points first (e.g. {nb}.sel({d}={na}.{d}))")
    return b


def response_error(estimate, reference, *, stderr=None) -> xr.Dataset:
    """Per-lag errors of a response estimate against a reference.

    Parameters
    ----------
    estimate, reference : xarray.DataArray, xarray.Dataset or numpy.ndarray
        Responses with a leading ``lag`` dim (Datasets: their ``response``), finite.
        xarray inputs must have the same dims (in any order), sizes and coordinates;
        the reference may hold more lags than the estimate (a longer truth): the lags
        of the estimate are taken from it. Arrays must have equal shapes. Nothing is
        intersected silently: a mismatch is a ValueError naming both arguments.
    stderr : array_like, optional
        Standard error of the reference, same layout. Adds ``l2_debiased``,
        :math:`\\sqrt{\\max(0, \\|R - T\\|^2 - \\|se_T\\|^2)}`, which removes the
        reference's own noise from the L2 error in expectation.

    Returns
    -------
    xarray.Dataset
        ``l2`` (Euclidean norm over all non-lag dims) and ``linf`` (max abs), dims
        ``("lag",)`` with the estimate's lags, and ``l2_debiased`` when ``stderr`` is
        given.
    """
    if stderr is None and isinstance(reference, xr.Dataset) and "stderr" in reference:
        stderr = reference["stderr"]
    est = _as_response(estimate, "estimate")
    ref = _as_response(reference, "reference")
    if isinstance(estimate, np.ndarray) or isinstance(reference, np.ndarray):
        if est.shape != ref.shape:
            raise ValueError(f"estimate shape {est.shape} != reference shape {ref.shape}")
        ref = xr.DataArray(ref.values, dims=est.dims)
    else:
        ref = _aligned(est, ref, "estimate", "reference")
    diff = est.values - ref.values
    other = tuple(range(1, diff.ndim))
    out = {
        "l2": ("lag", np.sqrt((diff**2).sum(axis=other)), cf_attrs("error_l2")),
        "linf": ("lag", np.abs(diff).max(axis=other), cf_attrs("error_linf")),
    }
    if stderr is not None:
        se = _as_response(stderr, "stderr")
        if not isinstance(stderr, np.ndarray) and not isinstance(reference, np.ndarray):
            se = _aligned(ref, se, "reference", "stderr")
        if se.shape != diff.shape:
            raise ValueError(f"stderr must have the layout of reference {diff.shape}, got "
                             f"{se.shape}")
        if np.any(se.values < 0):
            raise ValueError("stderr must be >= 0")
        se2 = (np.asarray(se.values) ** 2).sum(axis=other)
        out["l2_debiased"] = ("lag", np.sqrt(np.maximum(0.0, out["l2"][1] ** 2 - se2)),
                              cf_attrs("error_l2_debiased"))
    coords = {"lag": est["lag"]} if "lag" in est.coords else {}
    return xr.Dataset(out, coords=coords)


def summarize_errors(errors: xr.Dataset) -> dict[str, float]:
    """``l2_max``, ``l2_mean``, ``linf_max``, ``linf_mean`` (and debiased) as floats."""
    if not isinstance(errors, xr.Dataset):
        raise TypeError(f"errors must be the Dataset response_error returns, got "
                        f"{type(errors).__name__}")
    if not {"l2", "linf"} <= set(errors.data_vars):
        raise ValueError(f"errors must hold 'l2' and 'linf' (from response_error), got "
                         f"{list(errors.data_vars)}")
    bad = [v for v in errors.data_vars if not np.all(np.isfinite(errors[v].values))]
    if bad:
        raise ValueError(f"errors: {bad} contain NaN or inf")
    out = {}
    for var in errors.data_vars:
        out[f"{var}_max"] = float(errors[var].max())
        out[f"{var}_mean"] = float(errors[var].mean())
    return out


def _evaluate(score, X: np.ndarray, batch_size: int, name: str = "score") -> np.ndarray:
    out = np.empty_like(X)
    for a in range(0, len(X), batch_size):
        s = np.asarray(score(X[a:a + batch_size]), dtype=float)
        if s.shape != X[a:a + batch_size].shape:
            raise ValueError(f"{name} returned shape {s.shape} for a batch of shape "
                             f"{X[a:a + batch_size].shape}")
        if not np.all(np.isfinite(s)):
            raise ValueError(f"{name} returned NaN or inf")
        out[a:a + batch_size] = s
    return out


def _check_score_args(score, X, batch_size: int, min_samples: int) -> np.ndarray:
    if not callable(score):
        raise TypeError(f"score must be callable (an estimator or a function), got "
                        f"{type(score).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) \
            or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    X = _real(X, "X")
    if X.ndim < 2 or len(X) < min_samples:
        raise ValueError(f"X must have shape (n_samples, *state) with at least {min_samples} "
                         f"samples, got {X.shape}")
    return X


def relative_fisher_error(score, reference, X, *, batch_size: int = 512) -> float:
    r"""Relative Fisher divergence :math:`E\|s - s^*\|^2 / E\|s^*\|^2` on samples ``X``.

    Parameters
    ----------
    score, reference : callable
        Map a batch of shape ``(batch, *state)`` to scores of the same shape (a score
        estimator, a system's ``exact_score``, ...); ``reference`` is the true score.
    X : array_like, shape ``(n_samples, *state)``
        Held-out samples of the data distribution.

    Returns
    -------
    float
        0 for a perfect score; 1 for the zero score.
    """
    X = _check_score_args(score, X, batch_size, 1)
    if not callable(reference):
        raise TypeError(f"reference must be callable, got {type(reference).__name__}")
    s = _evaluate(score, X, batch_size)
    r = _evaluate(reference, X, batch_size, "reference")
    den = float(np.sum(r**2))
    if den == 0:
        raise ValueError("reference: the reference score is zero on X")
    return float(np.sum((s - r) ** 2) / den)


def stein_error(score, X, *, homogeneous: bool = False, batch_size: int = 512) -> float:
    """Error of the Stein sum rule :math:`-E[(x - \bar x)\\, s(x)^T] = I` on samples ``X``.

    Returns :math:`\\|M - I\\|_F / \\sqrt{d}` with :math:`M = -E[(x - \bar x) s^T]`
    (``d`` the state size). For ``homogeneous`` periodic fields :math:`M` is averaged
    over translations, which gives the L2 norm over the field of
    :math:`M(r) - \\delta_r`, the lag-0 value of the GFDT response (see
    :attr:`gfdt.ResponseEstimator.stein_error_`).

    Parameters
    ----------
    score : callable
        Maps ``(batch, *state)`` to scores of the same shape.
    X : array_like, shape ``(n_samples, *state)``
    homogeneous : bool
        Translation-average over periodic state axes.

    Returns
    -------
    float
    """
    X = _check_score_args(score, X, batch_size, 2)
    if not isinstance(homogeneous, (bool, np.bool_)):
        raise TypeError(f"homogeneous must be True or False, got {homogeneous!r}")
    return stein_sum_rule_error(X, _evaluate(score, X, batch_size), bool(homogeneous))
