"""Tests of the 2-D Navier-Stokes system: kernel, reference, closed forms, forcing."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from gfdt._runner import clone_generator, member_generators
from gfdt.systems._ns_reference import ns_reference_run
from gfdt.systems._spectral import coordinates, rk4_factor
from gfdt.systems.navier_stokes import (
    MEAN_FORCING_KEPT,
    NavierStokes2D,
    forcing,
    nonlinear_term,
)

EMPTY32 = np.empty((0, 32, 32))


def run(system, u, aux, n_steps, rng, save_every=0, out=None, threshold=1e6):
    """Drive the compiled kernel directly (u, aux advanced in place)."""
    if out is None:
        out = np.empty((0, *system.state_shape))
    return system._kernel()(u, aux, n_steps, save_every, out,
                            np.empty((len(out), system.n_aux)), rng, threshold,
                            *system._kernel_args())


def bandlimited(n: int, kmax: int, rng: np.random.Generator) -> np.ndarray:
    """Random real field with Fourier modes only in |kx|, |ky| <= kmax."""
    k = np.fft.fftfreq(n, 1.0 / n)
    sel = (np.abs(k)[:, None] <= kmax) & (np.arange(n // 2 + 1)[None, :] <= kmax)
    uh = np.zeros((n, n // 2 + 1), dtype=complex)
    uh[sel] = rng.standard_normal(sel.sum()) + 1j * rng.standard_normal(sel.sum())
    return np.fft.irfft2(uh, s=(n, n))


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    c = coordinates(n)
    return np.meshgrid(c, c, indexing="ij")  # y, x


def energy_enstrophy(system, u):
    uh = np.fft.rfft2(u)
    psi = np.fft.irfft2(system.inverse_laplacian_symbol() * uh, s=u.shape[-2:])
    return -np.mean(psi * u) / 2.0, np.mean(u * u) / 2.0


# ----------------------------------------------------------------- parameters
def test_defaults_and_forcing_modes():
    ns = NavierStokes2D()
    assert ns.n == 32 and ns.dt == 1.0 / 128.0 and ns.A == math.pi
    assert ns.nu_0 == pytest.approx(1.0 / (4.0 * math.pi**2), rel=1e-15)
    assert ns.forcing_amplitude == 18.75
    assert ns.dealias == 0 and ns.dealias_mask().min() == 1.0  # no truncation by default
    assert NavierStokes2D(n=64).forcing_amplitude == 75.0
    # independent count of lattice points in the disc |k|^2 <= 112.5 (radius < 11)
    count = sum(1 for a in range(-11, 12) for b in range(-11, 12) if a * a + b * b <= 112.5)
    assert ns.n_aux == count == 349
    assert ns.normals_per_step == 2 * 349  # two half-step increments per phase
    modes = ns.forcing_modes()
    assert len({tuple(m) for m in modes}) == ns.n_aux
    assert [0, 0] in modes.tolist()
    # at n = 16 the disc reaches the Nyquist wavenumber -8: those row/column are dropped
    small = NavierStokes2D(n=16)
    m16 = small.forcing_modes()
    assert not np.any(m16 == -8)
    assert small.n_aux == 15 * 15  # every |k_j| <= 7 mode lies in the disc (98 <= 112.5)
    assert ns.long_name == "vorticity" and ns.has_exact_score is False
    with pytest.raises(NotImplementedError):
        ns.exact_score(np.zeros((32, 32)))
    assert ns.dt < ns.stable_dt() and NavierStokes2D(n=64).dt < NavierStokes2D(n=64).stable_dt()


def test_parameters_json_round_trip_and_default_forcing():
    ns = NavierStokes2D(n=16, A=1.0)
    p = json.loads(json.dumps(ns.parameters()))
    assert p["F"] == 300.0 * (16 / 128) ** 2
    rebuilt = NavierStokes2D(**p)
    assert rebuilt.forcing_amplitude == ns.forcing_amplitude
    assert rebuilt._kernel_args()[12] == ns._kernel_args()[12]
    # F=None follows the resolution under dataclasses.replace
    assert dataclasses.replace(ns, n=64).forcing_amplitude == 75.0
    assert ns.attrs()["gfdt_F"] == ns.forcing_amplitude


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"nu": -1.0}, "nu"), ({"nu_h": -1e-3}, "nu_h"), ({"F": -1.0}, "F"),
     ({"dealias": 2}, "dealias"), ({"phase_diffusivity": -1.0}, "phase_diffusivity"),
     ({"dt": 0.0}, "dt"), ({"kf2": float("nan")}, "kf2")],
)
def test_bad_parameters_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        NavierStokes2D(**kwargs)


def test_helpers_validate_input():
    ns = NavierStokes2D(n=16)
    with pytest.raises(ValueError, match="u must have shape"):
        nonlinear_term(ns, np.zeros((8, 8)))
    with pytest.raises(ValueError, match="phases must have shape"):
        forcing(ns, np.zeros(3))
    with pytest.raises(ValueError, match="aux0"):
        ns_reference_run(ns, np.zeros((1, 16, 16)), np.zeros((1, 3)), 1,
                         [np.random.default_rng(0)])


def test_exported_from_the_package():
    import gfdt
    from gfdt.systems import reference, system_from_attrs

    assert gfdt.NavierStokes2D is NavierStokes2D is gfdt.systems.NavierStokes2D
    assert "NavierStokes2D" in gfdt.__all__ and "NavierStokes2D" in gfdt.systems.__all__
    assert reference.ns_reference_run is ns_reference_run
    assert "ns_reference_run" in reference.__all__
    ns = NavierStokes2D(n=16, A=1.0, dealias=1)
    assert system_from_attrs(ns.attrs()).parameters() == ns.parameters()


# ------------------------------------------------------------ kernel vs numpy
@pytest.mark.parametrize(
    "system",
    [NavierStokes2D(), NavierStokes2D(n=16, dealias=0, A=1.3, F=5.0, kf2=20.0),
     NavierStokes2D(n=16, nu=1e-3, phase_diffusivity=0.3, dealias=1)],
    ids=["defaults", "n16-aliased", "n16-viscous-dealiased"],
)
def test_kernel_matches_numpy_reference(system):
    n = system.n
    rngs = member_generators(np.random.SeedSequence(7), 2)
    aux0 = np.stack([system.initial_state(r)[1] for r in rngs])
    u0 = np.stack([3.0 * np.random.default_rng(k).standard_normal((n, n)) for k in range(2)])
    twins = [clone_generator(r) for r in rngs]
    u_k, aux_k = u0.copy(), aux0.copy()
    saves = np.empty((2, 5, n, n))
    for k in range(2):
        assert run(system, u_k[k], aux_k[k], 50, rngs[k], save_every=10, out=saves[k]) == -1
    u_r, aux_r = ns_reference_run(system, u0, aux0, 50, twins)
    scale = np.abs(u_r).max()
    assert np.abs(u_k - u_r).max() <= 1e-10 * scale
    assert np.abs(aux_k - aux_r).max() <= 1e-12 * np.abs(aux_r).max()
    np.testing.assert_array_equal(saves[:, -1], u_k)
    # generators advanced by exactly 50 * 2 * n_aux normals each
    fresh = member_generators(np.random.SeedSequence(7), 2)
    for r, t, f in zip(rngs, twins, fresh, strict=True):
        system.initial_state(f)
        f.standard_normal(50 * 2 * system.n_aux)
        assert r.bit_generator.state == t.bit_generator.state == f.bit_generator.state
    # an intermediate snapshot agrees with a 30-step reference run
    twins = [clone_generator(r) for r in member_generators(np.random.SeedSequence(7), 2)]
    for r in twins:
        system.initial_state(r)
    u30, _ = ns_reference_run(system, u0, aux0, 30, twins)
    assert np.abs(saves[:, 2] - u30).max() <= 1e-10 * scale


# ------------------------------------------------------------- closed forms
def test_taylor_green_hyperviscous_decay():
    """A single |k| shell is a steady state of the Jacobian: pure exp(-nu |k|^4 t) decay."""
    ns = NavierStokes2D(nu=1e-3, nu_h=0.0, nu_0=0.0, A=0.0, F=0.0)
    y, x = grid(32)
    u0 = np.cos(x) * np.cos(y)
    u = u0.copy()
    aux = ns.initial_state(np.random.default_rng(0))[1]
    assert run(ns, u, aux, 128, np.random.default_rng(1)) == -1  # t = 1
    exact = np.exp(-1e-3 * 4.0) * u0
    assert np.abs(u - exact).max() <= 1e-6 * np.abs(exact).max()
    # the discrete chain multiplies the mode by the RK4 factor exactly
    discrete = rk4_factor(-1e-3 * 4.0 * ns.dt) ** 128 * u0
    assert np.abs(u - discrete).max() <= 1e-13


def test_single_shell_with_all_linear_terms():
    """Shell |k|^2 = 25 plus a constant: translated by A, decayed by D, mean by nu_0."""
    y, x = grid(32)
    rng = np.random.default_rng(3)
    shell = [(3, 4), (4, 3), (5, 0), (0, 5), (-3, 4), (-4, 3)]  # (ky, kx)
    amp = rng.standard_normal((len(shell), 2))
    lam = 1e-3 * 25.0**2 + 0.5 / 25.0**2
    c0 = 0.3

    def field(gain_mean, gain_mode) -> np.ndarray:
        """c0 g_0 + sum Re[(a - i b) g_k e^{i k.x}] for per-mode gains g."""
        w = sum(((a - 1j * b) * gain_mode(kx) * np.exp(1j * (kx * x + ky * y))).real
                for (ky, kx), (a, b) in zip(shell, amp, strict=True))
        return c0 * gain_mean + w

    u0 = field(1.0, lambda kx: 1.0)
    for dt in (1.0 / 128.0, 1.0 / 1024.0):
        ns = NavierStokes2D(dt=dt, nu=1e-3, nu_h=0.5, nu_0=0.7, A=math.pi, F=0.0)
        assert np.abs(nonlinear_term(ns, u0)).max() < 1e-12 * np.abs(u0).max() * 25.0
        steps = round(1.0 / dt)
        u = u0.copy()
        aux = ns.initial_state(rng)[1]
        assert run(ns, u, aux, steps, rng) == -1
        # the discrete chain: RK4 amplification factor per mode, exactly
        z = -lam - 1j * math.pi * np.arange(6)  # per k_x: (D - A d_x) on the shell
        gains = rk4_factor(z * dt) ** steps
        discrete = field(rk4_factor(-0.7 * dt) ** steps, gains.__getitem__)
        assert np.abs(u - discrete).max() <= 1e-12 * np.abs(u0).max()
        if dt < 1e-3:  # continuum: RK4's phase error (A k_x dt)^5 / 120 per step is 1e-8
            exact = field(math.exp(-0.7), lambda kx: np.exp(-lam - 1j * math.pi * kx))
            assert np.abs(u - exact).max() <= 1e-6 * np.abs(u0).max()


# ------------------------------------------------------------- nonlinear term
@pytest.mark.parametrize("n", [32, 64, 48])
def test_nonlinear_term_conserves_energy_and_enstrophy(n):
    ns = NavierStokes2D(n=n, dealias=1)
    rng = np.random.default_rng(n)
    kc = (n - 1) // 3
    for _ in range(3):
        u = bandlimited(n, kc, rng)
        nl = nonlinear_term(ns, u)
        psi = np.fft.irfft2(ns.inverse_laplacian_symbol() * np.fft.rfft2(u), s=(n, n))
        assert abs(np.sum(u * nl)) <= 1e-12 * np.sum(np.abs(u * nl))
        assert abs(np.sum(psi * nl)) <= 1e-12 * np.sum(np.abs(psi * nl))
    # also for fields with content outside the band (only the band is coupled)
    u = rng.standard_normal((n, n))
    nl = nonlinear_term(ns, u)
    assert abs(np.sum(u * nl)) <= 1e-12 * np.sum(np.abs(u * nl))


@pytest.mark.parametrize("dealias", [0, 1])
def test_nonlinear_term_closed_form(dealias):
    """u = cos 8x + cos 6y: J = (8/6 - 6/8) sin 8x sin 6y (all modes below n/3)."""
    ns = NavierStokes2D(dealias=dealias)
    y, x = grid(32)
    u = np.cos(8 * x) + np.cos(6 * y)
    expected = (8.0 / 6.0 - 6.0 / 8.0) * np.sin(8 * x) * np.sin(6 * y)
    np.testing.assert_allclose(nonlinear_term(ns, u), expected, atol=1e-13)


def test_nonlinear_term_equals_padded_exact_product():
    """2/3 rule = exact product (3/2 zero-padding, no aliasing) truncated to the band."""
    n, big = 32, 64
    ns = NavierStokes2D(n=n, dealias=1)
    kc = (n - 1) // 3
    u = bandlimited(n, kc, np.random.default_rng(11))
    # the same field on a 64 x 64 grid (band-limited, so exact interpolation)
    uh = np.fft.fft2(u)
    k = np.fft.fftfreq(n, 1.0 / n).astype(int)
    ub = np.zeros((big, big), dtype=complex)
    ub[np.ix_(k % big, k % big)] = uh * (big / n) ** 2
    kb = np.fft.fftfreq(big, 1.0 / big)
    ky, kx = kb[:, None], kb[None, :]
    k2 = kx**2 + ky**2
    psib = np.where(k2 > 0, -ub / np.where(k2 > 0, k2, 1), 0)

    def d(f, s):
        return np.fft.ifft2(1j * s * f).real

    jac = d(psib, kx) * d(ub, ky) - d(ub, kx) * d(psib, ky)
    jh = np.fft.fft2(jac) * (n / big) ** 2
    band = (np.abs(ky) <= kc) & (np.abs(kx) <= kc)
    jh_n = np.zeros((n, n), dtype=complex)
    sel = np.ix_(k % big, k % big)
    jh_n[:, :] = np.where(band[sel], jh[sel], 0)
    expected = np.fft.ifft2(jh_n).real
    got = nonlinear_term(ns, u)
    assert np.abs(got - expected).max() <= 1e-12 * np.abs(expected).max()


def test_kernel_conserves_invariants_to_rk4_accuracy():
    """Inviscid, unforced: energy and enstrophy errors are RK4's (shrink ~32x per halving)."""
    errors = []
    for dt in (1.0 / 64.0, 1.0 / 128.0):
        ns = NavierStokes2D(dt=dt, A=0.0, nu=0.0, nu_h=0.0, nu_0=0.0, F=0.0, dealias=1)
        u = bandlimited(32, 10, np.random.default_rng(1))
        u *= 10.0 / np.abs(u).max()
        e0, z0 = energy_enstrophy(ns, u)
        aux = ns.initial_state(np.random.default_rng(0))[1]
        assert run(ns, u, aux, round(0.25 / dt), np.random.default_rng(2)) == -1
        e1, z1 = energy_enstrophy(ns, u)
        errors.append((abs(e1 / e0 - 1.0), abs(z1 / z0 - 1.0)))
    (e_a, z_a), (e_b, z_b) = errors
    assert e_a < 1e-7 and z_a < 1e-7
    assert e_b < e_a / 16.0 and z_b < z_a / 16.0


# ------------------------------------------------------------------- forcing
def test_forcing_field_against_explicit_cosines():
    ns = NavierStokes2D(n=16, kf2=10.0)
    phases = np.random.default_rng(5).uniform(0, 2 * np.pi, ns.n_aux)
    y, x = grid(16)
    amp = ns.forcing_amplitude / 16**2
    raw = sum(amp * np.cos(kx * x + ky * y + p)
              for (ky, kx), p in zip(ns.forcing_modes(), phases, strict=True))
    f = forcing(ns, phases)
    np.testing.assert_allclose(f - f.mean(), raw - raw.mean(), atol=1e-14)
    # the mean is 10 % of the raw forcing's mean, which is F cos(phi_0) / n^2
    i0 = ns.forcing_modes().tolist().index([0, 0])
    assert raw.mean() == pytest.approx(amp * math.cos(phases[i0]), rel=1e-12)
    assert f.mean() == pytest.approx(MEAN_FORCING_KEPT * raw.mean(), rel=1e-12)


def test_kernel_forcing_on_the_brownian_path():
    """Forcing on |k| <= 1 plus the mean: no Jacobian, no damping, so each step adds
    dt/6 [f(phi_n) + 4 f(phi_n + dW1) + f(phi_n + dW1 + dW2)] exactly, where dW1, dW2 are
    the generator's next 2 x n_aux normals times sqrt(2 D dt/2)."""
    d_phi = 0.8
    ns = NavierStokes2D(n=16, kf2=1.0, A=0.0, nu=0.0, nu_h=0.0, nu_0=0.0,
                        phase_diffusivity=d_phi)
    assert ns.n_aux == 5 and ns.normals_per_step == 10
    rng = np.random.default_rng(9)
    u, aux = ns.initial_state(rng)
    twin = clone_generator(rng)
    sd = math.sqrt(2.0 * d_phi * ns.dt / 2.0)
    expected = np.zeros_like(u)
    interpolated = np.zeros_like(u)  # stages 2 and 3 at (phi_n + phi_{n+1}) / 2 instead
    for _ in range(20):
        before = aux.copy()
        assert run(ns, u, aux, 1, rng) == -1
        z = twin.standard_normal((2, ns.n_aux))
        mid = before + sd * z[0]
        np.testing.assert_allclose(aux, mid + sd * z[1], rtol=0, atol=1e-13)
        expected += ns.dt / 6.0 * (forcing(ns, before) + 4.0 * forcing(ns, mid)
                                   + forcing(ns, aux))
        interpolated += ns.dt / 6.0 * (forcing(ns, before) + 4.0 * forcing(ns, (before + aux) / 2)
                                       + forcing(ns, aux))
    assert rng.bit_generator.state == twin.bit_generator.state
    scale = np.abs(expected).max()
    assert np.abs(u - expected).max() <= 1e-12 * scale
    assert np.abs(u - interpolated).max() > 1e-6 * scale  # the test resolves the midpoint


def test_phase_increments_are_the_generator_draws():
    """Each step adds two half-step increments sqrt(2 D dt/2) z: 2 n_aux draws per step."""
    ns = NavierStokes2D(n=16, F=0.0, phase_diffusivity=0.7)
    rng = np.random.default_rng(21)
    u, aux0 = ns.initial_state(rng)
    twin = clone_generator(rng)
    aux = aux0.copy()
    run(ns, u, aux, 10, rng)
    z = np.stack([twin.standard_normal((2, ns.n_aux)) for _ in range(10)])
    np.testing.assert_allclose(aux - aux0, math.sqrt(2 * 0.7 * ns.dt / 2) * z.sum(axis=(0, 1)),
                               rtol=0, atol=1e-13)
    assert rng.bit_generator.state == twin.bit_generator.state


def test_phases_diffuse_with_variance_2t():
    ns = NavierStokes2D(n=16, F=0.0)
    t, members = 1.0, 8
    steps = round(t / ns.dt)
    incs = []
    for rng in member_generators(np.random.SeedSequence(3), members):
        u, aux0 = ns.initial_state(rng)
        assert np.all((aux0 >= 0) & (aux0 < 2 * np.pi))
        aux = aux0.copy()
        run(ns, u, aux, steps, rng)
        incs.append(aux - aux0)
    incs = np.concatenate(incs)
    m = incs.size  # 1800 independent increments, each N(0, 2t)
    assert abs(incs.mean()) < 4.0 * math.sqrt(2 * t / m)
    assert abs(incs.var() / (2 * t) - 1.0) < 4.0 * math.sqrt(2.0 / m)
    # initial phases: uniform on [0, 2 pi)
    phases = np.concatenate([ns.initial_state(r)[1]
                             for r in member_generators(np.random.SeedSequence(4), members)])
    assert abs(phases.mean() - np.pi) < 4.0 * np.pi / math.sqrt(3 * phases.size)


# ------------------------------------------------------- reproducibility, pairs
def test_reproducible_and_paired_runs_bit_identical():
    ns = NavierStokes2D()
    rng = np.random.default_rng(123)
    u0, aux0 = ns.initial_state(rng)
    u0 = 2.0 * bandlimited(32, 16, np.random.default_rng(4))
    twin = clone_generator(rng)
    outs = []
    for r in (rng, twin):
        u, aux = u0.copy(), aux0.copy()
        out = np.empty((4, 32, 32))
        assert run(ns, u, aux, 64, r, save_every=16, out=out) == -1
        outs.append((u, aux, out))
    for a, b in zip(outs[0], outs[1], strict=True):
        np.testing.assert_array_equal(a, b)
    # a kicked copy with the same noise keeps the same hidden phases
    rng = np.random.default_rng(5)
    twin = clone_generator(rng)
    u1, aux1 = u0.copy(), aux0.copy()
    u2, aux2 = u0.copy(), aux0.copy()
    u2[0, 0] += 1.0 / 64.0
    run(ns, u1, aux1, 32, rng)
    run(ns, u2, aux2, 32, twin)
    np.testing.assert_array_equal(aux1, aux2)
    assert 0 < np.abs(u2 - u1).max() < 1.0


def test_simulate_matches_direct_kernel_runs():
    from gfdt.simulate import simulate

    ns = NavierStokes2D(n=16)
    ds = simulate(ns, n_members=2, burn_in=0.25, duration=0.5, save_interval=0.125, seed=8,
                  n_workers=2, progress=False)
    assert ds.u.attrs["long_name"] == "vorticity"
    for k, rng in enumerate(member_generators(np.random.SeedSequence(8), 2)):
        u, aux = ns.initial_state(rng)
        run(ns, u, aux, 32, rng)
        scale = np.abs(u).max()
        # simulate splits the run into chunks (an rfft/irfft round trip at each boundary)
        np.testing.assert_allclose(ds.u.values[k, 0], u, rtol=0, atol=1e-12 * scale)
        run(ns, u, aux, 48, rng)
        np.testing.assert_allclose(ds.u.values[k, -1], u, rtol=0, atol=1e-12 * scale)


def test_divergence_is_reported():
    ns = NavierStokes2D()
    rng = np.random.default_rng(0)
    u, aux = ns.initial_state(rng)
    u += 5.0 * np.cos(grid(32)[1])  # a single shell: decays by 0.5 % per time unit
    assert run(ns, u, aux, 100, rng, threshold=1.0) == 64  # first check without saves
    assert np.abs(u).max() > 4.0
    u, aux = ns.initial_state(rng)
    u[3, 4] = np.nan
    out = np.empty((5, 32, 32))
    assert run(ns, u, aux, 100, rng, save_every=20, out=out) == 20


def test_dealias_band_of_the_jacobian():
    """dealias=1: no output outside |k_x|, |k_y| <= (n-1)//3; dealias=0: every mode."""
    u = np.random.default_rng(2).standard_normal((32, 32))
    spec1 = np.abs(np.fft.rfft2(nonlinear_term(NavierStokes2D(dealias=1), u)))
    ky, kx = np.fft.fftfreq(32, 1 / 32)[:, None], np.arange(17)[None, :]
    outside = (np.abs(ky) > 10) | (kx > 10)
    assert spec1[outside].max() <= 1e-12 * spec1.max()
    inside = ~outside
    inside[0, 0] = False  # the Jacobian has zero mean
    assert spec1[inside].min() > 1e-6 * spec1.max()
    spec0 = np.abs(np.fft.rfft2(nonlinear_term(NavierStokes2D(dealias=0), u)))
    assert spec0[outside].min() > 1e-8 * spec0.max()  # Nyquist row and column included
