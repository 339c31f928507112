"""gfdt.nullmodel: AR(1)/VAR(1) fits, surrogates and bands against closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.signal import lfilter

from gfdt import ResponseEstimator
from gfdt.nullmodel import ar1_surrogates, fit_ar1, fit_var1, surrogate_bands


def ar1(n: int, phi: float, sigma: float, mean: float = 0.0, seed: int = 0) -> np.ndarray:
    """A stationary AR(1) series (independent generator: scipy's lfilter)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n) * sigma
    z[0] *= 1 / np.sqrt(1 - phi**2)  # stationary start
    return lfilter([1.0], [1.0, -phi], z) + mean


def acf(x: np.ndarray, k: int) -> float:
    xc = x - x.mean()
    return float(np.sum(xc[k:] * xc[: len(x) - k]) / np.sum(xc**2))


def bartlett_se(phi: float, k: int, n: int) -> float:
    """Bartlett's standard error of the lag-k autocorrelation of an AR(1)."""
    var = ((1 + phi**2) * (1 - phi ** (2 * k)) / (1 - phi**2) - 2 * k * phi ** (2 * k)) / n
    return float(np.sqrt(var))


def test_fit_ar1_recovers_parameters():
    n, phi, sigma, mean = 100_000, 0.6, 0.5, 2.0
    p = fit_ar1(ar1(n, phi, sigma, mean))
    assert abs(p["phi"] - phi) < 4 * np.sqrt((1 - phi**2) / n)
    assert p["sigma"] == pytest.approx(sigma, rel=0.02)
    assert p["mean"] == pytest.approx(mean, abs=4 * sigma / (1 - phi) / np.sqrt(n))
    assert p["variance"] == pytest.approx(sigma**2 / (1 - phi**2), rel=0.03)
    # per coordinate, members pooled
    X = np.stack([ar1(20_000, 0.3, 1.0, seed=1), ar1(20_000, 0.8, 2.0, seed=2)], axis=1)
    da = xr.DataArray(np.stack([X, X[::-1]]), dims=("member", "time", "site"))
    q = fit_ar1(da)
    assert q["phi"].shape == (2,)
    np.testing.assert_allclose(q["phi"], [0.3, 0.8], atol=4 * np.sqrt(1 / 40_000))
    np.testing.assert_allclose(q["sigma"], [1.0, 2.0], rtol=0.03)


def test_surrogate_autocorrelation_and_variance_follow_the_fit():
    n, phi = 50_000, 0.7
    x = ar1(n, phi, 1.0, seed=3)
    p = fit_ar1(x)
    (s,) = ar1_surrogates(x, 1, seed=4)
    assert s.shape == x.shape
    for k in (1, 2, 5):
        assert abs(acf(s, k) - p["phi"] ** k) < 4 * bartlett_se(phi, k, n)
    assert np.var(s) == pytest.approx(p["variance"], rel=0.05)


def test_surrogates_start_in_the_stationary_law():
    x = ar1(5000, 0.9, 1.0, seed=5)
    # many short surrogates: the variance at every time is the stationary one
    short = xr.DataArray(x[:3], dims="time")
    many = np.stack([s.values for s in ar1_surrogates(short, 4000, seed=7)])
    q = fit_ar1(short)
    var_t = many.var(axis=0)
    np.testing.assert_allclose(var_t, q["variance"], rtol=4 * np.sqrt(2 / 4000))
    lag1 = np.mean((many[:, 1] - q["mean"]) * (many[:, 0] - q["mean"])) / q["variance"]
    assert lag1 == pytest.approx(q["phi"], abs=4 * np.sqrt(2 / 4000))


def test_surrogates_keep_layout_coordinates_and_time_axis():
    t = pd.date_range("1950-01", periods=120, freq="MS")
    data = np.stack([ar1(120, 0.5, 1.0, seed=s) for s in range(6)]).reshape(2, 3, 120)
    da = xr.DataArray(data.transpose(0, 2, 1), dims=("member", "time", "region"),
                      coords={"time": t, "region": ["a", "b", "c"]}, name="sst",
                      attrs={"units": "K"})
    a, b = ar1_surrogates(da.transpose("time", "region", "member"), 2, seed=1)
    assert a.dims == ("time", "region", "member") and a.name == "sst"
    assert a.attrs == {"units": "K"}
    xr.testing.assert_identical(a["time"], da["time"])
    assert list(a["region"].values) == ["a", "b", "c"]
    assert not np.allclose(a.values, b.values)
    # surrogate k does not depend on how many are drawn
    (a1,) = ar1_surrogates(da.transpose("time", "region", "member"), 1, seed=1)
    np.testing.assert_array_equal(a1.values, a.values)


def test_fit_var1_recovers_coupling():
    rng = np.random.default_rng(8)
    A = np.array([[0.5, 0.3], [0.0, 0.6]])
    n = 60_000
    x = np.zeros((n, 2))
    z = rng.standard_normal((n, 2)) * 0.5
    for t in range(1, n):
        x[t] = A @ x[t - 1] + z[t]
    p = fit_var1(x[1000:])
    np.testing.assert_allclose(p["A"], A, atol=0.02)
    np.testing.assert_allclose(p["Q"], 0.25 * np.eye(2), atol=0.01)
    # the VAR(1) surrogate has the fitted lag-1 covariance A C0
    (s,) = ar1_surrogates(x[1000:], 1, seed=9, kind="var1")
    sc = s - s.mean(axis=0)
    c1 = sc[1:].T @ sc[:-1] / (len(sc) - 1)
    np.testing.assert_allclose(c1, p["A"] @ p["C0"], atol=0.03)


def test_surrogate_bands_width_is_bartletts():
    """Gaussian response of a 1-D series = its autocorrelation: the 95% red-noise band
    has half-width 1.96 x Bartlett's standard error, centred on phi^k."""
    n, phi = 2000, 0.6
    x = xr.DataArray(ar1(n, phi, 1.0, seed=10), dims="time")
    est = ResponseEstimator(score="gaussian", max_lag=3)
    band = surrogate_bands(est, x, n_surrogates=200, level=0.95, seed=11)
    assert not hasattr(est, "response_")  # the estimator itself stays unfitted
    p = fit_ar1(x)
    lo = band["lower"].values.reshape(4)
    hi = band["upper"].values.reshape(4)
    med = band["median"].values.reshape(4)
    for k in (1, 2, 3):
        se = bartlett_se(float(p["phi"]), k, n)
        half = (hi[k] - lo[k]) / 2
        assert half == pytest.approx(1.96 * se, rel=0.25)
        assert lo[k] < p["phi"] ** k < hi[k]
        # the median of 200 draws (standard error 1.25 se / sqrt(200)), up to the
        # O(1/n) small-sample bias of autocorrelations ((1 + 4 phi) / n at lag 1)
        assert abs(med[k] - p["phi"] ** k) < 4 * 1.2533 * se / np.sqrt(200) + 4 / n
    assert band.attrs == {"level": 0.95, "n_surrogates": 200, "null_model": "ar1"}
    assert band["lower"].dims == ResponseEstimator(score="gaussian", max_lag=3).fit(
        x).response_.dims


def test_ar1_null_has_no_cross_response_and_var1_keeps_it():
    rng = np.random.default_rng(12)
    n = 3000
    x = np.zeros((n, 2))
    for t in range(1, n):
        x[t] = [0.5 * x[t - 1, 0] + 0.4 * x[t - 1, 1], 0.6 * x[t - 1, 1]]
        x[t] += rng.standard_normal(2)
    est = ResponseEstimator(score="gaussian", max_lag=2)
    ar = surrogate_bands(est, x, n_surrogates=40, seed=13, return_samples=True)
    va = surrogate_bands(est, x, n_surrogates=40, seed=13, kind="var1")
    assert ar["samples"].sizes["surrogate"] == 40
    cross_ar = ar["median"].values[1, 0, 1]
    assert abs(cross_ar) < 0.05  # independent AR(1): no coupling by construction
    R = est.fit(x).response_.values
    assert va["lower"].values[1, 0, 1] < R[1, 0, 1] < va["upper"].values[1, 0, 1]
    assert ar["upper"].values[1, 0, 1] < R[1, 0, 1]  # the coupling stands out of red noise


class Mean:
    """A minimal estimator without get_params: cloned from its signature."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def fit(self, X):
        self.response_ = xr.DataArray([self.scale * float(np.mean(X))], dims=("lag",))
        return self


def test_surrogate_bands_of_any_estimator():
    x = ar1(400, 0.5, 1.0, mean=3.0, seed=14)
    band = surrogate_bands(Mean(2.0), x, n_surrogates=300, seed=15)
    se_mean = 1 / (1 - 0.5) / np.sqrt(400)  # long-run standard error of the mean
    p = fit_ar1(x)
    assert band["median"].item() == pytest.approx(2 * p["mean"], abs=2 * 4 * se_mean /
                                                  np.sqrt(300) * 3)
    half = (band["upper"].item() - band["lower"].item()) / 2
    assert half == pytest.approx(2 * 1.96 * se_mean, rel=0.25)


def test_errors_name_the_argument():
    x = ar1(100, 0.5, 1.0)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError, match="X contains 1 NaN"):
        ar1_surrogates(bad, 2)
    with pytest.raises(ValueError, match="X is constant"):
        fit_ar1(np.ones((50, 2)))
    with pytest.raises(ValueError, match="covariance is singular"):
        fit_var1(np.stack([x, 2 * x], axis=1))
    with pytest.raises(ValueError, match="at least 3 time samples"):
        fit_ar1(x[:2])
    with pytest.raises(ValueError, match="kind must be"):
        ar1_surrogates(x, 2, kind="red")
    with pytest.raises(ValueError, match="n must be an int"):
        ar1_surrogates(x, 0)
    with pytest.raises(ValueError, match="level must be"):
        surrogate_bands(Mean(), x, level=95)
    with pytest.raises(ValueError, match="n_surrogates must be"):
        surrogate_bands(Mean(), x, n_surrogates=1)
    with pytest.raises(TypeError, match="estimator must have a fit"):
        surrogate_bands(object(), x)
    with pytest.raises(ValueError, match="'time' dimension"):
        ar1_surrogates(xr.DataArray(x, dims="t"), 2)
    with pytest.raises(TypeError, match="real numbers"):
        fit_ar1(np.array(["a", "b", "c"]))


def test_estimator_null_bands_delegate_and_match_red_noise():
    import gfdt
    from gfdt.nullmodel import fit_ar1, surrogate_bands

    rng = np.random.default_rng(3)
    x = np.empty(3000)
    x[0] = 0.0
    for t in range(1, x.size):
        x[t] = 0.7 * x[t - 1] + rng.standard_normal()
    est = gfdt.ResponseEstimator(score="gaussian", max_lag=4, progress=False).fit(x)
    before = est.response_.copy()
    band = est.null_bands(x, n_surrogates=40, level=0.9, seed=5)
    ref = surrogate_bands(est, x, n_surrogates=40, level=0.9, seed=5)
    xr.testing.assert_identical(band, ref)
    xr.testing.assert_identical(est.response_, before)  # the estimator is unchanged
    assert band["median"].dims == ("lag",)
    # red noise with the data's lag-1 autocorrelation: median response phi^k, to the
    # sampling error of 40 series of 3000 (about 0.02 at these lags)
    phi = float(np.asarray(fit_ar1(x)["phi"]).ravel()[0])
    np.testing.assert_allclose(band["median"].values, phi ** np.arange(5), atol=0.03)
    assert np.all(band["lower"].values[1:] < band["upper"].values[1:])
