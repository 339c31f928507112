"""netCDF input and output with CF attributes; writes are atomic."""

from __future__ import annotations

import json
import os
import re
import threading
from pathlib import Path

import numpy as np
import xarray as xr

from gfdt._atomic import atomic_path

__all__ = ["load", "open_run", "save"]

#: The HDF5 library under netCDF4 is not thread-safe: gfdt's own reads and writes
#: (e.g. from Dask workers that are threads of one process) take turns.
_NETCDF_LOCK = threading.RLock()


def save(data: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``data`` to a netCDF4 file, losslessly (float64 stays float64).

    The file is written to a temporary name beside ``path`` and renamed into place,
    so an interrupted write never leaves a partial file and keeps any old one.
    Dask-backed data are computed chunk by chunk into the file by a thread pool of
    this call's own; if a chunk fails, every thread has stopped writing before the
    temporary file is removed.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataArray
        A DataArray is written as a Dataset with its name (default ``"data"``).
        MultiIndex dims (a stacked state; a response matrix over a multi-dimensional
        state) are written with the CF "compression by gathering" convention and read
        back as MultiIndexes by :func:`load`.
    path : path
        The file to (re)write; its folder must exist.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name or "data")
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"data must be an xarray Dataset or DataArray, got {type(data).__name__}")
    data = _encode_multi_index(data)
    path = _as_path(path)
    if not os.fspath(path).strip() or path.name in ("", ".", "..") or path.is_dir():
        raise ValueError(f"path must name a file, got {os.fspath(path)!r}"
                         + (" (a directory)" if path.is_dir() else ""))
    with _NETCDF_LOCK, atomic_path(path, "path") as tmp:
        if data.chunks:
            _write_dask(data, tmp)
        else:
            data.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return path


def _write_dask(data: xr.Dataset, tmp: Path) -> None:
    """Compute Dask-backed ``data`` into ``tmp`` on a pool that is drained on failure.

    Dask's threaded scheduler raises at the first failing chunk while other threads
    may still be writing; the file must not be removed (or renamed) under them.
    """
    from concurrent.futures import ThreadPoolExecutor

    import dask

    delayed = data.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", compute=False)
    pool = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))
    try:
        dask.compute(delayed, scheduler="threads", pool=pool)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a netCDF file written by :func:`save` (fully into memory)."""
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no file {path}")
    with _NETCDF_LOCK:
        try:
            ds = xr.open_dataset(path, engine="netcdf4")
        except (OSError, ValueError) as exc:  # not netCDF, or damaged
            raise ValueError(f"path: cannot read {path} as netCDF ({exc})") from None
        with ds:
            return _decode_multi_index(ds.load())


def _encode_multi_index(ds: xr.Dataset) -> xr.Dataset:
    """MultiIndex dims (a stacked state, the ``observable``/``source`` of a response over
    a multi-dimensional state) as CF "compression by gathering" (cf-xarray), which netCDF
    can store; :func:`load` turns them back into MultiIndexes."""
    import pandas as pd

    names = [d for d in ds.dims if isinstance(ds.indexes.get(d), pd.MultiIndex)]
    if not names:
        return ds
    import cf_xarray

    return cf_xarray.encode_multi_index_as_compress(ds, names)


def _decode_multi_index(ds: xr.Dataset) -> xr.Dataset:
    names = [k for k, v in ds.variables.items() if "compress" in v.attrs and k in ds.dims]
    if not names:
        return ds
    import cf_xarray

    return cf_xarray.decode_compress_to_multi_index(ds, names)


def _as_path(path) -> Path:
    """``path`` as a Path (an empty string stays as it is, to be named in errors)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    if not os.fspath(path).strip():
        raise ValueError(f"path must name a file, got {os.fspath(path)!r}")
    return Path(path)


def open_run(path: str | os.PathLike, chunks: dict | str | None = None) -> xr.Dataset:
    """Open a run that :func:`gfdt.simulate` streamed to a folder (all finished segments).

    Segments are concatenated along ``time``; a run that Dask workers wrote in member
    groups (``segment_NNNN_mAAAAA-BBBBB.nc``) is joined along ``member`` first. A killed
    run gives the samples that every member finished (the longest run of segments that
    all member groups wrote).

    Parameters
    ----------
    path : path
        The run's folder.
    chunks : dict or "auto", optional
        None (default) reads the data into memory. Anything else opens the files
        lazily as Dask arrays with these chunks per file (``{}``: one chunk per file),
        e.g. for an out-of-core :meth:`gfdt.ResponseEstimator.fit`.

    Returns
    -------
    xarray.Dataset
    """
    path = _as_path(path)
    if chunks is not None and not isinstance(chunks, (dict, str)):
        raise TypeError(f"chunks must be None, a dict or 'auto', got {type(chunks).__name__}")
    files = sorted(path.glob("segment_*.nc"))
    if not files:
        raise FileNotFoundError(f"path: no segment_*.nc files in {path}")
    n_members = None
    if (path / "run.json").exists():
        n_members = json.loads((path / "run.json").read_text()).get("n_members")
    by_segment: dict[int, dict[tuple[int, int] | None, Path]] = {}
    for f in files:
        m = _SEGMENT.fullmatch(f.name)
        if m is not None:
            group = (int(m[2]), int(m[3])) if m[2] is not None else None
            by_segment.setdefault(int(m[1]), {})[group] = f
    segments, numbers = [], []
    for seg in sorted(by_segment):
        groups = by_segment[seg]
        if None in groups:
            segments.append([groups[None]])
            numbers.append(seg)
            continue
        order = sorted(groups)
        stop = n_members if n_members is not None else order[-1][1]
        edges = [0] + [b for _, b in order]
        if [a for a, _ in order] != edges[:-1] or edges[-1] != stop:
            break  # some member group has not finished this segment
        segments.append([groups[g] for g in order])
        numbers.append(seg)
    if not segments:
        raise FileNotFoundError(f"path: no segment in {path} was finished by every member")

    def read(f: Path) -> xr.Dataset:
        if chunks is None:
            return load(f)
        return xr.open_dataset(f, engine="netcdf4", chunks=chunks)

    opts = {"data_vars": "minimal", "coords": "minimal", "compat": "override",
            "join": "override", "combine_attrs": "override"}
    parts = []
    for group_files in segments:
        ds = [read(f) for f in group_files]
        parts.append(xr.concat(ds, dim="member", **opts) if len(ds) > 1 else ds[0])
    _check_contiguous(parts, numbers, segments, path)
    return xr.concat(parts, dim="time", **opts) if len(parts) > 1 else parts[0]


def _check_contiguous(parts: list[xr.Dataset], numbers: list[int],
                      segments: list[list[Path]], path: Path) -> None:
    """A run stitched across a missing segment has a gap in time: an error naming it.

    With a time coordinate, the stitched axis must be evenly spaced (segments that
    held no samples may be absent from the numbering); without one, the segment
    numbers must be consecutive.
    """
    from gfdt._time import time_step

    missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
    what = (f"segment {', '.join(f'{m:04d}' for m in missing)} is missing"
            if missing else "a segment is missing or out of place")
    if not all("time" in p.coords for p in parts):
        if missing:
            raise ValueError(f"path: {what} in {path}; the run has a gap in time (restore "
                             "the file, or open the segments before the gap yourself)")
        return
    times = [p["time"].values for p in parts]
    if len(parts) < 2 or sum(len(t) for t in times) < 3:
        return
    try:
        time_step(np.concatenate(times), name="the run's time coordinate")
        return
    except ValueError:
        pass
    for k in range(1, len(parts)):  # the first junction where the axis breaks
        try:
            time_step(np.concatenate(times[:k + 1]), name="time")
        except ValueError:
            raise ValueError(
                f"path: {what} in {path}: the run's time jumps from {times[k - 1][-1]} "
                f"({segments[k - 1][0].name}) to {times[k][0]} ({segments[k][0].name}); "
                "restore the segment, or open the segments before the gap yourself"
            ) from None


_SEGMENT = re.compile(r"segment_(\d+)(?:_m(\d+)-(\d+))?\.nc")
