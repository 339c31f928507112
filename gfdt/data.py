"""The one data model of gfdt: :class:`Trajectories` (members, lazy blocks, reads by index).

:func:`as_trajectories` turns user data (xarray, numpy arrays, lists of members, Dask-backed
files) into it; the response estimator and the score estimators read through it, so
Dask-backed data are read block by block. Time axes are handled in one place,
:func:`time_axis`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import xarray as xr

from gfdt._time import TimeStep, time_step

__all__ = ["LazyMember", "Series", "Trajectories", "as_series", "as_trajectories", "time_axis"]

logger = logging.getLogger("gfdt")


class LazyMember:
    """One member of Dask-backed (out-of-core) data, shape ``(time, *state)``.

    Nothing is read until it is sliced: ``member[a:b]`` reads samples ``a..b-1`` only
    (one Dask compute), checks them and returns them as a float64 numpy array. Unless a
    Dask scheduler is configured (e.g. a ``dask.distributed.Client`` is active), the
    block is computed in the calling thread (``scheduler="synchronous"``): reads are
    sequential anyway (netCDF reads hold a lock) and no thread pool adds to the memory.
    ``numpy.asarray(member)`` reads everything (logged), for the few paths that are not
    streamed (e.g. training a learned score).

    Parameters
    ----------
    data : dask.array.Array, shape ``(time, *state)``
    name : str
        Name used in error messages.
    """

    def __init__(self, data, name: str) -> None:
        self.data = data
        self.name = name
        self.shape = tuple(int(k) for k in data.shape)
        self.ndim = len(self.shape)
        self.size = int(np.prod(self.shape))
        self.dtype = np.dtype(float)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key) -> np.ndarray:
        import dask

        scheduler = None if dask.config.get("scheduler", None) else "synchronous"
        block = np.asarray(self.data[key].compute(scheduler=scheduler), dtype=float)
        bad = ~np.isfinite(block)
        if bad.any():
            raise ValueError(
                f"{self.name} contains {int(bad.sum())} NaN or inf values (in samples {key} "
                "of a member); remove or fill them first"
            )
        return block

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        logger.info("reading all %s samples of a member of %s into memory", self.shape[0],
                    self.name)
        out = self[:]
        return out if dtype is None else out.astype(dtype, copy=False)

    def blocks(self, size: int):
        """Consecutive time blocks of at most ``size`` samples, each read when reached."""
        for a in range(0, self.shape[0], size):
            yield self[a:a + size]


@dataclasses.dataclass
class Trajectories:
    """Independent members, each of shape ``(time, *state)``, plus metadata.

    Attributes
    ----------
    members : list of numpy.ndarray or LazyMember
        One array per member, shape ``(time_k, *state)``; a :class:`LazyMember` reads
        only the samples it is sliced with.
    state_dims : tuple of str
        Names of the state dims.
    state_coords : dict
        Coordinates of the state dims (those the data had).
    time_attrs : dict
        Attributes of the time coordinate, ``units`` being the step's CF units
        (``"months"``, ``"days"``, ...).
    attrs : dict
        Attributes of the data (e.g. the ``gfdt_*`` system attributes).
    step : gfdt._time.TimeStep or None
        The time step with its units and calendar (None when unknown).
    name : hashable or None
        Name of the data variable (kept on 1-D responses).
    scalar : bool
        The data are a single series (no state dims; stored with one ``feature``).
    template : xarray.DataArray or None
        One state of the input with every coordinate on the state dims (2-D latitudes,
        MultiIndex levels): what the CF lookups and MultiIndex outputs read. None for
        arrays.
    """

    members: list[np.ndarray]
    state_dims: tuple[str, ...]
    state_coords: dict[str, Any]
    time_attrs: dict[str, Any]
    attrs: dict[str, Any]
    step: TimeStep | None = None
    name: Any = None
    scalar: bool = False
    template: xr.DataArray | None = None

    @property
    def dt(self) -> float | None:
        """Time step between samples in ``step.units`` (None when unknown)."""
        return None if self.step is None else self.step.step

    @property
    def n_members(self) -> int:
        return len(self.members)

    @property
    def lengths(self) -> list[int]:
        """Samples per member."""
        return [int(m.shape[0]) for m in self.members]

    def read(self, member: int, start: int, stop: int) -> np.ndarray:
        """Samples ``start..stop-1`` of one member, float64, shape ``(n, *state)`` (one read)."""
        return np.asarray(self.members[member][start:stop], dtype=float)

    @property
    def state_shape(self) -> tuple[int, ...]:
        return self.members[0].shape[1:]

    @property
    def min_length(self) -> int:
        return min(m.shape[0] for m in self.members)

    @property
    def n_samples(self) -> int:
        return sum(m.shape[0] for m in self.members)

    @property
    def lazy(self) -> bool:
        """True when members are read block by block (Dask-backed data)."""
        return any(isinstance(m, LazyMember) for m in self.members)

    def blocks(self, size: int):
        """All states in consecutive blocks of at most ``size`` (member by member)."""
        for m in self.members:
            for a in range(0, m.shape[0], size):
                yield np.asarray(m[a:a + size], dtype=float)

    def samples(self, stride: int = 1) -> np.ndarray:
        """States stacked, every ``stride``-th of each member: shape ``(n, *state)``.

        The training samples of a score estimator; Dask-backed members are read here.
        """
        if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
            raise ValueError(f"stride must be a positive int, got {stride!r}")
        if stride == 1:
            return np.concatenate(self.members, axis=0)
        return np.concatenate([np.asarray(m[::stride], dtype=float) for m in self.members],
                              axis=0)


#: The former name of :class:`Trajectories`.
Series = Trajectories


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


def time_axis(da: xr.DataArray, name: str) -> tuple[TimeStep | None, dict[str, Any]]:
    """Time step and time attributes of ``da``'s ``time`` axis: ``(step, attrs)``.

    The one place where time axes are read, through :func:`gfdt._time.time_step`:
    datetime64 at any storage resolution, monthly and yearly axes (calendar months),
    cftime calendars (360_day, noleap, ...), daily and sub-daily stamps, numbers with
    an optional CF ``units`` attribute. ``step`` is None without a coordinate or with a
    single sample. ``attrs`` are the coordinate's attributes with ``units`` set to the
    step's CF units (``"months"``, ``"days"``, ...; absent for numbers without units).

    Raises
    ------
    ValueError
        Missing (NaT/NaN) stamps, stamps not increasing, or uneven steps (the steps
        found are named).
    """
    if "time" not in da.coords or da["time"].size < 2:
        return None, {}
    step = time_step(da["time"], f"{name}'s time coordinate")
    attrs = {k: v for k, v in da["time"].attrs.items() if k not in ("units", "calendar")}
    if step.units is not None:
        attrs["units"] = step.units
    if step.calendar is not None:
        attrs["calendar"] = step.calendar
    return step, attrs


def _from_dataarray(da: xr.DataArray, name: str, allow_member: bool = True) -> Trajectories:
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
    if da.chunks is not None:  # Dask-backed: read block by block when used
        if not np.issubdtype(da.dtype, np.number) or np.issubdtype(da.dtype,
                                                                    np.complexfloating):
            raise TypeError(f"{name} must hold real numbers, got dtype {da.dtype}")
        if 0 in da.shape:
            raise ValueError(f"{name} is empty")
        data = da.data if state_dims else da.data[..., None]
        members = ([LazyMember(data[k], name) for k in range(data.shape[0])] if has_member
                   else [LazyMember(data, name)])
        if not state_dims:
            state_dims = ("feature",)
    else:
        arr = _finite(np.asarray(da.values), name)
        if not state_dims:
            arr = arr[..., None]
            state_dims = ("feature",)
        members = list(arr) if has_member else [arr]
    scalar = state_dims == ("feature",) and "feature" not in da.dims
    coords = {d: da.coords[d] for d in state_dims if d in da.coords}
    step, time_attrs = time_axis(da, name)
    return Trajectories(members, state_dims, coords,
                        time_attrs, dict(da.attrs), step, da.name, scalar, _template(da))


def _template(da: xr.DataArray) -> xr.DataArray | None:
    """One state of ``da`` (zeros) with its coordinates on the state dims."""
    one = da.isel({d: 0 for d in ("member", "time") if d in da.dims}, drop=True)
    if one.ndim == 0:
        return None
    return xr.DataArray(np.zeros(one.shape), dims=one.dims, coords=one.coords)


def _same_step(a: TimeStep, b: TimeStep) -> bool:
    """Whether two time steps are equal (same units, steps to 1e-6)."""
    return a.units == b.units and abs(a.step - b.step) <= 1e-6 * max(a.step, b.step)


def as_trajectories(X, name: str = "X") -> Trajectories:
    """Turn ``X`` into independent members of shape ``(time, *state)``.

    Accepted: an xarray DataArray with a ``time`` dim and optionally ``member`` (all
    other dims are state); a Dataset with one data variable (or ``u``); an ndarray of
    shape ``(time, *state)``; a list of such arrays (independent members); or a
    :class:`Trajectories` (returned as is).
    """
    if isinstance(X, Trajectories):
        return X
    if isinstance(X, xr.Dataset):
        names = list(X.data_vars)
        if "u" in X.data_vars:
            var = "u"
        elif len(names) == 1:
            var = names[0]
        elif all(set(X[v].dims) <= {"time", "member"} for v in names):
            # several series: one state vector, the variable names as its coordinate
            da = X[names].to_array("feature").transpose(..., "feature")
            da = da.assign_coords(feature=("feature", names))
            da.attrs = dict(X.attrs)
            return _from_dataarray(da, name)
        else:
            raise ValueError(f"{name} is a Dataset with variables {names}; pass one DataArray "
                             "(or a Dataset of time series only, which become one vector)")
        da = X[var].copy(deep=False)  # shallow copy: never modify the caller's attrs
        da.attrs = {**X.attrs, **da.attrs}
        return _from_dataarray(da, name)
    if isinstance(X, xr.DataArray):
        return _from_dataarray(X, name)
    if isinstance(X, (list, tuple)):
        if len(X) == 0:
            raise ValueError(f"{name} is an empty list")
        parts = [as_trajectories(x, f"{name}[{i}]") for i, x in enumerate(X)]
        shapes = {p.state_shape for p in parts}
        if len(shapes) > 1:
            raise ValueError(f"the members of {name} have different state shapes: {shapes}")
        steps = [p.step for p in parts if p.step is not None]
        if any(not _same_step(s, steps[0]) for s in steps[1:]):
            raise ValueError(f"the members of {name} have different time steps: "
                             f"{sorted({str(s) for s in steps})}")
        if steps and len(steps) < len(parts):
            raise ValueError(f"some members of {name} have a time coordinate and others do "
                             "not; give every member the same kind of time axis")
        _check_coords(parts, name)
        first = next((p for p in parts if p.step is not None), parts[0])
        return Trajectories([m for p in parts for m in p.members], first.state_dims,
                            first.state_coords, first.time_attrs, first.attrs,
                            first.step, first.name, all(p.scalar for p in parts),
                            first.template)
    try:
        arr = np.asarray(X)
    except Exception:
        raise TypeError(f"{name} must be an array, a list of arrays or xarray data") from None
    if arr.dtype == object:
        raise TypeError(f"{name} must be an array, a list of arrays or xarray data")
    arr = _finite(arr, name)
    if arr.ndim == 0:
        raise ValueError(f"{name} must have shape (time, *state), got a scalar")
    scalar = arr.ndim == 1
    if arr.ndim == 1:
        arr = arr[:, None]
    dims = ("feature",) if arr.ndim == 2 else tuple(f"dim_{i}" for i in range(arr.ndim - 1))
    return Trajectories([arr], dims, {}, {}, {}, scalar=scalar)


def _check_coords(parts: list[Trajectories], name: str) -> None:
    """Members must agree on state dims and coordinates (named in the error)."""
    first = parts[0]
    for i, p in enumerate(parts[1:], start=1):
        if p.state_dims != first.state_dims:
            raise ValueError(f"{name}[{i}] has state dims {p.state_dims}, {name}[0] has "
                             f"{first.state_dims}")
        for dim in first.state_dims:
            a, b = first.state_coords.get(dim), p.state_coords.get(dim)
            if a is None or b is None:
                continue
            va, vb = np.asarray(a.values), np.asarray(b.values)
            if va.shape != vb.shape or not np.array_equal(va, vb):
                raise ValueError(f"{name}[{i}]'s {dim!r} coordinate differs from "
                                 f"{name}[0]'s: {vb.tolist()[:5]} vs {va.tolist()[:5]}")
        units = {p.attrs.get("units"), first.attrs.get("units")}
        if len(units - {None}) > 1:
            raise ValueError(f"{name}[{i}] is in {p.attrs.get('units')!r}, {name}[0] in "
                             f"{first.attrs.get('units')!r}")


#: The former name of :func:`as_trajectories`.
as_series = as_trajectories
