"""Climate time axes end to end through ResponseEstimator: monthly, cftime, daily, units."""

from __future__ import annotations

import datetime

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import gfdt

PHI = 0.8


def _ar1(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = rng.standard_normal() / np.sqrt(1 - PHI**2)
    for t in range(1, n):
        x[t] = PHI * x[t - 1] + rng.standard_normal()
    return x


def _fit(da, max_lag, **kw):
    return gfdt.ResponseEstimator(score="gaussian", max_lag=max_lag, bootstrap=False,
                                  progress=False, **kw).fit(da)


def test_monthly_datetime_axis_lags_in_months():
    time = pd.date_range("1950-01", periods=732, freq="MS")
    da = xr.DataArray(_ar1(732), dims="time", coords={"time": time}, name="nino34")
    est = _fit(da, 12)
    lag = est.response_["lag"]
    np.testing.assert_array_equal(lag.values, np.arange(13.0))
    assert lag.attrs["units"] == "months"
    assert lag.attrs["calendar"] == "proleptic_gregorian"
    # the Gaussian response of an AR(1) is its autocorrelation: C(k)/C(0) from the data
    x = da.values - da.values.mean()
    ref = [np.mean(x[k:] * x[:len(x) - k]) / np.mean(x * x) for k in range(13)]
    np.testing.assert_allclose(est.response_.values, ref, rtol=1e-10)
    # max_lag as a float in months, a string and a number of samples agree
    for ml in (12.0, "12 months", "1 year", 12):
        assert _fit(da, ml).response_.sizes["lag"] == 13
    with pytest.raises(ValueError, match=r"max_lag = 12\.5 months is not a whole number"):
        _fit(da, 12.5)
    for bad in ("10 days", datetime.timedelta(days=30)):
        with pytest.raises(ValueError, match=r"max_lag .* calendar months and years have no "
                                             "fixed length"):
            _fit(da, bad)
    # a 1-D series keeps its name and gives dims (lag,)
    assert est.response_.dims == ("lag",)
    assert est.response_["observable"].item() == "nino34"


@pytest.mark.parametrize("calendar", ["360_day", "noleap"])
def test_cftime_axis_end_to_end(calendar):
    time = xr.date_range("0001-01-01", periods=240, freq="MS", calendar=calendar,
                         use_cftime=True) \
        + pd.Timedelta(days=14)
    assert isinstance(time[0], cftime.datetime)
    da = xr.DataArray(_ar1(240, 1), dims="time", coords={"time": time})
    est = _fit(da, "6 months")
    assert est.response_["lag"].attrs["units"] == "months"
    assert est.response_["lag"].attrs["calendar"] == calendar
    np.testing.assert_array_equal(est.response_["lag"].values, np.arange(7.0))
    # the same values as the numeric axis (the axis only labels the lags)
    ref = _fit(da.values, 6).response_.values
    np.testing.assert_allclose(est.response_.values, ref, rtol=1e-12)
    daily = xr.DataArray(_ar1(100, 2), dims="time", coords={
        "time": xr.date_range("2000-01-01", periods=100, freq="D", calendar=calendar,
                              use_cftime=True)})
    lag = _fit(daily, "3 days").response_["lag"]
    assert lag.attrs["units"] == "days" and lag.values[-1] == 3.0


@pytest.mark.parametrize("res", ["s", "ns"])
def test_daily_and_subdaily_axes_and_predict_do_not_depend_on_storage(res):
    days = np.arange("2000-01-01", "2000-04-10", dtype="datetime64[D]").astype(f"datetime64[{res}]")
    da = xr.DataArray(_ar1(days.size, 3), dims="time", coords={"time": days})
    est = _fit(da, 5)
    lag = est.response_["lag"]
    assert lag.attrs["units"] == "days" and lag.values.dtype == float
    np.testing.assert_array_equal(lag.values, np.arange(6.0))
    pred = est.predict(np.ones((4, 1)))
    # dt = 1 day: kicks of 1 per day, prediction = cumulative sum of R
    assert pred.dims == ("time",)
    np.testing.assert_allclose(pred.values, np.cumsum(est.response_.values[:4]),
                               rtol=1e-12)
    forcing = xr.DataArray(np.ones(4), dims="time", coords={"time": days[:4]})
    np.testing.assert_allclose(est.predict(forcing).values, pred.values)
    with pytest.raises(ValueError, match="forcing's time step is 2 days, the data's is 1 days"):
        est.predict(forcing.assign_coords(time=days[:8:2]))
    six_h = np.arange(0, 400 * 6, 6).astype("timedelta64[h]") + np.datetime64("2000-01-01",
                                                                              res)
    lag6 = _fit(xr.DataArray(_ar1(400, 4), dims="time", coords={"time": six_h}),
                "1 day").response_["lag"]
    assert lag6.attrs["units"] == "hours"
    np.testing.assert_array_equal(lag6.values, [0.0, 6.0, 12.0, 18.0, 24.0])


def test_numeric_axis_with_units_and_bad_axes_name_the_steps():
    t = np.arange(300) * 0.5
    da = xr.DataArray(_ar1(300, 5), dims="time",
                      coords={"time": ("time", t, {"units": "days since 2000-01-01"})})
    lag = _fit(da, 2.0).response_["lag"]  # 2.0 days = 4 samples
    assert lag.attrs["units"] == "days"
    np.testing.assert_array_equal(lag.values, [0.0, 0.5, 1.0, 1.5, 2.0])
    uneven = da.assign_coords(time=np.r_[t[:100], t[100:] + 0.25])
    with pytest.raises(ValueError, match=r"X's time coordinate is not evenly spaced: steps "
                                         r"found 0\.5 \(x298\), 0\.75 \(x1\)"):
        _fit(uneven, 3)
    nat = pd.date_range("1950-01", periods=50, freq="MS").values.copy()
    nat[7] = np.datetime64("NaT")
    with pytest.raises(ValueError, match="time stamp 7 is missing"):
        _fit(xr.DataArray(_ar1(50), dims="time", coords={"time": nat}), 3)
    with pytest.raises(TypeError, match="max_lag must be an int"):
        _fit(da, True)
