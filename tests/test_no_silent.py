"""No silent wrong results at the response estimator: degenerate or inconsistent input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gfdt


def _est(**kw):
    opts = {"score": "gaussian", "max_lag": 2, "bootstrap": False, "progress": False, **kw}
    return gfdt.ResponseEstimator(**opts)


def _series(n=200, d=2, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d))


def test_constant_data_is_an_error_not_a_zero_response():
    with pytest.raises(ValueError, match="X is constant"):
        _est().fit(np.ones(100))
    with pytest.raises(ValueError, match="X is constant"):
        _est(score=lambda b: -b).fit(np.full((100, 3), 2.5))
    x = _series()
    x[:, 1] = 4.0
    with pytest.raises(ValueError, match=r"X has 1 constant state coordinate\(s\).*\[1\]"):
        _est().fit(x)
    # Dask-backed constant data: caught at the Gaussian fit
    da = xr.DataArray(np.ones((100, 2)), dims=("time", "feature")).chunk({"time": 50})
    with pytest.raises(ValueError, match="X has constant state coordinates"):
        _est().fit(da)
    field = xr.DataArray(np.ones((50, 4, 4)), dims=("time", "y", "x"))
    with pytest.raises(ValueError, match="X is constant"):
        _est(homogeneous=True).fit(field)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_data_is_named(bad):
    x = _series()
    x[17, 0] = bad
    with pytest.raises(ValueError, match="X contains 1 NaN or inf"):
        _est().fit(x)
    with pytest.raises(ValueError, match=r"X\[1\] contains 1 NaN or inf"):
        _est().fit([_series(seed=1), x])


def test_members_must_agree():
    a = xr.DataArray(_series(), dims=("time", "feature"), coords={"feature": ["u", "v"]})
    b = a.assign_coords(feature=["u", "w"])
    with pytest.raises(ValueError, match=r"X\[1\]'s 'feature' coordinate differs"):
        _est().fit([a, b])
    with pytest.raises(ValueError, match=r"X\[1\] is in 'K', X\[0\] in 'degC'"):
        _est().fit([a.assign_attrs(units="degC"), a.assign_attrs(units="K")])
    t = np.arange(200.0)
    with pytest.raises(ValueError, match="different time steps"):
        _est().fit([a.assign_coords(time=t), a.assign_coords(time=2 * t)])
    with pytest.raises(ValueError, match="some members of X have a time coordinate"):
        _est().fit([a.assign_coords(time=t), a])
    with pytest.raises(ValueError, match="different state shapes"):
        _est().fit([_series(d=2), _series(d=3)])


def test_forcing_is_checked_against_the_response():
    da = xr.DataArray(_series(), dims=("time", "feature"), coords={"feature": ["u", "v"]})
    est = _est().fit(da)
    good = xr.DataArray(np.ones((3, 2)), dims=("time", "source"), coords={"source": ["u", "v"]})
    out = est.predict(good)
    np.testing.assert_allclose(out.values[0], est.response_.values[0].sum(axis=1))
    with pytest.raises(ValueError, match=r"forcing's 'source' coordinate \['v', 'u'\] differs"):
        est.predict(good.assign_coords(source=["v", "u"]))
    with pytest.raises(ValueError, match="forcing contains NaN"):
        est.predict(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"forcing must have shape \(time, 2\)"):
        est.predict(np.ones((3, 3)))


def test_response_to_forcing_checks_response_and_units():
    from gfdt.response import response_to_forcing

    t = np.arange(300) * 1.0
    da = xr.DataArray(_series(300), dims=("time", "feature"),
                      coords={"time": ("time", t, {"units": "days since 2000-01-01"})})
    est = _est().fit(da)
    days = xr.DataArray(np.ones((3, 2)), dims=("time", "source"),
                        coords={"time": ("time", [0.0, 1.0, 2.0], {"units": "days"})})
    np.testing.assert_allclose(est.predict(days).values, est.predict(np.ones((3, 2))).values)
    with pytest.raises(ValueError, match="forcing's time coordinate is in 'hours', the "
                                         "response's lags in 'days'"):
        est.predict(days.assign_coords(time=("time", [0.0, 1.0, 2.0], {"units": "hours"})))
    bad = est.response_.copy()
    bad[1, 0, 0] = np.nan
    with pytest.raises(ValueError, match="response contains 1 NaN"):
        response_to_forcing(bad, np.ones((3, 2)))
