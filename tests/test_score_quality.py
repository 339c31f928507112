"""The held-out score-quality report: closed-form Gaussian loss, Stein and Fisher figures
against independent computations, and the warning on a score that does not beat the
Gaussian (the passing case is in tests/test_dsm.py, on its trained mixture model)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _score_helpers import (
    mixture_samples,
    mixture_score,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import (
    DenoisingScoreModel,
    HamiltonianScoreModel,
    HOLDScoreModel,
    KernelScoreModel,
    KGMMScoreModel,
    NotFittedError,
    ScoreQualityWarning,
)
from gfdt.scores.quality import QualityMixin

# a correlated 3-D Gaussian with a non-zero mean
L = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [-0.3, 0.2, 0.5]])
MU = np.array([1.0, -2.0, 0.5])


def gaussian(n: int, seed: int) -> np.ndarray:
    return MU + np.random.default_rng(seed).standard_normal((n, 3)) @ L.T


def test_gaussian_denoising_loss_matches_its_closed_form():
    """Gaussian score s = -A x~, A = (C^ + s^2)^-1, with antithetic noise pairs: the pair
    mean of |sigma s + z|^2 / d is (sigma^2 |A x|^2 + |(I - sigma^2 A) z|^2) / d, whose
    expectation is (sigma^2 tr(A^2 M2) + tr((I - sigma^2 A)^2)) / d (M2 the second
    moment of the standardised data). The report's estimate on 100k test samples must
    agree within 4 standard errors (computed from the same closed forms)."""
    sigma = 0.4
    with pytest.warns(ScoreQualityWarning):  # Gaussian data: nothing beats the Gaussian
        m = DenoisingScoreModel(sigma_min=sigma, sigma_max=1.0, max_steps=2, progress=False,
                                n_threads=1).fit(gaussian(4000, 0))
    n, d = 100_000, 3
    q = m.quality_report(gaussian(n, 1), seed=2)
    std = float(m.std_[0])
    C = L @ L.T / std**2
    off = (MU - m.mean_) / std
    M2 = C + np.outer(off, off)
    A = np.linalg.inv(m.gaussian_stat_ + sigma**2 * np.eye(d))
    B = np.eye(d) - sigma**2 * A
    expect = (sigma**2 * np.trace(A @ A @ M2) + np.trace(B @ B)) / d
    AMA = A @ M2 @ A
    var = (2 * np.trace(np.linalg.matrix_power(B, 4))
           + 2 * sigma**4 * np.trace(AMA @ AMA)) / d**2
    assert q.sigma == sigma and q.n_heldout == n
    assert abs(q.gaussian_denoising_loss - expect) < 4 * np.sqrt(var / n)
    assert 1 - expect > 0.1  # the figure is not trivially 1 at this noise level


def test_warning_fires_when_the_score_does_not_beat_the_gaussian():
    """30 samples of a non-Gaussian mixture and 20 steps: no better than the Gaussian."""
    with pytest.warns(ScoreQualityWarning, match="no better than the Gaussian"):
        m = DenoisingScoreModel(max_steps=20, progress=False,
                                n_threads=1).fit(mixture_samples(30, 1))
    assert not m.quality_.better_than_gaussian
    assert "no better than the Gaussian" in m.summary()
    assert m.quality_.n_heldout == 6


def test_stein_and_fisher_figures_equal_the_metrics():
    """The report's Stein error and relative Fisher error equal gfdt.metrics' on the same
    samples (vectors, and the translation-averaged Stein error of fields)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        m = DenoisingScoreModel(max_steps=30, progress=False,
                                n_threads=1).fit(mixture_samples(2000, 0))
        X = mixture_samples(500, 3)
        q = m.quality_report(X, exact_score=mixture_score)
        assert q.stein_error == pytest.approx(stein_error(m, X), rel=1e-12)
        assert q.relative_fisher_error == pytest.approx(
            relative_fisher_error(m, mixture_score, X), rel=1e-12)
        F = 0.3 + np.random.default_rng(4).standard_normal((300, 8, 8))
        mf = DenoisingScoreModel(max_steps=5, batch_size=16, progress=False,
                                 n_threads=1).fit(F)
    # the held-out part of F: the last 20 %
    assert mf.quality_.stein_error == pytest.approx(
        stein_error(mf, F[240:], homogeneous=True), rel=1e-12)
    with pytest.raises(ValueError, match="exact_score"):
        m.quality_report(X, exact_score=lambda x: x[:, :1])


@pytest.mark.parametrize("make, n_heldout", [
    (lambda: HamiltonianScoreModel(max_steps=3, batch_size=64, hidden=16), 200),
    (lambda: HOLDScoreModel(max_steps=3, batch_size=64, hidden=16), 200),
    (lambda: KernelScoreModel(n_centers=20, max_steps=3, device="cpu"), 200),
    (lambda: KGMMScoreModel(n_clusters=20, n_noise=2, max_steps=3, device="cpu"), 200),
])
def test_every_learned_estimator_reports(make, n_heldout):
    X = mixture_samples(1000, 5)
    est = make().set_params(progress=False, n_threads=1)
    with pytest.raises(NotFittedError):
        est.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        est.fit(X)
    q = est.quality_
    assert q.n_heldout == n_heldout
    assert q.stein_error == pytest.approx(stein_error(est, X[-n_heldout:]), rel=1e-10)
    assert "Stein error" in est.summary()


def test_no_held_out_samples_no_report():
    """validation=0: every sample trains; there is no report and summary() says so."""
    m = HOLDScoreModel(max_steps=2, validation=0.0, progress=False,
                       n_threads=1).fit(mixture_samples(200, 6))
    assert not hasattr(m, "quality_") and m.n_steps_ == 2
    assert "no held-out quality report" in m.summary()


class _KnownScore(QualityMixin):
    """A 'fitted' estimator whose noised score is known in closed form: coordinate 0 a
    symmetric two-Gaussian mixture (means +-M, variance V), the others N(0, 1), all
    independent; population standardisation (mean 0, scale 1) and covariance."""

    M, V = 1.2, 0.3

    def __init__(self, d: int, sigma: float) -> None:
        self.state_shape_, self.mean_, self.std_ = (d,), np.zeros(d), np.ones(d)
        self.gaussian_stat_ = np.diag([self.M**2 + self.V] + [1.0] * (d - 1))
        self.quality_sigma_, self.homogeneous_ = sigma, False

    def _check_fitted(self) -> None:
        pass

    def _noised_score_std(self, xs, sigma):
        out = -xs / (1 + sigma**2)
        out[:, 0] = self.mixture_score(xs[:, 0], self.V + sigma**2)
        return out

    def score(self, x):
        return self._noised_score_std(np.asarray(x, dtype=float), 0.0)

    def _score_std(self, xs):
        return self._noised_score_std(np.array(xs, dtype=float), 0.0)

    @classmethod
    def mixture_score(cls, x, var):
        w = 1 / (1 + np.exp(-2 * cls.M * x / var))  # posterior weight of +M
        return -(x - cls.M * (2 * w - 1)) / var


def test_fisher_gain_per_coordinate_equals_its_closed_form():
    """The Fisher gain of coordinate j at zero noise is E(s_G,j - s*_j)^2 - E(s_j -
    s*_j)^2; for a score exact in every coordinate it is E(s_G,j - s*_j)^2: for the
    mixture coordinate a 1-D integral, done here by quadrature; for the Gaussian
    coordinates, whose score is the Gaussian fit's, 0 (to the rounding of the central
    differences), so they are the ones flagged as no better, and the warning's
    condition (better_than_gaussian) is False although the average gain is many
    standard errors above 0."""
    d, n = 4, 40_000
    est = _KnownScore(d, 0.3)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    X[:, 0] = rng.choice([-1, 1], n) * est.M + np.sqrt(est.V) * rng.standard_normal(n)
    q = est.quality_report(X, seed=1)
    # quadrature of E(s_G - s*)^2 under p (mixture of N(+-M, V))
    grid = np.linspace(-8, 8, 160_001)
    p = 0.5 * (np.exp(-(grid - est.M) ** 2 / (2 * est.V))
               + np.exp(-(grid + est.M) ** 2 / (2 * est.V))) / np.sqrt(2 * np.pi * est.V)
    gauss = -grid / (est.M**2 + est.V)
    expect = float(np.sum(p * (gauss - est.mixture_score(grid, est.V)) ** 2)
                   * (grid[1] - grid[0]))
    g, se = q.coordinate_gain, q.coordinate_gain_stderr
    assert q.n_heldout == n and len(g) == d
    assert abs(g[0] - expect) < 4 * se[0] and expect > 20 * se[0]
    np.testing.assert_allclose(g[1:], 0.0, atol=1e-8)
    assert q.coordinates_not_better == (1, 2, 3)
    assert q.fisher_gain == pytest.approx(g.mean())
    assert q.fisher_gain > 5 * q.fisher_gain_stderr
    assert not q.better_than_gaussian
    assert "no better than the Gaussian in 3 of 4 coordinates: 1, 2, 3" in q.summary()


def test_gaussian_stein_error_is_the_gaussian_scores():
    """The report's Gaussian Stein error equals gfdt.metrics' Stein error of the
    Gaussian score -C^-1 (x - mean) on the same samples."""
    est = _KnownScore(3, 0.2)
    X = np.random.default_rng(3).standard_normal((500, 3))
    q = est.quality_report(X)
    C = est.gaussian_stat_
    ref = stein_error(lambda x: -np.linalg.solve(C, x.T).T, X)
    assert q.gaussian_stein_error == pytest.approx(ref, rel=1e-10)
