"""netCDF input and output with CF attributes; writes are atomic."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import xarray as xr

__all__ = ["load", "open_run", "save"]


def save(data: xr.Dataset | xr.DataArray, path: str | os.PathLike) -> Path:
    """Write ``data`` to a netCDF4 file, losslessly (float64 stays float64).

    The file is written to a temporary name beside ``path`` and renamed into place,
    so an interrupted write never leaves a partial file and keeps any old one.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name or "data")
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"data must be an xarray Dataset or DataArray, got {type(data).__name__}")
    path = Path(path)
    if not path.parent.exists():
        raise ValueError(f"path: directory {path.parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        data.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load(path: str | os.PathLike) -> xr.Dataset:
    """Read a netCDF file written by :func:`save` (fully into memory)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"path: no file {path}")
    with xr.open_dataset(path, engine="netcdf4") as ds:
        return ds.load()


def open_run(path: str | os.PathLike) -> xr.Dataset:
    """Open a run that :func:`gfdt.simulate` streamed to a folder (all finished segments).

    Segments are concatenated along ``time``; a killed run gives the samples it
    finished. The data are read into memory.

    Returns
    -------
    xarray.Dataset
    """
    path = Path(path)
    files = sorted(path.glob("segment_*.nc"))
    if not files:
        raise FileNotFoundError(f"path: no segment_*.nc files in {path}")
    parts = [load(f) for f in files]
    ds = xr.concat(parts, dim="time", combine_attrs="override") if len(parts) > 1 else parts[0]
    return ds
