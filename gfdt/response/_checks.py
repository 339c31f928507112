"""Checks of degenerate data at the response estimator (no silent wrong results)."""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from gfdt.data import Trajectories

__all__ = ["check_coords_agree", "check_not_constant", "check_periodic", "check_rank",
           "check_stein"]

#: Stein error of R(0) above which a fit warns that the response may be wrong.
STEIN_WARN = 0.3

_FIX = ("reduce the state first: ResponseEstimator(..., reduce=gfdt.EOF()) computes the "
        "response on the leading EOFs and maps it back to the grid (response_to)")


class SteinWarning(UserWarning):
    """The raw response at lag 0 is far from the identity: the score does not satisfy the
    Stein sum rule on the data, and the response may be wrong by as much."""


def check_periodic(data: Trajectories) -> None:
    """``homogeneous=True``: raise unless every state axis may be periodic.

    Latitude never is; a longitude only when it closes the 360-degree circle; a gfdt
    system's grid is; a coordinate can say so with the attribute ``periodic``. Axes
    without a coordinate (plain arrays) are taken at the caller's word.
    """
    from gfdt._axes import periodic_axes

    axes = periodic_axes(data.template, data.state_dims, data.attrs)
    bad = [why for ok, why in axes.values() if ok is False]
    if bad:
        raise ValueError("homogeneous=True averages over translations of a periodic field, "
                         f"but {'; '.join(bad)}. Use homogeneous=False (the full response "
                         f"matrix), or for a large grid {_FIX}; if the axis is periodic, "
                         "set the attribute periodic=True on its coordinate")


def check_rank(data: Trajectories, homogeneous: bool, estimated: bool) -> None:
    """A score estimated from fewer samples than state coordinates: an error, before any
    work (the covariance has rank at most samples - 1, so R(0) cannot be the identity)."""
    if homogeneous or not estimated:
        return
    d, n = int(np.prod(data.state_shape)), data.n_samples
    if n - 1 < d:
        raise ValueError(f"X has {d} state coordinates but only {n} samples: the covariance "
                         f"has rank at most {n - 1} < {d}, so no score can be estimated in "
                         f"{d - n + 1} directions and R(0) would not be the identity; "
                         f"{_FIX}, or use fewer coordinates")


def check_stein(est) -> None:
    """Warn (:class:`SteinWarning`) when the raw R(0) is far from the identity."""
    err = getattr(est, "stein_error_", float("nan"))
    if np.isfinite(err) and err > STEIN_WARN:
        warnings.warn(f"the raw response at lag 0 differs from the identity by {err:.3g} "
                      "(stein_error_): the score does not satisfy the Stein sum rule on these "
                      "data, so the response may be wrong by as much. Check the score "
                      "(score_model_.quality_), use more data, stein_correction=True or "
                      f"normalize=True; for high-dimensional data {_FIX}", SteinWarning,
                      stacklevel=3)


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


def check_gaussian_fit(model, name: str = "X", n_samples: int | None = None) -> None:
    """Raise ValueError when a fitted Gaussian score has zero variance somewhere, or a
    covariance that is singular to working precision (its pseudo-inverse would give an
    R(0) off the identity without any sign)."""
    cov = getattr(model, "covariance_", None)
    spec = getattr(model, "spectrum_", None)
    if cov is not None and np.any(np.diag(np.atleast_2d(cov)) <= 0):
        raise ValueError(f"{name} has constant state coordinates (zero variance): the "
                         "response is undefined; drop them")
    if cov is not None and np.ndim(cov) == 2 and cov.shape[0] > 1:
        ev = np.linalg.eigvalsh(cov)
        rcond = float(getattr(model, "rcond", 1e-12))
        rank = int(np.sum(ev > rcond * ev[-1]))
        if rank < cov.shape[0]:
            raise ValueError(f"{name}: the covariance of the {cov.shape[0]} state coordinates "
                             f"has numerical rank {rank} (condition number above "
                             f"{1 / rcond:.0e}"
                             + (f", {n_samples} samples" if n_samples is not None else "")
                             + f"): some combinations of coordinates (almost) never vary, "
                             f"and R(0) would not be the identity; {_FIX}, or drop redundant "
                             "coordinates")
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
