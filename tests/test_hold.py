"""HOLD: closed-form forward process, exact score recovery, trained block score model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _score_helpers import (
    mixture_samples,
    mixture_score,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import GaussianScore, HOLDScoreModel
from gfdt.scores.hold import (
    data_score_from_block,
    drift_matrix,
    effective_noise,
    hold_coefficients,
    mean_cov,
    propagator,
)

COV = np.array([[1.0, 0.6], [0.6, 0.5]])


def gaussian_block_score(C: np.ndarray, t: float):
    """Exact a-block score of N(0, C) data from the joint covariance of u_t (6 x 6)."""
    d = len(C)
    E = propagator(t)
    Ef = np.kron(E, np.eye(d))
    S0 = np.zeros((3 * d, 3 * d))
    S0[:d, :d] = C
    S0[d:, d:] = np.eye(2 * d)
    cov = Ef @ S0 @ Ef.T + np.kron(np.eye(3) - E @ E.T, np.eye(d))
    P = np.linalg.inv(cov)
    return lambda u, s: -(u.reshape(len(u), 3 * d) @ P)[:, 2 * d:], cov


def test_critical_damping_and_stationarity():
    _, _, xi = hold_coefficients(2.0)
    A = drift_matrix(2.0)
    # characteristic polynomial (lambda + r)^3
    np.testing.assert_allclose(np.poly(A), [1, 6, 12, 8], atol=1e-12)
    # N(0, I) is stationary: A + A^T + 2 xi e_a e_a^T = 0 (Lyapunov equation at I)
    np.testing.assert_allclose(A + A.T + 2 * xi * np.diag([0, 0, 1]), 0, atol=1e-12)
    # from a point mass in x the law relaxes to N(0, I)
    m, cov = mean_cov(8.0, s_v=0.3, s_a=2.0)
    assert np.abs(m).max() < 1e-3 and np.abs(cov - np.eye(3)).max() < 1e-3


def test_mean_cov_matches_euler_maruyama():
    """Closed-form mean and covariance vs an Euler-Maruyama simulation of the SDE."""
    beta, r, s_v, s_a, x0 = 1.0, math.sqrt(3), 0.5, 1.5, 0.8
    _, _, xi = hold_coefficients(r)
    A = drift_matrix(r)
    n, dt = 40000, 1e-3
    rng = np.random.default_rng(0)
    u = np.zeros((n, 3))
    u[:, 0] = x0
    u[:, 1] = s_v * rng.standard_normal(n)
    u[:, 2] = s_a * rng.standard_normal(n)
    checkpoints = {300: 0.3, 1200: 1.2}
    for k in range(1, 1201):
        u = u + beta * dt * u @ A.T
        u[:, 2] += math.sqrt(2 * xi * beta * dt) * rng.standard_normal(n)
        if k in checkpoints:
            t = checkpoints[k]
            m, cov = mean_cov(t, beta=beta, r=r, s_v=s_v, s_a=s_a)
            mean_se = np.sqrt(np.diag(cov) / n)
            np.testing.assert_array_less(np.abs(u.mean(0) - m * x0), 4 * mean_se + 2e-3)
            emp = np.cov(u, rowvar=False)
            # standard error of a covariance entry: sqrt((S_ii S_jj + S_ij^2) / n)
            se = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
            np.testing.assert_array_less(np.abs(emp - cov), 4 * se + 2e-3)


def test_exact_block_score_recovers_the_smoothed_data_score():
    """Exact a-block score of Gaussian data in, exact data score (smoothed) out."""
    x = np.random.default_rng(1).standard_normal((50, 2))
    for t in (0.1, 0.3, 1.0):
        s_a, _ = gaussian_block_score(COV, t)
        sig = effective_noise(t)
        rec = data_score_from_block(s_a, x, t, n_draws=3)
        exact = -x @ np.linalg.inv(COV + sig**2 * np.eye(2))
        np.testing.assert_allclose(rec, exact, rtol=1e-9, atol=1e-9)
    # sigma_eff ~ t^(5/2) at small t (noise integrated thrice): the data score at t_min
    assert effective_noise(0.1) < 0.006
    np.testing.assert_allclose(effective_noise(0.005) / effective_noise(0.01), 2**-2.5,
                               rtol=0.03)
    s_a, _ = gaussian_block_score(COV, 0.1)
    rec = data_score_from_block(s_a, x, 0.1)
    exact = -x @ np.linalg.inv(COV)
    assert np.abs(rec - exact).max() < 1e-3 * np.abs(exact).max()


@pytest.fixture(scope="module")
def gaussian_data():
    return np.random.default_rng(3).standard_normal((20000, 2)) @ np.linalg.cholesky(COV).T


def test_denoiser_is_the_posterior_mean(gaussian_data):
    """D(u, t) = E[x0 | u_t] by Gaussian conditioning (model's Gaussian part, no training)."""
    m = HOLDScoreModel(max_steps=1, progress=False, n_threads=1).fit(gaussian_data)
    Cs = np.cov((gaussian_data - m.mean_) / m.std_, rowvar=False)
    t = 0.3
    _, cov = gaussian_block_score(Cs, t)
    E = propagator(t)
    cross = np.kron(E[:, 0], np.eye(2)).T  # Cov(u_t, x0) = (m kron I) C
    post = (cross @ Cs).T @ np.linalg.inv(cov)  # E[x0 | u] = Cov(x0, u) Cov(u)^-1 u
    u = np.random.default_rng(2).standard_normal((20, 3, 2))
    D = m.denoiser(u, t)
    np.testing.assert_allclose(D, u.reshape(20, 6) @ post.T, atol=2e-4)


def test_anisotropic_gaussian_stein(gaussian_data):
    """Trained on an anisotropic Gaussian: the Gaussian part carries the score; the
    network, trained 200 steps, must not spoil it."""
    m = HOLDScoreModel(max_steps=200, progress=False, n_threads=1).fit(gaussian_data)
    test = np.random.default_rng(4).standard_normal((20000, 2)) @ np.linalg.cholesky(COV).T
    P = np.linalg.inv(COV)
    assert relative_fisher_error(m, lambda x: -x @ P, test) < 0.01
    assert stein_error(m, test) < 0.05


@pytest.fixture(scope="module")
def gmm_model():
    return HOLDScoreModel(max_steps=300, progress=False, n_threads=1).fit(mixture_samples(20000, 0))


def test_gaussian_mixture_fast(gmm_model):
    test = mixture_samples(5000, 1)
    gauss = relative_fisher_error(GaussianScore().fit(mixture_samples(20000, 0)),
                                  mixture_score, test)
    err = relative_fisher_error(gmm_model, mixture_score, test)
    assert err < 0.15 and err < gauss / 3


def test_save_load_gives_identical_scores(gmm_model, tmp_path):
    gmm_model.save(tmp_path / "hold.pt")
    m2 = HOLDScoreModel.load(tmp_path / "hold.pt", device="cpu")
    x = mixture_samples(100, 5)
    np.testing.assert_array_equal(m2(x), gmm_model(x))
    u = np.random.default_rng(0).standard_normal((7, 3, 2))
    np.testing.assert_array_equal(m2.augmented_score(u, 0.4), gmm_model.augmented_score(u, 0.4))


def test_bad_parameters():
    X = mixture_samples(100, 0)
    with pytest.raises(ValueError, match="t_min"):
        HOLDScoreModel(t_min=0.5, t_max=0.2).fit(X)
    with pytest.raises(ValueError, match="inputs"):
        HOLDScoreModel(inputs="full").fit(X)
    with pytest.raises(ValueError, match="augmented"):
        HOLDScoreModel(inputs="augmented").fit(np.zeros((10, 4, 4)) + np.arange(16).reshape(4, 4))
    with pytest.raises(ValueError, match="t must be"):
        data_score_from_block(lambda u, t: u[:, 2], np.zeros((2, 1)), 0.0)


@pytest.mark.slow
def test_gaussian_mixture_slow():
    m = HOLDScoreModel(max_steps=1500, progress=False, n_threads=1).fit(mixture_samples(20000, 0))
    test = mixture_samples(20000, 1)
    assert relative_fisher_error(m, mixture_score, test) < 0.05


@pytest.mark.slow
def test_network_alone_learns_an_anisotropic_gaussian():
    """Without the Gaussian part the network learns the linear score itself."""
    X = np.random.default_rng(3).standard_normal((20000, 2)) @ np.linalg.cholesky(COV).T
    m = HOLDScoreModel(residual=False, max_steps=2500, progress=False, n_threads=1).fit(X)
    test = np.random.default_rng(4).standard_normal((20000, 2)) @ np.linalg.cholesky(COV).T
    assert relative_fisher_error(m, lambda x: -x @ np.linalg.inv(COV), test) < 0.05


def test_fields_start_from_the_spectral_gaussian_score():
    """Fields: the Gaussian part is Fourier-diagonal; with the network untrained the
    score is the spectral Gaussian score smoothed by sigma_eff (~0.006)."""
    rng = np.random.default_rng(0)
    k = np.fft.fftfreq(8) * 8
    amp = 1.0 / (1.0 + 0.3 * (k[:, None] ** 2 + k[None, :] ** 2))
    X = 0.5 + np.fft.ifft2(amp * np.fft.fft2(rng.standard_normal((2000, 8, 8)))).real
    m = HOLDScoreModel(max_steps=1, batch_size=16, progress=False, n_threads=1).fit(X)
    g = GaussianScore(homogeneous=True).fit(X)
    test = X[:200]
    assert m(test).shape == test.shape
    assert relative_fisher_error(m, g, test) < 1e-3
