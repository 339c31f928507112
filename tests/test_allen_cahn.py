"""Allen-Cahn: kernel against the numpy reference, exact score, Stein sum rule, marginals."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import gfdt
from gfdt._runner import Integrator, member_generators
from gfdt.systems import AllenCahn
from gfdt.systems.reference import ac_reference_run


def energy(system: AllenCahn, u: np.ndarray) -> float:
    """E(u) = sum_x alpha (u^4/4 - u^2/2) + kappa/2 (|grad u|^2 + |Lap u|^2), on the grid.

    Computed with the full complex FFT (independent of the rfft-based library code).
    """
    n = system.n
    k = np.fft.fftfreq(n, 1.0 / n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    uh = np.fft.fft2(u)
    quad = 0.5 * system.kappa * np.sum((k2 + k2**2) * np.abs(uh) ** 2) / n**2
    return float(system.alpha * np.sum(u**4 / 4 - u**2 / 2) + quad)


def test_kernel_matches_numpy_reference():
    ac = AllenCahn(n=16)
    u0 = 0.5 * np.random.default_rng(1).standard_normal((2, 16, 16))
    ref = ac_reference_run(ac, u0, 100, member_generators(np.random.SeedSequence(7), 2))
    rngs = member_generators(np.random.SeedSequence(7), 2)
    integ = Integrator(ac)
    u = u0.copy()
    for k in range(2):
        integ(u[k], np.zeros(0), 100, rngs[k])
    np.testing.assert_allclose(u, ref, rtol=0, atol=1e-11)


def test_drift_matches_kernel_single_step_without_noise():
    # with eps2 -> tiny the kernel's step is one RK4 step of the numpy drift
    ac = AllenCahn(n=16, eps2=1e-300)
    u0 = 0.7 * np.random.default_rng(2).standard_normal((16, 16))
    dt = ac.dt
    k1 = ac.drift(u0)
    k2 = ac.drift(u0 + dt / 2 * k1)
    k3 = ac.drift(u0 + dt / 2 * k2)
    k4 = ac.drift(u0 + dt * k3)
    expect = u0 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    u = u0.copy()
    Integrator(ac)(u, np.zeros(0), 1, np.random.default_rng(0))
    np.testing.assert_allclose(u, expect, atol=1e-12)


def test_exact_score_is_minus_gradient_of_energy():
    ac = AllenCahn(n=8)
    rng = np.random.default_rng(3)
    u = rng.standard_normal((8, 8))
    v = rng.standard_normal((8, 8))
    h = 1e-5
    dE = (energy(ac, u + h * v) - energy(ac, u - h * v)) / (2 * h)
    s = ac.exact_score(u)
    # s = -2 grad E / (n^2 eps2)
    assert np.sum(s * v) == pytest.approx(-2 * dE / (ac.n**2 * ac.eps2), rel=1e-7)


def test_exact_score_batched_shape_and_error():
    ac = AllenCahn(n=8)
    u = np.random.default_rng(0).standard_normal((3, 2, 8, 8))
    s = ac.exact_score(u)
    assert s.shape == u.shape
    np.testing.assert_allclose(s[1, 0], ac.exact_score(u[1, 0]))
    with pytest.raises(ValueError, match="u must have shape"):
        ac.exact_score(np.zeros((4, 4)))


@pytest.mark.parametrize("name,value", [("eps2", 0.0), ("kappa", -1.0), ("alpha", -1.0),
                                        ("dt", 0.0), ("n", 7)])
def test_bad_parameters_name_the_argument(name, value):
    with pytest.raises(ValueError, match=name):
        AllenCahn(**{name: value})


def _stein_diagonal(ac: AllenCahn, seed: int, n_members: int) -> tuple[float, float]:
    """Mean and standard error (across members) of -<u(x) s(x)> over x and time."""
    ds = gfdt.simulate(ac, n_members=n_members, burn_in=50.0, duration=150.0,
                       save_interval=0.5, seed=seed, progress=False)
    u = ds.u.values
    per_member = -(u * ac.exact_score(u)).mean(axis=(1, 2, 3))
    return float(per_member.mean()), float(per_member.std(ddof=1) / np.sqrt(len(per_member)))


def test_stein_sum_rule_with_exact_score():
    """-E[u(x) s(x)] = 1 (checks the noise convention and the score's grid factor).

    The discrete chain has a time-step bias (paper spec section 7: R(0) ~ 1.05 at
    dt = 1/32); at dt = 1/128 without advection it is below the sampling error here.
    A wrong grid factor would be off by n^2 = 256, a wrong square root by 16.
    """
    r, se = _stein_diagonal(AllenCahn(n=16, A=0.0, dt=1 / 128), seed=2, n_members=16)
    assert se < 0.02
    assert abs(r - 1.0) < 4 * se
    # the documented time-step bias at the default dt: positive and significant
    r32, se32 = _stein_diagonal(AllenCahn(n=16, A=0.0), seed=1, n_members=8)
    assert r32 - 1.0 > 4 * se32


def test_marginals_are_bimodal():
    ds = gfdt.simulate(AllenCahn(n=16), n_members=4, burn_in=100.0, duration=100.0,
                       save_interval=1.0, seed=3, progress=False)
    x = ds.u.values.ravel()
    z = x - x.mean()
    kurtosis = np.mean(z**4) / np.mean(z**2) ** 2
    assert kurtosis < 2.0  # a Gaussian has 3; two narrow modes at +-1 give ~1
    hist, edges = np.histogram(x, bins=np.linspace(-2, 2, 41))
    centers = 0.5 * (edges[1:] + edges[:-1])
    neg = centers[np.argmax(np.where(centers < 0, hist, -1))]
    pos = centers[np.argmax(np.where(centers > 0, hist, -1))]
    assert -1.4 < neg < -0.6 and 0.6 < pos < 1.4
    assert hist[np.abs(centers) < 0.1].max() < 0.5 * hist.max()


def test_reproducible_across_worker_counts():
    ac = AllenCahn(n=16)
    a = gfdt.simulate(ac, n_members=3, duration=2.0, save_interval=1.0, seed=5,
                      n_workers=1, progress=False)
    b = gfdt.simulate(ac, n_members=3, duration=2.0, save_interval=1.0, seed=5,
                      n_workers=2, progress=False)
    np.testing.assert_array_equal(a.u.values, b.u.values)


def test_unstable_dt_warns_and_diverges(caplog):
    ac = AllenCahn(n=16, dt=0.25)
    assert ac.dt > ac.stable_dt()
    init = np.full((1, 16, 16), 1.5)
    with caplog.at_level(logging.WARNING, logger="gfdt"):
        with pytest.raises(gfdt.SimulationDiverged, match="member 0") as info:
            gfdt.simulate(ac, n_members=1, duration=200.0, save_interval=1.0, seed=0,
                          initial=init, progress=False)
    assert "stability estimate" in caplog.text
    assert info.value.member == 0
    assert info.value.time == pytest.approx(info.value.step * ac.dt)
