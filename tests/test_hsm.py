"""Hamiltonian score matching: discrepancy closed forms and training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _score_helpers import (
    mixture_samples,
    mixture_score,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import GaussianScore, HamiltonianScoreModel
from gfdt.scores.hsm import (
    gaussian_hamiltonian_discrepancy,
    hamiltonian_score_discrepancy,
    leapfrog,
)

# a 2-D anisotropic, correlated Gaussian
COV = np.array([[1.0, 0.6], [0.6, 0.5]])
PREC = np.linalg.inv(COV)
WRONG = PREC + np.array([[1.5, -0.5], [-0.5, -0.5]])  # a wrong linear force -WRONG x


def gaussian_samples(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 2)) @ np.linalg.cholesky(COV).T


def test_leapfrog_converges_to_the_harmonic_flow():
    """x'' = -w^2 x: x_t = cos(wt) x0 + sin(wt)/w v0; leapfrog error is O(h^2)."""
    w, t = 1.7, 1.3
    x0, v0 = np.array([[0.8]]), np.array([[-0.4]])
    exact_x = np.cos(w * t) * x0 + np.sin(w * t) / w * v0
    exact_v = -w * np.sin(w * t) * x0 + np.cos(w * t) * v0
    errs = []
    for n in (10, 20, 40):
        x, v = leapfrog(lambda x: -(w**2) * x, x0, v0, t, n)
        errs.append(abs(x - exact_x).item() + abs(v - exact_v).item())
    assert errs[2] < 1e-3
    np.testing.assert_allclose(errs[0] / errs[1], 4.0, rtol=0.05)  # second order
    # torch gives the same numbers, per-sample times included
    xt, _ = leapfrog(lambda x: -(w**2) * x, torch.tensor(x0), torch.tensor(v0),
                      torch.tensor([t]), 40)
    np.testing.assert_allclose(xt.numpy(), leapfrog(lambda x: -(w**2) * x, x0, v0, t, 40)[0])


def test_hsd_vanishes_at_the_score_only():
    """Monte Carlo HSD (regression predictor) ~ 0 at the true force, > 0 elsewhere,
    and equal to the closed form (jointly Gaussian leapfrog) at the wrong force."""
    X = gaussian_samples(40000, 0)
    t = 0.4
    true = hamiltonian_score_discrepancy(lambda x: -x @ PREC, X, t, seed=1)
    wrong = hamiltonian_score_discrepancy(lambda x: -x @ WRONG, X, t, seed=1)
    closed_true, _ = gaussian_hamiltonian_discrepancy(PREC, COV, t)
    closed_wrong, _ = gaussian_hamiltonian_discrepancy(WRONG, COV, t)
    # at the score only the integrator's error remains: O(h^4), 16x less per halving of h
    assert closed_true < 2e-3 * closed_wrong
    finer, _ = gaussian_hamiltonian_discrepancy(PREC, COV, t, n_steps=12)
    np.testing.assert_allclose(closed_true / finer, 16, rtol=0.05)
    assert abs(true) < 0.02 * wrong
    np.testing.assert_allclose(wrong, closed_wrong, rtol=0.08)


def test_hsd_is_t_squared_fisher_at_small_t():
    """HSD_t / (t^2 E||F - s||^2) -> 1: closed form and Monte Carlo with V* = K x."""
    D = WRONG - PREC
    fisher = np.trace(D @ COV @ D.T)  # E||F - s||^2 for x ~ N(0, C)
    dev = {t: gaussian_hamiltonian_discrepancy(WRONG, COV, t)[0] / (t**2 * fisher) - 1
           for t in (0.01, 0.1)}
    assert abs(dev[0.01]) < 1e-3
    np.testing.assert_allclose(dev[0.1] / dev[0.01], 100, rtol=0.1)  # relative O(t^2)
    t = 0.01
    _, K = gaussian_hamiltonian_discrepancy(WRONG, COV, t)
    X = gaussian_samples(40000, 2)
    mc = hamiltonian_score_discrepancy(lambda x: -x @ WRONG, X, t,
                                       velocity=lambda x, s: x @ K.T, seed=3)
    assert abs(mc / (t**2 * fisher) - 1) < 0.03


FAST = dict(max_steps=300, batch_size=256, hidden=64, progress=False, n_threads=1)


@pytest.fixture(scope="module")
def gmm_model():
    return HamiltonianScoreModel(**FAST).fit(mixture_samples(20000, 0))


def test_fast_training_improves_on_the_gaussian_score(gmm_model):
    test = mixture_samples(5000, 1)
    gauss = relative_fisher_error(GaussianScore().fit(mixture_samples(20000, 0)),
                                  mixture_score, test)
    err = relative_fisher_error(gmm_model, mixture_score, test)
    assert gauss > 0.4
    assert err < 0.25 and err < 0.5 * gauss


def test_save_load_gives_identical_scores(gmm_model, tmp_path):
    gmm_model.save(tmp_path / "hsm.pt")
    m2 = HamiltonianScoreModel.load(tmp_path / "hsm.pt", device="cpu")
    x = mixture_samples(100, 5)
    np.testing.assert_array_equal(m2(x), gmm_model(x))
    assert m2.get_params() == gmm_model.get_params()


def test_score_is_in_data_units():
    """Scaling the data by c scales the score by 1/c (standardisation inside)."""
    c = 5.0
    opts = {**FAST, "max_steps": 20}
    X = mixture_samples(4000, 0)
    m1 = HamiltonianScoreModel(**opts).fit(X)
    m2 = HamiltonianScoreModel(**opts).fit(c * X)
    x = mixture_samples(500, 3)
    s1 = m1(x)
    np.testing.assert_allclose(c * m2(c * x), s1, rtol=1e-3, atol=1e-3 * np.abs(s1).max())


def test_bad_parameters():
    X = mixture_samples(100, 0)
    with pytest.raises(ValueError, match="n_leapfrog"):
        HamiltonianScoreModel(n_leapfrog=0).fit(X)
    with pytest.raises(ValueError, match="weighting"):
        HamiltonianScoreModel(weighting="t").fit(X)
    with pytest.raises(ValueError, match="network"):
        HamiltonianScoreModel(network="cnn").fit(X)


@pytest.mark.slow
def test_gaussian_mixture_relative_fisher_and_stein():
    # every one of the 20000 samples trains, as before HSM held out 20 % for its quality
    # report (with the default validation=0.2: Stein error 0.052, relative Fisher < 0.1)
    m = HamiltonianScoreModel(max_steps=2000, validation=0.0, progress=False, n_threads=1)
    m.fit(mixture_samples(20000, 0))
    test = mixture_samples(20000, 1)
    # Measured over training seeds 0-7 (all else as here; issue 22): relative Fisher
    # 0.031 0.028 0.038 0.037 0.032 0.027 0.033 0.036 (mean 0.033, sd 0.004).
    assert relative_fisher_error(m, mixture_score, test) < 0.1
    # Stein error over the same seeds: 0.036 0.040 0.033 0.029 0.049 0.014 0.020 0.050
    # (mean 0.034, sd 0.013; the exact score gives 0.016 on these test samples, the
    # statistic's sampling floor). The former bound 0.05 sat at mean + 1.3 sd, so another
    # installation's rounding flipped it (seed 0: 0.0501 in the fresh clone of issue 22,
    # 0.036 here). The bound is mean + 3 sd of the measured seed spread.
    assert stein_error(m, test) < 0.072


def homogeneous_gaussian_fields(n: int, seed: int, size: int = 8) -> np.ndarray:
    """Periodic Gaussian fields with a smooth power spectrum (translation invariant)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(size) * size
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    amp = 1.0 / (1.0 + 0.3 * k2)
    return 0.5 + np.fft.ifft2(amp * np.fft.fft2(rng.standard_normal((n, size, size)))).real


def test_fields_start_from_the_spectral_gaussian_score():
    """For (n, y, x) fields the force is the spectral Gaussian score plus a periodic CNN
    whose output starts at zero: after one step it equals GaussianScore(homogeneous)."""
    X = homogeneous_gaussian_fields(2000, 0)
    m = HamiltonianScoreModel(max_steps=1, batch_size=16, progress=False, n_threads=1).fit(X)
    g = GaussianScore(homogeneous=True).fit(X)
    test = homogeneous_gaussian_fields(200, 1)
    assert m(test).shape == test.shape
    assert relative_fisher_error(m, g, test) < 1e-3


@pytest.mark.parametrize("name", ["hsm", "hold"])
def test_response_estimator_score_names(name):
    """score="hsm"/"hold" train the estimators with score_options; untrained (one step)
    they are the Gaussian score, so the GFDT response equals score="gaussian"'s."""
    import gfdt

    rng = np.random.default_rng(0)
    x = np.zeros((5000, 2))
    for t in range(1, len(x)):
        x[t] = 0.9 * x[t - 1] + np.array([0.44, 0.87]) * rng.standard_normal(2)
    opts = dict(max_lag=4, normalize=False, progress=False)
    est = gfdt.ResponseEstimator(score=name, score_options={"max_steps": 1, "n_threads": 1},
                                 **opts).fit(x)
    ref = gfdt.ResponseEstimator(score="gaussian", **opts).fit(x)
    np.testing.assert_allclose(est.response_.values, ref.response_.values, atol=0.01)
