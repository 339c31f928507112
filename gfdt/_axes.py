"""What the coordinates say about the axes of a field: latitude, longitude, periodicity.

The CF lookups go through cf-xarray (``standard_name``, ``units``, ``axis`` and, for
coordinates without attributes, the names it recognises such as ``lat``, ``nav_lat``).
Used by the EOF reduction (area weights) and by the response estimator (whether a
translation average, ``homogeneous=True``, is allowed on the axes).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

__all__ = ["find_coordinate", "periodic_axes"]

_TRUE = ("1", "true", "yes", "y", "t")


def _cf_names(obj: xr.DataArray, key: str) -> list[str]:
    import cf_xarray  # noqa: F401  (registers the .cf accessor)

    names = list(obj.cf.coordinates.get(key, []))
    if not names:  # coordinates without attributes: cf-xarray's guesses by name
        guessed = obj.copy(deep=False).cf.guess_coord_axis()
        names = list(guessed.cf.coordinates.get(key, []))
    return names


def find_coordinate(template: xr.DataArray, key: str, dims: tuple[str, ...]
                    ) -> xr.DataArray | None:
    """The ``key`` (``"latitude"`` or ``"longitude"``) coordinate of ``template`` that lives
    on ``dims`` only, or None.

    Parameters
    ----------
    template : xarray.DataArray
        Any array carrying the coordinates (for example one time step of the data).
    key : {"latitude", "longitude"}
    dims : tuple of str
        The dims the coordinate may span (the space dims).
    """
    for name in _cf_names(template, key):
        c = template.coords[name]
        if c.ndim >= 1 and set(c.dims) <= set(dims) and np.issubdtype(c.dtype, np.number):
            return c
    return None


def _flag(value: Any) -> bool | None:
    """An attribute read as a flag (None when absent)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_, int, np.integer)):
        return bool(value)
    return str(value).strip().lower() in _TRUE


def spans_circle(lon: np.ndarray) -> bool:
    """Whether evenly spaced longitudes (degrees) close the circle: n * step = 360."""
    lon = np.asarray(lon, dtype=float)
    if lon.ndim != 1 or lon.size < 3 or not np.all(np.isfinite(lon)):
        return False
    step = np.diff(lon)
    if not np.allclose(step, step[0], rtol=1e-4, atol=1e-6) or step[0] == 0:
        return False
    return abs(abs(step[0]) * lon.size - 360.0) <= 1e-3 * abs(step[0])


def periodic_axes(template: xr.DataArray | None, dims: tuple[str, ...], attrs: dict
                  ) -> dict[str, tuple[bool | None, str]]:
    """For each state dim, whether it is known to be periodic, and why.

    Returns ``{dim: (periodic, reason)}``: ``True`` for a dim of a gfdt system (attribute
    ``gfdt_homogeneous``), a coordinate with a true ``periodic`` attribute or a longitude
    whose evenly spaced values close the 360-degree circle; ``False`` for a latitude
    (never periodic), a longitude that does not close the circle, or a coordinate whose
    ``periodic`` attribute is false; ``None`` for a dim without a coordinate (nothing is
    known either way).
    """
    out: dict[str, tuple[bool | None, str]] = {}
    system = bool(int(attrs.get("gfdt_homogeneous", 0) or 0))
    lat = lon = None
    if template is not None:
        lat = find_coordinate(template, "latitude", dims)
        lon = find_coordinate(template, "longitude", dims)
    for dim in dims:
        coord = None if template is None or dim not in template.coords else template[dim]
        flag = None if coord is None else _flag(coord.attrs.get("periodic"))
        if system:
            out[dim] = (True, "a gfdt system's periodic grid")
        elif lat is not None and dim in lat.dims:
            out[dim] = (False, f"{dim!r} is latitude ({lat.name!r}), which is never periodic")
        elif flag is not None:
            out[dim] = (flag, f"{dim!r} has the attribute periodic={coord.attrs['periodic']!r}")
        elif lon is not None and dim in lon.dims:
            if lon.ndim == 1 and spans_circle(lon.values):
                out[dim] = (True, f"longitude {dim!r} closes the 360-degree circle")
            else:
                vals = np.asarray(lon.values, dtype=float)
                out[dim] = (False, f"longitude {dim!r} spans {np.nanmin(vals):g} to "
                                   f"{np.nanmax(vals):g} degrees, not the whole circle")
        elif coord is None:
            out[dim] = (None, f"{dim!r} has no coordinate")
        else:
            out[dim] = (False, f"nothing says {dim!r} is periodic (no 'periodic' attribute, "
                               "not a longitude closing the circle)")
    return out
