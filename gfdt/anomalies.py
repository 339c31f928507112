"""Anomalies of climate records: a climatology removed, optionally a linear trend.

The GFDT (and its error bars) assume a stationary record. A seasonal cycle and a forced
trend are not stationary noise: they inflate lagged covariances (a response that
decays too slowly) and pass red-noise tests. :func:`anomalies` removes them the way
climate studies do before any lagged statistic.
"""

from __future__ import annotations

import datetime

import numpy as np
import xarray as xr

__all__ = ["anomalies"]

_GROUPS = {"month": "time.month", "dayofyear": "time.dayofyear"}


def _elapsed_days(time: xr.DataArray) -> np.ndarray:
    """Time since the first stamp in days (dates of any calendar) or in the numbers'
    own units."""
    vals = np.asarray(time.values)
    if np.issubdtype(vals.dtype, np.datetime64):
        return (vals - vals[0]) / np.timedelta64(1, "D")
    if np.issubdtype(vals.dtype, np.timedelta64):
        return (vals - vals[0]) / np.timedelta64(1, "D")
    if vals.dtype == object:  # cftime or datetime objects
        return np.array([(v - vals[0]) / datetime.timedelta(days=1) for v in vals])
    return vals.astype(float) - float(vals[0])


def _auto_climatology(time: xr.DataArray) -> str | None:
    """``"month"`` for monthly stamps, ``"dayofyear"`` for daily ones, else None."""
    days = np.diff(_elapsed_days(time))
    vals = np.asarray(time.values)
    if days.size == 0 or not (np.issubdtype(vals.dtype, np.datetime64) or vals.dtype == object):
        return None
    step = float(np.median(days))
    if 27.5 <= step <= 31.5:
        return "month"
    if 0.9 <= step <= 1.1:
        return "dayofyear"
    return None


def anomalies(X, climatology: str | None = "auto", detrend: bool = False,
              dim: str = "time") -> xr.DataArray:
    """Anomalies of ``X``: a climatology removed, optionally a linear trend too.

    Parameters
    ----------
    X : xarray.DataArray
        A record with a ``dim`` dimension (and coordinate, for a climatology or a trend
        on uneven stamps); other dims (space, ``member``) are kept. NaN (e.g. land) stay
        NaN and are skipped in the means and the trend.
    climatology : {"auto", "month", "dayofyear"} or None
        What is removed first: the mean of each calendar month, of each day of the year,
        or (None) the time mean only. ``"auto"``: by month for monthly stamps (28-31
        days apart), by day of year for daily ones, else the time mean. Means are taken
        over time and ``member``.
    detrend : bool
        Then remove a least-squares linear trend in time per coordinate (pooled over
        ``member``), with the time elapsed since the first stamp (days for dates).
    dim : str
        The time dimension.

    Returns
    -------
    xarray.DataArray
        Same dims, coordinates (time included) and attributes as ``X``, with
        ``anomaly`` added to the attributes saying what was removed.

    Raises
    ------
    ValueError
        No ``dim`` dimension, a climatology without date stamps, or an unknown
        ``climatology``.
    TypeError
        ``X`` is not a DataArray.
    """
    if not isinstance(X, xr.DataArray):
        raise TypeError(f"X must be an xarray.DataArray with a {dim!r} dimension, got "
                        f"{type(X).__name__}")
    if dim not in X.dims:
        raise ValueError(f"X has no {dim!r} dimension (dims are {X.dims})")
    if not isinstance(detrend, (bool, np.bool_)):
        raise TypeError(f"detrend must be True or False, got {detrend!r}")
    if climatology == "auto":
        climatology = _auto_climatology(X[dim]) if dim in X.coords else None
    if climatology is not None and climatology not in _GROUPS:
        raise ValueError(f"climatology must be 'auto', 'month', 'dayofyear' or None, got "
                         f"{climatology!r}")
    over = [dim] + (["member"] if "member" in X.dims else [])
    x = X.astype(float)
    if climatology is None:
        out = x - x.mean(over, skipna=True)
        done = ["time mean"]
    else:
        if dim not in X.coords or not (np.issubdtype(X[dim].dtype, np.datetime64)
                                       or X[dim].dtype == object):
            raise ValueError(f"climatology={climatology!r} needs date stamps on {dim!r}")
        key = X[dim].dt.month if climatology == "month" else X[dim].dt.dayofyear
        clim = x.groupby(key).mean(over, skipna=True)
        out = (x.groupby(key) - clim).drop_vars(key.name, errors="ignore")
        done = [f"{'monthly' if climatology == 'month' else 'daily'} climatology"]
    if detrend:
        t = xr.DataArray(_elapsed_days(X[dim]) if dim in X.coords
                         else np.arange(X.sizes[dim], dtype=float), dims=(dim,))
        valid = out.notnull()
        tv = t.where(valid)
        tc = tv - tv.mean(over)
        oc = out - out.mean(over, skipna=True)
        slope = (tc * oc).sum(over, skipna=True) / (tc * tc).sum(over, skipna=True)
        out = oc - slope * tc
        out = out.where(valid)
        done.append("linear trend")
    out = out.transpose(*X.dims)
    out = out.assign_coords({c: X.coords[c] for c in X.coords})
    out.attrs = {**X.attrs, "anomaly": " and ".join(done) + " removed"}
    out.name = X.name
    return out
