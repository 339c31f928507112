"""xarray outputs of the response estimator: coordinates and CF attributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from gfdt.conventions import attrs as cf_attrs
from gfdt.conventions import lag_coord
from gfdt.data import Trajectories
from gfdt.response.conjugate import Observable, Perturbation
from gfdt.systems._spectral import resolved_impulse

if TYPE_CHECKING:
    from gfdt.scores.base import ScoreEstimator

__all__ = ["conjugate_response", "lag_of", "normalize_response", "spectral_score", "state_index",
           "state_outputs", "state_response"]


def lag_of(data: Trajectories, n_lags: int) -> tuple:
    """The ``lag`` coordinate of a response to ``data``: the data's time step and units."""
    return lag_coord(n_lags, data.step)


def _gfdt_attrs(data: Trajectories) -> dict[str, Any]:
    return {k: v for k, v in data.attrs.items() if k.startswith("gfdt_")}


def state_response(r: np.ndarray, data: Trajectories, homogeneous: bool, normalized: bool,
                   method: str) -> xr.DataArray:
    """The plain GFDT response: dims ``(lag, *offset dims)`` or ``(lag, observable, source)``."""
    coords: dict[str, Any] = {"lag": lag_of(data, r.shape[0])}
    if homogeneous:
        dims = ("lag", *data.state_dims)
        for dim in data.state_dims:
            if dim in data.state_coords:
                c = data.state_coords[dim]
                vals = np.asarray(c.values)
                if np.issubdtype(vals.dtype, np.number):
                    vals = vals - vals[0]
                coords[dim] = (dim, vals, {**c.attrs, **cf_attrs("offset", dim=dim)})
    elif data.scalar:  # a single series: dims (lag,), its name as scalar coordinates
        dims = ("lag",)
        r = r.reshape(r.shape[0])
        label = str(data.name) if data.name is not None else 0
        coords["observable"] = label
        coords["source"] = label
    else:
        dims = ("lag", "observable", "source")
    attrs = {
        **cf_attrs("response", where=(" at the origin" if homogeneous else "")
                   + (f" of {data.name}" if data.scalar and data.name is not None else "")),
        "method": method,
        "normalized": int(normalized),
        "n_samples": int(data.n_samples),
        **_gfdt_attrs(data),
    }
    out = xr.DataArray(r, dims=dims, coords=coords, name="response", attrs=attrs)
    if dims == ("lag", "observable", "source"):
        out = out.assign_coords(state_index(data, "observable")).assign_coords(
            state_index(data, "source", "_source"))
    return out


def state_index(data: Trajectories, dim: str, suffix: str = "") -> xr.Coordinates:
    """The coordinate of the flattened state on ``dim``.

    One state dim: its coordinate (positions without one); a stacked dim with a
    MultiIndex, or several state dims: a MultiIndex over them (levels named like the
    state dims plus ``suffix``), so that ``.unstack(dim)`` gives the maps back and
    :func:`gfdt.io.save` writes it.
    """
    import pandas as pd

    dims = data.state_dims
    index = None if data.template is None or len(dims) != 1 else \
        data.template.indexes.get(dims[0])
    if isinstance(index, pd.MultiIndex):
        mi = index.set_names([f"{n}{suffix}" for n in index.names])
    elif len(dims) == 1:
        c = data.state_coords.get(dims[0])
        n = int(np.prod(data.state_shape))
        vals = np.asarray(c.values) if c is not None else np.arange(n)
        return xr.Coordinates({dim: (dim, vals)})
    else:
        levels = [np.asarray(data.state_coords[d].values) if d in data.state_coords
                  else np.arange(n) for d, n in zip(dims, data.state_shape, strict=True)]
        mi = pd.MultiIndex.from_product(levels, names=[f"{d}{suffix}" for d in dims])
    return xr.Coordinates.from_pandas_multiindex(mi, dim)


def conjugate_response(r: np.ndarray, data: Trajectories, obs: Observable,
                       pert: Perturbation | None, kind: str, identity: bool,
                       method: str) -> xr.DataArray:
    """Response of an observable: dims ``(lag, observable[, source])`` or ``(lag, *state)``."""
    coords: dict[str, Any] = {"lag": lag_of(data, r.shape[0])}
    if identity:
        dims = ("lag", *data.state_dims)
        for dim in data.state_dims:
            if dim in data.state_coords:
                c = data.state_coords[dim]
                coords[dim] = (dim, np.asarray(c.values), dict(c.attrs))
    else:
        dims = ("lag", "observable") + (("source",) if kind == "observable" else ())
        n_obs = r.shape[1]
        coords["observable"] = (["mean"] if obs.label == "mean" and n_obs == 1
                                else np.arange(n_obs))
    what = "the state" if obs.identity else f"observable {obs.label}"
    how = (f"x -> x + delta u(x), u = {pert.label}" if pert is not None
           else "a unit impulse on each state coordinate")
    attrs = {
        **cf_attrs("conjugate_response", what=what, how=how),
        "units": "observable units per unit delta" if pert is not None
                 else "observable units per unit kick",
        "method": method,
        "normalized": 0,
        "n_samples": int(data.n_samples),
        "observable": obs.label,
        "response_kind": kind,
    }
    if pert is not None:
        attrs["perturbation"] = pert.label
        attrs["divergence"] = pert.method if pert.constant is None else "zero"
        if pert.method == "hutchinson" and pert.constant is None:
            attrs["n_probes"] = pert.n_probes
            attrs["probe"] = pert.probe
    attrs.update(_gfdt_attrs(data))
    out = xr.DataArray(r, dims=dims, coords=coords, name="response", attrs=attrs)
    if "source" in dims:  # kicks of every state coordinate
        out = out.assign_coords(state_index(data, "source", "_source"))
    return out


def spectral_score(model: ScoreEstimator) -> Callable | None:
    """A score that acts per spatial Fourier mode (homogeneous Gaussian), else None.

    Returns ``f(uh, mean)``: the Fourier modes of the score at states whose deviations
    from ``mean`` have modes ``uh`` (batch, M).
    """
    fn = getattr(model, "spectral_score", None)
    if fn is None or not getattr(model, "homogeneous", False):
        return None
    return fn


def normalize_response(raw: np.ndarray, homogeneous: bool, axes: tuple[int, ...],
               resolved: np.ndarray | None = None) -> np.ndarray:
    """:math:`R(t) R(0)^{-1}`; for fields a division in Fourier space.

    With ``resolved`` (a mask of the modes the kick excites) the inverse is taken on
    the resolved modes only: :math:`R(0)` restricted to them, zero elsewhere.
    """
    if homogeneous:
        rh = np.fft.rfftn(raw, axes=axes)
        r0 = rh[0] if resolved is None else np.where(resolved, rh[0], 1.0)
        if np.any(np.abs(r0) < 1e-12 * np.abs(r0).max()):
            raise ValueError("normalize=True: R(0) is singular in some Fourier modes")
        out = rh / r0
        if resolved is not None:
            out = out * resolved
        return np.fft.irfftn(out, s=raw.shape[1:], axes=axes)
    try:
        inv = np.linalg.inv(raw[0])
    except np.linalg.LinAlgError:
        raise ValueError("normalize=True: the raw R(0) is singular") from None
    return (np.ascontiguousarray(raw).reshape(-1, inv.shape[0]) @ inv).reshape(raw.shape)


def state_outputs(est, raw: np.ndarray, data: Trajectories, homogeneous: bool,
                  axes: tuple[int, ...], resolved: np.ndarray | None = None) -> None:
    """Set ``response_raw_``, ``response_``, ``stein_`` and ``stein_error_`` of the plain
    GFDT on the estimator ``est`` from the raw response ``raw`` (lag first)."""
    state_shape, d = data.state_shape, int(np.prod(data.state_shape))
    est.homogeneous_ = homogeneous
    est.response_raw_ = state_response(raw, data, homogeneous, False, est._method())
    est.stein_ = est.response_raw_.isel(lag=0, drop=True)
    eye = np.zeros(state_shape) if homogeneous else np.eye(d)
    if homogeneous and resolved is not None:  # R(0) of the kick P delta is P delta
        eye = resolved_impulse(state_shape)
    elif homogeneous:
        eye[(0,) * len(state_shape)] = 1.0
    est.stein_error_ = float(np.linalg.norm(raw[0] - eye) / (1 if homogeneous else np.sqrt(d)))
    est.response_ = est.response_raw_
    if est.normalize:
        normed = normalize_response(raw, homogeneous, axes, resolved)
        est.response_ = state_response(normed, data, homogeneous, True, est._method())
    est.response_kind_ = "homogeneous" if homogeneous else "matrix"
    est.stein_expected_ = None
