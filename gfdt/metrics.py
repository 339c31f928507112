"""Error metrics for responses, as reported in the paper."""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["response_error", "summarize_errors"]


def _as_response(r, name: str) -> xr.DataArray:
    if isinstance(r, xr.Dataset):
        if "response" not in r:
            raise ValueError(f"{name} is a Dataset without a 'response' variable")
        r = r["response"]
    if isinstance(r, xr.DataArray):
        if "lag" not in r.dims:
            raise ValueError(f"{name} must have a 'lag' dimension, dims are {r.dims}")
        return r.transpose("lag", ...)
    arr = np.asarray(r, dtype=float)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (lag, ...), got {arr.shape}")
    return xr.DataArray(arr, dims=("lag", *[f"dim_{i}" for i in range(arr.ndim - 1)]))


def response_error(estimate, reference, *, stderr=None) -> xr.Dataset:
    """Per-lag errors of a response estimate against a reference.

    Parameters
    ----------
    estimate, reference : xarray.DataArray, xarray.Dataset or numpy.ndarray
        Responses with a leading ``lag`` dim (Datasets: their ``response``). xarray
        inputs are aligned on their coordinates (common lags only); arrays must have
        equal shapes.
    stderr : array_like, optional
        Standard error of the reference, same layout. Adds ``l2_debiased``,
        :math:`\\sqrt{\\max(0, \\|R - T\\|^2 - \\|se_T\\|^2)}`, which removes the
        reference's own noise from the L2 error in expectation.

    Returns
    -------
    xarray.Dataset
        ``l2`` (Euclidean norm over all non-lag dims) and ``linf`` (max abs), dims
        ``("lag",)``, and ``l2_debiased`` when ``stderr`` is given.
    """
    if stderr is None and isinstance(reference, xr.Dataset) and "stderr" in reference:
        stderr = reference["stderr"]
    est = _as_response(estimate, "estimate")
    ref = _as_response(reference, "reference")
    if isinstance(estimate, np.ndarray) or isinstance(reference, np.ndarray):
        if est.shape != ref.shape:
            raise ValueError(f"estimate shape {est.shape} != reference shape {ref.shape}")
        est = est.copy(data=est.values)
        ref = xr.DataArray(ref.values, dims=est.dims)
    else:
        est, ref = xr.align(est, ref, join="inner")
        if est.sizes["lag"] == 0:
            raise ValueError("estimate and reference share no lags")
    diff = (est - ref).values
    other = tuple(range(1, diff.ndim))
    out = {
        "l2": ("lag", np.sqrt((diff**2).sum(axis=other)), {"long_name": "L2 error"}),
        "linf": ("lag", np.abs(diff).max(axis=other), {"long_name": "L-infinity error"}),
    }
    if stderr is not None:
        se = _as_response(stderr, "stderr")
        if isinstance(se, xr.DataArray) and not isinstance(stderr, np.ndarray):
            se = se.sel(lag=ref["lag"]) if "lag" in ref.coords and "lag" in se.coords else se
        se2 = (np.asarray(se.values) ** 2).sum(axis=other)
        out["l2_debiased"] = ("lag", np.sqrt(np.maximum(0.0, out["l2"][1] ** 2 - se2)),
                              {"long_name": "debiased L2 error"})
    coords = {"lag": est["lag"]} if "lag" in est.coords else {}
    return xr.Dataset(out, coords=coords)


def summarize_errors(errors: xr.Dataset) -> dict[str, float]:
    """``l2_max``, ``l2_mean``, ``linf_max``, ``linf_mean`` (and debiased) as floats."""
    out = {}
    for var in errors.data_vars:
        out[f"{var}_max"] = float(errors[var].max())
        out[f"{var}_mean"] = float(errors[var].mean())
    return out
