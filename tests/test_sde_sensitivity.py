"""Sensitivities of user SDEs without user derivatives: symbolic and numerical derivatives
against analytic ones, the 1-D quadrature against finite differences, the state-dependent
diffusion conjugate against the Fokker-Planck closed form, and GFDT end to end."""

from __future__ import annotations

import numpy as np
import pytest

import gfdt
from gfdt.response import DiffusionField, ParameterPerturbation
from gfdt.scores import AnalyticScore
from gfdt.systems import SDE

TRIAD = {"t1": 0.2, "t2": 0.4, "t3": 2.0, "t4": 0.3, "t5": 0.3, "t6": 1.5}


def triad(**kw):
    def drift(x, p):
        u1, u2, u3 = x[:, 0], x[:, 1], x[:, 2]
        return np.stack([-p["t1"] * u1 - p["t2"] * u2 + u3, -p["t1"] * u2 + p["t2"] * u1,
                         -p["t3"] * u3], axis=1)

    def noise(x, p):
        one = np.ones_like(x[:, 0])
        return np.stack([p["t4"] * one, p["t5"] * one, p["t6"] * (np.tanh(x[:, 0]) + 1)],
                        axis=1)

    return SDE(drift=drift, noise=noise, parameters=TRIAD, dt=0.01, **kw)


def cam(**theta):
    """1-D cubic drift with correlated additive-multiplicative noise (two Wiener
    processes): D = ((A - B x)^2 + s^2) / 2."""
    p0 = {"F": 0.6, "a": -0.0222, "b": -0.2, "c": 0.0494, "A": 0.5, "B": -0.3, "s": 0.7}
    return SDE(drift=lambda x, p: p["F"] + p["a"] * x + p["b"] * x**2 - p["c"] * x**3,
               noise=lambda x, p: np.stack([p["A"] - p["B"] * x, p["s"] + 0 * x], axis=2),
               parameters={**p0, **theta}, dt=0.005, dim=1)


X = np.random.default_rng(0).standard_normal((7, 3))


def test_symbolic_drift_derivatives_of_the_triad():
    sde = triad()
    assert sde.derivative_method() == "symbolic"
    u1, u2, u3 = X.T
    np.testing.assert_allclose(sde.drift_derivative(X, "t1"), np.stack([-u1, -u2, 0 * u3], 1))
    np.testing.assert_allclose(sde.drift_derivative(X, "t2"), np.stack([-u2, u1, 0 * u3], 1))
    np.testing.assert_allclose(sde.drift_derivative(X, "t3"), np.stack([0 * u1, 0 * u2, -u3], 1))
    np.testing.assert_allclose(sde.drift_derivative(X, "t6"), 0)
    np.testing.assert_allclose(sde.drift_derivative_divergence(X, "t1"), -2.0)
    np.testing.assert_allclose(sde.drift_derivative_divergence(X, "t3"), -1.0)
    np.testing.assert_allclose(sde.drift_derivative_divergence(X, "t2"), 0.0)


def test_diffusion_derivatives_of_the_triad():
    sde = triad()
    # additive parameters: a constant dD = t (a diagonal), none for drift parameters
    np.testing.assert_allclose(sde.diffusion_derivative("t4"), [0.3, 0, 0])
    assert sde.diffusion_derivative("t1") is None and sde.diffusion_derivative_field("t1") is None
    assert sde.diffusion_derivative("t6") is None
    field = sde.diffusion_derivative_field("t6")  # D33 = t6^2 (tanh u1 + 1)^2 / 2
    assert isinstance(field, DiffusionField) and field.diagonal
    g = np.tanh(X[:, 0]) + 1
    want = np.zeros((7, 3))
    want[:, 2] = 1.5 * g**2
    np.testing.assert_allclose(field(X), want, rtol=1e-12)
    # D33 depends on u1 only: sum_i d_i dD_i3 = d_3 dD_33 = 0, and the second sum is 0
    np.testing.assert_allclose(field.divergence(X), 0, atol=1e-12)
    np.testing.assert_allclose(field.second(X), 0, atol=1e-12)


def test_full_noise_divergences_symbolic_against_finite_differences():
    """A 2-D model with a full, state-dependent noise matrix: the symbolic divergences of
    dD/dtheta against DiffusionField's own central differences (an independent path)."""
    sde = SDE(drift=lambda x, p: -x,
              noise=lambda x, p: np.stack([np.stack([p["q"] * np.sin(x[:, 0]), x[:, 1] ** 2],
                                                    axis=1),
                                           np.stack([p["q"] * x[:, 0] * x[:, 1],
                                                     1 + 0 * x[:, 0]], axis=1)], axis=1),
              parameters={"q": 0.7}, dt=0.01, dim=2)
    exact = sde.diffusion_derivative_field("q")
    assert not exact.diagonal
    fd = DiffusionField(exact.value, diagonal=False, step=1e-3)
    x = np.random.default_rng(1).standard_normal((5, 2))
    np.testing.assert_allclose(exact.divergence(x), fd.divergence(x), rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(exact.second(x), fd.second(x), rtol=1e-4, atol=1e-6)
    # and the value itself: dD/dq = q (g1 g1^T) with g1 the q-column part
    q = 0.7
    a, b = np.sin(x[:, 0]), x[:, 0] * x[:, 1]
    np.testing.assert_allclose(exact(x)[:, 0, 0], q * a**2, rtol=1e-12)
    np.testing.assert_allclose(exact(x)[:, 0, 1], q * a * b, rtol=1e-12)


def test_quadrature_sensitivities_against_finite_differences():
    sde = cam()
    grid = np.linspace(-15, 12, 27001)
    obs = [lambda x: x[:, 0], lambda x: x[:, 0] ** 2, lambda x: (x[:, 0] <= 2.5) * 1.0]
    S = sde.stationary_sensitivity(obs, grid)

    def means(s):
        p = s.stationary_density(grid)
        return np.array([np.trapezoid(p * f(grid[:, None]), grid) for f in obs])

    h = 1e-5
    fd = np.stack([(means(sde.with_parameters(**{k: v + h}))
                    - means(sde.with_parameters(**{k: v - h}))) / (2 * h)
                   for k, v in sde.parameters().items()], axis=1)
    np.testing.assert_allclose(S, fd, rtol=1e-4, atol=1e-6)
    # the density's score is the closed form (F - D')/D
    p = sde.stationary_density(grid)
    mid = slice(8000, 20000)
    np.testing.assert_allclose(sde.exact_score(grid[mid, None])[:, 0],
                               np.gradient(np.log(p), grid)[mid], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("param", ["B", "A", "s", "c"])
def test_conjugate_solves_the_perturbed_fokker_planck_equation(param):
    """B = -L*(d_theta p) / p on the 1-D model, with L* q = -(F q)' + (D q)'': the
    factor conventions of the diffusion conjugate (state-dependent for A and B)."""
    sde = cam()
    grid = np.linspace(-15, 12, 54001)
    h = grid[1] - grid[0]
    v = sde.parameters()[param]
    dth = 1e-5
    dp = (sde.with_parameters(**{param: v + dth}).stationary_density(grid)
          - sde.with_parameters(**{param: v - dth}).stationary_density(grid)) / (2 * dth)
    F = sde.drift(grid[:, None])[:, 0]
    D = sde.diffusion(grid[:, None]).reshape(-1)
    Lq = -np.gradient(F * dp, h) + np.gradient(np.gradient(D * dp, h), h)
    p = sde.stationary_density(grid)
    expect = -Lq / p
    pert = ParameterPerturbation.from_system(sde, param).bind((1,), np.random.default_rng(0),
                                                                 1e-5)
    score = AnalyticScore(lambda x: sde.exact_score(x)).fit()
    mid = np.arange(20000, 36000, 50)  # the bulk: x in about [-4, 5]
    x = grid[mid, None]
    got = pert.conjugate(x, score(x), score)
    np.testing.assert_allclose(got, expect[mid], rtol=2e-3, atol=2e-3 * np.abs(expect).max())
    # the conjugate has zero mean under p (integration by parts)
    full = pert.conjugate(grid[::10, None], score(grid[::10, None]), score)
    assert abs(np.trapezoid(full * p[::10], grid[::10])) < 1e-4 * np.abs(full).max()


@pytest.mark.slow
def test_sensitivity_estimator_needs_no_user_derivatives():
    """GFDT with the exact (quadrature) score of the 1-D CAM model against the exact
    sensitivities, every parameter (A, B: state-dependent noise) by name."""
    sde = cam()
    grid = np.linspace(-15, 12, 27001)
    obs = {"u": lambda x: x[:, 0], "u2": lambda x: x[:, 0] ** 2}
    S = sde.stationary_sensitivity(obs, grid)
    ds = gfdt.simulate(sde.with_parameters(dt=0.01), n_members=8, burn_in=50.0,
                       duration=6000.0, save_interval=0.25, seed=4, progress=False)
    est = gfdt.SensitivityEstimator("exact", observables=obs,
                                    parameters=list(sde.parameter_names), system=sde,
                                    max_lag=12.0, window=12.0, n_bootstrap=40, seed=1,
                                    progress=False).fit(ds)
    got = est.sensitivity_.values
    se = est.sensitivity_stderr_.values
    z = (got - S) / np.maximum(se, 1e-3 * np.abs(S).max())
    # Euler-Maruyama (multiplicative noise) at dt = 0.01 carries an O(dt) bias in the
    # stationary law: 3% of |S| beside 4.5 standard errors
    assert np.all(np.abs(got - S) < 4.5 * se + 0.03 * np.abs(S)), np.round(z, 1)
