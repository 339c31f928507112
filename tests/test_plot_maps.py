"""plot_response: maps of a response to a pattern, heat maps of mode-space matrices."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import QuadMesh

from gfdt.plotting import plot_response


def _maps():
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(20, 60, 5), np.linspace(0, 80, 7)
    r = rng.standard_normal((6, 5, 7))
    r[:, 1, 2] = np.nan  # land
    resp = xr.DataArray(r, dims=("lag", "lat", "lon"),
                        coords={"lag": np.arange(6.0), "lat": lat, "lon": lon},
                        attrs={"response_kind": "pattern", "units": "K per unit impulse"})
    se = resp.copy(data=np.full(r.shape, 0.5))
    return xr.Dataset({"response": resp, "stderr": se})


def test_maps_at_chosen_lags_with_land_blank_and_weak_points_stippled():
    ds = _maps()
    axes = plot_response(ds, lags=[0, 2, 5])
    panels = [a for a in np.ravel(axes) if a.get_visible()]
    assert len(panels) == 3
    assert [a.get_title() for a in panels] == ["lag 0", "lag 2", "lag 5"]
    for a, lag in zip(panels, (0, 2, 5), strict=True):
        mesh = next(c for c in a.collections if isinstance(c, QuadMesh))
        arr = mesh.get_array()
        assert np.ma.is_masked(arr) and arr.mask.sum() == 1  # the land point
        v = ds.response.isel(lag=lag).values
        weak = np.isfinite(v) & (np.abs(v) < 2.0 * 0.5)
        dots = a.lines[0].get_xdata()
        assert len(dots) == weak.sum()
    plt.close("all")


def test_default_lags_and_errors():
    ds = _maps()
    axes = plot_response(ds.response)  # no stderr: no dots
    panels = [a for a in np.ravel(axes) if a.get_visible()]
    assert [a.get_title() for a in panels] == ["lag 0", "lag 1", "lag 3", "lag 5"]
    assert all(not a.lines for a in panels)
    with pytest.raises(ValueError, match="not a lag of the response"):
        plot_response(ds, lags=[7])
    with pytest.raises(ValueError, match="one response at a time"):
        plot_response({"a": ds, "b": ds})
    plt.close("all")


def test_mode_space_matrix_is_a_heat_map():
    rng = np.random.default_rng(1)
    r = xr.DataArray(rng.standard_normal((13, 8, 8)), dims=("lag", "mode", "source_mode"),
                     coords={"lag": np.arange(13.0), "mode": np.arange(1, 9),
                             "source_mode": np.arange(1, 9)})
    axes = plot_response(r, lags=[1, 12])
    panels = [a for a in np.ravel(axes) if a.get_visible()]
    assert len(panels) == 2
    np.testing.assert_array_equal(panels[1].images[0].get_array(), r.sel(lag=12).values)
    # a big full-grid matrix without pairs: a heat map too, not 1600 panels
    big = xr.DataArray(rng.standard_normal((3, 40, 40)), dims=("lag", "observable", "source"))
    axes = plot_response(big)
    assert sum(a.get_visible() for a in np.ravel(axes)) == 3
    plt.close("all")
