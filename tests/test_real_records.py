"""Real records: anomalies, stationarity and max_lag warnings, NaN errors from one block,
gaps in the time axis, and the hostile inputs (a truncated checkpoint, one time step)."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gfdt
from gfdt.response import BootstrapWarning, MaxLagWarning, NonStationarityWarning


def _ar1(n: int, phi: float, seed: int, d: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d))
    z = rng.standard_normal((n, d))
    x[0] = z[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + z[t]
    return x


def _monthly(x: np.ndarray, start: str = "1900-01-01") -> xr.DataArray:
    t = pd.date_range(start, periods=x.shape[0], freq="MS")
    return xr.DataArray(x, dims=("time", "lat"), coords={"time": t, "lat": 10.0 * np.arange(
        x.shape[1])}, attrs={"units": "K", "long_name": "temperature"}, name="ta")


# ----------------------------------------------------------------- anomalies
def test_anomalies_against_direct_computation():
    rng = np.random.default_rng(0)
    n = 240
    season = rng.standard_normal((12, 3)) * 3
    x = season[np.arange(n) % 12] + 0.02 * np.arange(n)[:, None] + _ar1(n, 0.5, 1, 3)
    x[5:9, 2] = np.nan  # gaps (e.g. sea ice) stay gaps
    da = _monthly(x)
    got = gfdt.anomalies(da)
    ref = x.copy()
    for m in range(12):
        ref[m::12] -= np.nanmean(x[m::12], axis=0)
    np.testing.assert_allclose(got.values, ref, rtol=1e-12, atol=1e-12)
    assert got.attrs == {**da.attrs, "anomaly": "monthly climatology removed"}
    np.testing.assert_array_equal(got["time"].values, da["time"].values)
    assert got.dims == da.dims and got.name == "ta"
    # then a linear trend in days since the first stamp, per coordinate
    det = gfdt.anomalies(da, detrend=True)
    days = (da["time"].values - da["time"].values[0]) / np.timedelta64(1, "D")
    for j in range(3):
        ok = np.isfinite(ref[:, j])
        slope, icpt = np.polyfit(days[ok], ref[ok, j], 1)
        np.testing.assert_allclose(det.values[ok, j], ref[ok, j] - slope * days[ok] - icpt,
                                   atol=1e-10)
    assert np.isnan(det.values[5:9, 2]).all()
    assert det.attrs["anomaly"] == "monthly climatology and linear trend removed"


def test_anomalies_on_cftime_members_and_time_mean():
    import cftime

    t = [cftime.Datetime360Day(2000 + k // 12, k % 12 + 1, 16) for k in range(48)]
    x = np.arange(2 * 48, dtype=float).reshape(2, 48) ** 1.5
    da = xr.DataArray(x, dims=("member", "time"), coords={"time": t})
    got = gfdt.anomalies(da, climatology="month")
    for m in range(12):  # each month's mean over years and members
        sel = x[:, m::12]
        np.testing.assert_allclose(got.values[:, m::12], sel - sel.mean(), atol=1e-9)
    flat = gfdt.anomalies(da.isel(member=0), climatology=None)
    np.testing.assert_allclose(flat.values, x[0] - x[0].mean())
    with pytest.raises(ValueError, match="climatology must be"):
        gfdt.anomalies(da, climatology="season")
    with pytest.raises(ValueError, match="no 'time' dimension"):
        gfdt.anomalies(da.rename(time="t"))


# ----------------------------------------------------------------- warnings
def test_nonstationarity_warning_names_the_coordinate():
    x = _ar1(240, 0.7, 2, 3)
    x[:, 1] += np.linspace(0, 6, 240)  # a 6-unit warming on one coordinate
    with pytest.warns(NonStationarityWarning, match=r"lat=10\.0") as rec:
        gfdt.ResponseEstimator(max_lag=12, progress=False).fit(_monthly(x))
    assert "gfdt.anomalies" in str(rec[0].message)
    # its anomalies with the trend removed pass
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonStationarityWarning)
        gfdt.ResponseEstimator(max_lag=12, progress=False).fit(
            gfdt.anomalies(_monthly(x), climatology=None, detrend=True))


def test_an_accelerating_trend_on_eofs_warns():
    """A curved warming (as in a scenario run) left in linear residuals looks like
    memory near one and would hide itself; the noise's memory is taken after a cubic
    fit, so the leading principal component's drift is found (the reduced fit checks
    the PCs)."""
    rng = np.random.default_rng(5)
    n, d = 240, 30
    pattern = 1.0 + 0.3 * rng.standard_normal(d)  # a broad warming pattern
    warming = 20.0 * (np.arange(n) / n) ** 3  # 20 units, accelerating
    x = _ar1(n, 0.5, 6, d=d) + np.outer(warming, pattern)
    with pytest.warns(NonStationarityWarning, match="mode=1"):
        gfdt.ResponseEstimator(max_lag=12, progress=False, reduce=gfdt.EOF(n_modes=3)).fit(
            _monthly(x).rename(lat="x"))
    with warnings.catch_warnings():  # without the trend: no warning
        warnings.simplefilter("error", NonStationarityWarning)
        gfdt.ResponseEstimator(max_lag=12, progress=False, bootstrap=False,
                               reduce=gfdt.EOF(n_modes=3)).fit(
            _monthly(_ar1(n, 0.5, 6, d=d)).rename(lat="x"))


@pytest.mark.parametrize("seed", range(5))
def test_stationary_records_do_not_warn(seed):
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonStationarityWarning)
        warnings.simplefilter("error", MaxLagWarning)
        gfdt.ResponseEstimator(max_lag=12, progress=False).fit(_ar1(1200, 0.8, seed)[:, 0])
        gfdt.ResponseEstimator(max_lag=5, progress=False, bootstrap=False).fit(
            _ar1(300, 0.6, seed, d=20))


def test_max_lag_warning_beyond_a_fifth():
    x = _ar1(240, 0.5, 3)[:, 0]
    with pytest.warns(MaxLagWarning, match=r"max_lag = 100 samples is 42% of the shortest"):
        gfdt.ResponseEstimator(max_lag=100, bootstrap=False, progress=False).fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaxLagWarning)
        gfdt.ResponseEstimator(max_lag=48, bootstrap=False, progress=False).fit(x)


# ----------------------------------------------------------------- NaN errors
def test_one_block_gives_nan_errors_and_no_band():
    x = _ar1(200, 0.5, 4)[:, 0]
    with pytest.warns(BootstrapWarning, match="only 1 blocks.*NaN"):
        est = gfdt.ResponseEstimator(max_lag=5, block_length=200, seed=0,
                                     progress=False).fit(x)
    assert np.isnan(est.response_stderr_.values).all()
    assert np.isnan(est.response_raw_stderr_.values).all()
    assert "NaN" in est.summary()
    ax = gfdt.plotting.plot_response(est)
    assert not ax.collections  # no band, not a band of zero width
    plt.close("all")
    # two blocks: a finite error
    two = gfdt.ResponseEstimator(max_lag=5, block_length=100, seed=0, progress=False)
    with pytest.warns(BootstrapWarning):
        two.fit(x)
    assert np.all(np.isfinite(two.response_stderr_.values[1:]))


def test_partly_nan_errors_draw_partial_bands():
    x = _ar1(400, 0.5, 5)[:, 0]
    est = gfdt.ResponseEstimator(max_lag=5, seed=0, progress=False).fit(x)
    se = est.response_stderr_.copy()
    se.values[3:] = np.nan
    ax = gfdt.plotting.plot_response(est.response_, stderr=se)
    assert len(ax.collections) == 1
    plt.close("all")
    se.values[0] = -1.0
    with pytest.raises(ValueError, match="stderr"):
        gfdt.plotting.plot_response(est.response_, stderr=se)
    plt.close("all")


# ----------------------------------------------------------------- time axes
def test_gap_names_its_stamps_and_members_fit():
    x = _ar1(360, 0.6, 6)
    da = _monthly(x, "1950-01-01")
    gap = xr.concat([da.isel(time=slice(0, 200)), da.isel(time=slice(212, None))], "time")
    with pytest.raises(ValueError, match=r"gap of 12 missing samples: the step from stamp "
                                         r"199 \(1966-08-01.*\) to 200 \(1967-09-01.*"
                                         r"list of members.*time=slice\(0, 200\)"):
        gfdt.ResponseEstimator(max_lag=12, progress=False).fit(gap)
    pieces = [gap.isel(time=slice(0, 200)), gap.isel(time=slice(200, None))]
    est = gfdt.ResponseEstimator(max_lag=12, progress=False).fit(pieces)
    assert est.n_samples_ == 348


def test_uneven_steps_that_are_not_gaps_keep_the_old_error():
    t = np.array([0.0, 1.0, 2.0, 3.5, 4.5, 5.5])
    da = xr.DataArray(np.arange(6.0), dims="time", coords={"time": t})
    with pytest.raises(ValueError, match="not evenly spaced"):
        gfdt.ResponseEstimator(max_lag=1, bootstrap=False).fit(da)


# ----------------------------------------------------------------- hostile inputs
def test_single_time_step():
    with pytest.raises(ValueError, match=r"X has 1 time sample.*at least 2"):
        gfdt.ResponseEstimator(max_lag=0).fit(np.ones((1, 3)))
    with pytest.raises(ValueError, match=r"member\(s\) of fewer than 2 time samples"):
        gfdt.ResponseEstimator(max_lag=0).fit([np.ones((5, 3)), np.ones((1, 3))])


def test_truncated_checkpoint(tmp_path):
    ou = gfdt.OrnsteinUhlenbeck(n=8)
    kw = dict(n_members=1, burn_in=0.0, duration=4.0, save_interval=0.5, seed=2,
              progress=False, n_workers=1)
    out = tmp_path / "run"
    gfdt.simulate(ou, **kw, output=out, segment=2.0)
    ck = out / "checkpoint.npz"
    ck.write_bytes(ck.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"checkpoint .* is truncated.*delete it"):
        gfdt.simulate(ou, **kw, output=out, segment=2.0, resume=True)
