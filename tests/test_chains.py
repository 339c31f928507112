"""The chain families of the dimension sweep (benchmarks/_chains.py) against closed forms.

The numba Euler-Maruyama step is checked against the numpy drift on one step with the
same normals; the exact score against finite differences of the potential and the
stationarity conditions of the rotation; the simulated statistics against the Stein
identity ``-E[x s(x)^T] = I``; the paired truth at lag 0 against the kick itself, and
at lag 1 on a linear chain (no cubic term) against the Euler propagator.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _chains import (
    RingDoubleWell,
    TiltedLogCosh,
    make_chain,
    paired_response,
    simulate,
    stationary_states,
)


@pytest.mark.parametrize("family", ["ring", "tilted"])
@pytest.mark.parametrize("d", [4, 7, 12])
def test_score_is_minus_beta_grad_v_and_rotation_keeps_the_density(family, d):
    system = make_chain(family, d)
    rng = np.random.default_rng(d)
    x = 1.5 * rng.standard_normal((6, d))
    h = 1e-6
    fd = np.stack([(system.potential(x + h * e) - system.potential(x - h * e)) / (2 * h)
                   for e in np.eye(d)], -1)
    np.testing.assert_allclose(system.exact_score(x), -system.beta * fd, rtol=1e-6,
                               atol=1e-7)
    J = system.J
    np.testing.assert_array_equal(J, -J.T)
    assert np.abs(J).max() > 0  # non-reversible at every d (offsets never all cancel)
    g = system.grad_potential(x)
    np.testing.assert_allclose(np.einsum("bi,ij,bj->b", g, J, g), 0, atol=1e-10)


@pytest.mark.parametrize("family", ["ring", "tilted"])
def test_numba_step_equals_the_numpy_drift(family):
    """One saved step of stride 1 from a known state: x + f(x) dt + sqrt(2 dt/beta) z."""
    system = make_chain(family, 9)
    seed = 5
    out = simulate(system, 3, 2, np.random.default_rng(seed), spin_up=0.0, stride=1)
    rng = np.random.default_rng(seed)
    x0 = 0.1 * rng.standard_normal((3, 9))
    z = rng.standard_normal(9)  # member 0's first normals
    np.testing.assert_allclose(out[:, 0], x0)
    expect = x0[0] + system.drift(x0[0]) * system.dt + np.sqrt(2 * system.dt / system.beta) * z
    np.testing.assert_allclose(out[0, 1], expect, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("system", [RingDoubleWell(d=6), TiltedLogCosh(d=6)])
def test_stein_identity_on_simulated_states(system):
    """-E[x s^T] = I within 4 standard errors (+0.03 for the Euler bias, O(dt))."""
    x = stationary_states(system, 6000, np.random.default_rng(1), gap=1.0, per_member=60)
    s = system.exact_score(x)
    xc = x - x.mean(0)
    per = -(xc[:, :, None] * s[:, None, :])  # (n, d, d)
    dev = per.mean(0) - np.eye(system.d)
    se = per.std(0, ddof=1) / np.sqrt(len(x))
    assert np.all(np.abs(dev) < 4 * se + 0.03), np.abs(dev / (se + 1e-12)).max()


def test_paired_response_kick_and_one_step_jacobian():
    """Lag 0 is the unit kick; at lag 1 (one Euler step) the paired central difference
    is the member mean of the step's Jacobian column, (I - dt (I - J) Hess V) e_j, up
    to the O(delta^2) error of the central difference."""
    system = RingDoubleWell(d=5, stride=1)
    states = np.random.default_rng(3).standard_normal((4, 5))
    delta = 1e-4
    r, se = paired_response(system, states, 1, delta, np.random.default_rng(4), source=2)
    np.testing.assert_allclose(r[0], np.eye(5)[2])
    assert np.all(se[0] == 0)
    hess = [np.diag(3 * s**2 - 1) + system.c * (np.roll(np.eye(5), 1, 0)
                                                 + np.roll(np.eye(5), -1, 0))
            for s in states]
    jac = [np.eye(5) + system.dt * (system.J - np.eye(5)) @ h for h in hess]
    expect = np.mean([j[:, 2] for j in jac], axis=0)
    np.testing.assert_allclose(r[1], expect, atol=1e-9)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="family"):
        make_chain("square", 8)
    with pytest.raises(ValueError, match="at least 4"):
        make_chain("ring", 3)
    with pytest.raises(ValueError, match="positive"):
        simulate(make_chain("ring", 4), 0, 10, np.random.default_rng(0))
