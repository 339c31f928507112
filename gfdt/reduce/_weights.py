"""Area weights of the EOF reduction: sqrt(cos latitude) found CF-aware, or the user's."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from gfdt._axes import find_coordinate
from gfdt.reduce._field import Field

__all__ = ["area_weights"]

logger = logging.getLogger("gfdt")


def area_weights(field: Field, weights) -> tuple[np.ndarray, str | None]:
    """The weights :math:`w` on the flattened grid, and the latitude coordinate used.

    ``weights``: ``"coslat"`` (:math:`\\sqrt{\\cos\\varphi}` when a latitude coordinate
    is found, else uniform), None (uniform) or an array / DataArray on the space dims.
    """
    shape = field.space_shape
    wts = weights
    if wts is None:
        return np.ones(field.n_space), None
    if isinstance(wts, str):
        if wts != "coslat":
            raise ValueError(f"weights must be 'coslat', None or an array, got {wts!r}")
        lat = None if field.template is None else find_coordinate(
            field.template, "latitude", field.space_dims)
        if lat is None:
            logger.info("EOF: no latitude coordinate found; uniform weights")
            return np.ones(field.n_space), None
        vals = np.asarray(lat.values, dtype=float)
        if not np.all(np.isfinite(vals)) or np.abs(vals).max() > 90 + 1e-6:
            raise ValueError(f"latitude coordinate {lat.name!r} has values outside "
                             "[-90, 90] degrees or NaN: pass weights=None or your own")
        coslat = np.clip(np.cos(np.deg2rad(vals)), 0.0, None)
        c = xr.DataArray(coslat, dims=lat.dims)
        full = c.broadcast_like(field.template).transpose(*field.space_dims)
        return np.sqrt(np.asarray(full.values, dtype=float)).reshape(-1), str(lat.name)
    arr = wts
    if isinstance(wts, xr.DataArray):
        missing = set(field.space_dims) - set(wts.dims)
        extra = set(wts.dims) - set(field.space_dims)
        if extra:
            raise ValueError(f"weights has dims {sorted(extra)} that are not space dims "
                             f"{field.space_dims}")
        arr = (wts.broadcast_like(field.template) if field.template is not None and missing
               else wts).transpose(*field.space_dims).values
    arr = np.asarray(arr, dtype=float)
    if arr.shape != tuple(shape):
        raise ValueError(f"weights has shape {arr.shape}; the space has shape {shape}")
    if np.any(arr < 0) or not np.all(np.isfinite(arr)):
        raise ValueError("weights must be finite and non-negative")
    return arr.reshape(-1), None

