"""Coercion of user data into independent time series for the GFDT."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Series", "as_series"]


@dataclasses.dataclass
class Series:
    """Independent members, each an array of shape (time, *state), plus metadata."""

    members: list[np.ndarray]
    state_dims: tuple[str, ...]
    state_coords: dict[str, Any]
    dt: Any  # float, numpy.timedelta64 or None when unknown
    time_attrs: dict[str, Any]
    attrs: dict[str, Any]

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.members[0].shape[1:]

    @property
    def min_length(self) -> int:
        return min(m.shape[0] for m in self.members)

    @property
    def n_samples(self) -> int:
        return sum(m.shape[0] for m in self.members)

    def samples(self) -> np.ndarray:
        """All states stacked: shape (n_samples, *state)."""
        return np.concatenate(self.members, axis=0)


def _finite(arr: np.ndarray, name: str) -> np.ndarray:
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    arr = np.asarray(arr, dtype=float)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN or inf values; remove or fill them first"
        )
    return arr


def _time_step(time: xr.DataArray, name: str):
    vals = time.values
    if vals.size < 2:
        return None
    if np.issubdtype(vals.dtype, np.datetime64) or np.issubdtype(vals.dtype, np.timedelta64):
        d = np.diff(vals)
        if np.any(d <= np.timedelta64(0)):
            raise ValueError(f"{name}'s time coordinate must be strictly increasing")
        if np.any(d != d[0]):
            raise ValueError(f"{name}'s time coordinate must be evenly spaced")
        return d[0]
    if not np.issubdtype(vals.dtype, np.number):
        return None
    d = np.diff(vals.astype(float))
    if np.any(d <= 0):
        raise ValueError(f"{name}'s time coordinate must be strictly increasing")
    if np.any(np.abs(d - d[0]) > 1e-6 * abs(d[0])):
        raise ValueError(f"{name}'s time coordinate must be evenly spaced (got steps "
                         f"from {d.min():g} to {d.max():g})")
    return float(d[0])


def _from_dataarray(da: xr.DataArray, name: str, allow_member: bool = True) -> Series:
    if "time" not in da.dims:
        raise ValueError(
            f"{name} must have a 'time' dimension (dims are {da.dims}); rename yours, "
            f"e.g. {name}.rename({{'t': 'time'}})"
        )
    has_member = "member" in da.dims
    if has_member and not allow_member:
        raise ValueError(f"{name}: a list of members cannot itself have a 'member' dim")
    state_dims = tuple(d for d in da.dims if d not in ("member", "time"))
    order = (("member",) if has_member else ()) + ("time", *state_dims)
    da = da.transpose(*order)
    arr = _finite(np.asarray(da.values), name)
    if not state_dims:
        arr = arr[..., None]
        state_dims = ("feature",)
    members = list(arr) if has_member else [arr]
    coords = {d: da.coords[d] for d in state_dims if d in da.coords}
    dt = _time_step(da["time"], name) if "time" in da.coords else None
    time_attrs = dict(da["time"].attrs) if "time" in da.coords else {}
    return Series(members, state_dims, coords, dt, time_attrs, dict(da.attrs))


def as_series(X, name: str = "X") -> Series:
    """Turn ``X`` into independent members of shape (time, *state).

    Accepted: an xarray DataArray with a ``time`` dim and optionally ``member`` (all
    other dims are state); a Dataset with one data variable (or ``u``); an ndarray of
    shape (time, *state); or a list of such arrays (independent members).
    """
    if isinstance(X, xr.Dataset):
        names = list(X.data_vars)
        if "u" in X.data_vars:
            var = "u"
        elif len(names) == 1:
            var = names[0]
        else:
            raise ValueError(f"{name} is a Dataset with variables {names}; pass one DataArray")
        da = X[var].copy(deep=False)  # shallow copy: never modify the caller's attrs
        da.attrs = {**X.attrs, **da.attrs}
        return _from_dataarray(da, name)
    if isinstance(X, xr.DataArray):
        return _from_dataarray(X, name)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty list")
        parts = [as_series(x, f"{name}[{i}]") for i, x in enumerate(X)]
        shapes = {p.state_shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"the members of {name} have different state shapes: {shapes}")
        first = parts[0]
        return Series([m for p in parts for m in p.members], first.state_dims,
                      first.state_coords, first.dt, first.time_attrs, first.attrs)
    try:
        arr = np.asarray(X)
    except Exception:
        raise TypeError(f"{name} must be an array, a list of arrays or xarray data") from None
    if arr.dtype == object:
        raise TypeError(f"{name} must be an array, a list of arrays or xarray data")
    arr = _finite(arr, name)
    if arr.ndim == 1:
        arr = arr[:, None]
    dims = ("feature",) if arr.ndim == 2 else tuple(f"dim_{i}" for i in range(arr.ndim - 1))
    return Series([arr], dims, {}, None, {}, {})
