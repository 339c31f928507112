"""Checks of degenerate data at the response estimator (no silent wrong results)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from gfdt.data import Trajectories

__all__ = ["check_coords_agree", "check_not_constant"]


def check_not_constant(data: Trajectories, homogeneous: bool, name: str = "X") -> None:
    """Raise ValueError when ``data`` do not vary: the response is then undefined.

    In-memory data only (Dask-backed data are checked through the Gaussian fit). For
    a homogeneous field the whole field must vary; otherwise every state coordinate
    must (a constant coordinate makes the covariance singular, and a pseudo-inverse
    would silently give a zero response).
    """
    if data.lazy:
        return
    flat = _flat_coordinates(data, stop_at_first=homogeneous).reshape(-1)
    if homogeneous and flat.all():
        raise ValueError(f"{name} is constant (zero variance): the response is undefined")
    if not homogeneous and flat.any():
        idx = np.flatnonzero(flat)
        what = ("is constant (zero variance)" if flat.all() else
                f"has {idx.size} constant state coordinate(s) (zero variance; flat "
                f"positions {idx[:5].tolist()})")
        raise ValueError(f"{name} {what}: the response to a kick of a coordinate that never "
                         "varies is undefined; drop those coordinates")


def _flat_coordinates(data: Trajectories, stop_at_first: bool) -> np.ndarray:
    """Mask of the state coordinates that never leave their first value.

    Scans growing time windows and stops as soon as the answer is known (every
    coordinate varies, or with ``stop_at_first`` one does), so varying data cost a few
    frames, not a pass over everything.
    """
    ref = np.asarray(data.members[0][0])
    flat = np.ones(ref.shape, dtype=bool)
    for m in data.members:
        a, width = 0, 4
        while a < m.shape[0]:
            flat &= ~(np.asarray(m[a:a + width]) != ref).any(axis=0)
            if not flat.any() or (stop_at_first and not flat.all()):
                return flat
            a, width = a + width, 4 * width
    return flat


def check_gaussian_fit(model, name: str = "X") -> None:
    """Raise ValueError when a fitted Gaussian score has zero variance somewhere."""
    cov = getattr(model, "covariance_", None)
    spec = getattr(model, "spectrum_", None)
    if cov is not None and np.any(np.diag(np.atleast_2d(cov)) <= 0):
        raise ValueError(f"{name} has constant state coordinates (zero variance): the "
                         "response is undefined; drop them")
    if spec is not None and np.all(np.asarray(spec) <= 0):
        raise ValueError(f"{name} is constant (zero variance): the response is undefined")


def check_coords_agree(response: xr.DataArray, forcing: xr.DataArray, dims,
                       name: str = "forcing") -> None:
    """A forcing's coordinates on the response's dims must equal the response's."""
    for dim in dims:
        if dim in forcing.coords and dim in response.coords and forcing[dim].ndim == 1 \
                and response[dim].ndim == 1:
            a, b = np.asarray(forcing[dim].values), np.asarray(response[dim].values)
            if a.shape != b.shape or not np.array_equal(a, b):
                raise ValueError(f"{name}'s {dim!r} coordinate {a.tolist()[:6]} differs from "
                                 f"the response's {b.tolist()[:6]}")
