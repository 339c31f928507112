"""Coverage of the nominal 95% bootstrap bands against closed forms (AR(1), VAR(1)).

For a stationary VAR(1) :math:`x_{t+1} = A x_t + \\xi_t` the Gaussian GFDT response is
:math:`R(k) = A^k` (raw and normalised). A 95% band :math:`\\hat R \\pm 1.96\\,se`
must cover the truth in 0.90-0.98 of independent simulations. The tolerance is the
Monte Carlo error of the pooled coverage, measured from the simulations themselves
(the standard error of the per-simulation covered fraction), 3 of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.linalg import solve_discrete_lyapunov

import gfdt

MAX_LAG = 5
SYSTEMS = {"ar1": np.array([[0.5]]), "var1_2x2": np.array([[0.5, 0.2], [0.0, 0.6]])}


def _simulate(A: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    d = A.shape[0]
    x = np.empty((n, d))
    x[0] = np.linalg.cholesky(solve_discrete_lyapunov(A, np.eye(d))) @ rng.standard_normal(d)
    z = rng.standard_normal((n, d))
    for t in range(1, n):
        x[t] = A @ x[t - 1] + z[t]
    return x


def _coverage(A: np.ndarray, normalize: bool, n_sim: int, n: int = 3000):
    truth = np.stack([np.linalg.matrix_power(A, k) for k in range(MAX_LAG + 1)])
    d = A.shape[0]
    R, S = [], []
    for s in range(n_sim):
        x = _simulate(A, n, np.random.default_rng([s, d, 11]))
        with warnings.catch_warnings():
            warnings.simplefilter("error", gfdt.response.BootstrapWarning)  # reliable regime
            est = gfdt.ResponseEstimator(score="gaussian", max_lag=MAX_LAG, normalize=normalize,
                                         seed=s, progress=False).fit(x[:, 0] if d == 1 else x)
        R.append(est.response_.values.reshape(MAX_LAG + 1, d, d))
        S.append(est.response_stderr_.values.reshape(MAX_LAG + 1, d, d))
    R, S = np.stack(R)[:, 1:], np.stack(S)[:, 1:]
    covered = np.abs(R - truth[1:]) <= 1.959964 * S
    per_sim = covered.reshape(n_sim, -1).mean(axis=1)
    ratio = np.median(S[:, 0]) / R[:, 0].std(axis=0, ddof=1).mean()
    return float(per_sim.mean()), float(per_sim.std(ddof=1) / np.sqrt(n_sim)), float(ratio)


def _check(name: str, normalize: bool, n_sim: int) -> None:
    cov, mc, ratio = _coverage(SYSTEMS[name], normalize, n_sim)
    assert 0.90 - 3 * mc <= cov <= 0.98 + 3 * mc, (name, normalize, cov, mc)
    # the band's width is the true spread (the raw path was 3-9x too wide): the median
    # standard error at lag 1 within 20% of the spread of the estimates
    assert 0.8 <= ratio <= 1.2, (name, normalize, ratio)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_coverage_fast(name, normalize):
    _check(name, normalize, 150)


@pytest.mark.slow
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_coverage_full(name, normalize):
    _check(name, normalize, 1000)


def test_few_blocks_raise_a_warning():
    x = _simulate(SYSTEMS["ar1"], 300, np.random.default_rng(0))[:, 0]
    with pytest.warns(gfdt.response.BootstrapWarning, match=r"only \d+ blocks"):
        gfdt.ResponseEstimator(score="gaussian", max_lag=5, block_length=100,
                               progress=False).fit(x)
