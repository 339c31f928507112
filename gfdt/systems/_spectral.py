"""Spectral toolkit for fields on the doubly periodic square :math:`[0, 2\\pi)^2`.

All operators are diagonal in Fourier space and are returned as *symbols* laid out
like :func:`numpy.fft.rfft2` output: shape ``(n, n // 2 + 1)``, rows the y wavenumber
``ky`` (``0, 1, ..., n/2 - 1, -n/2, ..., -1``), columns the x wavenumber
``kx = 0, ..., n/2``. Wavenumbers are integers because the domain has length
:math:`2\\pi`.

Nyquist convention
------------------
gfdt keeps the Nyquist wavenumber ``n/2`` in every *even* operator (the Laplacian,
:math:`\\Sigma = (1 - \\Delta)^{-1}`, powers of them) and in the noise, so that every
grid mode is excited and the stationary covariance is non-singular (the score exists
everywhere). *Odd* operators (the first derivatives :math:`\\partial_x`,
:math:`\\partial_y`) are set to zero on the Nyquist row/column: there ``i k`` would
map a real field to an imaginary one, which a real grid cannot represent. This is the
usual choice of spectral methods (e.g. Trefethen, *Spectral Methods in MATLAB*, ch. 3)
and it keeps :math:`\\partial_x` antisymmetric, so advection conserves the quadratic
invariants exactly.

The numba helpers :func:`rfft2_into` and :func:`irfft2_into` wrap rocket-fft's
low-level transforms with preallocated outputs; they use numpy's normalisation
(forward unscaled, inverse divided by ``n**2``).
"""

from __future__ import annotations

import numba as nb
import numpy as np
from rocket_fft import c2r, r2c

__all__ = [
    "coordinates",
    "dx_symbol",
    "dy_symbol",
    "irfft2_into",
    "k_squared",
    "laplacian_symbol",
    "max_abs",
    "resolved_impulse",
    "resolved_mask",
    "rfft2_into",
    "rfft_weights",
    "rk4_factor",
    "sigma_symbol",
    "wavenumbers",
]


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if n < 4 or n % 2:
        raise ValueError(f"n must be an even integer >= 4, got {n}")
    return int(n)


def coordinates(n: int) -> np.ndarray:
    """Grid point positions :math:`2\\pi j / n`, ``j = 0..n-1``.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Positions in the domain's length unit (the domain is ``[0, 2 pi)``).
    """
    n = _check_n(n)
    return 2.0 * np.pi * np.arange(n) / n


def resolved_mask(state_shape: tuple[int, ...]) -> np.ndarray:
    """Modes a grid resolves: every rfftn mode except those on a Nyquist line.

    On an axis of even length ``n`` the wavenumber ``n/2`` is its own alias: a real
    field carries only its cosine, no derivative of odd order is defined there, and in
    an operator with a zeroed Nyquist wavenumber (the paper's solver) it does not take
    part in the dynamics. These lines are the *unresolved* modes of the kick
    convention ``kick="resolved"`` (see the theory page, "Kick conventions").

    Parameters
    ----------
    state_shape : tuple of int
        Shape of the field, e.g. ``(n, n)``.

    Returns
    -------
    numpy.ndarray of bool, shape ``numpy.fft.rfftn(np.zeros(state_shape)).shape``
        False on the Nyquist lines (index ``n/2`` of every even axis), True elsewhere.
    """
    shape = tuple(int(v) for v in state_shape)
    if not shape or any(v < 1 for v in shape):
        raise ValueError(f"state_shape must be a non-empty tuple of positive ints, "
                         f"got {state_shape!r}")
    spec = (*shape[:-1], shape[-1] // 2 + 1)
    mask = np.ones(spec, dtype=bool)
    for axis, v in enumerate(shape):
        if v % 2 == 0:
            index = [slice(None)] * len(shape)
            index[axis] = v // 2
            mask[tuple(index)] = False
    return mask


def rfft_weights(state_shape: tuple[int, ...]) -> np.ndarray:
    """Multiplicity of each rfftn mode in the full spectrum (1 or 2), rfftn layout.

    For a real field :math:`x`, :math:`\\sum_{\\text{all } k} |\\hat x_k|^2 =
    \\sum_{\\text{rfftn } k} w_k |\\hat x_k|^2`: the conjugate mode :math:`-k` of every
    column but ``kx = 0`` and (even length) the last is not stored.
    """
    n_last = int(state_shape[-1])
    w = np.full((*state_shape[:-1], n_last // 2 + 1), 2.0)
    w[..., 0] = 1.0
    if n_last % 2 == 0:
        w[..., -1] = 1.0
    return w


def resolved_impulse(state_shape: tuple[int, ...]) -> np.ndarray:
    """The unit pixel impulse at the origin restricted to the resolved modes.

    :math:`P\\delta_0` with :math:`P` the projection that removes the Nyquist lines
    (:func:`resolved_mask`). Its value at the origin is
    :math:`\\prod_a (1 - 1/n_a)` over the even axes; the kick at pixel ``p`` is this
    field rolled by ``p``.

    Returns
    -------
    numpy.ndarray, shape ``state_shape``
    """
    shape = tuple(int(v) for v in state_shape)
    return np.fft.irfftn(resolved_mask(shape).astype(float), s=shape,
                         axes=tuple(range(len(shape))))


def wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer wavenumbers in rfft2 layout.

    Returns
    -------
    ky : numpy.ndarray, shape (n, 1)
        ``0, 1, ..., n/2 - 1, -n/2, ..., -1`` (the Nyquist row carries ``-n/2``).
    kx : numpy.ndarray, shape (1, n // 2 + 1)
        ``0, 1, ..., n/2`` (the last column is the Nyquist column).
    """
    n = _check_n(n)
    ky = np.fft.fftfreq(n, d=1.0 / n).reshape(n, 1)
    kx = np.fft.rfftfreq(n, d=1.0 / n).reshape(1, n // 2 + 1)
    return ky, kx


def k_squared(n: int) -> np.ndarray:
    """:math:`|k|^2 = k_x^2 + k_y^2`, Nyquist included, shape ``(n, n//2+1)``."""
    ky, kx = wavenumbers(n)
    return ky**2 + kx**2


def laplacian_symbol(n: int) -> np.ndarray:
    """Symbol of the Laplacian, :math:`-|k|^2`, shape ``(n, n//2+1)``."""
    return -k_squared(n)


def sigma_symbol(n: int) -> np.ndarray:
    """Symbol of :math:`\\Sigma = (1 - \\Delta)^{-1}`, :math:`1 / (1 + |k|^2)`."""
    return 1.0 / (1.0 + k_squared(n))


def dx_symbol(n: int) -> np.ndarray:
    """Symbol of :math:`\\partial_x`, :math:`i k_x`, zero on the Nyquist column.

    Returns
    -------
    numpy.ndarray of complex128, shape (n, n // 2 + 1)
    """
    _ky, kx = wavenumbers(n)
    kx = kx.copy()
    kx[0, -1] = 0.0
    return np.broadcast_to(1j * kx, (n, n // 2 + 1)).copy()


def dy_symbol(n: int) -> np.ndarray:
    """Symbol of :math:`\\partial_y`, :math:`i k_y`, zero on the Nyquist row."""
    ky, _kx = wavenumbers(n)
    ky = ky.copy()
    ky[n // 2, 0] = 0.0
    return np.broadcast_to(1j * ky, (n, n // 2 + 1)).copy()


def rk4_factor(z: np.ndarray) -> np.ndarray:
    """Amplification factor of classical RK4 for :math:`\\dot u = L u` with ``z = L dt``.

    RK4 applied to a linear diagonal system multiplies each mode by
    :math:`1 + z + z^2/2 + z^3/6 + z^4/24` exactly.
    """
    z = np.asarray(z)
    return 1.0 + z * (1.0 + z / 2.0 * (1.0 + z / 3.0 * (1.0 + z / 4.0)))


@nb.njit(nogil=True, cache=True)
def rfft2_into(u: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    """Forward real 2-D FFT of ``u`` (n, n) into preallocated ``out`` (n, n//2+1)."""
    r2c(u, out, np.array([0, 1], dtype=np.int64), True, 1.0, 1)


@nb.njit(nogil=True, cache=True)
def irfft2_into(uh: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - numba
    """Inverse real 2-D FFT of ``uh`` (n, n//2+1) into preallocated ``out`` (n, n).

    ``uh`` is left untouched.
    """
    n = out.shape[0] * out.shape[1]
    c2r(uh, out, np.array([0, 1], dtype=np.int64), False, 1.0 / n, 1)


@nb.njit(nogil=True, cache=True)
def max_abs(v: np.ndarray) -> float:  # pragma: no cover - numba
    """max |v| over a 2-D array; NaN if any entry is NaN (the kernels' divergence test)."""
    vmax = 0.0
    for a in range(v.shape[0]):
        for b in range(v.shape[1]):
            x = abs(v[a, b])
            if not (x <= vmax):  # NaN propagates
                vmax = x
    return vmax


@nb.njit(nogil=True, cache=True)
def fill_standard_normal(rng, out: np.ndarray) -> None:  # pragma: no cover - numba
    """Fill a 2-D array with standard normals in C order (as ``rng.standard_normal``)."""
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = rng.standard_normal()
