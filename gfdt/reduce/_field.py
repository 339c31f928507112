"""Gridded input of the EOF reduction: members of ``(time, *space)`` that may hold NaN.

:class:`Field` is what :class:`~gfdt.reduce.EOF` reads: in-memory or Dask-backed members
(read by time blocks), the space dims with their coordinates, and the time coordinates
to put back on the principal components. Unlike :func:`gfdt.data.as_trajectories`, NaN
is allowed here: masked (land) points are found and dropped by the reduction.
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["Field", "as_field", "read", "scan"]

logger = logging.getLogger("gfdt")

#: Bytes of one time block read from a member (NaN scan, covariances, projections).
BLOCK_BYTES = 32 * 2**20


@dataclasses.dataclass
class Field:
    """Members of a gridded field, each ``(time, *space)``, and the metadata to rebuild it.

    Attributes
    ----------
    members : list
        numpy or Dask arrays, one per member, shape ``(time_k, *space)``.
    space_dims : tuple of str
        Names of the space dims.
    space_shape : tuple of int
    coords : dict
        Coordinates that live on space dims only (1-D dim coordinates, 2-D latitude
        and longitude of curvilinear grids, MultiIndex levels of a stacked dim).
    template : xarray.DataArray or None
        One time step of the input (space dims and coordinates), None for arrays.
    times : list
        The ``time`` coordinate of each member (a DataArray), or None.
    kind : {"dataarray", "array", "list"}
        How the input came: outputs are given back the same way.
    member_coord : xarray.DataArray or None
        The ``member`` coordinate of a DataArray input.
    attrs : dict
        Attributes of the data variable.
    name : hashable
    has_member : bool
        The input had a ``member`` dim (kept on the principal components).
    """

    members: list
    space_dims: tuple[str, ...]
    space_shape: tuple[int, ...]
    template: xr.DataArray | None
    times: list
    kind: str
    member_coord: Any = None
    attrs: dict = dataclasses.field(default_factory=dict)
    name: Any = None
    has_member: bool = False

    @property
    def n_space(self) -> int:
        return int(np.prod(self.space_shape))

    @property
    def lengths(self) -> list[int]:
        return [int(m.shape[0]) for m in self.members]

    @property
    def n_samples(self) -> int:
        return sum(self.lengths)

    @property
    def lazy(self) -> bool:
        return any(not isinstance(m, np.ndarray) for m in self.members)

    def block_rows(self) -> int:
        """Samples per time block (at least one)."""
        return max(1, BLOCK_BYTES // (8 * max(self.n_space, 1)))

    def blocks(self, rows: int | None = None):
        """``(member, start, block)`` over all members: blocks of at most ``rows`` samples,
        float64, flattened to ``(samples, n_space)`` (Dask blocks computed one by one)."""
        rows = rows or self.block_rows()
        for k, m in enumerate(self.members):
            for a in range(0, m.shape[0], rows):
                yield k, a, read(m, a, a + rows).reshape(-1, self.n_space)


def read(member, a: int, b: int) -> np.ndarray:
    """Samples ``a..b-1`` of a member as float64 (a Dask member is computed here)."""
    block = member[a:b]
    if not isinstance(block, np.ndarray):
        import dask

        scheduler = None if dask.config.get("scheduler", None) else "synchronous"
        block = block.compute(scheduler=scheduler)
    return np.asarray(block, dtype=float)


def _check_numeric(dtype, name: str) -> None:
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {dtype}")


def _from_dataarray(da: xr.DataArray, name: str) -> Field:
    if "time" not in da.dims:
        raise ValueError(f"{name} must have a 'time' dimension (dims are {da.dims}); rename "
                         f"yours, e.g. {name}.rename({{'t': 'time'}})")
    _check_numeric(da.dtype, name)
    space = tuple(d for d in da.dims if d not in ("member", "time"))
    if not space:
        raise ValueError(f"{name} has no space dims (dims {da.dims}): an EOF reduction needs "
                         "a field")
    has_member = "member" in da.dims
    da = da.transpose(*((("member",) if has_member else ()) + ("time", *space)))
    if 0 in da.shape:
        raise ValueError(f"{name} is empty (shape {da.shape})")
    data = da.data
    if not hasattr(data, "compute"):  # numpy (or a lazily indexed backend array)
        data = np.asarray(da.values)
    members = [data[k] for k in range(data.shape[0])] if has_member else [data]
    template = da.isel(time=0, drop=True)
    if has_member:
        template = template.isel(member=0, drop=True)
    template = template.copy(data=np.zeros(template.shape))
    template = template.drop_vars([c for c in template.coords if template[c].ndim == 0])
    times = [da["time"] if "time" in da.coords else None] * len(members)
    return Field(members, space, tuple(int(n) for n in da.shape[-len(space):]), template,
                 times, "dataarray", da["member"] if has_member and "member" in da.coords
                 else None, dict(da.attrs), da.name, has_member)


def as_field(X, name: str = "X") -> Field:
    """Read ``X`` as a field: a DataArray with ``time`` (and optionally ``member``) and
    space dims, a Dataset with one data variable, an array ``(time, *space)`` or a list of
    such arrays or DataArrays (members). NaN is allowed (masked points)."""
    if isinstance(X, Field):
        return X
    if isinstance(X, xr.Dataset):
        names = [v for v in X.data_vars if "time" in X[v].dims and X[v].ndim >= 2]
        if len(names) != 1:
            raise ValueError(f"{name} is a Dataset with field variables {names}; pass the one "
                             "DataArray to reduce")
        da = X[names[0]].copy(deep=False)
        da.attrs = {**X.attrs, **da.attrs}
        return _from_dataarray(da, name)
    if isinstance(X, xr.DataArray):
        return _from_dataarray(X, name)
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError(f"{name} is an empty list")
        parts = [as_field(x, f"{name}[{i}]") for i, x in enumerate(X)]
        first = parts[0]
        for i, p in enumerate(parts[1:], start=1):
            if p.space_shape != first.space_shape or p.space_dims != first.space_dims:
                raise ValueError(f"{name}[{i}] has space dims {p.space_dims} of shape "
                                 f"{p.space_shape}, {name}[0] has {first.space_dims} of shape "
                                 f"{first.space_shape}")
        return Field([m for p in parts for m in p.members], first.space_dims,
                     first.space_shape, first.template, [t for p in parts for t in p.times],
                     "list", None, first.attrs, first.name)
    arr = np.asarray(X)
    if arr.dtype == object:
        raise TypeError(f"{name} must be an array, a list of arrays or xarray data")
    _check_numeric(arr.dtype, name)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (time, *space), got shape {arr.shape}")
    if 0 in arr.shape:
        raise ValueError(f"{name} is empty (shape {arr.shape})")
    dims = tuple(f"dim_{i}" for i in range(arr.ndim - 1))
    return Field([arr], dims, arr.shape[1:], None, [None], "array")


def space_coords(field: Field) -> dict[str, Any]:
    """Coordinates of the space dims (those of the template)."""
    return {} if field.template is None else dict(field.template.coords)


def scan(field: Field) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass: the valid points (finite at every time, not constant), their mean and
    their sum of squared anomalies. Warns about points that are NaN at some times only."""
    d = field.n_space
    count = np.zeros(d)
    lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
    shift = None
    s1, s2 = np.zeros(d), np.zeros(d)
    for _, _, block in field.blocks():
        fin = np.isfinite(block)
        count += fin.sum(axis=0)
        b = np.where(fin, block, np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
            lo = np.fmin(lo, np.nanmin(b, axis=0))
            hi = np.fmax(hi, np.nanmax(b, axis=0))
        if shift is None:
            shift = np.where(fin[0], block[0], 0.0)
        z = np.where(fin, block - shift, 0.0)
        s1 += z.sum(axis=0)
        s2 += (z * z).sum(axis=0)
    n = field.n_samples
    partial = (count > 0) & (count < n)
    if partial.any():
        warnings.warn(f"X has {int(partial.sum())} point(s) that are NaN at some times only "
                      "(for example sea ice); they are masked like land. Fill them first to "
                      "keep them", stacklevel=4)
    constant = (count == n) & (hi <= lo)
    if constant.any():
        logger.info("EOF: %d constant point(s) masked", int(constant.sum()))
    valid = (count == n) & (hi > lo)
    m1 = s1[valid] / n
    mean = shift[valid] + m1
    total = s2[valid] - n * m1**2
    return valid, mean, np.clip(total, 0.0, None) / (n - 1)
