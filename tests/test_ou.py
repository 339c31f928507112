"""Ornstein-Uhlenbeck system: closed forms against simulation, dense algebra and limits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import gfdt
from gfdt._runner import member_generators
from gfdt.systems import OrnsteinUhlenbeck, system_from_attrs
from gfdt.systems.reference import ou_reference_run


def circulant_covariance(c: np.ndarray) -> np.ndarray:
    """Dense covariance E[u_i u_j] = c[i - j] (periodic offsets) of an (n, n) field."""
    n = c.shape[0]
    iy, ix = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    iy, ix = iy.ravel(), ix.ravel()
    return c[(iy[:, None] - iy[None, :]) % n, (ix[:, None] - ix[None, :]) % n]


def full_k2(n: int) -> np.ndarray:
    """|k|^2 on numpy's rfft2 grid, built here from fftfreq (independent of gfdt)."""
    ky = np.fft.fftfreq(n, 1.0 / n)[:, None]
    kx = np.fft.rfftfreq(n, 1.0 / n)[None, :]
    return ky**2 + kx**2


def per_member_cross(u: np.ndarray, v: np.ndarray, offset, lag: int) -> np.ndarray:
    """Per member: mean over time and position of u(x + r, t + lag) v(x, t)."""
    T = u.shape[1]
    shifted = np.roll(u[:, lag:], (-offset[0], -offset[1]), axis=(2, 3))
    return (shifted * v[:, : T - lag]).mean(axis=(1, 2, 3))


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"n": 7}, ValueError, "n must be an even"),
        ({"n": 8.0}, TypeError, "n must be an int"),
        ({"dt": 0.0}, ValueError, "dt must be > 0"),
        ({"dt": -0.1}, ValueError, "dt must be > 0"),
        ({"dt": True}, TypeError, "dt must be a real number"),
        ({"lam": 0.0}, ValueError, "lam must be > 0"),
        ({"lam": -1.0}, ValueError, "lam must be > 0"),
        ({"lam": float("nan")}, ValueError, "lam must be finite"),
        ({"A": float("inf")}, ValueError, "A must be finite"),
        ({"kappa": -1e-3}, ValueError, "kappa must be >= 0"),
        ({"eps2": 0.0}, ValueError, "eps2 must be > 0"),
        ({"eps2": "0.1"}, TypeError, "eps2 must be a real number"),
    ],
)
def test_parameter_validation(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        OrnsteinUhlenbeck(**kwargs)


def test_defaults_and_attrs_round_trip():
    ou = OrnsteinUhlenbeck()
    assert (ou.n, ou.dt, ou.lam, ou.kappa, ou.A, ou.eps2) == (32, 1 / 32, 0.04, 2.5e-4, 0.02,
                                                               0.004)
    attrs = OrnsteinUhlenbeck(n=8, A=0.1).attrs()
    assert attrs["gfdt_system"] == "OrnsteinUhlenbeck"
    assert json.loads(attrs["gfdt_parameters"]) == {"n": 8, "dt": 1 / 32, "lam": 0.04,
                                                    "kappa": 2.5e-4, "A": 0.1, "eps2": 0.004}
    assert attrs["gfdt_homogeneous"] == 1
    assert system_from_attrs(attrs) == OrnsteinUhlenbeck(n=8, A=0.1)
    with pytest.raises(ValueError, match="gfdt_system"):
        system_from_attrs({})


def test_exact_score_and_lag_validation():
    ou = OrnsteinUhlenbeck(n=8)
    with pytest.raises(ValueError, match="u must have shape"):
        ou.exact_score(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="lags"):
        ou.exact_covariance(-1.0)
    with pytest.raises(ValueError, match="lags"):
        ou.exact_response([0.0, float("nan")])


# ------------------------------------------------------------ symbols, spectra
def test_symbols_match_definitions():
    ou = OrnsteinUhlenbeck(n=8, dt=0.1, lam=0.3, kappa=0.01, A=0.5, eps2=0.02)
    k2 = full_k2(8)
    kx = np.fft.rfftfreq(8, 1 / 8)[None, :].copy()
    kx[0, -1] = 0.0  # Nyquist column: odd operator zeroed
    L = -0.3 / (1 + k2) - 0.01 * k2 - 0.5 * 1j * kx
    np.testing.assert_allclose(ou.drift_symbol(), L, rtol=1e-15, atol=1e-15)
    z = L * 0.1
    np.testing.assert_allclose(ou.amplification(), 1 + z + z**2 / 2 + z**3 / 6 + z**4 / 24,
                               rtol=1e-14)
    np.testing.assert_allclose(ou.noise_symbol(), math.sqrt(0.1 * 0.02) * 8 / np.sqrt(1 + k2),
                               rtol=1e-14)


@pytest.mark.parametrize("dt", [1 / 16, 1 / 32, 1 / 64])
def test_discrete_spectrum_is_continuum_plus_first_order(dt):
    """S_disc / S_cont = -2a / (1 - |g|^2) = 1 - a + O(a^2), a = Re(L) dt."""
    ou = OrnsteinUhlenbeck(n=8, dt=dt, A=0.3)
    a = ou.drift_symbol().real * dt
    ratio = ou.exact_spectrum() / ou.exact_spectrum(discrete=False)
    assert np.all(np.abs(ratio - 1) <= 1.01 * np.abs(a))  # O(dt) relative
    assert np.all(np.abs(ratio - (1 - a)) <= a**2)  # and the O(dt) term is the predicted one


def test_spectrum_convergence_is_first_order():
    errs = []
    for dt in (1 / 16, 1 / 32, 1 / 64):
        ou = OrnsteinUhlenbeck(n=8, dt=dt)
        errs.append(np.abs(ou.exact_spectrum() / ou.exact_spectrum(discrete=False) - 1).max())
    assert 1.95 < errs[0] / errs[1] < 2.05
    assert 1.95 < errs[1] / errs[2] < 2.05


def test_covariance_is_circulant_positive_definite_and_matches_spectrum():
    """C(r) is the inverse FFT of S_k; Nyquist kept, so the covariance is non-singular."""
    ou = OrnsteinUhlenbeck(n=8)
    c = ou.exact_covariance()
    assert c.shape == (8, 8)
    cmat = circulant_covariance(c)
    np.testing.assert_allclose(cmat, cmat.T, rtol=0, atol=1e-15)
    ev = np.linalg.eigvalsh(cmat)
    # eigenvalues of a circulant are its spectrum: the 64 values of S_k (full FFT layout)
    S = ou.exact_spectrum()
    full = np.concatenate([S.ravel(), S[:, 1:-1].ravel()])
    np.testing.assert_allclose(np.sort(ev), np.sort(full), rtol=1e-10)
    assert ev.min() > 0


def test_lagged_covariance_is_response_convolved_with_covariance():
    """C(tau) = R(tau) * C(0) (circular convolution), the Markov property."""
    ou = OrnsteinUhlenbeck(n=8, A=0.3, lam=0.2)
    lags = np.array([0.0, 1.0, 2.5])
    cl = ou.exact_covariance(lags)
    r = ou.exact_response(lags).values
    c0 = ou.exact_covariance()
    assert cl.shape == (3, 8, 8)
    for j in range(3):
        conv = np.zeros((8, 8))
        for ry in range(8):
            for rx in range(8):
                conv += r[j, ry, rx] * np.roll(c0, (ry, rx), axis=(0, 1))
        np.testing.assert_allclose(cl[j], conv, rtol=0, atol=1e-14)
    np.testing.assert_allclose(ou.exact_covariance(1.0), cl[1], rtol=0, atol=0)


def test_covariance_continuum_limit_first_order():
    errs = []
    for dt in (1 / 16, 1 / 32):
        ou = OrnsteinUhlenbeck(n=8, dt=dt, lam=0.2, A=0.3)
        lags = np.array([0.0, 2.0, 5.0])
        d = ou.exact_covariance(lags)
        c = ou.exact_covariance(lags, discrete=False)
        errs.append(np.abs(d - c).max() / np.abs(c).max())
        amax = np.abs(ou.drift_symbol().real).max() * dt
        assert errs[-1] <= 1.01 * amax
    assert 1.9 < errs[0] / errs[1] < 2.1


# ------------------------------------------------------------------------ score
@pytest.mark.parametrize("params", [{}, {"lam": 0.5, "kappa": 0.02, "A": 0.3, "dt": 1 / 16}])
def test_exact_score_is_minus_inverse_covariance(params):
    ou = OrnsteinUhlenbeck(n=8, **params)
    cmat = circulant_covariance(ou.exact_covariance())
    u = np.random.default_rng(3).standard_normal((5, 8, 8)) * 0.3
    expected = -np.linalg.solve(cmat, u.reshape(5, 64).T).T.reshape(5, 8, 8)
    got = ou.exact_score(u)
    assert got.shape == (5, 8, 8)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * np.abs(expected).max())
    np.testing.assert_allclose(ou.exact_score(u[0]), expected[0], rtol=0,
                               atol=1e-9 * np.abs(expected).max())


def continuum_score(ou: OrnsteinUhlenbeck, u: np.ndarray) -> np.ndarray:
    """(2 / eps2)(-lam u + kappa Lap u - kappa Lap^2 u) / n^2, numpy FFT."""
    k2 = full_k2(ou.n)
    sym = (2.0 / ou.eps2) * (-ou.lam - ou.kappa * k2 - ou.kappa * k2**2) / ou.n**2
    return np.fft.irfft2(sym * np.fft.rfft2(u), s=u.shape[-2:])


def test_exact_score_close_to_continuum_formula():
    u = np.random.default_rng(4).standard_normal((3, 8, 8))
    errs = []
    for dt in (1 / 32, 1 / 64):
        ou = OrnsteinUhlenbeck(n=8, dt=dt)
        sc = continuum_score(ou, u)
        rel = np.linalg.norm(ou.exact_score(u) - sc) / np.linalg.norm(sc)
        # per mode the two differ by S_cont/S_disc - 1 = a + O(a^2), a = Re(L) dt
        amax = np.abs(ou.drift_symbol().real).max() * dt
        assert rel <= amax * (1 + amax)
        errs.append(rel)
    assert 1.9 < errs[0] / errs[1] < 2.1


# ----------------------------------------------------------------- response
def test_exact_response_at_zero_is_delta():
    ou = OrnsteinUhlenbeck(n=8)
    for discrete in (True, False):
        r = ou.exact_response([0.0], discrete=discrete)
        assert r.dims == ("lag", "y", "x")
        delta = np.zeros((1, 8, 8))
        delta[0, 0, 0] = 1.0
        np.testing.assert_allclose(r.values, delta, rtol=0, atol=1e-15)
    assert OrnsteinUhlenbeck().exact_response([0.0]).sel(x=0, y=0).item() == pytest.approx(1.0)


def test_exact_response_is_the_discrete_propagator():
    """Propagating a delta m steps with g_k (numpy, from the definition) gives R."""
    ou = OrnsteinUhlenbeck(n=8, dt=0.125, lam=0.3, kappa=0.01, A=0.5)
    L = ou.drift_symbol()
    r = np.zeros((8, 8))
    r[0, 0] = 1.0
    rh = np.fft.rfft2(r)
    out = ou.exact_response([0.0, 0.5, 1.0]).values
    for j, m in enumerate([0, 4, 8]):
        vh = rh.copy()
        for _ in range(m):  # one explicit RK4 step on dv/dt = L v per step
            k1 = L * vh
            k2 = L * (vh + 0.5 * ou.dt * k1)
            k3 = L * (vh + 0.5 * ou.dt * k2)
            k4 = L * (vh + ou.dt * k3)
            vh = vh + ou.dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        np.testing.assert_allclose(out[j], np.fft.irfft2(vh, s=(8, 8)), rtol=0, atol=1e-14)


def test_exact_response_discrete_close_to_continuous():
    ou = OrnsteinUhlenbeck(n=8, A=0.3)
    lags = np.array([0.0, 1.0, 10.0, 50.0])
    d = ou.exact_response(lags).values
    c = ou.exact_response(lags, discrete=False).values
    z = ou.drift_symbol() * ou.dt
    g = ou.amplification()
    assert np.all(np.abs(g) <= 1) and np.all(np.abs(np.exp(z)) <= 1)
    for j, t in enumerate(lags):
        m = round(t / ou.dt)
        # |g^m - e^{mz}| <= m |g - e^z| for |g|, |e^z| <= 1; the inverse real FFT of a
        # symbol bounded by b_k is bounded by 2 sum_k b_k / n^2 (rfft half-spectrum)
        bound = 2.0 * (m * np.abs(g - np.exp(z))).sum() / ou.n**2
        assert np.abs(d[j] - c[j]).max() <= bound + 1e-15
        # RK4 is 4th order, |g - e^z| <= |z|^5 (1 + |z|) / 120: the gap is O(t dt^4)
        a_priori = 2.0 * (m * np.abs(z) ** 5 * (1 + np.abs(z)) / 120).sum() / ou.n**2
        assert bound <= a_priori + 1e-15


def test_exact_response_semigroup():
    ou = OrnsteinUhlenbeck(n=8, A=0.3, lam=0.3)
    r = ou.exact_response([1.0, 2.0, 3.0]).values
    conv = np.zeros((8, 8))
    for ry in range(8):
        for rx in range(8):
            conv += r[0, ry, rx] * np.roll(r[1], (ry, rx), axis=(0, 1))
    np.testing.assert_allclose(conv, r[2], rtol=0, atol=1e-14)
    # advection in +x: the response moves downstream
    assert r[2][0, 1] > r[2][0, -1]


# ------------------------------------------------------------ vs simulation
@pytest.mark.parametrize("lag_samples", [0, 2, 6])
def test_exact_covariance_matches_simulation(fast_ou, ou_run, lag_samples):
    u = ou_run.u.values
    n_members = u.shape[0]
    c = fast_ou.exact_covariance(lag_samples * ou_run.attrs["gfdt_save_interval"])
    for offset in [(0, 0), (0, 1), (1, 0), (1, 1), (0, -1), (2, 0)]:
        est = per_member_cross(u, u, offset, lag_samples)  # mean is 0 exactly
        se = est.std(ddof=1) / np.sqrt(n_members)
        assert abs(est.mean() - c[offset]) <= 4 * se, (offset, est.mean(), c[offset], se)
    if lag_samples == 0:  # the check has power: the variance is known to 1 %
        assert se < 0.01 * c[0, 0]


def test_stein_sum_rule_on_simulated_data(fast_ou, ou_run):
    """-E[u(x + r) s(x)] averaged over x equals delta_r for the exact score."""
    u = ou_run.u.values
    s = fast_ou.exact_score(u)
    n_members = u.shape[0]
    est = np.empty((n_members, 8, 8))
    for ry in range(8):
        for rx in range(8):
            est[:, ry, rx] = -per_member_cross(u, s, (ry, rx), 0)
    mean = est.mean(axis=0)
    se = est.std(axis=0, ddof=1) / np.sqrt(n_members)
    delta = np.zeros((8, 8))
    delta[0, 0] = 1.0
    # 64 offsets: 5 standard errors keeps the family-wise false alarm rate ~1e-3
    assert np.all(np.abs(mean - delta) <= 5 * se)
    assert se[0, 0] < 0.01


# ------------------------------------------------------ kernel vs reference
@pytest.mark.parametrize("params", [{"n": 8, "dt": 1 / 16, "lam": 0.5, "kappa": 0.02, "A": 0.3},
                                    {"n": 16}])
def test_kernel_matches_numpy_reference(params):
    ou = OrnsteinUhlenbeck(**params)
    rng = np.random.default_rng(8)
    u0 = 0.3 * rng.standard_normal((3, ou.n, ou.n))
    seed = 99
    burn_steps, save_every, n_saves = 20, 5, 4
    ds = gfdt.simulate(ou, n_members=3, burn_in=burn_steps * ou.dt,
                       duration=n_saves * save_every * ou.dt, save_interval=save_every * ou.dt,
                       seed=seed, initial=u0, n_workers=1, progress=False)
    rngs = member_generators(np.random.SeedSequence(seed), 3)
    ref = ou_reference_run(ou, u0, burn_steps, rngs)
    got = ds.u.values
    np.testing.assert_allclose(got[:, 0], ref, rtol=0, atol=1e-10)
    for j in range(1, n_saves):
        ref = ou_reference_run(ou, ref, save_every, rngs)
        np.testing.assert_allclose(got[:, j], ref, rtol=0, atol=1e-10)
    assert np.abs(got[:, -1] - u0).max() > 0.01  # the run actually moved
