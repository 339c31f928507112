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
        plot_response(xr.DataArray(np.zeros((3, 4, 2)), dims=("lag", "x", "z")))


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


# ----------------------------------------------------------------- any layout
def index_response(n_lag: int = 13) -> xr.DataArray:
    lag = xr.DataArray(np.arange(n_lag, dtype=float), dims="lag",
                       attrs={"units": "months", "long_name": "time lag"})
    return xr.DataArray(0.8 ** np.arange(n_lag), dims=("lag",), coords={"lag": lag},
                        name="nino34")


def matrix_response(seed: int = 0, n_lag: int = 6) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    names = ["nino34", "nino4"]
    lag = xr.DataArray(np.arange(n_lag, dtype=float), dims="lag", attrs={"units": "months"})
    return xr.DataArray(rng.standard_normal((n_lag, 2, 2)), dims=("lag", "observable", "source"),
                        coords={"lag": lag, "observable": names, "source": names})


def test_plot_index_response_with_band_and_lag_units():
    r = index_response()
    se = 0.1 * r + 0.01
    ax = plot_response(r, stderr=se, n_sigma=1.96)
    (line,) = data_lines(ax)
    np.testing.assert_array_equal(line.get_xdata(), np.arange(13.0))
    np.testing.assert_array_equal(line.get_ydata(), r.values)
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    y = band.get_paths()[0].vertices[:, 1]
    assert y.min() == pytest.approx((r - 1.96 * se).values.min(), abs=1e-12)
    assert y.max() == pytest.approx((r + 1.96 * se).values.max(), abs=1e-12)
    assert ax.get_xlabel() == "lag (months)"
    assert ax.get_legend().get_title().get_text() == "estimate"


def test_plot_matrix_response_grid_of_panels():
    r = matrix_response()
    se = abs(matrix_response(1)) * 0.1
    axes = plot_response({"GFDT": r}, stderr={"GFDT": se})
    assert isinstance(axes, np.ndarray) and axes.shape == (2, 2)
    for i in range(2):
        for j in range(2):
            ax = axes[i, j]
            (line,) = data_lines(ax)
            np.testing.assert_array_equal(line.get_ydata(), r.isel(observable=i,
                                                                   source=j).values)
            assert ax.get_title() == f"R[{r.observable.values[i]}, {r.source.values[j]}]"
            assert ax.get_xlabel() == "lag (months)"
            (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
            y = band.get_paths()[0].vertices[:, 1]
            lo = (r - 2 * se).isel(observable=i, source=j).values
            assert y.min() == pytest.approx(lo.min(), abs=1e-12)


def test_plot_matrix_selected_pairs_into_one_axes():
    r = matrix_response()
    other = matrix_response(2)
    ax = plot_response({"a": r, "b": other}, pairs=[("nino34", "nino4"), (1, 1)])
    lines = data_lines(ax)
    assert [ln.get_label() for ln in lines] == ["a, R[nino34, nino4]", "a, R[nino4, nino4]",
                                                "b, R[nino34, nino4]", "b, R[nino4, nino4]"]
    np.testing.assert_array_equal(lines[0].get_ydata(), r.isel(observable=0, source=1).values)
    np.testing.assert_array_equal(lines[3].get_ydata(),
                                  other.isel(observable=1, source=1).values)
    with pytest.raises(ValueError, match="pairs: 'sst' is neither"):
        plot_response(r, pairs=[("sst", 0)])
    with pytest.raises(ValueError, match="pairs applies to matrix"):
        plot_response(response_field(0), pairs=[(0, 0)])


def test_plot_response_into_an_array_of_axes():
    """Was: AttributeError for an array of Axes."""
    _, axes = plt.subplots(2, 2)
    r = response_field(4)
    out = plot_response(r, offsets=(0, 1, 2, 3), ax=axes)
    assert out is axes
    for k, ax in enumerate(axes.ravel()):
        (line,) = data_lines(ax)
        np.testing.assert_array_equal(line.get_ydata(), r.isel(y=0, x=k).values)
        assert ax.get_title() == f"R{k + 1}1"
    _, few = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="ax holds 2 Axes for 4 curves"):
        plot_response(matrix_response(), ax=few)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        plot_response(r, ax=[1, 2])


def test_plot_response_other_layouts_and_checks():
    # one non-spatial dim: one curve per coordinate value
    obs = xr.DataArray(np.arange(12.0).reshape(4, 3), dims=("lag", "region"),
                       coords={"region": ["a", "b", "c"]})
    ax = plot_response(obs)
    assert [ln.get_label() for ln in data_lines(ax)] == ["response, a", "response, b",
                                                         "response, c"]
    assert ax.get_xlabel() == "lag"
    # a 1-D periodic field: offsets along x
    line_field = xr.DataArray(np.arange(20.0).reshape(4, 5), dims=("lag", "x"))
    got = [ln.get_ydata() for ln in data_lines(plot_response(line_field, offsets=(1, -1)))]
    np.testing.assert_array_equal(got[0], line_field.isel(x=1).values)
    np.testing.assert_array_equal(got[1], line_field.isel(x=4).values)
    with pytest.raises(ValueError, match="draw one layout at a time"):
        plot_response({"a": index_response(), "b": matrix_response()})
    with pytest.raises(ValueError, match=r"responses\['response'\] must hold finite"):
        plot_response(index_response() * np.nan)
    with pytest.raises(ValueError, match=r"stderr\['response'\] must be finite and >= 0"):
        plot_response(index_response(), stderr=-index_response())
    with pytest.raises(ValueError, match="plot_response draws"):
        plot_response(xr.DataArray(np.zeros((2, 2, 2)), dims=("lag", "a", "b")))


def test_plots_refuse_nan_and_mixed_lag_units():
    from gfdt.plotting import plot_spectrum

    r = index_response()
    days = r.assign_coords(lag=r.lag.assign_attrs(units="days"))
    with pytest.raises(ValueError, match=r"responses\['b'\] has its lag \(days\), the first "
                                         r"response its lag \(months\)"):
        plot_response({"a": r, "b": days})
    ref = response_field(6)
    err = response_error(ref, ref)
    with pytest.raises(ValueError, match=r"errors\['e'\] contains NaN"):
        plot_errors({"e": err.assign(l2=err.l2 * np.nan)})
    with pytest.raises(ValueError, match="field must hold finite numbers"):
        plot_field(ref.isel(lag=0) * np.nan)
    spec = xr.DataArray([1.0, np.nan, 0.5], dims=("k",), coords={"k": [0, 1, 2]})
    with pytest.raises(ValueError, match=r"spectra\['spectrum'\] must be finite"):
        plot_spectrum(spec)


def test_plot_response_draws_index_and_matrix_estimators_and_xarray_plot_works():
    import pandas as pd

    import gfdt

    rng = np.random.default_rng(0)
    x = np.zeros((400, 2))
    for t in range(1, 400):
        x[t] = 0.6 * x[t - 1] + rng.standard_normal(2)
    time = pd.date_range("1950-01", periods=400, freq="MS")
    one = xr.DataArray(x[:, 0], dims="time", coords={"time": time}, name="nino")
    est = gfdt.ResponseEstimator(score="gaussian", max_lag=6, progress=False).fit(one)
    ax = gfdt.plotting.plot_response(est, n_sigma=1.96)
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), np.arange(7.0))  # lags in months
    np.testing.assert_allclose(line.get_ydata(), est.response_.values)
    assert "months" in ax.get_xlabel()
    lines = est.response_.plot()  # xarray's own plot of the (lag,) response
    np.testing.assert_allclose(lines[0].get_ydata(), est.response_.values)
    ds = xr.Dataset({"a": ("time", x[:, 0]), "b": ("time", x[:, 1])}, coords={"time": time})
    mat = gfdt.ResponseEstimator(score="gaussian", max_lag=6, progress=False).fit(ds)
    assert mat.response_.dims == ("lag", "observable", "source")
    assert list(mat.response_["source"].values) == ["a", "b"]
    panels = gfdt.plotting.plot_response(mat)
    assert np.asarray(panels).shape == (2, 2)
    np.testing.assert_allclose(np.asarray(panels)[0, 1].get_lines()[0].get_ydata(),
                               mat.response_.sel(observable="a", source="b").values)
    plt.close("all")


# ------------------------------------------------------- lag labels and legend placement
def test_lag_label_names_model_time_in_words():
    from gfdt.plotting import lag_label

    assert lag_label("1") == "lag (model time units)"  # CF's dimensionless unit
    assert lag_label(" 1 ") == "lag (model time units)"
    assert lag_label("") == "lag (model time units)"
    assert lag_label("days") == "lag (days)"
    assert lag_label("months") == "lag (months)"
    assert lag_label("samples") == "lag (samples)"
    assert lag_label(None) == "lag"
    assert lag_label("1", "time") == "time (model time units)"
    with pytest.raises(TypeError, match="units must be a string"):
        lag_label(1.0)


def test_gfdt_system_responses_get_model_time_axes():
    """A response to a gfdt system's data (lag units "1") reads "lag (model time units)"."""
    import gfdt

    ou = gfdt.systems.OrnsteinUhlenbeck(n=8)
    ds = gfdt.simulate(ou, n_members=1, burn_in=50.0, duration=100.0, save_interval=1.0,
                       seed=0, progress=False)
    est = gfdt.ResponseEstimator(score="gaussian", max_lag=5, bootstrap=False,
                                 progress=False).fit(ds)
    assert est.response_["lag"].attrs["units"] == "1"
    ax = plot_response(est)
    assert ax.get_xlabel() == "lag (model time units)"
    axes = plot_errors(response_error(est.response_, ou.exact_response(est.response_.lag)))
    assert [a.get_xlabel() for a in axes] == ["lag (model time units)"] * 2


def _outside(legend, ax) -> bool:
    """The legend's box lies right of the axes' box (no overlap with the data area)."""
    fig = ax.figure
    fig.canvas.draw()
    lb = legend.get_window_extent()
    ab = ax.get_window_extent()
    return lb.x0 >= ab.x1 and not lb.overlaps(ab)


def test_legends_sit_off_the_data():
    from gfdt.plotting import plot_histogram, plot_spectrum

    rng = np.random.default_rng(0)
    r = response_field(8)
    ax = plot_response({"truth": r, "GFDT": response_field(9)}, offsets=(0, 2, 4, 6))
    legends = [a for a in ax.get_children() if isinstance(a, plt.matplotlib.legend.Legend)]
    assert len(legends) == 2  # colour = offset, line style = estimate
    assert all(_outside(leg, ax) for leg in legends)
    # the two stacked legends do not overlap each other
    assert not legends[0].get_window_extent().overlaps(legends[1].get_window_extent())
    errs = {"a": response_error(r + 0.1, r), "b": response_error(r - 0.2, r)}
    axes = plot_errors(errs)
    assert axes[0].get_legend() is None and _outside(axes[1].get_legend(), axes[1])
    grid = plot_response({"a": matrix_response(), "b": matrix_response(1)})
    top_right = grid[0, -1]
    assert _outside(top_right.get_legend(), top_right)
    spec = xr.DataArray([1.0, 0.5, 0.25, 0.1], dims=("k",), coords={"k": [0, 1, 2, 3]})
    ax = plot_spectrum({"a": spec, "b": 2 * spec})
    assert _outside(ax.get_legend(), ax)
    ax = plot_histogram({"a": rng.standard_normal(500)}, bins=20)
    assert _outside(ax.get_legend(), ax)
    # given axes under tight_layout: the legend still sits beside the axes
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    plot_response({"truth": r, "GFDT": response_field(9)}, ax=axes[0])
    plot_errors(errs, axes=axes[1:])
    fig.tight_layout()
    legend = axes[0].get_legend()
    assert _outside(legend, axes[0])
    assert not legend.get_window_extent().overlaps(axes[1].get_window_extent())
