"""Modified stochastic Allen-Cahn equation (paper Eq. 9) with its exact score.

.. math::

    \\partial_t u = \\kappa \\Delta u - A \\partial_x u
                    + \\alpha \\Sigma\\big(u (1 - u^2)\\big)
                    + \\epsilon \\Sigma^{1/2} \\xi,
    \\qquad \\Sigma = (1 - \\Delta)^{-1}.

Writing :math:`\\kappa\\Delta u = \\Sigma(\\kappa\\Delta u - \\kappa\\Delta^2 u)`, the
non-advective drift is :math:`-\\Sigma \\nabla E` with
:math:`-\\nabla E = \\alpha u(1 - u^2) + \\kappa(\\Delta u - \\Delta^2 u)`; the
advection is divergence free and orthogonal to :math:`\\nabla E`, so the stationary
density is :math:`p \\propto \\exp(-2E / (n^2 \\epsilon^2))` although the dynamics is
not reversible. Statistics are bimodal near :math:`\\pm 1`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numba as nb
import numpy as np

from gfdt.systems._spectral import (
    dx_symbol,
    fill_standard_normal,
    irfft2_into,
    k_squared,
    max_abs,
    rfft2_into,
    sigma_symbol,
)
from gfdt.systems.base import System

__all__ = ["AllenCahn"]


@nb.njit(nogil=True, cache=True, fastmath=True)
def _reaction(v, w):  # pragma: no cover - numba
    """w = v - v^3 (vectorised)."""
    for a in range(v.shape[0]):
        for b in range(v.shape[1]):
            x = v[a, b]
            w[a, b] = x - x * x * x


@nb.njit(nogil=True, cache=True, fastmath=True)
def _stage(vh, wh, lr, li, nl, base, acc, st, wa, cs, init):  # pragma: no cover - numba
    """k = lin vh + nlin wh; acc (+)= wa k; st = base + cs k. Complex arrays as float pairs.

    ``vh``, ``wh``, ``base``, ``acc``, ``st``: (n, 2m) float views of complex arrays;
    ``lr``, ``li``: real and imaginary parts of the linear symbol, ``nl``: the real
    reaction symbol, shape (n, m).
    """
    for a in range(lr.shape[0]):
        for b in range(lr.shape[1]):
            vr = vh[a, 2 * b]
            vi = vh[a, 2 * b + 1]
            kr = lr[a, b] * vr - li[a, b] * vi + nl[a, b] * wh[a, 2 * b]
            ki = lr[a, b] * vi + li[a, b] * vr + nl[a, b] * wh[a, 2 * b + 1]
            if init:
                acc[a, 2 * b] = base[a, 2 * b] + wa * kr
                acc[a, 2 * b + 1] = base[a, 2 * b + 1] + wa * ki
            else:
                acc[a, 2 * b] += wa * kr
                acc[a, 2 * b + 1] += wa * ki
            st[a, 2 * b] = base[a, 2 * b] + cs * kr
            st[a, 2 * b + 1] = base[a, 2 * b + 1] + cs * ki


@nb.njit(nogil=True, cache=True, fastmath=True)
def _finish(vh, wh, lr, li, nl, acc, h6, amp, xh, uh):  # pragma: no cover - numba
    """Last RK4 stage and the noise: uh = acc + h6 k + amp xh (float views)."""
    for a in range(lr.shape[0]):
        for b in range(lr.shape[1]):
            vr = vh[a, 2 * b]
            vi = vh[a, 2 * b + 1]
            kr = lr[a, b] * vr - li[a, b] * vi + nl[a, b] * wh[a, 2 * b]
            ki = lr[a, b] * vi + li[a, b] * vr + nl[a, b] * wh[a, 2 * b + 1]
            uh[a, 2 * b] = acc[a, 2 * b] + h6 * kr + amp[a, b] * xh[a, 2 * b]
            uh[a, 2 * b + 1] = acc[a, 2 * b + 1] + h6 * ki + amp[a, b] * xh[a, 2 * b + 1]


@nb.njit(nogil=True, cache=True)
def _ac_kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, lr, li, nl, amp,
               dt):  # pragma: no cover - numba
    """RK4 on the drift in Fourier space, then the correlated noise increment."""
    n = u.shape[0]
    m = n // 2 + 1
    uh = np.empty((n, m), dtype=np.complex128)
    acc = np.empty((n, m), dtype=np.complex128)
    st = np.empty((n, m), dtype=np.complex128)
    wh = np.empty((n, m), dtype=np.complex128)
    xh = np.empty((n, m), dtype=np.complex128)
    uf = uh.view(np.float64)
    af = acc.view(np.float64)
    sf = st.view(np.float64)
    wf = wh.view(np.float64)
    xf = xh.view(np.float64)
    v = np.empty((n, n))
    w = np.empty((n, n))
    xi = np.empty((n, n))
    rfft2_into(u, uh)
    h2 = 0.5 * dt
    h3 = dt / 3.0
    h6 = dt / 6.0
    j = 0
    for step in range(1, n_steps + 1):
        # stage 1 (v = the state at the step start: checked for divergence)
        irfft2_into(uh, v)
        if not (max_abs(v) <= threshold):
            irfft2_into(uh, u)
            return step - 1
        _reaction(v, w)
        rfft2_into(w, wh)
        _stage(uf, wf, lr, li, nl, uf, af, sf, h6, h2, True)
        # stages 2 and 3
        for c in (h2, dt):
            irfft2_into(st, v)
            _reaction(v, w)
            rfft2_into(w, wh)
            _stage(sf, wf, lr, li, nl, uf, af, sf, h3, c, False)
        # stage 4, then the noise
        irfft2_into(st, v)
        _reaction(v, w)
        rfft2_into(w, wh)
        fill_standard_normal(rng, xi)
        rfft2_into(xi, xh)
        _finish(sf, wf, lr, li, nl, af, h6, amp, xf, uf)
        if save_every > 0 and step % save_every == 0:
            irfft2_into(uh, out[j])
            if not (max_abs(out[j]) <= threshold):
                irfft2_into(uh, u)
                return step
            aux_out[j, :] = aux
            j += 1
    irfft2_into(uh, u)
    if not (max_abs(u) <= threshold):
        return n_steps
    return -1


@dataclasses.dataclass(frozen=True)
class AllenCahn(System):
    """Modified stochastic Allen-Cahn equation (paper Eq. 9), paper defaults.

    Time stepping: classical RK4 on the drift, carried out in Fourier space (two real
    transforms per stage), then the additive noise increment
    :math:`\\sqrt{dt}\\, n \\epsilon \\Sigma^{1/2}\\xi` (covariance
    :math:`dt\\, n^2\\epsilon^2\\Sigma`). Nyquist convention as in
    :mod:`gfdt.systems._spectral`.

    Parameters
    ----------
    n : int
        Grid points per direction (even).
    dt : float
        Time step.
    alpha : float
        Strength :math:`\\alpha` of the double-well reaction.
    kappa : float
        Diffusivity :math:`\\kappa`.
    A : float
        Advection speed in +x.
    eps2 : float
        Noise variance :math:`\\epsilon^2`.

    Notes
    -----
    Two known departures of the *discrete* chain from :math:`\\exp(-2E/n^2\\epsilon^2)`
    (paper spec section 7): a time-step bias (near the wells the mean mode relaxes at
    rate :math:`\\approx 2\\alpha`, so :math:`2\\alpha\\, dt = 1` at the default dt) and
    a small advection-induced bias (the grid has no discrete chain rule, so
    :math:`\\sum (\\partial_x u) u^3 \\neq 0`). The exact score is exact for the
    continuum law; the paired perturbation truth is the reference.
    """

    n: int = 32
    dt: float = 1.0 / 32.0
    alpha: float = 16.0
    kappa: float = 2.5e-4
    A: float = 0.02
    eps2: float = 0.004

    long_name: ClassVar[str] = "Allen-Cahn order parameter"
    sensitivity_parameters: ClassVar[tuple[str, ...]] = ("alpha", "kappa", "A", "eps2")
    transforms_per_step: ClassVar[tuple[int, int, int]] = (5, 4, 1)

    @property
    def normals_per_step(self) -> int:
        """One (n, n) field of standard normals per step (the noise)."""
        return self.n * self.n

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.eps2 <= 0:
            raise ValueError(f"eps2 must be > 0, got {self.eps2}")
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")

    def linear_symbol(self) -> np.ndarray:
        """:math:`-\\kappa|k|^2 - A i k_x`, complex, shape (n, n//2+1)."""
        return -self.kappa * k_squared(self.n) - self.A * dx_symbol(self.n)

    def nonlinear_symbol(self) -> np.ndarray:
        """:math:`\\alpha \\sigma_k`, multiplier of :math:`\\widehat{u - u^3}`."""
        return self.alpha * sigma_symbol(self.n)

    def noise_symbol(self) -> np.ndarray:
        """Multiplier of the white-noise FFT, :math:`\\sqrt{dt}\\, n \\epsilon \\sigma_k^{1/2}`."""
        return math.sqrt(self.dt * self.eps2) * self.n * np.sqrt(sigma_symbol(self.n))

    def drift(self, u: np.ndarray) -> np.ndarray:
        """Deterministic tendency :math:`du/dt` for fields of shape (..., n, n) (numpy)."""
        u = np.asarray(u, dtype=float)
        uh = np.fft.rfft2(u)
        return np.fft.irfft2(self.linear_symbol() * uh
                             + self.nonlinear_symbol() * np.fft.rfft2(u - u**3),
                             s=self.state_shape)

    # ---------------------------------------------------------- sensitivities
    def drift_derivative(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\partial F/\\partial\\theta`: :math:`\\Sigma(u - u^3)` (``alpha``),
        :math:`\\Delta u` (``kappa``), :math:`-\\partial_x u` (``A``), 0 (``eps2``).

        Parameters
        ----------
        u : numpy.ndarray, shape (m, n, n)
        parameter : {"alpha", "kappa", "A", "eps2"}

        Returns
        -------
        numpy.ndarray, shape (m, n, n)
        """
        self.check_parameter(parameter)
        u = np.asarray(u, dtype=float)
        if u.ndim < 2 or u.shape[-2:] != self.state_shape:
            raise ValueError(f"u must have shape (m, {self.n}, {self.n}), got {u.shape}")
        if parameter == "alpha":
            return np.fft.irfft2(sigma_symbol(self.n) * np.fft.rfft2(u - u**3),
                                 s=self.state_shape)
        sym = {"kappa": -k_squared(self.n), "A": -dx_symbol(self.n)}.get(parameter)
        if sym is None:  # eps2: noise only
            return np.zeros_like(u)
        return np.fft.irfft2(sym * np.fft.rfft2(u), s=self.state_shape)

    def drift_derivative_divergence(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """Exact :math:`\\nabla\\cdot(\\partial F/\\partial\\theta)`, shape (m,):
        :math:`\\Sigma_{00}\\sum_i (1 - 3u_i^2)` for ``alpha`` (the Jacobian is
        :math:`\\Sigma\\,\\mathrm{diag}(1 - 3u^2)`), the trace of the circulant map
        otherwise (``kappa``: :math:`-\\sum_k |k|^2`; ``A``, ``eps2``: 0)."""
        self.check_parameter(parameter)
        u = np.asarray(u, dtype=float)
        m = u.shape[0]
        if parameter == "alpha":
            s00 = float(np.fft.irfft2(sigma_symbol(self.n), s=self.state_shape)[0, 0])
            return s00 * (1.0 - 3.0 * u**2).reshape(m, -1).sum(axis=1)
        if parameter == "kappa":
            trace = float(np.fft.irfft2(-k_squared(self.n).astype(float),
                                        s=self.state_shape)[0, 0]) * self.n**2
            return np.full(m, trace)
        return np.zeros(m)

    def diffusion_derivative(self, parameter: str) -> np.ndarray | None:
        """:math:`\\partial D/\\partial\\epsilon^2`: the circulant matrix of symbol
        :math:`n^2\\sigma_k/2` (as for the OU system); None for the other parameters.

        Returns
        -------
        numpy.ndarray, shape (n*n, n*n), or None
        """
        self.check_parameter(parameter)
        if parameter != "eps2":
            return None
        kernel = np.fft.irfft2(self.n**2 * sigma_symbol(self.n) / 2.0, s=self.state_shape)
        iy, ix = np.divmod(np.arange(self.n**2), self.n)
        return kernel[(iy[:, None] - iy[None, :]) % self.n, (ix[:, None] - ix[None, :]) % self.n]

    def _kernel(self):
        return _ac_kernel

    def _kernel_args(self) -> tuple:
        lin = self.linear_symbol()
        c = np.ascontiguousarray
        return (
            c(lin.real), c(lin.imag),
            c(self.nonlinear_symbol().astype(float)),
            c(self.noise_symbol().astype(float)),
            float(self.dt),
        )

    def stable_dt(self) -> float:
        """RK4 real-axis limit 2.78 over the largest linearised rate.

        Near the wells the reaction contributes :math:`2\\alpha\\sigma_k` (the
        linearisation of :math:`\\alpha\\Sigma(u - u^3)` at :math:`u = \\pm 1`).
        """
        rate = np.abs(self.linear_symbol() - 2 * self.alpha * sigma_symbol(self.n)).max()
        return 2.78 / float(rate)

    def energy_gradient(self, u: np.ndarray) -> np.ndarray:
        """:math:`\\nabla E = -\\alpha u(1-u^2) - \\kappa(\\Delta u - \\Delta^2 u)`."""
        u = np.asarray(u, dtype=float)
        k2 = k_squared(self.n)
        lap_terms = np.fft.irfft2(-(k2 + k2**2) * np.fft.rfft2(u), s=self.state_shape)
        return -self.alpha * u * (1.0 - u**2) - self.kappa * lap_terms

    def exact_score(self, u: np.ndarray) -> np.ndarray:
        """Score of :math:`p \\propto \\exp(-2E/(n^2\\epsilon^2))`.

        :math:`s = \\frac{2}{n^2\\epsilon^2}\\left[\\alpha u(1-u^2)
        + \\kappa(\\Delta u - \\Delta^2 u)\\right]`, the paper's continuum formula
        divided by :math:`n^2` (the grid factor of the noise convention).

        Parameters
        ----------
        u : array_like, shape (..., n, n)

        Returns
        -------
        numpy.ndarray, shape (..., n, n)
        """
        u = np.asarray(u, dtype=float)
        if u.ndim < 2 or u.shape[-2:] != self.state_shape:
            raise ValueError(f"u must have shape (..., {self.n}, {self.n}), got {u.shape}")
        return -2.0 / (self.n**2 * self.eps2) * self.energy_gradient(u)
