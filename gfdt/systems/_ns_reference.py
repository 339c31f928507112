"""Plain numpy reference integrator of :class:`~gfdt.systems.navier_stokes.NavierStokes2D`.

All members advance together in one array, transforms through :mod:`scipy.fft`. It
implements the kernel's scheme operation for operation and draws the phase increments
from the same generators in the same order, so tests can compare the two to round-off
and benchmarks can measure the kernel's speed-up against a vectorised numpy code.
"""

from __future__ import annotations

import numpy as np
import scipy.fft as sfft

from gfdt.systems._spectral import dx_symbol, dy_symbol
from gfdt.systems.navier_stokes import MEAN_FORCING_KEPT, NavierStokes2D

__all__ = ["ns_reference_run"]


def ns_reference_run(
    system: NavierStokes2D,
    u0: np.ndarray,
    aux0: np.ndarray,
    n_steps: int,
    rngs: list[np.random.Generator],
    workers: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """Integrate ``NavierStokes2D`` with RK4 in Fourier space, all members at once.

    Parameters
    ----------
    system : NavierStokes2D
    u0 : numpy.ndarray, shape (members, n, n)
        Initial vorticity fields (not modified).
    aux0 : numpy.ndarray, shape (members, n_aux)
        Initial forcing phases (radians; not modified).
    n_steps : int
        Steps to take.
    rngs : list of numpy.random.Generator, length members
        Member k draws ``2 * n_aux`` standard normals from ``rngs[k]`` at the start of
        every step, exactly like the compiled kernel: first the ``n_aux`` half-step
        phase increments to the mid-step point of the Brownian path, then the ``n_aux``
        increments from there to the end of the step.
    workers : int
        scipy.fft workers (-1: all cores).

    Returns
    -------
    u : numpy.ndarray, shape (members, n, n)
        Final vorticity.
    aux : numpy.ndarray, shape (members, n_aux)
        Final phases.
    """
    if not isinstance(system, NavierStokes2D):
        raise TypeError(f"system must be a NavierStokes2D, got {type(system).__name__}")
    u0 = np.asarray(u0, dtype=float)
    if u0.ndim != 3 or u0.shape[1:] != system.state_shape:
        raise ValueError(f"u0 must have shape (members, {system.n}, {system.n}), got {u0.shape}")
    members = u0.shape[0]
    na = system.n_aux
    aux = np.array(aux0, dtype=float, copy=True)
    if aux.shape != (members, na):
        raise ValueError(f"aux0 must have shape ({members}, {na}), got {aux.shape}")
    if len(rngs) != members:
        raise ValueError(f"rngs must hold one generator per member ({members}), got {len(rngs)}")

    n, dt = system.n, system.dt
    s = system.state_shape
    dm = system.dealias_mask()
    dx = dx_symbol(n) * dm
    dy = dy_symbol(n) * dm
    ipsi = system.inverse_laplacian_symbol()
    damp = system.damping_symbol()
    adv = system.advection_symbol()
    rows, cols, ia, ib = system._forcing_slots()  # rfft2 positions, phases of k and -k
    amp = system.forcing_amplitude
    sd = np.sqrt(2.0 * system.phase_diffusivity * (0.5 * dt))  # per half step
    m = n // 2 + 1

    def forcing_hat(phases: np.ndarray) -> np.ndarray:
        """rfft2 of Re ifft2(F mask e^{i phi}) with 90 % of the mean removed."""
        g = amp * np.exp(1j * phases)
        fh = np.zeros((members, n, m), dtype=np.complex128)
        fh[:, rows, cols] = 0.5 * (g[:, ia] + np.conj(g[:, ib]))
        fh[:, 0, 0] *= MEAN_FORCING_KEPT
        return fh

    def rhs(v: np.ndarray, fh: np.ndarray) -> np.ndarray:
        ps = ipsi * v
        b = np.stack([dx * ps, dy * ps, dx * v, dy * v], axis=1)
        p = sfft.irfft2(b, s=s, workers=workers)
        jac = p[:, 0] * p[:, 3] - p[:, 2] * p[:, 1]
        nh = sfft.rfft2(jac, workers=workers)
        return dm * nh + damp * v + adv * v + fh

    uh = sfft.rfft2(u0, workers=workers)
    f1 = forcing_hat(aux)
    dw = np.empty((members, 2, na))  # half-step increments: to mid-step, then to the end
    for _ in range(n_steps):
        for k, rng in enumerate(rngs):
            dw[k] = rng.standard_normal((2, na))
        dw *= sd
        mid = aux + dw[:, 0]  # Brownian path at t + dt/2 (stages 2 and 3)
        f2 = forcing_hat(mid)
        aux = mid + dw[:, 1]
        f4 = forcing_hat(aux)
        k1 = rhs(uh, f1)
        k2 = rhs(uh + 0.5 * dt * k1, f2)
        k3 = rhs(uh + 0.5 * dt * k2, f2)
        k4 = rhs(uh + dt * k3, f4)
        uh = uh + dt / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        f1 = f4
    return sfft.irfft2(uh, s=s, workers=workers), aux
