"""ResponseEstimator(source_stride=k): scores at every k-th source time, full lag resolution."""

from __future__ import annotations

import numpy as np
import pytest

import gfdt


def _direct(members, score, L, stride, scalar_mean=False):
    """Brute-force -mean over source times t0 = 0, k, 2k, ... of x(t0 + lag) s(x(t0))^T.

    The mean removed from x is per coordinate, or one number (homogeneous fields).
    """
    d = members[0][0].size
    acc = np.zeros((L + 1, d, d))
    cnt = np.zeros(L + 1)
    mean = sum(m.sum(axis=0) for m in members) / sum(len(m) for m in members)
    if scalar_mean:
        mean = mean.mean()
    for m in members:
        T = len(m)
        for t0 in range(0, T, stride):
            s = score(m[t0][None])[0].ravel()
            for lag in range(L + 1):
                if t0 + lag < T:
                    acc[lag] += np.outer((m[t0 + lag] - mean).ravel(), s)
                    cnt[lag] += 1
    return -acc / cnt[:, None, None]


@pytest.mark.parametrize("stride", [1, 3, 7])
def test_vector_series_matches_direct_sum(stride):
    rng = np.random.default_rng(3)
    members = [np.cumsum(rng.standard_normal((n, 3)), axis=0) * 0.1 for n in (53, 61)]
    W = rng.standard_normal((3, 3))

    def score(x):
        return -x @ W

    est = gfdt.ResponseEstimator(score=score, max_lag=5, source_stride=stride,
                                 homogeneous=False).fit(members)
    np.testing.assert_allclose(est.response_raw_.values, _direct(members, score, 5, stride),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [2, 5])
def test_homogeneous_field_matches_direct_sum(stride):
    rng = np.random.default_rng(4)
    members = [rng.standard_normal((40, 4, 4)), rng.standard_normal((33, 4, 4))]

    def score(x):  # any translation-covariant linear map
        return -(x + 0.5 * np.roll(x, 1, axis=-1))

    est = gfdt.ResponseEstimator(score=score, max_lag=4, source_stride=stride,
                                 homogeneous=True).fit(members)
    full = _direct(members, score, 4, stride, scalar_mean=True)  # (lag, d, d) over flattened pixels
    # translation average of the response to a kick at each source pixel, by offset
    d = 16
    avg = np.zeros((5, 4, 4))
    for j in range(d):
        jy, jx = divmod(j, 4)
        avg += np.roll(full[:, :, j].reshape(5, 4, 4), (-jy, -jx), axis=(1, 2))
    np.testing.assert_allclose(est.response_raw_.values, avg / d, rtol=1e-10, atol=1e-12)


def test_source_stride_is_validated():
    x = np.zeros((20, 2))
    x[:, 0] = np.arange(20.0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises((ValueError, TypeError), match="source_stride"):
            gfdt.ResponseEstimator(max_lag=2, source_stride=bad).fit(x + np.arange(2))
