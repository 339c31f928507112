"""The seed methods' claims, computed by the experiment code of benchmarks/_claims.py:
HSM's gradient signal-to-noise ratio against DSM's, and the WPO kernel score's freedom
from memorisation."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from _score_helpers import (
    mixture_samples,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _claims import gradient_snr, memorization_claim, memorization_fraction


def test_gradient_snr_claim():
    """HSM's gradient SNR stays ~0.7 as t -> 0; DSM's falls like sigma (ratio > 50)."""
    hsm = [gradient_snr("hsm", s) for s in (0.3, 0.1, 0.01)]
    dsm = [gradient_snr("dsm", s) for s in (0.3, 0.1, 0.01)]
    assert all(0.65 < v < 0.75 for v in hsm)
    np.testing.assert_allclose(dsm[0], 0.092, atol=0.002)
    np.testing.assert_allclose(dsm[2] / dsm[1], 0.1, rtol=0.1)  # ~ sigma
    assert hsm[2] / dsm[2] > 50
    # the exact quadratic-form SNRs agree with Monte Carlo through autograd
    # (standard error of an SNR estimate ~ 1 / sqrt(n))
    for method, s in (("hsm", 0.3), ("dsm", 0.3)):
        mc = gradient_snr(method, s, n_samples=100_000, seed=4)
        assert abs(mc - gradient_snr(method, s)) < 4 / np.sqrt(100_000)


def test_gradient_snr_bad_method():
    with pytest.raises(ValueError, match="method"):
        gradient_snr("ism", 0.1)


# -------------------------------------------------------------- memorisation
def testmemorization_fraction_definition():
    """Copies of training points are memorised; for fresh locally uniform points in 2-D
    (d1/d2)^2 is uniform, so the fraction is (1/3)^2 = 1/9."""
    rng = np.random.default_rng(8)
    train = rng.uniform(size=(2000, 2))
    assert memorization_fraction(train[:500] + 1e-6, train) == 1.0
    fresh = rng.uniform(0.1, 0.9, size=(20000, 2))  # away from the edges
    assert memorization_fraction(fresh, train) == pytest.approx(1 / 9, abs=0.01)


def _claim(**kw) -> dict:
    opts = dict(n_train=4000, n_centers=200, n_generate=3000, noise_min=0.01, n_steps=60,
                seed=0, model_options=dict(max_steps=300, batch_size=256, lr=5e-3, depth=2,
                                           n_threads=1, device="cpu"))
    return memorization_claim(mixture_samples, **{**opts, **kw})


def test_kernel_samples_do_not_memorize_but_the_empirical_score_does():
    """2-D, 200 centres: kernel samples (exact and reverse-time through Gamma_t) are as
    close to the centres as fresh samples (~1/9); the empirical score of the centres,
    run to small noise, copies them."""
    out = _claim()
    assert out["fresh"] == pytest.approx(1 / 9, abs=0.03)
    assert abs(out["kernel_exact"] - out["fresh"]) < 0.03
    assert abs(out["kernel_sde"] - out["fresh"]) < 0.03
    assert out["empirical_sde"] > 0.49
    # relative to all 4000 training samples too
    assert abs(out["kernel_exact_vs_train"] - out["fresh_vs_train"]) < 0.03


@pytest.mark.slow
def testmemorization_claim_full_size():
    out = _claim(n_generate=10000, n_steps=400,
                 model_options=dict(max_steps=1000, batch_size=256, lr=5e-3, depth=2,
                                    n_threads=1, device="cpu"))
    assert abs(out["kernel_exact"] - out["fresh"]) < 0.02
    assert abs(out["kernel_sde"] - out["fresh"]) < 0.02
    assert 0.49 < out["empirical_sde"] < 0.95
