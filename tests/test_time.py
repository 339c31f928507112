"""gfdt._time: steps, CF units, lags and durations of climate time axes."""

from __future__ import annotations

import datetime

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from gfdt._duration import duration_in_units, parse_max_lag
from gfdt._time import TimeStep, elapsed, forcing_times, time_step
from gfdt.conventions import lag_coord

MONTHLY = TimeStep(1.0, "months", "proleptic_gregorian")
DAILY = TimeStep(1.0, "days", "proleptic_gregorian")


# ----------------------------------------------------------------- time_step
@pytest.mark.parametrize("freq", ["MS", "ME"])
def test_monthly_datetime_axes_step_one_month(freq):
    t = pd.date_range("1950-01", periods=732, freq=freq)
    gaps = set(np.diff(t.values).astype("timedelta64[D]").astype(int))
    assert gaps >= {28, 31}  # not evenly spaced in days ...
    assert time_step(t) == MONTHLY  # ... but in calendar months
    assert time_step(xr.DataArray(t, dims="time")) == MONTHLY


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_step_independent_of_storage_resolution(unit):
    base = pd.date_range("1950-01", periods=40, freq="MS").values
    assert time_step(base.astype(f"datetime64[{unit}]")) == MONTHLY
    daily = pd.date_range("1950-01", periods=40, freq="D").values.astype(f"datetime64[{unit}]")
    assert time_step(daily) == DAILY


def test_multi_month_and_yearly_steps():
    assert time_step(pd.date_range("1950-01", periods=20, freq="QS")) == TimeStep(
        3.0, "months", "proleptic_gregorian")
    assert time_step(pd.date_range("1950-01", periods=20, freq="YS")) == TimeStep(
        1.0, "years", "proleptic_gregorian")
    # annual means stamped mid-year, every second year
    t = [np.datetime64(f"{y}-07-02T12") for y in range(1900, 2000, 2)]
    assert time_step(np.array(t)) == TimeStep(2.0, "years", "proleptic_gregorian")


@pytest.mark.parametrize(("freq", "step", "units"), [
    ("1D", 1.0, "days"), ("2D", 2.0, "days"), ("6h", 6.0, "hours"), ("36h", 36.0, "hours"),
    ("90min", 90.0, "minutes"), ("30s", 30.0, "seconds"), ("500ms", 0.5, "seconds")])
def test_fixed_steps_in_largest_whole_unit(freq, step, units):
    t = pd.date_range("2001-02-27", periods=50, freq=freq)
    got = time_step(t)
    assert (got.step, got.units) == (step, units)
    assert got.seconds == pd.Timedelta(freq).total_seconds()


@pytest.mark.parametrize("calendar", ["standard", "noleap", "all_leap", "julian", "360_day",
                                      "proleptic_gregorian"])
def test_cftime_calendars(calendar):
    daily = xr.date_range("1999-12-01", periods=800, freq="D", calendar=calendar,
                          use_cftime=True)
    assert time_step(daily) == TimeStep(1.0, "days", calendar)
    monthly = xr.date_range("1999-12-01", periods=60, freq="MS", calendar=calendar,
                            use_cftime=True)
    assert time_step(monthly) == TimeStep(1.0, "months", calendar)
    yearly = xr.date_range("1999-01-01", periods=10, freq="YS", calendar=calendar,
                           use_cftime=True)
    assert time_step(yearly) == TimeStep(1.0, "years", calendar)


def test_mid_month_stamps_are_monthly():
    # CF monthly means: the middle of each month (Feb 15 00:00, else the 16th at 12:00)
    t = [cftime.DatetimeNoLeap(2000 + (m // 12), m % 12 + 1, 15 if m % 12 == 1 else 16,
                               0 if m % 12 == 1 else 12) for m in range(36)]
    assert time_step(t) == TimeStep(1.0, "months", "noleap")
    # 360-day calendars: monthly data are also 30 days apart; months win
    t360 = [cftime.Datetime360Day(2000, m, 16) for m in range(1, 13)]
    assert time_step(t360).units == "months"


def test_thirty_day_steps_on_standard_calendar_are_days():
    t = pd.date_range("2000-01-01", periods=24, freq="30D")
    assert time_step(t) == TimeStep(30.0, "days", "proleptic_gregorian")


def test_python_datetimes_and_timedeltas():
    t = [datetime.datetime(2000, 1, 1) + datetime.timedelta(hours=3 * k) for k in range(10)]
    assert time_step(t) == TimeStep(3.0, "hours", "proleptic_gregorian")
    off = np.arange(10) * np.timedelta64(15, "m")
    assert time_step(off) == TimeStep(15.0, "minutes", None)


def test_numeric_axes_and_units():
    assert time_step(np.arange(10) * 0.25) == TimeStep(0.25, None, None)
    da = xr.DataArray(np.arange(10) * 0.5, dims="time", attrs={"units": "model time"})
    assert time_step(da) == TimeStep(0.5, "model time", None)
    cf = xr.DataArray(np.arange(10.0), dims="time",
                      attrs={"units": "hours since 2000-01-01", "calendar": "noleap"})
    assert time_step(cf) == TimeStep(1.0, "hours", "noleap")
    cf2 = xr.DataArray(np.arange(10.0), dims="time", attrs={"units": "days since 2000-01-01"})
    assert time_step(cf2) == TimeStep(1.0, "days", "standard")
    # float rounding of stored stamps is tolerated
    assert time_step(np.arange(10) * 0.1).step == pytest.approx(0.1, rel=1e-12)


def test_decoded_coordinate_reads_calendar_from_encoding():
    ds = xr.Dataset(coords={"time": ("time", np.arange(12.0),
                                     {"units": "months since 2000-01-01",
                                      "calendar": "360_day"})})
    dec = xr.decode_cf(ds)
    assert time_step(dec["time"]) == TimeStep(1.0, "months", "360_day")


def test_uneven_axis_names_steps_and_first_offender():
    t = pd.date_range("1950-01-01", periods=30, freq="D").delete([5, 6])
    with pytest.raises(ValueError, match=r"X is not evenly spaced") as err:
        time_step(t, name="X")
    msg = str(err.value)
    assert "1 days (x26)" in msg and "3 days (x1)" in msg
    assert "stamp 4 (1950-01-05" in msg and "to 5 (1950-01-08" in msg
    with pytest.raises(ValueError, match=r"0.5 \(x8\), 1.5 \(x1\)"):
        time_step(np.r_[np.arange(9) * 0.5, 5.5])
    # days since ... with monthly gaps: the hint to decode the coordinate
    da = xr.DataArray([0.0, 31, 59, 90], dims="time", attrs={"units": "days since 2000-01-01"})
    with pytest.raises(ValueError, match="decode_cf"):
        time_step(da)


def test_not_increasing_and_missing_stamps():
    t = pd.date_range("1950-01-01", periods=10, freq="D").values
    with pytest.raises(ValueError, match=r"strictly increasing: stamp 3"):
        time_step(t[[0, 1, 2, 2, 4]])
    bad = t.copy()
    bad[6] = np.datetime64("NaT")
    with pytest.raises(ValueError, match=r"time stamp 6 is missing"):
        time_step(bad)
    with pytest.raises(ValueError, match=r"X: time stamp 2 is missing"):
        time_step([0.0, 1.0, np.nan, 3.0], name="X")
    cf = [cftime.DatetimeNoLeap(2000, 1, d) for d in range(1, 5)]
    cf[1] = None
    with pytest.raises(ValueError, match=r"time stamp 1 is missing"):
        time_step(np.array(cf, dtype=object))


def test_time_step_bad_input():
    with pytest.raises(ValueError, match="at least 2"):
        time_step(pd.date_range("2000", periods=1))
    with pytest.raises(ValueError, match="one-dimensional"):
        time_step(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="dates"):
        time_step(np.array(["a", "b"], dtype=object))
    with pytest.raises(ValueError, match="several calendars"):
        time_step([cftime.DatetimeNoLeap(2000, 1, 1), cftime.Datetime360Day(2000, 1, 2)])


# ----------------------------------------------------------------- lags
def test_lag_coordinate_values_and_attrs():
    name, vals, attrs = lag_coord(13, MONTHLY)
    assert name == "lag"
    np.testing.assert_array_equal(vals, np.arange(13.0))
    assert attrs == {"units": "months", "long_name": "time lag",
                     "calendar": "proleptic_gregorian"}
    _, six, six_attrs = lag_coord(4, TimeStep(6.0, "hours", "noleap"))
    np.testing.assert_array_equal(six, [0.0, 6.0, 12.0, 18.0])
    assert six_attrs["units"] == "hours" and "calendar" not in six_attrs
    assert lag_coord(3)[2]["units"] == "samples"
    assert lag_coord(3, TimeStep(0.1, None))[2]["units"] == "1"
    np.testing.assert_allclose(lag_coord(3, 0.5, "days")[1], [0.0, 0.5, 1.0])
    r = xr.DataArray(np.zeros(13), dims="lag", coords={"lag": lag_coord(13, MONTHLY)})
    assert r["lag"].attrs["units"] == "months"
    with pytest.raises(ValueError, match="n_lags"):
        lag_coord(0, MONTHLY)
    with pytest.raises(TypeError, match="step must be a positive number"):
        lag_coord(3, "1 day")


@pytest.mark.parametrize(("max_lag", "step", "expected"), [
    (12, MONTHLY, 12), (np.int64(7), None, 7), (12.0, MONTHLY, 12), ("12 months", MONTHLY, 12),
    ("2 years", MONTHLY, 24), ("1.5 yr", MONTHLY, 18), ("6 mon", TimeStep(3.0, "months"), 2),
    (30.0, DAILY, 30), ("30 days", DAILY, 30), ("48 h", DAILY, 2),
    (np.timedelta64(3, "D"), DAILY, 3), (np.timedelta64(72, "h").astype("m8[ns]"), DAILY, 3),
    (pd.Timedelta("72h"), DAILY, 3), (datetime.timedelta(days=4), DAILY, 4),
    (np.timedelta64(2, "Y"), MONTHLY, 24), ("90 min", TimeStep(30.0, "minutes"), 3),
    (1.5, TimeStep(0.5, "model time"), 3), ("1.5 model time", TimeStep(0.5, "model time"), 3),
    (3.0, None, 3), (0.3, TimeStep(0.1, None), 3)])
def test_parse_max_lag(max_lag, step, expected):
    got = parse_max_lag(max_lag, step)
    assert got == expected and isinstance(got, int)


def test_parse_max_lag_errors():
    with pytest.raises(ValueError, match=r"max_lag = 12.5 months is not a whole number .*"
                                         r"use 12 or 13"):
        parse_max_lag(12.5, MONTHLY)
    with pytest.raises(ValueError, match="no fixed length in days"):
        parse_max_lag("30 days", MONTHLY)
    with pytest.raises(ValueError, match="no fixed length"):
        parse_max_lag(np.timedelta64(30, "D"), MONTHLY)
    with pytest.raises(ValueError, match="give a number and a unit"):
        parse_max_lag("twelve months", MONTHLY)
    with pytest.raises(ValueError, match=">= 0"):
        parse_max_lag(-1, MONTHLY)
    with pytest.raises(ValueError, match="finite"):
        parse_max_lag(float("nan"), MONTHLY)
    with pytest.raises(TypeError, match="max_lag must be"):
        parse_max_lag(True, MONTHLY)
    with pytest.raises(TypeError, match="max_lag must be"):
        parse_max_lag([12], MONTHLY)
    with pytest.raises(ValueError, match="cannot be converted"):
        parse_max_lag("3 days", None)
    with pytest.raises(ValueError, match="NaT"):
        parse_max_lag(np.timedelta64("NaT"), DAILY)


def test_duration_in_units():
    assert duration_in_units("1 year", "months") == 12
    assert duration_in_units("36 h", "days") == 1.5
    assert duration_in_units(np.timedelta64(90, "s"), "minutes") == 1.5
    assert duration_in_units(np.timedelta64(1500, "ms"), "seconds") == 1.5
    with pytest.raises(TypeError, match="duration must be"):
        duration_in_units(3, "days")


# ----------------------------------------------------------------- elapsed, forcing
def test_elapsed_in_data_units():
    t = pd.date_range("1950-01", periods=25, freq="MS")
    np.testing.assert_allclose(elapsed(t, MONTHLY), np.arange(25.0), atol=1e-12)
    np.testing.assert_allclose(elapsed(t, TimeStep(1.0, "years")), np.arange(25) / 12,
                               atol=1e-12)
    for unit in ("s", "ns"):
        d = pd.date_range("1950-01", periods=5, freq="6h").values.astype(f"datetime64[{unit}]")
        np.testing.assert_array_equal(elapsed(d, DAILY), np.arange(5) * 0.25)
    cf = xr.DataArray(np.arange(4) * 24.0, dims="time", attrs={"units": "hours since 2000-1-1"})
    np.testing.assert_array_equal(elapsed(cf, DAILY), np.arange(4.0))
    with pytest.raises(ValueError, match="holds dates"):
        elapsed(t, TimeStep(1.0, None))


@pytest.mark.parametrize("unit", ["s", "ms", "ns"])
def test_forcing_times_independent_of_resolution(unit):
    f = pd.date_range("1990-03-01", periods=6, freq="D").values.astype(f"datetime64[{unit}]")
    np.testing.assert_array_equal(forcing_times(f, DAILY), np.arange(6.0))
    m = pd.date_range("1990-03-01", periods=6, freq="MS").values.astype(f"datetime64[{unit}]")
    np.testing.assert_array_equal(forcing_times(m, MONTHLY), np.arange(6.0))


def test_forcing_times_checks_step():
    h = pd.date_range("1990-03-01", periods=6, freq="24h")
    np.testing.assert_array_equal(forcing_times(h, TimeStep(24.0, "hours")),
                                  np.arange(6) * 24.0)
    np.testing.assert_array_equal(forcing_times(pd.date_range("1990", periods=1), DAILY), [0.0])
    with pytest.raises(ValueError, match=r"forcing's time step is 1 months, the data's is "
                                         r"1 days"):
        forcing_times(pd.date_range("1990-03-01", periods=6, freq="MS"), DAILY)
    with pytest.raises(ValueError, match="forcing's time coordinate is not evenly spaced"):
        forcing_times(pd.date_range("1990", periods=6, freq="D").delete(2), DAILY)
