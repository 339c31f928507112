"""WhitenedScore: fit in whitened coordinates, map the score back by the chain rule."""

from __future__ import annotations

import numpy as np
import pytest

from gfdt.scores import AnalyticScore, GaussianScore
from gfdt.scores.whiten import WhitenedScore


@pytest.fixture(scope="module")
def field_samples():
    """Homogeneous Gaussian field on 8 x 8 with a steep power spectrum (6 decades)."""
    rng = np.random.default_rng(0)
    k = np.fft.fftfreq(8, 1 / 8)
    ky, kx = np.meshgrid(k, k, indexing="ij")
    amp = 1.0 / (1.0 + kx**2 + ky**2) ** 1.5
    z = rng.standard_normal((3000, 8, 8))
    return 2.0 + np.fft.ifft2(np.fft.fft2(z) * amp).real


def test_whitened_gaussian_equals_gaussian_score_field(field_samples):
    X = field_samples
    w = WhitenedScore(GaussianScore(homogeneous=True)).fit(X)
    g = GaussianScore(homogeneous=True).fit(X)
    x = X[:7]
    np.testing.assert_allclose(w.score(x), g.score(x), rtol=1e-8,
                               atol=1e-8 * np.abs(g.score(x)).max())


def test_whitened_gaussian_equals_gaussian_score_vector():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((4, 4))
    X = rng.standard_normal((5000, 4)) @ A + np.arange(4.0)
    w = WhitenedScore(GaussianScore(), homogeneous=False).fit(X)
    g = GaussianScore().fit(X)
    np.testing.assert_allclose(w.score(X[:9]), g.score(X[:9]), rtol=1e-8, atol=1e-10)


def test_whitened_data_have_unit_spectrum(field_samples):
    w = WhitenedScore(GaussianScore(homogeneous=True)).fit(field_samples)
    W = w.whiten(field_samples)
    spec = (np.abs(np.fft.rfft2(W)) ** 2).mean(axis=0) / 64
    np.testing.assert_allclose(spec, 1.0, rtol=1e-10)  # exactly, on the fitting data
    assert abs(W.mean()) < 1e-12


def test_chain_rule_against_direct_formula():
    rng = np.random.default_rng(2)
    L = np.array([[2.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.3, -0.2, 0.1]])
    X = rng.standard_normal((4000, 3)) @ L.T + 1.0

    def f(w):  # any nonlinear function of the whitened state
        return -w - 0.3 * w**3 + 0.1 * np.roll(w, 1, axis=1) ** 2

    w = WhitenedScore(AnalyticScore(f), homogeneous=False).fit(X)
    mu = X.mean(axis=0)
    C = np.cov(X, rowvar=False, bias=True)
    lam, V = np.linalg.eigh(C)
    Cmh = V @ np.diag(lam**-0.5) @ V.T  # C^{-1/2}, symmetric
    x = X[:11]
    expected = f((x - mu) @ Cmh.T) @ Cmh.T
    np.testing.assert_allclose(w.score(x), expected, rtol=1e-9, atol=1e-12)


def test_floor_limits_amplification():
    rng = np.random.default_rng(3)
    X = np.c_[rng.standard_normal(500), 1e-9 * rng.standard_normal(500)]
    w = WhitenedScore(GaussianScore(), homogeneous=False, floor=1e-6).fit(X)
    assert w.eigvals_.min() == pytest.approx(1e-6 * w.eigvals_.max())


def test_save_load_round_trip(tmp_path, field_samples):
    w = WhitenedScore(GaussianScore(homogeneous=True)).fit(field_samples)
    w.save(tmp_path / "w.pkl")
    back = WhitenedScore.load(tmp_path / "w.pkl")
    np.testing.assert_array_equal(back.score(field_samples[:3]), w.score(field_samples[:3]))


@pytest.mark.parametrize("bad, match", [({"estimator": "dsm"}, "estimator"),
                                        ({"floor": -1.0}, "floor"),
                                        ({"homogeneous": "yes"}, "homogeneous")])
def test_bad_parameters_name_the_argument(bad, match):
    kw = {"estimator": GaussianScore(), **bad}
    with pytest.raises((TypeError, ValueError), match=match):
        WhitenedScore(**kw).fit(np.random.default_rng(0).standard_normal((50, 2)))
