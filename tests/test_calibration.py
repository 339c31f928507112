"""Gauss-Newton calibration: OU parameters recovered from target statistics."""

import logging

import numpy as np
import pytest

import gfdt

TRUE = gfdt.OrnsteinUhlenbeck(n=8, dt=0.05, lam=0.5, kappa=0.05, A=0.2, eps2=0.04)


def _stats(ds, n_blocks=8):
    """Spatial means of u^2 and u(x) u(x + dx), with standard errors from block means."""
    u = ds.u.values  # (member, time, y, x)
    a = np.stack([(u**2).mean(axis=(2, 3)),
                  (u * np.roll(u, -1, axis=3)).mean(axis=(2, 3))], axis=-1)
    blocks = a.reshape(a.shape[0], n_blocks, -1, 2).mean(axis=2).reshape(-1, 2)
    return a.mean(axis=(0, 1)), blocks.std(axis=0, ddof=1) / np.sqrt(blocks.shape[0])


def _simulate(theta, seed, n_members=4):
    return gfdt.simulate(TRUE.with_parameters(**theta), n_members=n_members, burn_in=20.0,
                         duration=1000.0, save_interval=0.25, seed=seed)


def test_ou_calibration_recovers_parameters(caplog):
    target, target_se = _stats(_simulate({}, seed=1000, n_members=8))
    runs: dict = {}

    def simulate_stats(theta):
        ds = _simulate(theta, seed=len(runs))
        runs[tuple(sorted(theta.items()))] = ds
        return _stats(ds)

    def sensitivity(theta):  # GFDT on the simulation just made at theta
        ds = runs[tuple(sorted(theta.items()))]
        est = gfdt.SensitivityEstimator(
            "gaussian", {"var": lambda u: (u**2).mean(axis=(1, 2)),
                         "cov_x": lambda u: (u * np.roll(u, -1, axis=2)).mean(axis=(1, 2))},
            list(theta), max_lag=20.0, seed=0, n_bootstrap=20).fit(ds)
        return est.sensitivity_matrix()[0]

    theta0 = {"kappa": 0.075, "eps2": 0.032}  # +50 %, -20 %
    with caplog.at_level(logging.INFO, logger="gfdt"):
        res = gfdt.calibrate(simulate_stats, target, theta0, sensitivity,
                             target_stderr=target_se, max_iter=8)
    assert res.converged
    assert "calibrate: step 1" in caplog.text
    for k in theta0:
        assert abs(res.parameters[k] - getattr(TRUE, k)) <= 2 * res.stderr[k], (
            k, res.parameters[k], res.stderr[k])
        # the calibration moved far more than its error
        assert abs(theta0[k] - getattr(TRUE, k)) > 4 * res.stderr[k]
    assert res.n_simulations == len(runs) == res.n_iterations
    assert res.n_sensitivity_evaluations == res.n_iterations
    np.testing.assert_allclose(np.sqrt(np.diag(res.covariance)),
                               [res.stderr["kappa"], res.stderr["eps2"]])


def test_linear_problem_one_step():
    """Linear statistics with a fixed sensitivity: one step lands on the least-squares
    solution and the covariance is (S^T W S)^{-1}."""
    S = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])
    true = np.array([1.0, -2.0])
    target = S @ true + np.array([0.01, -0.02, 0.015])
    se = np.array([0.1, 0.2, 0.1])

    def simulate_stats(theta):
        return S @ np.array([theta["a"], theta["b"]]), se

    res = gfdt.calibrate(simulate_stats, target, {"a": 0.0, "b": 0.0}, S, max_iter=5)
    w = 1 / se**2
    cov = np.linalg.inv(S.T @ (w[:, None] * S))
    expect = cov @ S.T @ (w * target)
    np.testing.assert_allclose([res.parameters["a"], res.parameters["b"]], expect)
    np.testing.assert_allclose(res.covariance, cov)
    assert res.converged and res.n_iterations == 2 and res.n_simulations == 2
    assert res.n_sensitivity_evaluations == 0


def test_errors():
    S = np.eye(2)

    def ok(theta):
        return np.zeros(2), np.ones(2)

    with pytest.raises(TypeError, match="theta0"):
        gfdt.calibrate(ok, [0, 0], {}, S)
    with pytest.raises(ValueError, match="underdetermined"):
        gfdt.calibrate(ok, [0.0], {"a": 1.0, "b": 2.0}, np.ones((1, 2)))
    with pytest.raises(ValueError, match="sensitivity must have shape"):
        gfdt.calibrate(ok, [0, 0], {"a": 1.0, "b": 2.0}, np.ones((3, 2)))
    with pytest.raises(ValueError, match="rank deficient"):
        gfdt.calibrate(ok, [1, 1], {"a": 1.0, "b": 2.0}, np.ones((2, 2)))
    with pytest.raises(TypeError, match="simulate_stats"):
        gfdt.calibrate(lambda t: np.zeros(2), [0, 0], {"a": 1.0, "b": 2.0}, S)
    with pytest.raises(ValueError, match="target_stderr"):
        gfdt.calibrate(ok, [0, 0], {"a": 1.0, "b": 2.0}, S, target_stderr=[-1, 0])
    with pytest.raises(ValueError, match="positive standard errors"):
        gfdt.calibrate(lambda t: (np.zeros(2), np.zeros(2)), [1, 1], {"a": 1.0, "b": 2.0},
                       S)
