"""Linear (Ornstein-Uhlenbeck) SPDE on the periodic square, with closed forms.

.. math::

    \\partial_t u = -\\lambda \\Sigma u + \\kappa \\Delta u - A \\partial_x u
                    + \\epsilon \\Sigma^{1/2} \\xi,
    \\qquad \\Sigma = (1 - \\Delta)^{-1}

(paper Eq. 6). Every operator is diagonal in Fourier space, so the stationary
covariance, the score and the response are closed forms per wavenumber.
"""

from __future__ import annotations

import dataclasses
import math
from typing import ClassVar

import numba as nb
import numpy as np
import xarray as xr

from gfdt.conventions import attrs as cf_attrs
from gfdt.systems._spectral import (
    dx_symbol,
    fill_standard_normal,
    irfft2_into,
    k_squared,
    max_abs,
    rfft2_into,
    rk4_factor,
    sigma_symbol,
)
from gfdt.systems.base import System

__all__ = ["OrnsteinUhlenbeck"]


@nb.njit(nogil=True, cache=True)
def _ou_kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, g,
               amp):  # pragma: no cover
    """Integrate the OU SPDE in Fourier space (see :class:`OrnsteinUhlenbeck`)."""
    n = u.shape[0]
    m = n // 2 + 1
    uh = np.empty((n, m), dtype=np.complex128)
    xh = np.empty((n, m), dtype=np.complex128)
    xi = np.empty((n, n))
    v = np.empty((n, n))
    rfft2_into(u, uh)
    check_every = save_every if save_every > 0 else 64
    j = 0
    for step in range(1, n_steps + 1):
        fill_standard_normal(rng, xi)
        rfft2_into(xi, xh)
        for a in range(n):
            for b in range(m):
                uh[a, b] = g[a, b] * uh[a, b] + amp[a, b] * xh[a, b]
        saving = save_every > 0 and step % save_every == 0
        if saving or step % check_every == 0 or step == n_steps:
            dest = out[j] if saving else v
            irfft2_into(uh, dest)
            if not (max_abs(dest) <= threshold):
                u[:, :] = dest
                return step
            if saving:
                aux_out[j, :] = aux
                j += 1
    irfft2_into(uh, u)
    return -1


@dataclasses.dataclass(frozen=True)
class OrnsteinUhlenbeck(System):
    """Linear stochastic PDE (paper Eq. 6) with the paper's parameters as defaults.

    Time stepping: classical RK4 on the drift followed by the additive noise increment
    :math:`\\sqrt{dt}\\, n\\, \\epsilon\\, \\Sigma^{1/2} \\xi` (covariance
    :math:`dt\\, n^2 \\epsilon^2 \\Sigma`, white noise normalised to grid cells). Since
    the drift is linear and diagonal in Fourier space, RK4 multiplies each mode by its
    amplification factor :math:`g_k` exactly; the kernel applies that factor directly.

    The closed forms describe the *discrete* chain (what the simulation samples):
    stationary spectrum :math:`S_k = q_k / (1 - |g_k|^2)` with
    :math:`q_k = dt\\, n^2 \\epsilon^2 \\sigma_k`, response :math:`g_k^m` after
    ``m`` steps. ``discrete=False`` gives the continuum limit instead.

    Parameters
    ----------
    n : int
        Grid points per direction (even).
    dt : float
        Time step.
    lam : float
        Damping :math:`\\lambda` of the smoothed field (rate, 1/time).
    kappa : float
        Diffusivity :math:`\\kappa`.
    A : float
        Advection speed in +x (domain lengths are 2 pi).
    eps2 : float
        Noise variance :math:`\\epsilon^2`.

    Examples
    --------
    >>> from gfdt.systems import OrnsteinUhlenbeck
    >>> ou = OrnsteinUhlenbeck()
    >>> ou.exact_response([0.0]).sel(x=0, y=0).item()
    1.0
    """

    n: int = 32
    dt: float = 1.0 / 32.0
    lam: float = 0.04
    kappa: float = 2.5e-4
    A: float = 0.02
    eps2: float = 0.004

    long_name: ClassVar[str] = "Ornstein-Uhlenbeck field"
    sensitivity_parameters: ClassVar[tuple[str, ...]] = ("lam", "kappa", "A", "eps2")
    gaussian: ClassVar[bool] = True
    transforms_per_step: ClassVar[tuple[int, int, int]] = (1, 0, 1)  # the noise FFT

    @property
    def normals_per_step(self) -> int:
        """One (n, n) field of standard normals per step (the noise)."""
        return self.n * self.n

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("lam", "eps2"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.kappa < 0:
            raise ValueError(f"kappa must be >= 0, got {self.kappa}")

    # ---------------------------------------------------------------- symbols
    def drift_symbol(self) -> np.ndarray:
        """:math:`L_k = -\\lambda \\sigma_k - \\kappa |k|^2 - A i k_x`, shape (n, n//2+1)."""
        return (
            -self.lam * sigma_symbol(self.n)
            - self.kappa * k_squared(self.n)
            - self.A * dx_symbol(self.n)
        )

    def amplification(self) -> np.ndarray:
        """Per-step RK4 factor :math:`g_k`, complex, shape (n, n//2+1)."""
        return rk4_factor(self.drift_symbol() * self.dt)

    def noise_symbol(self) -> np.ndarray:
        """Multiplier of the white-noise FFT, :math:`\\sqrt{dt}\\, n \\epsilon \\sigma_k^{1/2}`."""
        return math.sqrt(self.dt * self.eps2) * self.n * np.sqrt(sigma_symbol(self.n))

    def _kernel(self):
        return _ou_kernel

    def _kernel_args(self) -> tuple:
        return (
            np.ascontiguousarray(self.amplification()),
            np.ascontiguousarray(self.noise_symbol().astype(np.complex128)),
        )

    def stable_dt(self) -> float:
        """RK4's real-axis stability limit :math:`2.78 / \\max_k |L_k|`."""
        return 2.78 / float(np.abs(self.drift_symbol()).max())

    # ---------------------------------------------------------- sensitivities
    def _apply_symbol(self, u: np.ndarray, symbol: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if u.ndim < 2 or u.shape[-2:] != self.state_shape:
            raise ValueError(f"u must have shape (m, {self.n}, {self.n}), got {u.shape}")
        return np.fft.irfft2(symbol * np.fft.rfft2(u), s=self.state_shape)

    def _drift_derivative_symbol(self, parameter: str) -> np.ndarray:
        self.check_parameter(parameter)
        if parameter == "lam":
            return -sigma_symbol(self.n).astype(complex)
        if parameter == "kappa":
            return -k_squared(self.n).astype(complex)
        if parameter == "A":
            return -dx_symbol(self.n)
        return np.zeros((self.n, self.n // 2 + 1), dtype=complex)  # eps2: noise only

    def drift(self, u: np.ndarray) -> np.ndarray:
        """Continuum drift :math:`-\\lambda\\Sigma u + \\kappa\\Delta u - A\\partial_x u`.

        Parameters
        ----------
        u : numpy.ndarray, shape (m, n, n)

        Returns
        -------
        numpy.ndarray, shape (m, n, n)
        """
        return self._apply_symbol(u, self.drift_symbol())

    def drift_derivative(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\partial F/\\partial\\theta`: :math:`-\\Sigma u` (``lam``),
        :math:`\\Delta u` (``kappa``), :math:`-\\partial_x u` (``A``), 0 (``eps2``).

        Parameters
        ----------
        u : numpy.ndarray, shape (m, n, n)
        parameter : {"lam", "kappa", "A", "eps2"}

        Returns
        -------
        numpy.ndarray, shape (m, n, n)
        """
        return self._apply_symbol(u, self._drift_derivative_symbol(parameter))

    def drift_derivative_divergence(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """Trace of the (linear, circulant) map :math:`\\partial F/\\partial\\theta`:
        the sum of its symbol over the full Fourier grid, the same at every state.

        Returns
        -------
        numpy.ndarray, shape (m,)
        """
        sym = self._drift_derivative_symbol(parameter)
        trace = float(np.fft.irfft2(sym, s=self.state_shape)[0, 0]) * self.n**2
        return np.full(np.shape(u)[0], trace)

    def diffusion_derivative(self, parameter: str) -> np.ndarray | None:
        """:math:`\\partial D/\\partial\\epsilon^2` on the grid state, else None.

        The grid SDE has :math:`D = \\Sigma\\Sigma^T/2` circulant with symbol
        :math:`n^2\\epsilon^2\\sigma_k/2` (the noise per step has covariance
        :math:`dt\\, n^2\\epsilon^2\\Sigma`), so :math:`\\partial D/\\partial\\epsilon^2`
        is the circulant matrix of symbol :math:`n^2\\sigma_k/2`.

        Returns
        -------
        numpy.ndarray, shape (n*n, n*n), or None
        """
        self.check_parameter(parameter)
        if parameter != "eps2":
            return None
        kernel = np.fft.irfft2(self.n**2 * sigma_symbol(self.n) / 2.0, s=self.state_shape)
        iy, ix = np.divmod(np.arange(self.n**2), self.n)
        dy = (iy[:, None] - iy[None, :]) % self.n
        dx = (ix[:, None] - ix[None, :]) % self.n
        return kernel[dy, dx]

    # ------------------------------------------------------------ closed forms
    def exact_spectrum(self, *, discrete: bool = True) -> np.ndarray:
        """Stationary spectrum :math:`S_k = E|\\hat u_k|^2 / n^2`, shape (n, n//2+1).

        It is the symbol of the covariance operator:
        :math:`C = \\mathcal{F}^{-1} S_k \\mathcal{F}`.
        """
        sig = sigma_symbol(self.n)
        if discrete:
            q = self.dt * self.n**2 * self.eps2 * sig
            return q / (1.0 - np.abs(self.amplification()) ** 2)
        return self.n**2 * self.eps2 * sig / (-2.0 * self.drift_symbol().real)

    def _lag_steps(self, lags) -> np.ndarray:
        lags = np.atleast_1d(np.asarray(lags, dtype=float))
        if lags.ndim != 1 or not np.all(np.isfinite(lags)) or np.any(lags < 0):
            raise ValueError("lags must be a 1-D array of finite times >= 0")
        return lags / self.dt

    def exact_covariance(self, lags=0.0, *, discrete: bool = True) -> np.ndarray:
        """Two-point covariance :math:`C(r, \\tau) = E[u(x + r, t + \\tau)\\, u(x, t)]`.

        Parameters
        ----------
        lags : float or array_like, shape (L,)
            Time lags :math:`\\tau` (time units); with ``discrete=True`` they are
            rounded to whole steps.
        discrete : bool
            Exact law of the simulated chain (default) or of the continuum SPDE.

        Returns
        -------
        numpy.ndarray, shape (n, n) for a scalar lag, else (L, n, n)
            Indexed by the offset ``r = (ry, rx)`` in grid points.
        """
        scalar = np.ndim(lags) == 0
        fac = self._propagator(lags, discrete)
        c = np.fft.irfft2(self.exact_spectrum(discrete=discrete) * fac, s=self.state_shape)
        return c[0] if scalar else c

    def _propagator(self, lags, discrete: bool) -> np.ndarray:
        m = self._lag_steps(lags)
        if discrete:
            steps = np.rint(m).astype(int)
            g = self.amplification()
            return np.stack([g**s for s in steps])
        return np.exp(self.drift_symbol()[None] * (m * self.dt)[:, None, None])

    def exact_score(self, u: np.ndarray) -> np.ndarray:
        """Exact score :math:`\\nabla \\log p(u) = -C^{-1} u` of the discrete chain.

        Equals the continuum :math:`(2/\\epsilon^2)(-\\lambda u + \\kappa\\Delta u -
        \\kappa\\Delta^2 u)` divided by :math:`n^2` (the grid factor of the noise
        convention), up to :math:`O(dt)` corrections of the discrete chain.

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
        uh = np.fft.rfft2(u)
        return -np.fft.irfft2(uh / self.exact_spectrum(), s=self.state_shape)

    def exact_response(self, lags, *, discrete: bool = True) -> xr.DataArray:
        """Response :math:`R(r, \\tau)` to a unit impulse at pixel (0, 0).

        Parameters
        ----------
        lags : array_like, shape (L,)
            Times after the impulse (time units; multiples of dt when discrete).
        discrete : bool
            Propagator of the simulated chain, :math:`g_k^m` (default), or the
            continuum :math:`e^{L_k \\tau}`.

        Returns
        -------
        xarray.DataArray, dims ("lag", "y", "x")
            ``R[lag, y, x]`` is the mean change at offset (y, x) per unit kick.
        """
        lags = np.atleast_1d(np.asarray(lags, dtype=float))
        r = np.fft.irfft2(self._propagator(lags, discrete), s=self.state_shape)
        coords = self.coords()
        return xr.DataArray(
            r,
            dims=("lag", "y", "x"),
            coords={"lag": ("lag", lags, {**cf_attrs("lag"), "units": "1"}),
                    "y": coords["y"], "x": coords["x"]},
            name="response",
            attrs={**cf_attrs("exact_response"), "method": "exact", **self.attrs()},
        )
