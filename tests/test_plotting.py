"""Plots: the drawn data are the data passed in."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from matplotlib.collections import PolyCollection

from gfdt.metrics import response_error
from gfdt.plotting import plot_errors, plot_field, plot_response


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def response_field(seed: int, n_lag: int = 5, n: int = 8) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    return xr.DataArray(rng.standard_normal((n_lag, n, n)), dims=("lag", "y", "x"),
                        coords={"lag": 0.5 * np.arange(n_lag)}, name="response")


def data_lines(ax):
    """The plotted curves, without the horizontal zero line."""
    return [ln for ln in ax.get_lines() if not np.all(np.asarray(ln.get_ydata()) == 0)]


def test_plot_response_lines_equal_data():
    r = response_field(0)
    ax = plot_response(r, offsets=(0, 2, 4))
    lines = data_lines(ax)
    assert len(lines) == 3
    for line, off in zip(lines, (0, 2, 4), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), r["lag"].values)
        np.testing.assert_array_equal(line.get_ydata(), r.isel(y=0, x=off).values)
    assert not any(isinstance(c, PolyCollection) for c in ax.collections)
    # negative offsets wrap around the periodic grid; axis="y" walks along y
    ax2 = plot_response(r, offsets=(1, -1), axis="y")
    got = [ln.get_ydata() for ln in data_lines(ax2)]
    np.testing.assert_array_equal(got[0], r.isel(y=1, x=0).values)
    np.testing.assert_array_equal(got[1], r.isel(y=7, x=0).values)


def test_plot_response_bands_from_stderr():
    r = response_field(1)
    se = np.abs(response_field(2)) * 0.1
    truth = xr.Dataset({"response": r, "stderr": se})
    ax = plot_response({"truth": truth, "estimate": response_field(3)}, offsets=(0, 2),
                       n_sigma=2.0)
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2  # one per offset, for the estimate with a stderr only
    assert len(data_lines(ax)) == 4
    for band, off in zip(bands, (0, 2), strict=True):
        y = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
        lo = (r - 2 * se).isel(y=0, x=off).values
        hi = (r + 2 * se).isel(y=0, x=off).values
        assert y.min() == pytest.approx(lo.min(), abs=1e-12)
        assert y.max() == pytest.approx(hi.max(), abs=1e-12)
    # stderr passed separately
    ax2 = plot_response(r, offsets=(0,), stderr=se)
    assert sum(isinstance(c, PolyCollection) for c in ax2.collections) == 1


def test_plot_response_uses_given_axes_and_checks_axis():
    _fig, ax = plt.subplots()
    assert plot_response(response_field(0), offsets=(0,), ax=ax) is ax
    with pytest.raises(ValueError, match="axis must be"):
        plot_response(response_field(0), axis="z")
    with pytest.raises(ValueError, match="dims"):
        plot_response(xr.DataArray(np.zeros((3, 4)), dims=("lag", "x")))


def test_plot_errors_lines_equal_inputs():
    rng = np.random.default_rng(5)
    ref = response_field(6)
    errs = {"a": response_error(ref + 0.1 * rng.standard_normal(ref.shape), ref),
            "b": response_error(ref + 0.3 * rng.standard_normal(ref.shape), ref)}
    axes = plot_errors(errs)
    assert len(axes) == 2
    for ax, var in zip(axes, ("l2", "linf"), strict=True):
        lines = ax.get_lines()
        assert len(lines) == 2
        for line, label in zip(lines, ("a", "b"), strict=True):
            assert line.get_label() == label
            np.testing.assert_array_equal(line.get_xdata(), ref["lag"].values)
            np.testing.assert_array_equal(line.get_ydata(), errs[label][var].values)


def test_plot_field():
    f = response_field(7).isel(lag=0)
    ax = plot_field(f)
    np.testing.assert_array_equal(ax.images[0].get_array(), f.values)
    with pytest.raises(ValueError, match="field must be"):
        plot_field(f.values)
