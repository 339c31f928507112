"""Block lengths: Politis-White (Patton-Politis-White) against arch, the rule's floor,
and what the estimator resamples."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import gfdt
from gfdt.response._blocklength import (
    block_length_rule,
    lagged_product_series,
    optimal_block_length,
)


def _ar1(phi: float, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros(n)
    z = rng.standard_normal(n)
    x[0] = z[0] / np.sqrt(1 - phi**2)
    for t in range(1, n):
        x[t] = phi * x[t - 1] + z[t]
    return x


@pytest.mark.parametrize(("phi", "n"), [(0.0, 100), (0.5, 500), (0.8, 1200), (0.95, 3000),
                                        (-0.5, 300), (0.9, 50)])
def test_equals_arch(phi, n):
    arch = pytest.importorskip("arch.bootstrap")
    x = _ar1(phi, n, seed=int(100 * phi) + n)
    for series in (x, x[1:] * x[:-1], x**2):  # a series and the lagged products
        ref = arch.optimal_block_length(series).to_numpy()[0]
        np.testing.assert_allclose(optimal_block_length(series), ref, rtol=1e-10)


def test_members_pool_autocovariances():
    """One member is the plain rule; two copies of a series pool to the same
    autocorrelations with twice the length (b ~ n^(1/3))."""
    x = _ar1(0.7, 800, seed=1)
    single = optimal_block_length(x)
    assert optimal_block_length([x]) == single
    # identical members: autocovariances are the same, n doubles (cap permitting)
    b2 = optimal_block_length([x, x])[0]
    assert b2 == pytest.approx(single[0] * 2 ** (1 / 3), rel=0.05)


def test_rule_floor_and_cap():
    x = _ar1(0.0, 2000, seed=2)  # white noise: a block of about 1
    blen, found, _ = block_length_rule([[x]], floor=13, longest=2000)
    assert blen == 13 and found[0] < 5
    blen, _, _ = block_length_rule([[_ar1(0.99, 2000, seed=3)]], floor=2, longest=40)
    assert blen == 40  # at most the longest member


def test_lagged_products_are_the_traces():
    rng = np.random.default_rng(4)
    u, s = rng.standard_normal((50, 3)), rng.standard_normal((45, 3))
    out = lagged_product_series([(u, s)], L=4)
    assert len(out) == 4  # lags 0, 1, 2, 4
    np.testing.assert_allclose(out[1][0], np.einsum("ti,ti->t", u[1:46], s))
    w = np.array([1.0, 2.0, 0.5])
    sc = lagged_product_series([(u, None)], L=4, weights=w)
    np.testing.assert_allclose(sc[0][0], np.einsum("ti,ti->t", u, u * w))


def test_estimator_block_length_on_ar1():
    """phi = 0.8, 1200 samples: the rule gives tens of samples (the old 20 tau_int rule
    gave 100-455), so > 20 blocks and no BootstrapWarning."""
    x = _ar1(0.8, 1200, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", gfdt.response.BootstrapWarning)
        est = gfdt.ResponseEstimator(max_lag=12, seed=0, progress=False).fit(x)
    xc = x - x.mean()  # the summands (x(t + tau) - mu) (-s(t)), s = -(x - mu) / c0
    products = [xc[tau:] * xc[: 1200 - tau] for tau in (0, 1, 6, 12)]
    expect = max(13, int(np.ceil(max(optimal_block_length(p)[0] for p in products))))
    assert est.block_length_ == expect
    assert 13 <= est.block_length_ <= 60


def test_source_stride_lengths_in_samples():
    """With a source stride the series hold the source times only; lengths come back
    in samples."""
    x = _ar1(0.9, 4000, seed=6)
    b1, found1, _ = block_length_rule([[x[::3]]], floor=1, longest=4000, spacing=3)
    assert found1[0] == pytest.approx(3 * optimal_block_length(x[::3])[0])
    _, found0, _ = block_length_rule([[x]], floor=1, longest=4000)
    assert 0.5 < found1[0] / found0[0] < 2  # about the same length in samples
    assert b1 == int(np.ceil(found1[0]))
