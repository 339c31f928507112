"""The foreign systems of benchmarks/generalization.py against closed forms.

Simulators (Euler-Maruyama, numpy) are checked against the discrete-time OU covariance
and propagator in a linear limit, against stationary densities by quadrature, and their
exact scores against the Stein identity ``-E[x s(x)^T] = I`` on independent samples.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _foreign_systems import (
    CubicCAM,
    DoubleWellChain,
    StochasticTriad,
    TanhField,
    paired_response,
    simulate,
)


def _independent(system, n, rng, spin_up, n_snap=4, gap=10.0):
    """``n * n_snap`` nearly independent stationary states: members x spaced snapshots."""
    out = simulate(system, n, n_snap * round(gap / system.save_interval), rng,
                   spin_up=spin_up)
    return out[:, :: round(gap / system.save_interval)]


def _stein(system, x):
    """Member means of -x_i s_j - delta_ij and their standard errors, shape (d, d)."""
    n = x.shape[0]
    flat = x.reshape(n, x.shape[1], -1)
    s = system.exact_score(x.reshape(-1, *system.state_shape)).reshape(flat.shape)
    xc = flat - flat.mean(axis=(0, 1))
    per_member = -np.einsum("mti,mtj->mij", xc, s) / flat.shape[1]
    dev = per_member.mean(0) - np.eye(flat.shape[2])
    se = per_member.std(0, ddof=1) / np.sqrt(n)
    return dev, se


def test_double_well_stein_identity():
    rng = np.random.default_rng(1)
    system = DoubleWellChain()
    x = _independent(system, 800, rng, spin_up=20.0)
    dev, se = _stein(system, x)
    assert np.all(np.abs(dev) < 4 * se + 0.02), (dev, se)  # 0.02: Euler bias O(dt)


def test_double_well_uncoupled_marginal_by_quadrature():
    rng = np.random.default_rng(2)
    system = DoubleWellChain(d=2, c=0.0, j=0.7)
    x = _independent(system, 1500, rng, spin_up=20.0).reshape(-1)
    grid = np.linspace(-3, 3, 6001)
    p = np.exp(-system.beta * (grid**4 / 4 - grid**2 / 2))
    p /= p.sum()
    for k in (2, 4):
        exact = float((p * grid**k).sum())
        est = x**k
        se = est.reshape(1500, -1).mean(1).std(ddof=1) / np.sqrt(1500)
        assert abs(est.mean() - exact) < 4 * se + 0.01 * exact


def test_double_well_score_is_minus_beta_grad_v():
    system = DoubleWellChain(d=3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 3))
    h = 1e-6
    fd = np.stack([(system.potential(x + h * e) - system.potential(x - h * e)) / (2 * h)
                   for e in np.eye(3)], -1)
    np.testing.assert_allclose(system.exact_score(x), -system.beta * fd, rtol=1e-6)
    # the non-reversible part leaves exp(-beta V) stationary: div(p J grad V) = 0, i.e.
    # grad V . J grad V = 0 and tr(J Hess V) = 0 for antisymmetric J
    g = system.grad_potential(x)
    np.testing.assert_allclose(np.einsum("bi,ij,bj->b", g, system.J, g), 0, atol=1e-12)


def _ou_field_modes(n, D):
    k = np.arange(n)
    lam = 4 * np.sin(np.pi * k / n) ** 2
    return 1.0 + D * (lam[:, None] + lam[None, :])  # gamma_k of the linear field (a = 0)


def test_linear_field_covariance_and_propagator():
    system = TanhField(n=8, D=0.3, a=0.0, b=0.0, q=0.8, dt=0.05, stride=4)
    gamma = _ou_field_modes(8, 0.3)
    # stationary variance of each Fourier mode of the Euler scheme, per grid point
    var_mode = system.q * system.dt / (1 - (1 - gamma * system.dt) ** 2)
    rng = np.random.default_rng(4)
    x = _independent(system, 600, rng, spin_up=10.0, n_snap=4, gap=5.0).reshape(-1, 8, 8)
    power = (np.abs(np.fft.fft2(x)) ** 2).mean(0) / 64
    per = (np.abs(np.fft.fft2(x)) ** 2 / 64).reshape(600, -1, 8, 8).mean(1)
    se = per.std(0, ddof=1) / np.sqrt(600)
    assert np.all(np.abs(power - var_mode) < 4.5 * se), np.abs(power - var_mode) / se
    # the paired response of the linear field is the discrete propagator, exactly
    states = x[:5]
    r, _ = paired_response(system, states, max_lag=3, delta=0.1, rng=rng, sources=[0])
    for t in range(4):
        prop = np.real(np.fft.ifft2((1 - gamma * system.dt) ** (system.stride * t)))
        np.testing.assert_allclose(r[t, ..., 0], prop, atol=1e-10)


def test_tanh_field_stein_identity():
    rng = np.random.default_rng(5)
    system = TanhField(n=8)
    x = _independent(system, 300, rng, spin_up=20.0, n_snap=3, gap=8.0)
    dev, se = _stein(system, x)
    # every pair: no more than chance exceedances of 4 standard errors (+ Euler bias)
    assert np.mean(np.abs(dev) > 4 * se + 0.03) < 0.002
    # the diagonal, averaged over the homogeneous field, is tight
    diag = np.diag(dev).mean()
    assert abs(diag) < 4 * np.sqrt(np.mean(np.diag(se) ** 2) / 64) + 0.03


def test_tanh_field_score_is_gradient_of_free_energy():
    system = TanhField(n=4)
    a, k, b, D = system.a, system.k, system.b, system.D

    def free_energy(u):
        g = (np.roll(u, -1, 0) - u) ** 2 + (np.roll(u, -1, 1) - u) ** 2
        return np.sum(D / 2 * g + u**2 / 2 - a / k * np.log(np.cosh(k * u)) - b * u)

    rng = np.random.default_rng(6)
    u = rng.standard_normal((4, 4))
    h = 1e-6
    grad = np.zeros((4, 4))
    for i in range(4):
        for j in range(4):
            e = np.zeros((4, 4))
            e[i, j] = h
            grad[i, j] = (free_energy(u + e) - free_energy(u - e)) / (2 * h)
    np.testing.assert_allclose(system.exact_score(u[None])[0], -2 / system.q * grad,
                               rtol=1e-6, atol=1e-8)


def test_cam_density_and_stein():
    rng = np.random.default_rng(7)
    system = CubicCAM()
    x = _independent(system, 2000, rng, spin_up=20.0, n_snap=3, gap=8.0)
    grid = np.linspace(-12, 8, 20001)
    p = system.density(grid)
    h = grid[1] - grid[0]
    # CDF at a few points against the empirical one (binomial standard errors)
    cdf = np.cumsum(p) * h
    flat = x.reshape(-1)
    for q in (-3.0, -1.0, 0.0, 1.0, 2.0):
        emp = np.mean(flat <= q)
        exact = np.interp(q, grid, cdf)
        se = np.sqrt(exact * (1 - exact) / flat.size) * 1.5  # 1.5: residual correlation
        assert abs(emp - exact) < 4 * se + 0.005, (q, emp, exact)
    # score = d log p / dx by finite differences of the quadrature density
    mid = slice(5000, 15000)
    fd = np.gradient(np.log(p), h)[mid]
    np.testing.assert_allclose(system.exact_score(grid[mid]), fd, rtol=1e-4, atol=1e-5)
    dev, se = _stein(system, x)
    assert abs(dev[0, 0]) < 4 * se[0, 0] + 0.02


def test_paired_response_lag_zero_is_the_kick():
    rng = np.random.default_rng(8)
    for system in (DoubleWellChain(), StochasticTriad(), CubicCAM()):
        states = simulate(system, 50, 1, rng, spin_up=5.0)[:, 0]
        r, se = paired_response(system, states, max_lag=2, delta=0.01, rng=rng)
        d = int(np.prod(system.state_shape))
        np.testing.assert_allclose(r[0].reshape(d, d), np.eye(d), atol=1e-10)
        np.testing.assert_allclose(se[0], 0, atol=1e-7)  # round-off of (x + delta - x)
        assert np.all(se[1:] > 0)


def test_paired_response_is_linear_in_small_kicks():
    """Halving delta changes the double-well response by O(delta) only."""
    system = DoubleWellChain()
    states = simulate(system, 200, 1, np.random.default_rng(9), spin_up=20.0)[:, 0]
    r1, _se = paired_response(system, states, 10, 0.02, np.random.default_rng(10))
    r2, _ = paired_response(system, states, 10, 0.01, np.random.default_rng(10))
    assert np.max(np.abs(r1 - r2)) < 0.05


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n_members"):
        simulate(DoubleWellChain(), 0, 10, np.random.default_rng(0))
