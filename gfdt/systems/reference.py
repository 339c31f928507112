"""Plain numpy reference integrators (all members in one array).

They implement the same schemes as the compiled kernels, drawing the noise from the
same generators in the same order, so tests can compare the two to round-off and
benchmarks can measure the speed-up of the kernels against them.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from gfdt.systems._ns_reference import ns_reference_run
from gfdt.systems.allen_cahn import AllenCahn
from gfdt.systems.ou import OrnsteinUhlenbeck

__all__ = ["ac_reference_run", "ns_reference_run", "ou_reference_run"]


def ou_reference_run(
    system: OrnsteinUhlenbeck,
    u0: np.ndarray,
    n_steps: int,
    rngs: list[np.random.Generator],
    workers: int = -1,
) -> np.ndarray:
    """Integrate the OU SPDE in physical space: RK4 on the drift, then the noise.

    Parameters
    ----------
    system : OrnsteinUhlenbeck
    u0 : numpy.ndarray, shape (members, n, n)
        Initial fields (not modified).
    n_steps : int
        Steps to take.
    rngs : list of numpy.random.Generator, length members
        One generator per member; each step member k draws an (n, n) standard-normal
        field from ``rngs[k]``.
    workers : int
        scipy.fft workers.

    Returns
    -------
    numpy.ndarray, shape (members, n, n)
        The final fields.
    """
    s = system.state_shape
    L = system.drift_symbol()
    amp = system.noise_symbol()
    dt = system.dt

    def drift(v):
        return sfft.irfft2(L * sfft.rfft2(v, workers=workers), s=s, workers=workers)

    u = np.array(u0, dtype=float, copy=True)
    xi = np.empty_like(u)
    for _ in range(n_steps):
        k1 = drift(u)
        k2 = drift(u + 0.5 * dt * k1)
        k3 = drift(u + 0.5 * dt * k2)
        k4 = drift(u + dt * k3)
        u = u + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        for k, rng in enumerate(rngs):
            xi[k] = rng.standard_normal(s)
        u = u + sfft.irfft2(amp * sfft.rfft2(xi, workers=workers), s=s, workers=workers)
    return u


def ac_reference_run(
    system: AllenCahn,
    u0: np.ndarray,
    n_steps: int,
    rngs: list[np.random.Generator],
    workers: int = -1,
) -> np.ndarray:
    """Allen-Cahn with all members in one array: RK4 in Fourier space, then the noise.

    The same scheme as the compiled kernel (state kept as its real FFT, two transforms
    per stage), vectorised over members with scipy.fft.

    Parameters
    ----------
    system : AllenCahn
    u0 : numpy.ndarray, shape (members, n, n)
    n_steps : int
    rngs : list of numpy.random.Generator, length members
    workers : int
        scipy.fft workers.

    Returns
    -------
    numpy.ndarray, shape (members, n, n)
    """
    s = system.state_shape
    lin = system.linear_symbol()
    nlin = system.nonlinear_symbol()
    amp = system.noise_symbol()
    dt = system.dt

    def rhs(vh):
        v = sfft.irfft2(vh, s=s, workers=workers)
        return lin * vh + nlin * sfft.rfft2(v - v * v * v, workers=workers)

    uh = sfft.rfft2(np.asarray(u0, dtype=float), workers=workers)
    xi = np.empty((len(rngs), *s))
    for _ in range(n_steps):
        k1 = rhs(uh)
        k2 = rhs(uh + 0.5 * dt * k1)
        k3 = rhs(uh + 0.5 * dt * k2)
        k4 = rhs(uh + dt * k3)
        for k, rng in enumerate(rngs):
            xi[k] = rng.standard_normal(s)
        uh = uh + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4) + amp * sfft.rfft2(xi,
                                                                               workers=workers)
    return sfft.irfft2(uh, s=s, workers=workers)
