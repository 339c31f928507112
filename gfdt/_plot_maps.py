"""Maps and heat maps for :func:`gfdt.plotting.plot_response`.

* maps: a response on a lat-lon grid per lag (latitude and longitude coordinates found
  by cf-xarray), such as :meth:`gfdt.ResponseEstimator.response_to` returns (any 2-D
  grid there): one ``pcolormesh`` panel per chosen
  lag, NaN (land) left blank, one symmetric colour scale, points whose response is within
  ``n_sigma`` standard errors of zero stippled;
* heat maps: a response matrix (mode space, dims ``("lag", "mode", "source_mode")``, or a
  matrix too large for a grid of curves) as an image per chosen lag.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

__all__ = ["draw_heatmaps", "draw_maps", "layout"]

_MATRIX = ({"observable", "source"}, {"mode", "source_mode"})
#: A matrix with more (observable, source) pairs than this is drawn as a heat map.
MAX_PANELS = 36


def layout(r: xr.DataArray, pairs, ax) -> str | None:
    """``"map"``, ``"heatmap"`` or None (curves) for a response ``r``."""
    other = [d for d in r.dims if d != "lag"]
    if set(other) == {"mode", "source_mode"}:
        return "heatmap" if pairs is None else None
    if set(other) == {"observable", "source"}:
        big = r.sizes["observable"] * r.sizes["source"] > MAX_PANELS
        return "heatmap" if big and pairs is None and ax is None else None
    if len(other) == 2 and (r.attrs.get("response_kind") == "pattern" or _geographic(r, other)):
        return "map"
    return None


def _geographic(r: xr.DataArray, dims: list[str]) -> bool:
    """Whether latitude and longitude coordinates (CF lookup) live on ``dims``."""
    from gfdt._axes import find_coordinate

    one = r.isel(lag=0, drop=True)
    return all(find_coordinate(one, key, tuple(dims)) is not None
               for key in ("latitude", "longitude"))


def _lags(r: xr.DataArray, lags) -> list[int]:
    """Positions along ``lag`` of the chosen lags (labels of the lag coordinate)."""
    n = r.sizes["lag"]
    if lags is None:
        pos = sorted({0, n // 4, n // 2, n - 1}) if n > 3 else list(range(n))
        return pos
    vals = r["lag"].values if "lag" in r.coords else np.arange(n)
    out = []
    for lag in np.atleast_1d(lags):
        hit = np.flatnonzero(np.isclose(np.asarray(vals, dtype=float), float(lag)))
        if hit.size == 0:
            raise ValueError(f"lags: {lag!r} is not a lag of the response "
                             f"({np.asarray(vals).tolist()[:8]}...)")
        out.append(int(hit[0]))
    return out


def _panels(ax, n: int, ncols: int = 4):
    if ax is None:
        ncols = min(ncols, n)
        nrows = -(-n // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(3.4 * ncols + 0.6, 2.8 * nrows + 0.4),
                                 squeeze=False, layout="constrained")
        for a in grid.ravel()[n:]:
            a.set_visible(False)
        return list(grid.ravel()[:n]), grid, fig
    arr = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
    if len(arr) < n or not all(isinstance(a, plt.Axes) for a in arr):
        raise ValueError(f"ax must hold {n} Axes (one per lag), got {len(arr)}")
    return list(arr[:n]), ax, arr[0].figure


def _lag_title(r: xr.DataArray, i: int) -> str:
    if "lag" not in r.coords:
        return f"lag {i}"
    v = r["lag"].values[i]
    units = r["lag"].attrs.get("units")
    if np.issubdtype(np.asarray(v).dtype, np.timedelta64):
        return f"lag {v}"
    return f"lag {float(v):g}" + (f" {units}" if units and units != "samples" else "")


def draw_maps(r: xr.DataArray, se: xr.DataArray | None, lags: Sequence | None, ax,
              n_sigma: float, cmap: str = "RdBu_r"):
    """One map per chosen lag; stipples where :math:`|R| < n_\\sigma` se."""
    space = [d for d in r.dims if d != "lag"]
    if len(space) != 2:
        raise ValueError(f"maps need a response with dims ('lag', y, x), got {r.dims}")
    ydim, xdim = space
    pos = _lags(r, lags)
    panels, returned, fig = _panels(ax, len(pos))
    sub = r.isel(lag=pos).transpose("lag", ydim, xdim)
    vmax = float(np.nanmax(np.abs(sub.values))) if np.isfinite(sub.values).any() else 1.0
    vmax = vmax if vmax > 0 else 1.0
    x = r[xdim].values if xdim in r.coords else np.arange(r.sizes[xdim])
    y = r[ydim].values if ydim in r.coords else np.arange(r.sizes[ydim])
    mesh = None
    for a, i in zip(panels, pos, strict=True):
        v = np.ma.masked_invalid(r.isel(lag=i).transpose(ydim, xdim).values)
        mesh = a.pcolormesh(x, y, v, cmap=cmap, vmin=-vmax, vmax=vmax, shading="auto")
        if se is not None:
            s = se.isel(lag=i).transpose(ydim, xdim).values
            weak = np.isfinite(s) & (np.abs(v.filled(np.nan)) < n_sigma * s)
            yy, xx = np.meshgrid(y, x, indexing="ij")
            a.plot(xx[weak], yy[weak], ".", color="0.3", markersize=1.5, linestyle="none")
        a.set_title(_lag_title(r, i), fontsize="small")
        a.set_xlabel(xdim)
        a.set_ylabel(ydim)
        a.set_facecolor("0.85")  # masked (land) points
    label = r.attrs.get("units", "response")
    fig.colorbar(mesh, ax=panels, shrink=0.8, label=label)
    if se is not None:
        panels[0].annotate(f"dots: |R| < {n_sigma:g} s.e.", (0.01, 0.01),
                           xycoords="axes fraction", fontsize="x-small")
    return returned


def draw_heatmaps(r: xr.DataArray, lags: Sequence | None, ax, cmap: str = "RdBu_r"):
    """The matrix at each chosen lag as an image (rows: observable/mode)."""
    rows, cols = [d for d in r.dims if d != "lag"]
    if {rows, cols} == {"mode", "source_mode"}:
        rows, cols = "mode", "source_mode"
    elif {rows, cols} == {"observable", "source"}:
        rows, cols = "observable", "source"
    pos = _lags(r, lags)
    panels, returned, fig = _panels(ax, len(pos))
    sub = r.isel(lag=pos).transpose("lag", rows, cols).values
    vmax = float(np.nanmax(np.abs(sub))) or 1.0
    img = None
    for a, i, m in zip(panels, pos, sub, strict=True):
        extent = None
        if rows == "mode" and "mode" in r.coords and "source_mode" in r.coords:
            mv, sv = r["mode"].values, r["source_mode"].values
            extent = (sv[0] - 0.5, sv[-1] + 0.5, mv[-1] + 0.5, mv[0] - 0.5)
        img = a.imshow(m, cmap=cmap, vmin=-vmax, vmax=vmax, aspect="auto",
                       interpolation="nearest", extent=extent)
        a.set_title(_lag_title(r, i), fontsize="small")
        a.set_xlabel(cols)
        a.set_ylabel(rows)
    fig.colorbar(img, ax=panels, shrink=0.8, label="response")
    return returned
