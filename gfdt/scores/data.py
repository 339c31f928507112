"""Training data for score models: snapshots read by index, in memory or lazily from files.

A trajectory ``(member?, time, *state)`` is seen as a flat sequence of snapshots,
member-major (all times of member 0, then member 1, ...): the order of
``numpy.concatenate`` over members that :class:`gfdt.ResponseEstimator` uses. Data in
netCDF files (a path, a run folder written by :func:`gfdt.simulate`, or an xarray object
opened from files or backed by Dask) stay on disk: :meth:`SnapshotDataset.read` reads
only the snapshots asked for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from gfdt.data import Trajectories

__all__ = ["SnapshotDataset"]


def _pick_variable(ds: xr.Dataset, variable: str | None, name: str) -> xr.DataArray:
    if variable is not None:
        if variable not in ds.data_vars:
            raise ValueError(f"variable: {name} has no variable {variable!r} "
                             f"(it has {list(ds.data_vars)})")
        return ds[variable]
    if "u" in ds.data_vars:
        return ds["u"]
    if len(ds.data_vars) == 1:
        return ds[next(iter(ds.data_vars))]
    raise ValueError(f"{name} is a Dataset with variables {list(ds.data_vars)}; pass "
                     "variable=... or one DataArray")


class SnapshotDataset(torch.utils.data.Dataset):
    """Snapshots of one or more trajectories, read by flat index (a torch Dataset).

    Parameters
    ----------
    data : array_like, xarray.DataArray, xarray.Dataset, Trajectories or path
        * an array of shape ``(n_samples, *state)`` (held in memory);
        * a :class:`gfdt.data.Trajectories` (what :class:`gfdt.ResponseEstimator`
          reads its data into): its Dask-backed members are read by index, batch by
          batch, its in-memory members are stacked;
        * a DataArray with dims ``(member?, time, *state)``, or ``(sample, *state)``
          without a ``time`` dim: read lazily when it is backed by files or Dask, from
          memory otherwise;
        * a Dataset: its variable ``variable`` (default ``u`` or the only one);
        * a path to a netCDF file, or to a folder that :func:`gfdt.simulate` streamed
          a run to (``segment_*.nc``): opened lazily, closed by :meth:`close`.
    variable : str, optional
        Data variable of a Dataset or file.
    name : str
        Name of the argument in error messages.

    Attributes
    ----------
    state_shape : tuple of int
        Shape of one snapshot.
    lazy : bool
        True when snapshots are read from files (or Dask) on demand.

    Notes
    -----
    Snapshot ``i`` is time ``i % T`` of member ``i // T`` (``T`` times per member).
    ``dataset[i]`` is a float64 tensor of the state; a DataLoader fetches whole batches
    through ``__getitems__`` (one read per member and batch).
    """

    def __init__(self, data, variable: str | None = None, name: str = "X") -> None:
        self.name = name
        self._owned: list[xr.Dataset] = []
        self._array: np.ndarray | None = None
        if isinstance(data, (str, os.PathLike)):
            data = self._open(Path(data), variable)
        if isinstance(data, xr.Dataset):
            data = _pick_variable(data, variable, name)
        if isinstance(data, Trajectories):
            self._init_trajectories(data)
        elif isinstance(data, xr.DataArray):
            self._init_dataarray(data)
        else:
            self._init_array(data)
        if self._n < 2:
            raise ValueError(f"{name} needs at least 2 samples, got {self._n}")

    # ------------------------------------------------------------ construction
    def _open(self, path: Path, variable: str | None) -> xr.Dataset:
        if path.is_dir():
            from gfdt.io import open_run

            ds = open_run(path, chunks={})
        elif path.is_file():
            ds = xr.open_dataset(path, engine="netcdf4", cache=False)
        else:
            raise FileNotFoundError(f"{self.name}: no file or folder {path}")
        self._owned.append(ds)
        return ds

    def _init_array(self, data) -> None:
        try:
            arr = np.asarray(data)
        except Exception:
            raise TypeError(f"{self.name} must be a numeric array of shape (n_samples, ...), "
                            "xarray data or a path") from None
        self._check_dtype(arr.dtype)
        arr = np.asarray(arr, dtype=float)
        if arr.ndim < 2:
            raise ValueError(f"{self.name} must have shape (n_samples, *state), got {arr.shape}")
        self._array = arr
        self._n = arr.shape[0]
        self.state_shape = tuple(arr.shape[1:])
        self.lazy = False
        self._blocks: list[tuple[xr.DataArray, int | None]] = []
        self._offsets = np.array([0, self._n])

    def _check_dtype(self, dtype) -> None:
        if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
            raise TypeError(f"{self.name} must hold real numbers, got dtype {dtype}")

    def _init_dataarray(self, da: xr.DataArray) -> None:
        self._check_dtype(da.dtype)
        if "time" in da.dims:
            lead = ("member", "time") if "member" in da.dims else ("time",)
        elif "member" in da.dims:
            raise ValueError(f"{self.name} has a 'member' dim but no 'time' dim")
        else:
            if da.ndim < 2:
                raise ValueError(f"{self.name} must have dims (sample, *state), got {da.dims}")
            lead = (da.dims[0],)
        da = da.transpose(*lead, ...)
        self.state_shape = tuple(da.shape[len(lead):])
        if len(self.state_shape) == 0:
            da = da.expand_dims("feature", axis=-1)
            self.state_shape = (1,)
        lazy = da.chunks is not None or not da.variable._in_memory
        if not lazy:
            arr = np.asarray(da.values, dtype=float)
            self._init_array(arr.reshape(-1, *self.state_shape))
            return
        sample_dim = lead[-1]
        if len(lead) == 2:
            self._blocks = [(da.isel(member=m), m) for m in range(da.sizes["member"])]
        else:
            self._blocks = [(da, None)]
        sizes = [b.sizes[sample_dim] for b, _ in self._blocks]
        self._sample_dim = sample_dim
        self._offsets = np.concatenate([[0], np.cumsum(sizes)])
        self._n = int(self._offsets[-1])
        self.lazy = True

    def _init_trajectories(self, traj: Trajectories) -> None:
        if not traj.lazy:
            self._init_array(traj.samples())
            return
        self.state_shape = tuple(traj.state_shape)
        # members are sliced by sorted unique indices (LazyMember: one Dask read each)
        self._blocks = [(m, k) for k, m in enumerate(traj.members)]
        self._sample_dim = None
        self._offsets = np.concatenate([[0], np.cumsum(traj.lengths)])
        self._n = int(self._offsets[-1])
        self.lazy = True

    def _take(self, b: int, index) -> np.ndarray:
        """Samples ``index`` (sorted unique ints or a slice) of block ``b``, float64."""
        block = self._blocks[b][0]
        if self._sample_dim is None:  # a Trajectories member: numpy or LazyMember
            vals = block[index]
        else:
            vals = block.isel({self._sample_dim: index}).values
        return np.asarray(vals, dtype=float).reshape(-1, *self.state_shape)

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return self._n

    def read(self, indices) -> np.ndarray:
        """Snapshots at flat ``indices`` (any order, repeats allowed), float64.

        Returns
        -------
        numpy.ndarray, shape ``(len(indices), *state_shape)``
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"indices must lie in [0, {self._n}), got {idx.min()}..{idx.max()}")
        if self._array is not None:
            return self._array[idx]
        out = np.empty((idx.size, *self.state_shape))
        block = np.searchsorted(self._offsets, idx, side="right") - 1
        for b in np.unique(block):
            sel = np.flatnonzero(block == b)
            local = idx[sel] - self._offsets[b]
            uniq, inv = np.unique(local, return_inverse=True)
            out[sel] = self._take(b, uniq)[inv]
        return out

    def read_range(self, start: int, stop: int) -> np.ndarray:
        """Snapshots ``start <= i < stop`` (contiguous reads), float64."""
        start, stop = max(0, int(start)), min(self._n, int(stop))
        if self._array is not None:
            return self._array[start:stop]
        parts = []
        for b in range(len(self._blocks)):
            a, e = max(start, self._offsets[b]), min(stop, self._offsets[b + 1])
            if a < e:
                parts.append(self._take(b, slice(int(a - self._offsets[b]),
                                                 int(e - self._offsets[b]))))
        if not parts:
            return np.empty((0, *self.state_shape))
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.read([int(i)])[0])

    def __getitems__(self, indices) -> list[torch.Tensor]:
        return list(torch.from_numpy(self.read(indices)))

    def close(self) -> None:
        """Close the files this dataset opened itself (a path given as ``data``)."""
        for ds in self._owned:
            ds.close()
        self._owned = []

    def __repr__(self) -> str:
        kind = "lazy" if self.lazy else "in memory"
        return f"SnapshotDataset({self._n} snapshots of shape {self.state_shape}, {kind})"
