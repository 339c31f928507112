"""SteinCorrected: the Stein identity holds on the data after correction; closed forms."""

import numpy as np
import pytest

import gfdt
from gfdt.scores import GaussianScore, SteinCorrected


def _gaussian_data(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    a = np.array([[1.0, 0.0, 0.0], [0.6, 0.5, 0.0], [-0.3, 0.2, 2.0]])
    mu = np.array([1.0, -2.0, 0.5])
    x = rng.standard_normal((n, 3)) @ a.T + mu
    return x, mu, a @ a.T


def test_vector_identity_exact_on_data():
    x, mu, cov = _gaussian_data()
    prec = np.linalg.inv(cov)

    def wrong(z):  # mis-scaled, mis-centred, with a nonlinear term
        d = z - mu - 0.3
        return -2.5 * d @ prec + 0.1 * np.tanh(d)

    sc = SteinCorrected(wrong).fit(x)
    s = sc.score(x)
    xc = x - x.mean(axis=0)
    np.testing.assert_allclose(-(xc.T @ s) / len(x), np.eye(3), atol=1e-12)
    np.testing.assert_allclose(s.mean(axis=0), 0.0, atol=1e-12)


def test_mis_scaled_gaussian_score_becomes_the_data_gaussian_score():
    """s = -a P (x - m'): corrected to -Sigma_hat^{-1}(x - x_bar) (biased covariance)."""
    x, mu, cov = _gaussian_data()
    prec = np.linalg.inv(cov)
    sc = SteinCorrected(lambda z: -3.0 * (z - mu + 0.7) @ prec).fit(x)
    xbar = x.mean(axis=0)
    sig_hat = (x - xbar).T @ (x - xbar) / len(x)
    pts = np.array([[0.0, 0.0, 0.0], [2.0, -1.0, 3.0]])
    np.testing.assert_allclose(sc.score(pts), -(pts - xbar) @ np.linalg.inv(sig_hat),
                               rtol=1e-10)
    # an unfitted Gaussian estimator is fitted on the data, and left unchanged
    g = SteinCorrected(GaussianScore()).fit(x)
    np.testing.assert_allclose(g.score(pts), GaussianScore().fit(x).score(pts), rtol=1e-9)
    assert g.affine


def test_homogeneous_field_per_mode():
    """Periodic field: C per Fourier mode; the identity holds translation-averaged and
    E[s'] = 0 per point; a mis-scaled exact OU score is corrected to the data's
    homogeneous Gaussian score."""
    ou = gfdt.OrnsteinUhlenbeck(n=8, dt=0.1, lam=0.5, kappa=0.05, eps2=0.04)
    ds = gfdt.simulate(ou, n_members=2, burn_in=10.0, duration=300.0, save_interval=0.5,
                       seed=3)
    x = ds.u.values.reshape(-1, 8, 8)
    sc = SteinCorrected(lambda u: 0.3 * ou.exact_score(u)).fit(x)
    s = sc.score(x)
    np.testing.assert_allclose(s.mean(axis=0), 0.0, atol=1e-10)
    xh = np.fft.rfft2(x - x.mean(axis=0))
    sh = np.fft.rfft2(s)
    per_mode = -(xh * sh.conj()).mean(axis=0) / 64
    np.testing.assert_allclose(per_mode, 1.0, atol=1e-10)
    # closed form: s' = -(x - x_bar) per mode divided by the data's spectrum around x_bar
    spec = (np.abs(xh) ** 2).mean(axis=0) / 64
    pts = x[:5]
    expect = np.fft.irfft2(-np.fft.rfft2(pts - x.mean(axis=0)) / spec, s=(8, 8))
    np.testing.assert_allclose(sc.score(pts), expect, atol=1e-10 * np.abs(expect).max())


def test_response_estimator_option():
    x, _, cov = _gaussian_data(n=3000, seed=1)
    exact = np.linalg.inv(cov)
    est = gfdt.ResponseEstimator(lambda z: -0.4 * z @ exact, max_lag=2, bootstrap=False,
                                 stein_correction=True).fit(x)
    np.testing.assert_allclose(est.stein_.values, np.eye(3), atol=1e-10)
    plain = gfdt.ResponseEstimator(lambda z: -0.4 * z @ exact, max_lag=2,
                                   bootstrap=False).fit(x)
    assert plain.stein_error_ > 0.5
    with pytest.raises(TypeError, match="stein_correction"):
        gfdt.ResponseEstimator("gaussian", max_lag=2, stein_correction="yes").fit(x)


def test_errors():
    x, _, _ = _gaussian_data(n=100)
    with pytest.raises(ValueError, match="singular"):
        SteinCorrected(lambda z: np.zeros_like(z)).fit(x)
    with pytest.raises(TypeError, match="estimator"):
        SteinCorrected(3.0).fit(x)
    with pytest.raises(ValueError, match="NaN"):
        SteinCorrected(lambda z: np.full_like(z, np.nan)).fit(x)
    with pytest.raises(gfdt.scores.NotFittedError):
        SteinCorrected(lambda z: -z).score(x)
