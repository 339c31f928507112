"""Spectral toolkit: wavenumber layout, operator symbols, Nyquist convention, FFT helpers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gfdt.systems import _spectral as sp

NS = [4, 8, 16]


def grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Physical coordinates (Y, X), each (n, n), built without the library."""
    c = 2.0 * np.pi * np.arange(n) / n
    return np.meshgrid(c, c, indexing="ij")


def apply(symbol: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Apply a Fourier symbol to a real field with numpy's FFT."""
    return np.fft.irfft2(symbol * np.fft.rfft2(f), s=f.shape)


# ----------------------------------------------------------------------- layout
@pytest.mark.parametrize("n", NS)
def test_coordinates(n):
    np.testing.assert_allclose(sp.coordinates(n), np.linspace(0, 2 * np.pi, n, endpoint=False),
                               rtol=0, atol=1e-15)


@pytest.mark.parametrize("n", NS)
def test_wavenumber_layout_matches_rfft2(n):
    ky, kx = sp.wavenumbers(n)
    assert ky.shape == (n, 1)
    assert kx.shape == (1, n // 2 + 1)
    assert np.fft.rfft2(np.zeros((n, n))).shape == (n, n // 2 + 1)
    np.testing.assert_array_equal(ky[:, 0], np.rint(ky[:, 0]))
    np.testing.assert_array_equal(kx[0], np.arange(n // 2 + 1))
    # the Nyquist row carries -n/2
    assert ky[n // 2, 0] == -n // 2
    Y, X = grid(n)
    # a plane wave cos(a x + b y) with 0 < a < n/2 has a single stored rfft2 coefficient,
    # at the index whose wavenumbers are (b, a)
    for iy in range(n):
        for ix in range(1, n // 2):
            f = np.cos(kx[0, ix] * X + ky[iy, 0] * Y)
            fh = np.fft.rfft2(f)
            peak = np.unravel_index(np.argmax(np.abs(fh)), fh.shape)
            assert peak == (iy, ix)
            np.testing.assert_allclose(abs(fh[iy, ix]), n * n / 2, rtol=1e-12)


@pytest.mark.parametrize("n", NS)
def test_k_squared_and_sigma(n):
    ky, kx = sp.wavenumbers(n)
    np.testing.assert_array_equal(sp.k_squared(n), ky**2 + kx**2)
    np.testing.assert_array_equal(sp.laplacian_symbol(n), -(ky**2 + kx**2))
    np.testing.assert_allclose(sp.sigma_symbol(n), 1.0 / (1.0 + ky**2 + kx**2), rtol=1e-15)
    # Sigma inverts (1 - Laplacian) on a random field
    f = np.random.default_rng(0).standard_normal((n, n))
    g = apply(sp.sigma_symbol(n), f)
    np.testing.assert_allclose(g - apply(sp.laplacian_symbol(n), g), f, rtol=0, atol=1e-12)


@pytest.mark.parametrize("bad", [3, 7, 2, 0, -4])
def test_check_n_rejects_bad_sizes(bad):
    with pytest.raises(ValueError, match="n must be an even integer"):
        sp.wavenumbers(bad)


@pytest.mark.parametrize("bad", [8.0, True, "8"])
def test_check_n_rejects_non_int(bad):
    with pytest.raises(TypeError, match="n must be an int"):
        sp.coordinates(bad)


# -------------------------------------------------------------------- Laplacian
@pytest.mark.parametrize("n", NS)
def test_laplacian_of_trig_modes(n):
    Y, X = grid(n)
    lap = sp.laplacian_symbol(n)
    h = n // 2
    for a in range(h + 1):
        for b in range(-h + 1, h + 1):
            for f in (np.cos(a * X + b * Y), np.sin(a * X + b * Y)):
                if np.abs(f).max() < 1e-12:  # sin of a Nyquist mode vanishes on the grid
                    continue
                np.testing.assert_allclose(apply(lap, f), -(a * a + b * b) * f, rtol=0,
                                           atol=1e-11 * n * n)


@pytest.mark.parametrize("n", NS)
def test_laplacian_keeps_nyquist(n):
    """Even operators keep the Nyquist mode: Lap cos(n/2 x) = -(n/2)^2 cos(n/2 x)."""
    Y, X = grid(n)
    h = n // 2
    lap = sp.laplacian_symbol(n)
    for f, k2 in ((np.cos(h * X), h * h), (np.cos(h * Y), h * h),
                  (np.cos(h * X) * np.cos(h * Y), 2 * h * h)):
        np.testing.assert_allclose(apply(lap, f), -k2 * f, rtol=0, atol=1e-12 * k2)


# ------------------------------------------------------------------ derivatives
@pytest.mark.parametrize("n", NS)
def test_dx_dy_of_sines(n):
    Y, X = grid(n)
    dx, dy = sp.dx_symbol(n), sp.dy_symbol(n)
    assert dx.dtype == np.complex128 and dx.shape == (n, n // 2 + 1)
    for k in range(1, n // 2):
        np.testing.assert_allclose(apply(dx, np.sin(k * X)), k * np.cos(k * X), rtol=0,
                                   atol=1e-12 * k)
        np.testing.assert_allclose(apply(dx, np.cos(k * X)), -k * np.sin(k * X), rtol=0,
                                   atol=1e-12 * k)
        np.testing.assert_allclose(apply(dy, np.sin(k * Y)), k * np.cos(k * Y), rtol=0,
                                   atol=1e-12 * k)
        # a mixed mode: d/dx sin(k x + y) = k cos(k x + y), d/dy of it = cos(k x + y)
        f = np.sin(k * X + Y)
        np.testing.assert_allclose(apply(dx, f), k * np.cos(k * X + Y), rtol=0, atol=1e-12 * k)
        np.testing.assert_allclose(apply(dy, f), np.cos(k * X + Y), rtol=0, atol=1e-12 * k)


@pytest.mark.parametrize("n", NS)
def test_odd_operators_vanish_on_nyquist(n):
    """Documented convention: first derivatives are zero on the Nyquist row/column."""
    Y, X = grid(n)
    h = n // 2
    dx, dy = sp.dx_symbol(n), sp.dy_symbol(n)
    np.testing.assert_array_equal(dx[:, -1], 0)
    np.testing.assert_array_equal(dy[h, :], 0)
    # ... and nowhere else except k = 0
    ky, kx = sp.wavenumbers(n)
    np.testing.assert_array_equal(dx[:, :-1], np.broadcast_to(1j * kx[:, :-1], (n, h)))
    keep = np.arange(n) != h
    np.testing.assert_array_equal(dy[keep], np.broadcast_to(1j * ky[keep], (n - 1, h + 1)))
    np.testing.assert_array_equal(apply(dx, np.cos(h * X)), np.zeros((n, n)))
    np.testing.assert_array_equal(apply(dy, np.cos(h * Y)), np.zeros((n, n)))
    # the x-derivative still acts on the y-Nyquist mode (it is not x-Nyquist)
    f = np.cos(h * Y) * np.sin(X)
    np.testing.assert_allclose(apply(dx, f), np.cos(h * Y) * np.cos(X), rtol=0, atol=1e-12)


def random_trig_field(rng: np.random.Generator, n: int):
    """A random field of non-Nyquist modes with its analytic x and y derivatives."""
    Y, X = grid(n)
    f = np.zeros((n, n))
    fx = np.zeros((n, n))
    fy = np.zeros((n, n))
    h = n // 2
    for a in range(-h + 1, h):
        for b in range(-h + 1, h):
            c, s = rng.standard_normal(2)
            ph = a * X + b * Y
            f += c * np.cos(ph) + s * np.sin(ph)
            fx += a * (-c * np.sin(ph) + s * np.cos(ph))
            fy += b * (-c * np.sin(ph) + s * np.cos(ph))
    return f, fx, fy


@settings(max_examples=10, deadline=None)
@given(n=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**32 - 1))
def test_derivatives_of_random_trig_polynomials(n, seed):
    f, fx, fy = random_trig_field(np.random.default_rng(seed), n)
    scale = np.abs(f).max() * n
    np.testing.assert_allclose(apply(sp.dx_symbol(n), f), fx, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(apply(sp.dy_symbol(n), f), fy, rtol=0, atol=1e-12 * scale)


@settings(max_examples=15, deadline=None)
@given(n=st.sampled_from([4, 8, 16]), seed=st.integers(0, 2**32 - 1))
def test_dx_dy_antisymmetric_laplacian_symmetric(n, seed):
    """sum(v dx u) = -sum(u dx v) (Nyquist included, thanks to the convention)."""
    rng = np.random.default_rng(seed)
    u, v = rng.standard_normal((2, n, n))
    for sym in (sp.dx_symbol(n), sp.dy_symbol(n)):
        lhs = np.sum(v * apply(sym, u))
        rhs = -np.sum(u * apply(sym, v))
        assert abs(lhs - rhs) <= 1e-12 * n**3
    # independent route: full complex FFT with i k_x, Nyquist zeroed
    k = np.fft.fftfreq(n, 1.0 / n)
    k[n // 2] = 0.0
    ux = np.fft.ifft2(np.fft.fft2(u) * 1j * k[None, :]).real
    uy = np.fft.ifft2(np.fft.fft2(u) * 1j * k[:, None]).real
    np.testing.assert_allclose(apply(sp.dx_symbol(n), u), ux, rtol=0, atol=1e-12 * n**2)
    np.testing.assert_allclose(apply(sp.dy_symbol(n), u), uy, rtol=0, atol=1e-12 * n**2)
    lap = sp.laplacian_symbol(n)
    assert abs(np.sum(v * apply(lap, u)) - np.sum(u * apply(lap, v))) <= 1e-12 * n**4


# ------------------------------------------------------------------ numba FFTs
@pytest.mark.parametrize("n", NS)
def test_rfft2_into_irfft2_into_match_numpy(n):
    rng = np.random.default_rng(n)
    u = rng.standard_normal((n, n))
    u_copy = u.copy()
    out = np.empty((n, n // 2 + 1), dtype=np.complex128)
    sp.rfft2_into(u, out)
    np.testing.assert_allclose(out, np.fft.rfft2(u), rtol=0, atol=1e-12 * n)
    np.testing.assert_array_equal(u, u_copy)

    uh = np.fft.rfft2(rng.standard_normal((n, n)))
    uh_copy = uh.copy()
    back = np.empty((n, n))
    sp.irfft2_into(uh, back)
    np.testing.assert_allclose(back, np.fft.irfft2(uh, s=(n, n)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(uh, uh_copy)  # the inverse leaves its input untouched

    # an arbitrary (non-Hermitian-consistent) spectrum: still numpy's answer, input kept
    vh = rng.standard_normal((n, n // 2 + 1)) + 1j * rng.standard_normal((n, n // 2 + 1))
    vh_copy = vh.copy()
    sp.irfft2_into(vh, back)
    np.testing.assert_allclose(back, np.fft.irfft2(vh, s=(n, n)), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(vh, vh_copy)


def test_fill_standard_normal_matches_numpy_stream():
    a = np.empty((4, 6))
    sp.fill_standard_normal(np.random.default_rng(11), a)
    np.testing.assert_array_equal(a, np.random.default_rng(11).standard_normal((4, 6)))


# ------------------------------------------------------------------------- RK4
def rk4_step(f, y, dt):
    k1 = f(y)
    k2 = f(y + 0.5 * dt * k1)
    k3 = f(y + 0.5 * dt * k2)
    k4 = f(y + dt * k3)
    return y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)


@settings(max_examples=20, deadline=None)
@given(re=st.floats(-3.0, 0.5), im=st.floats(-3.0, 3.0), dt=st.floats(0.01, 1.0))
def test_rk4_factor_is_one_rk4_step(re, im, dt):
    lam = complex(re, im)
    y0 = 0.7 - 0.2j
    step = rk4_step(lambda y: lam * y, y0, dt)
    np.testing.assert_allclose(sp.rk4_factor(lam * dt) * y0, step, rtol=1e-13, atol=1e-15)


def test_rk4_factor_array_and_exp_accuracy():
    z = np.array([0.0, -0.1, -0.05 + 0.02j])
    g = sp.rk4_factor(z)
    assert g.shape == z.shape
    assert g[0] == 1.0
    # classical RK4 is 4th order: |g - e^z| <= |z|^5 / 120 * (1 + |z|) for small z
    err = np.abs(g - np.exp(z))
    assert np.all(err <= np.abs(z) ** 5 / 120 * (1 + np.abs(z)) + 1e-16)
