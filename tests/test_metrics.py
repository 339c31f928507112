"""metrics.response_error and summarize_errors against numpy norms."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gfdt.metrics import response_error, summarize_errors


def field(values, lags=None) -> xr.DataArray:
    values = np.asarray(values, dtype=float)
    lags = np.arange(values.shape[0], dtype=float) if lags is None else lags
    return xr.DataArray(values, dims=("lag", "y", "x"), coords={"lag": lags})


def test_l2_linf_on_arrays():
    rng = np.random.default_rng(0)
    est = rng.standard_normal((4, 3, 5))
    ref = rng.standard_normal((4, 3, 5))
    err = response_error(est, ref)
    diff = (est - ref).reshape(4, -1)
    np.testing.assert_allclose(err["l2"].values, np.linalg.norm(diff, axis=1), rtol=1e-14)
    np.testing.assert_allclose(err["linf"].values, np.linalg.norm(diff, np.inf, axis=1),
                               rtol=1e-14)
    assert err["l2"].dims == ("lag",)
    assert "l2_debiased" not in err


def test_hand_made_values():
    est = np.zeros((2, 2, 2))
    ref = np.zeros((2, 2, 2))
    ref[0] = [[3.0, 0.0], [0.0, 4.0]]  # |diff| = 5 in L2, 4 in L-inf
    ref[1, 1, 0] = -2.0
    err = response_error(est, ref)
    np.testing.assert_allclose(err["l2"].values, [5.0, 2.0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(err["linf"].values, [4.0, 2.0], rtol=0, atol=0)


def test_reference_may_hold_more_lags():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 2, 2))
    b = rng.standard_normal((6, 2, 2))
    est = field(a, lags=np.arange(2.0, 5.0))  # lags 2..4
    ref = field(b, lags=np.arange(6.0))  # lags 0..5: a longer truth
    err = response_error(est, ref)
    np.testing.assert_array_equal(err["lag"], [2.0, 3.0, 4.0])
    diff = a - b[2:5]
    np.testing.assert_allclose(err["l2"].values, np.sqrt((diff**2).sum(axis=(1, 2))),
                               rtol=1e-14)
    np.testing.assert_allclose(err["linf"].values, np.abs(diff).max(axis=(1, 2)), rtol=1e-14)


def test_no_silent_intersection():
    """Every point of the estimate is scored or the call fails, naming both arguments."""
    rng = np.random.default_rng(11)
    est = field(rng.standard_normal((3, 8, 8))).assign_coords(y=np.arange(8.0),
                                                               x=np.arange(8.0))
    # the case: x/y coordinates that share one point (was: 1 of 64 points scored)
    shifted = est.assign_coords(y=np.arange(7.0, 15.0), x=np.arange(7.0, 15.0))
    with pytest.raises(ValueError, match=r"estimate and reference have different 'y' "
                                         r"coordinates"):
        response_error(est, shifted)
    with pytest.raises(ValueError, match=r"differ in size along 'x'"):
        response_error(est, est.isel(x=slice(0, 4)))
    with pytest.raises(ValueError, match="different dims"):
        response_error(est, est.rename(x="lon"))
    with pytest.raises(ValueError, match=r"estimate has lags that reference lacks \(\[3.0\]"):
        response_error(field(rng.standard_normal((4, 2, 2))), field(np.zeros((3, 2, 2))))
    with pytest.raises(ValueError, match="estimate's lags are in 'months' and reference's "
                                         "in 'days'"):
        response_error(est.assign_coords(lag=est.lag.assign_attrs(units="months")),
                       est.assign_coords(lag=est.lag.assign_attrs(units="days")))
    no_lag = xr.DataArray(np.zeros((2, 8, 8)), dims=("lag", "y", "x"))
    with pytest.raises(ValueError, match="estimate has 3 lags and reference has 2"):
        response_error(est.drop_vars("lag"), no_lag)
    # stderr on another grid than the reference
    with pytest.raises(ValueError, match="reference and stderr have different 'y'"):
        response_error(est, est, stderr=abs(shifted))
    # the same grid, in another dim order and with coordinates on one side only: fine
    err = response_error(est, est.transpose("x", "y", "lag").drop_vars("y") + 1.0)
    np.testing.assert_allclose(err["l2"].values, 8.0, rtol=1e-14)


def test_nan_inputs_are_errors():
    est = field(np.zeros((2, 2, 2)))
    bad = est.copy(data=np.where(np.eye(2, dtype=bool)[None], np.nan, np.zeros((2, 2, 2))))
    for kwargs, name in [({"estimate": bad, "reference": est}, "estimate"),
                         ({"estimate": est, "reference": bad}, "reference"),
                         ({"estimate": est, "reference": est, "stderr": abs(bad)}, "stderr")]:
        with pytest.raises(ValueError, match=f"{name} contains NaN"):
            response_error(**kwargs)


def test_transposed_dims_align():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((3, 2, 4))
    b = rng.standard_normal((3, 2, 4))
    est = field(a)
    ref = field(b).transpose("x", "lag", "y")
    err = response_error(est, ref)
    np.testing.assert_allclose(err["l2"].values, np.sqrt(((a - b) ** 2).sum(axis=(1, 2))),
                               rtol=1e-14)


def test_l2_debiased():
    rng = np.random.default_rng(3)
    est = rng.standard_normal((3, 2, 2))
    ref = rng.standard_normal((3, 2, 2))
    se = np.abs(rng.standard_normal((3, 2, 2))) * 0.5
    se[2] = 10.0  # more noise than error: clipped at 0
    err = response_error(est, ref, stderr=se)
    l2sq = ((est - ref) ** 2).sum(axis=(1, 2))
    expected = np.sqrt(np.maximum(0.0, l2sq - (se**2).sum(axis=(1, 2))))
    np.testing.assert_allclose(err["l2_debiased"].values, expected, rtol=1e-14)
    assert err["l2_debiased"].values[2] == 0.0
    assert err["l2_debiased"].values[0] > 0.0
    # a reference Dataset brings its stderr along, taken at the estimate's lags
    ds = xr.Dataset({"response": field(ref, lags=np.arange(0.0, 3.0)),
                     "stderr": field(se, lags=np.arange(0.0, 3.0))})
    err2 = response_error(field(est[1:3], lags=np.arange(1.0, 3.0)), ds)
    np.testing.assert_array_equal(err2["lag"], [1.0, 2.0])
    l2sq2 = ((est[1:3] - ref[1:3]) ** 2).sum(axis=(1, 2))
    np.testing.assert_allclose(
        err2["l2_debiased"].values,
        np.sqrt(np.maximum(0.0, l2sq2 - (se[1:3] ** 2).sum(axis=(1, 2)))), rtol=1e-14)


def test_summarize_errors():
    rng = np.random.default_rng(4)
    est, ref, se = rng.standard_normal((3, 5, 2, 2))
    err = response_error(est, ref, stderr=np.abs(se) * 0.1)
    summary = summarize_errors(err)
    assert set(summary) == {"l2_max", "l2_mean", "linf_max", "linf_mean", "l2_debiased_max",
                            "l2_debiased_mean"}
    for var in ("l2", "linf", "l2_debiased"):
        assert summary[f"{var}_max"] == pytest.approx(err[var].values.max(), rel=1e-15)
        assert summary[f"{var}_mean"] == pytest.approx(err[var].values.mean(), rel=1e-14)
        assert isinstance(summary[f"{var}_max"], float)
    assert set(summarize_errors(response_error(est, ref))) == {"l2_max", "l2_mean", "linf_max",
                                                               "linf_mean"}


def test_errors():
    with pytest.raises(ValueError, match="estimate shape"):
        response_error(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="estimate must have shape"):
        response_error(np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="reference must have a 'lag'"):
        response_error(field(np.zeros((2, 2, 2))), xr.DataArray(np.zeros(2), dims=("t",)))
    with pytest.raises(ValueError, match="reference is a Dataset without"):
        response_error(np.zeros((2, 2)), xr.Dataset())


def test_relative_fisher_error_closed_forms():
    from gfdt.metrics import relative_fisher_error

    X = np.random.default_rng(0).standard_normal((500, 3))
    exact = lambda x: -x  # noqa: E731
    assert relative_fisher_error(exact, exact, X) == 0.0
    assert relative_fisher_error(lambda x: 0 * x, exact, X) == pytest.approx(1.0)
    # s = -1.5 x: ||s - s*||^2 / ||s*||^2 = 0.25 exactly, whatever the sample
    assert relative_fisher_error(lambda x: -1.5 * x, exact, X) == pytest.approx(0.25)


def test_stein_error_against_direct_computation():
    from gfdt.metrics import stein_error

    rng = np.random.default_rng(1)
    X = rng.standard_normal((400, 3)) * np.array([1.0, 2.0, 0.5])
    P = np.diag(1 / np.array([1.0, 4.0, 0.25]))
    xc = X - X.mean(axis=0)
    M = xc.T @ (X @ P) / len(X)  # -E[(x - mean) s^T] with s = -P x
    expect = np.linalg.norm(M - np.eye(3)) / np.sqrt(3)
    assert stein_error(lambda x: -x @ P, X) == pytest.approx(expect, rel=1e-12)
    # homogeneous: translation-averaged lag-0 response of white noise with s = -x / var
    F = rng.standard_normal((200, 8, 8))
    xc = F - F.mean()
    m = np.zeros((8, 8))
    for dy in range(8):
        for dx in range(8):
            m[dy, dx] = np.mean(np.roll(xc, (-dy, -dx), axis=(1, 2)) * F)
    m[0, 0] -= 1.0
    assert stein_error(lambda x: -x, F, homogeneous=True) == pytest.approx(
        np.linalg.norm(m), rel=1e-10)


def test_summarize_errors_refuses_nan():
    err = response_error(np.zeros((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match=r"errors: \['linf'\] contain NaN"):
        summarize_errors(err.assign(linf=err.linf * np.nan))
