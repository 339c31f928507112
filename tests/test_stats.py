"""Field statistics: spectra, moments and autocorrelations against closed forms."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import scipy.stats
import xarray as xr
from matplotlib.patches import StepPatch

from gfdt import stats
from gfdt.plotting import plot_histogram, plot_spectrum
from gfdt.stats import autocorrelation, isotropic_spectrum, marginal_moments, shell_sum
from gfdt.systems import OrnsteinUhlenbeck


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    x = 2 * np.pi * np.arange(n) / n
    return np.meshgrid(x, x, indexing="ij")  # (y, x)


def brute_mode_counts(n: int) -> np.ndarray:
    """Modes of the full fft2 plane per shell round(|k|), by direct enumeration."""
    k = np.fft.fftfreq(n, d=1.0 / n)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    return np.bincount(np.rint(np.hypot(ky, kx)).astype(int).ravel())


# ------------------------------------------------------------------ spectrum
@pytest.mark.parametrize("n", [16, 9])
def test_spectrum_parseval(n):
    rng = np.random.default_rng(1)
    u = 0.7 + rng.standard_normal((3, 4, n, n)) * rng.uniform(0.5, 2, (3, 4, 1, 1))
    e = isotropic_spectrum(u)
    assert e.dims == ("k",)
    np.testing.assert_allclose(float(e.sum()), np.mean(u**2), rtol=1e-12)
    # k = 0 holds the squared spatial mean, averaged over samples
    np.testing.assert_allclose(float(e.sel(k=0)), np.mean(u.mean(axis=(-2, -1)) ** 2),
                               rtol=1e-12)
    np.testing.assert_array_equal(e["n_modes"].values, brute_mode_counts(n))
    assert e.attrs["n_samples"] == 12
    assert e.attrs["k_nyquist"] == n // 2


def test_spectrum_dataarray_dims_in_any_order():
    rng = np.random.default_rng(2)
    arr = rng.standard_normal((8, 3, 2, 8))  # (y, member, time, x)
    da = xr.DataArray(arr, dims=("y", "member", "time", "x"), attrs={"units": "m/s"})
    e = isotropic_spectrum(da)
    ref = isotropic_spectrum(np.moveaxis(arr, 0, 2))  # (member, time, y, x)
    np.testing.assert_array_equal(e.values, ref.values)
    assert e.attrs["units"] == "(m/s)^2"


def test_spectrum_single_modes():
    n = 16
    y, x = grid(n)
    e = isotropic_spectrum(np.cos(3 * x))
    # cos(3x) = (e^{3ix} + e^{-3ix}) / 2: |u_hat|^2 = (n^2/2)^2 at each of 2 modes
    expected = np.zeros(e.sizes["k"])
    expected[3] = 2 * (n**2 / 2) ** 2 / n**4
    np.testing.assert_allclose(e.values, expected, rtol=0, atol=1e-15)
    assert expected[3] == 0.5
    # |(2, 2)| = 2.83 rounds to shell 3; a Nyquist mode (-1)^x goes to shell n/2
    e2 = isotropic_spectrum(2.0 * np.sin(2 * x + 2 * y) + np.cos(n / 2 * x))
    expected = np.zeros(e2.sizes["k"])
    expected[3] = 2.0
    expected[n // 2] = 1.0  # a real Nyquist mode: one mode with |u_hat|^2 = n^4
    np.testing.assert_allclose(e2.values, expected, rtol=0, atol=1e-14)


def test_spectrum_white_noise_flat_per_mode():
    n, samples, sd = 16, 400, 1.5
    rng = np.random.default_rng(3)
    e = isotropic_spectrum(sd * rng.standard_normal((samples, n, n)))
    m = brute_mode_counts(n)
    expected = sd**2 * m / n**2  # each mode carries sigma^2 / n^2
    # |u_hat|^2 / n^2 is sigma^2 times chi^2_2 / 2 (complex pair) or chi^2_1 (real mode):
    # relative standard deviation at most sqrt(2 / (modes * samples))
    z = (e.values / expected - 1) / np.sqrt(2 / (m * samples))
    assert np.all(np.abs(z) < 5), z
    assert np.sqrt(np.mean(z**2)) < 1.5


def test_shell_sum_of_exact_ou_spectrum():
    ou = OrnsteinUhlenbeck(n=16)
    s = ou.exact_spectrum()  # E|u_k|^2 / n^2, rfft2 layout
    e = shell_sum(s / ou.n**2)
    np.testing.assert_allclose(float(e.sum()), ou.exact_covariance(0.0)[0, 0], rtol=1e-12)
    # the same in the full fft2 layout (Hermitian-symmetric spectrum)
    full = np.fft.fft2(ou.exact_covariance(0.0)).real / ou.n**2
    np.testing.assert_allclose(shell_sum(full).values, e.values, rtol=1e-10, atol=1e-18)
    # and a Gaussian field with that covariance has that spectrum (sampling error only)
    rng = np.random.default_rng(4)
    uh = np.sqrt(full * ou.n**2) * np.fft.fft2(rng.standard_normal((400, 16, 16)))
    est = isotropic_spectrum(np.fft.ifft2(uh).real)
    z = (est.values / e.values - 1) / np.sqrt(2 / (e["n_modes"].values * 400))
    assert np.all(np.abs(z) < 5), z


def test_spectrum_errors_name_the_argument():
    with pytest.raises(ValueError, match="u must be square"):
        isotropic_spectrum(np.zeros((4, 8)))
    with pytest.raises(ValueError, match=r"u must have dims \(\.\.\., 'y', 'x'\)"):
        isotropic_spectrum(xr.DataArray(np.zeros((4, 4)), dims=("a", "b")))
    bad = np.zeros((2, 4, 4))
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="u contains 1 NaN"):
        isotropic_spectrum(bad)
    with pytest.raises(TypeError, match="u must hold real numbers"):
        isotropic_spectrum(np.zeros((4, 4), dtype=complex))


# ------------------------------------------------------------------ moments
def test_moments_normal_sample():
    n = 200_000
    rng = np.random.default_rng(5)
    x = 2.0 + 3.0 * rng.standard_normal(n)
    m = marginal_moments(x)
    assert set(m) == {"mean", "variance", "skewness", "kurtosis"}
    assert all(isinstance(v, float) for v in m.values())
    # standard errors of the sample moments of a normal law
    assert abs(m["mean"] - 2.0) < 5 * 3.0 / np.sqrt(n)
    assert abs(m["variance"] - 9.0) < 5 * 9.0 * np.sqrt(2 / n)
    assert abs(m["skewness"]) < 5 * np.sqrt(6 / n)
    assert abs(m["kurtosis"] - 3.0) < 5 * np.sqrt(24 / n)
    # and exactly the biased moments scipy computes
    np.testing.assert_allclose(m["skewness"], scipy.stats.skew(x), rtol=1e-10)
    np.testing.assert_allclose(m["kurtosis"], scipy.stats.kurtosis(x, fisher=False), rtol=1e-10)


def test_moments_exact_discrete_laws(monkeypatch):
    pm1 = np.tile([-1.0, 1.0], (6, 5))  # symmetric two-point law
    m = marginal_moments(xr.DataArray(pm1, dims=("y", "x")))
    assert m == pytest.approx({"mean": 0.0, "variance": 1.0, "skewness": 0.0,
                               "kurtosis": 1.0}, abs=1e-12)
    # Bernoulli(1/4): skewness (1-2p)/sqrt(p q), kurtosis (1 - 3 p q)/(p q)
    monkeypatch.setattr(stats, "_VALUE_CHUNK", 3)  # reduce in several chunks
    b = np.array([1.0, 0.0, 0.0, 0.0] * 5)
    p, q = 0.25, 0.75
    m = marginal_moments(b)
    assert m["mean"] == pytest.approx(p, abs=1e-14)
    assert m["variance"] == pytest.approx(p * q, abs=1e-14)
    assert m["skewness"] == pytest.approx((1 - 2 * p) / np.sqrt(p * q), abs=1e-12)
    assert m["kurtosis"] == pytest.approx((1 - 3 * p * q) / (p * q), abs=1e-12)
    const = marginal_moments(np.full(7, 2.5))
    assert const["variance"] == 0.0 and np.isnan(const["kurtosis"])


# ------------------------------------------------------------------ autocorrelation
def ar1(phi: float, shape: tuple[int, ...], T: int, seed: int) -> np.ndarray:
    """Stationary AR(1) series x_t = phi x_{t-1} + e_t, time on axis 1: (member, time, ...)."""
    rng = np.random.default_rng(seed)
    x = np.empty((shape[0], T, *shape[1:]))
    x[:, 0] = rng.standard_normal((shape[0], *shape[1:])) / np.sqrt(1 - phi**2)
    for t in range(1, T):
        x[:, t] = phi * x[:, t - 1] + rng.standard_normal((shape[0], *shape[1:]))
    return x


def brute_autocovariance(members: list[np.ndarray], max_lag: int) -> np.ndarray:
    mu = np.concatenate([m.ravel() for m in members]).mean()
    out = []
    for lag in range(max_lag + 1):
        num = sum(np.sum((m[lag:] - mu) * (m[: m.shape[0] - lag] - mu)) for m in members)
        den = sum((m.shape[0] - lag) * m[0].size for m in members)
        out.append(num / den)
    return np.array(out)


def test_autocorrelation_ar1():
    phi, T, L = 0.8, 2000, 12
    x = ar1(phi, (4, 4, 4), T, seed=6)
    da = xr.DataArray(x, dims=("member", "time", "y", "x"),
                      coords={"time": 0.5 * np.arange(T)})
    rho = autocorrelation(da, L)
    assert rho.dims == ("lag",)
    np.testing.assert_allclose(rho["lag"].values, 0.5 * np.arange(L + 1))
    k = np.arange(L + 1)
    # Bartlett's variance of the sample autocorrelation of an AR(1) process
    n_series = T * 16 * 4
    var = ((1 + phi**2) * (1 - phi ** (2 * k)) / (1 - phi**2) - 2 * k * phi ** (2 * k)) / n_series
    assert rho.values[0] == 1.0
    assert np.all(np.abs(rho.values[1:] - phi ** k[1:]) < 5 * np.sqrt(var[1:]))
    # exactly the unbiased pooled estimate, computed directly
    brute = brute_autocovariance(list(x), L)
    np.testing.assert_allclose(rho.values, brute / brute[0], rtol=1e-12, atol=1e-14)


def test_autocovariance_unequal_members_and_chunks(monkeypatch):
    monkeypatch.setattr(stats, "_ACF_CHUNK_BYTES", 1)  # one spatial column at a time
    rng = np.random.default_rng(7)
    members = [rng.standard_normal((T, 3, 2)) + 0.3 for T in (30, 17, 25)]
    cov = autocorrelation(members, 9, normalize=False)
    np.testing.assert_allclose(cov.values, brute_autocovariance(members, 9),
                               rtol=1e-12, atol=1e-14)
    assert cov["lag"].attrs["units"] == "samples"
    pooled = np.concatenate([m.ravel() for m in members])
    np.testing.assert_allclose(cov.values[0], marginal_moments(pooled)["variance"], rtol=1e-12)


def test_autocorrelation_errors_name_the_argument():
    with pytest.raises(ValueError, match="max_lag = 5 must be smaller"):
        autocorrelation(np.zeros((5, 2)), 5)
    with pytest.raises(TypeError, match="max_lag must be an int"):
        autocorrelation(np.zeros((5, 2)), 2.0)
    with pytest.raises(ValueError, match="u must have a 'time' dimension"):
        autocorrelation(xr.DataArray(np.zeros((5, 2)), dims=("t", "x")), 2)


# ------------------------------------------------------------------ plots
def test_plot_spectrum_lines_equal_data():
    rng = np.random.default_rng(8)
    a = isotropic_spectrum(rng.standard_normal((5, 16, 16)))
    b = isotropic_spectrum(rng.standard_normal((5, 16, 16)) ** 3)
    ax = plot_spectrum({"a": a, "b": b})
    lines = ax.get_lines()
    assert [ln.get_label() for ln in lines] == ["a", "b"]
    for line, e in zip(lines, (a, b), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, 9))  # k = 1..n/2
        np.testing.assert_array_equal(line.get_ydata(), e.values[1:9])
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    ax2 = plot_spectrum(a, k_max=11)
    np.testing.assert_array_equal(ax2.get_lines()[0].get_ydata(), a.values[1:12])


def test_plot_histogram_heights_and_gaussian():
    rng = np.random.default_rng(9)
    f1 = rng.standard_normal(5000) * 0.5 + 1.0
    f2 = xr.DataArray(np.sign(rng.standard_normal((50, 40))), dims=("y", "x"))
    ax = plot_histogram({"one": f1, "two": f2}, bins=30)
    steps = [p for p in ax.patches if isinstance(p, StepPatch)]
    assert len(steps) == 2
    edges = np.linspace(min(f1.min(), -1.0), max(f1.max(), 1.0), 31)
    for patch, data in zip(steps, (f1, f2.values.ravel()), strict=True):
        heights, got_edges, _ = patch.get_data()
        np.testing.assert_allclose(got_edges, edges, rtol=1e-12)
        np.testing.assert_allclose(heights, np.histogram(data, bins=edges, density=True)[0],
                                   rtol=1e-12)
        np.testing.assert_allclose(np.sum(heights * np.diff(edges)), 1.0, rtol=1e-12)
    lines = ax.get_lines()
    assert len(lines) == 2 and all(ln.get_linestyle() == "--" for ln in lines)
    for line, data in zip(lines, (f1, f2.values.ravel()), strict=True):
        xs = line.get_xdata()
        pdf = scipy.stats.norm.pdf(xs, loc=np.mean(data), scale=np.std(data))
        np.testing.assert_allclose(line.get_ydata(), pdf, rtol=1e-10)
    # counts instead of densities
    ax2 = plot_histogram(f1, bins=[-1.0, 0.0, 1.0, 2.0, 3.0], density=False)
    heights, _, _ = next(p for p in ax2.patches if isinstance(p, StepPatch)).get_data()
    np.testing.assert_array_equal(heights, np.histogram(f1, bins=[-1, 0, 1, 2, 3])[0])
    line = ax2.get_lines()[0]  # expected counts per (unit-width) bin of the Gaussian
    pdf = scipy.stats.norm.pdf(line.get_xdata(), loc=np.mean(f1), scale=np.std(f1))
    np.testing.assert_allclose(line.get_ydata(), pdf * f1.size, rtol=1e-10)
