"""Two-dimensional Navier-Stokes (vorticity form) with hidden random-wave forcing.

.. math::

    \\partial_t u = \\partial_x \\psi\\, \\partial_y u - \\partial_x u\\, \\partial_y \\psi
                    - A\\, \\partial_x u + D u + f, \\qquad \\psi = \\Delta^{-1} u,

    D u = -\\nu_h \\Delta^{-2} u - \\nu \\Delta^2 u - \\nu_0\\, \\overline{u}

(paper Eqs. 11-13) on the doubly periodic square :math:`[0, 2\\pi)^2`; :math:`u` is the
vorticity, :math:`\\overline{u}` its spatial mean, and the inverse Laplacians are zero at
:math:`k = 0`.

Forcing
-------
Random waves with diffusing phases,

.. math::

    f = \\mathrm{Re}\\, \\mathrm{ifft2}\\big(F\\, m_k\\, e^{i \\phi_k}\\big)
        - 0.9\\, \\overline{\\mathrm{Re}\\, \\mathrm{ifft2}(\\ldots)},
    \\qquad d\\phi_k = \\sqrt{2 D_\\phi}\\, dW_k,

where ``ifft2`` is numpy's inverse 2-D FFT (normalised by :math:`1/n^2`, hence the
default amplitude :math:`F = 300 (n/128)^2`, which makes :math:`F/n^2` and so the forcing
field independent of the resolution), :math:`m_k = 1` for :math:`|k|^2 \\le k_f^2`
(default 112.5) and 0 elsewhere and on the Nyquist row and column. There is one phase
per masked mode of the *full* complex ``fft2`` plane (``k`` and ``-k`` have independent
phases; taking the real part symmetrises them), the mean mode ``k = 0`` included: its
contribution, the mean of the raw forcing, is kept at 10 %. The phases are uniform on
:math:`[0, 2\\pi)` at the start and diffuse with :math:`D_\\phi = 1` by default. They
are the system's hidden state (``aux``, one entry per masked mode, in the order of
:meth:`NavierStokes2D.forcing_modes`); the observed vorticity alone is not Markov.

Time stepping
-------------
Classical RK4 on the whole right-hand side, in Fourier space (state ``rfft2(u)``), with
the forcing evaluated on the phases' Brownian path sampled at the stage times. Each step
draws two independent half-step increments per phase, :math:`\\Delta W^{(1)}_k,
\\Delta W^{(2)}_k = \\sqrt{2 D_\\phi\\, dt/2}\\, \\xi_k` (all the first halves, then
all the second halves, each in the order of :meth:`NavierStokes2D.forcing_modes`), and
uses the phases :math:`\\phi_n` at stage 1, the mid-step value of the path
:math:`\\phi_n + \\Delta W^{(1)}` at stages 2 and 3 and :math:`\\phi_{n+1} = \\phi_n +
\\Delta W^{(1)} + \\Delta W^{(2)}` at stage 4. The midpoint is an exact sample of the
Brownian path at :math:`t_n + dt/2` (not the linear interpolation, which would
understate its variance), so the stages see the forcing at the right times with the
right statistics. The phases are not wrapped to :math:`[0, 2\\pi)`. All randomness comes
from the generator handed to the kernel (:attr:`NavierStokes2D.normals_per_step`
scalars per step), so two copies run from cloned generators with the same ``aux`` see
identical forcing (paired ground truth).

The linear terms are explicit. RK4 is stable while every eigenvalue :math:`\\lambda`
of the linearised right-hand side has :math:`|\\lambda| dt \\lesssim 2.8`; at the
defaults the largest is the advection :math:`A k_x \\approx 47` at ``n = 32`` (0.37 per
step), far from the hyperviscous limit :math:`\\nu |k|^4 dt \\approx 2.8`.

Nonlinear term and dealiasing
-----------------------------
Pseudo-spectral Jacobian :math:`J = \\partial_x\\psi\\,\\partial_y u - \\partial_x
u\\,\\partial_y\\psi`: the four derivatives are transformed to the grid, multiplied
pointwise and transformed back.

``dealias=0`` (default) uses this plain, untruncated pseudo-spectral product on every
mode (the derivatives follow the Nyquist convention of :mod:`gfdt.systems._spectral`),
as the paper's authors do. Every mode is excited (about 2 % of the enstrophy lies
outside the 2/3 band at ``n = 32``), so the stationary covariance is non-singular, which
the GFDT and Gaussian-score estimators need; the price is aliasing: energy and enstrophy
are not conserved exactly by the discrete nonlinear term. The weakest modes are on the
Nyquist column, where :math:`\\partial_x` vanishes: their variance was 6e-9 to 3e-7 of
the largest mode's at ``n = 32`` over t = 200-400 (2e-5 for the weakest other mode), so
the covariance is ill-conditioned there.

``dealias=1`` applies the 2/3 rule and is exactly conservative, but leaves modes outside
the 2/3 band unexcited: not suitable for GFDT. The inputs are truncated to the square
:math:`|k_x|, |k_y| \\le K = \\lfloor (n-1)/3 \\rfloor` before the product and the
result is truncated to the same square. Products of two fields in that band reach
:math:`2K`, and their aliases fall at :math:`|k| \\ge n - 2K > K`, outside the band, so
the truncated product is the exact (continuum) Jacobian of the truncated fields
projected on the band. Hence :math:`\\sum u\\, N(u) = 0` and :math:`\\sum \\psi\\, N(u) =
0` hold to round-off: the nonlinear term conserves enstrophy and energy exactly in the
inviscid limit. The band excludes the Nyquist row and column (``K < n/2``). But modes
outside the band receive neither nonlinear transfer nor forcing (the forcing disc
:math:`|k|^2 \\le 112.5` lies inside the band for ``n >= 32``); they only decay and
translate, so in the stationary state they vanish (their share of the enstrophy was
1e-32 after 200 time units at ``n = 32``) and the invariant measure lives on the band:
the stationary covariance is singular outside it (the GFDT/Gaussian estimators divide
by zero there), while a one-pixel kick does excite those modes.

With either choice the linear terms act on every mode, Nyquist included (even operators
keep it, :math:`\\partial_x` is zero on the Nyquist column; see
:mod:`gfdt.systems._spectral`).

Transforms per step: 4 inverse (batched; with ``dealias=1`` the columns beyond the band
are zero and skipped) and 1 forward per stage, 20 per step.

The compiled kernel is in :mod:`gfdt.systems._ns_kernel`, the numpy reference in
:mod:`gfdt.systems._ns_reference`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np

from gfdt.systems._ns_kernel import _ns_kernel
from gfdt.systems._spectral import (
    _check_n,
    dx_symbol,
    dy_symbol,
    k_squared,
    wavenumbers,
)
from gfdt.systems.base import System

__all__ = ["NavierStokes2D", "forcing", "nonlinear_term"]

#: Fraction of the raw forcing's spatial mean that is kept (the paper removes 90 %).
MEAN_FORCING_KEPT = 0.1


# --------------------------------------------------------------------------- system
@dataclasses.dataclass(frozen=True)
class NavierStokes2D(System):
    """2-D vorticity equation with random-wave forcing (paper Eqs. 11-13).

    Parameters
    ----------
    n : int
        Grid points per direction (even, >= 4; the paper uses 32).
    dt : float
        Time step (time units; paper 1/128).
    A : float
        Uniform advection speed in +x (domain length 2 pi).
    nu_h : float
        Hypoviscosity, coefficient of :math:`-\\Delta^{-2}` (1/time).
    nu : float
        Hyperviscosity, coefficient of :math:`-\\Delta^{2}` (length^4/time).
    nu_0 : float
        Damping rate of the spatial mean (1/time).
    F : float or None
        Forcing amplitude in numpy's ``ifft2`` convention. None (default) means
        :math:`300 (n/128)^2`, resolved by :attr:`forcing_amplitude` (and written out
        resolved by :meth:`parameters`).
    kf2 : float
        Forcing disc :math:`|k|^2 \\le k_f^2` (integer wavenumbers).
    phase_diffusivity : float
        :math:`D_\\phi` of the phases, :math:`d\\phi = \\sqrt{2 D_\\phi}\\, dW` (1/time).
    dealias : int
        0 (default): plain (aliased, untruncated) pseudo-spectral product on every
        mode, as the paper's authors do; every mode is excited. 1: 2/3-rule dealiased
        Jacobian, exactly conservative (energy and enstrophy), but leaves modes outside
        the 2/3 band unexcited -- not suitable for GFDT (the stationary covariance is
        singular there).

    Notes
    -----
    The hidden state ``aux`` holds the forcing phases (radians), one per mode of
    :meth:`forcing_modes`; ``n_aux`` is their number (349 at the defaults).
    No closed-form score exists (:meth:`exact_score` raises).

    Time stepping: classical RK4 in Fourier space. The forcing at each stage uses the
    phases' Brownian path sampled at the stage time: every step draws two independent
    half-step increments per phase, :math:`\\Delta W^{(1)}, \\Delta W^{(2)} \\sim
    \\mathcal{N}(0, 2 D_\\phi\\, dt/2)` (first all ``n_aux`` of
    :math:`\\Delta W^{(1)}`, then all of :math:`\\Delta W^{(2)}`), and evaluates the
    forcing at :math:`\\phi_n` (stage 1), :math:`\\phi_n + \\Delta W^{(1)}` (stages 2
    and 3) and :math:`\\phi_{n+1} = \\phi_n + \\Delta W^{(1)} + \\Delta W^{(2)}`
    (stage 4). :attr:`normals_per_step` is therefore ``2 * n_aux``.

    Examples
    --------
    >>> from gfdt.systems.navier_stokes import NavierStokes2D
    >>> ns = NavierStokes2D()
    >>> ns.forcing_amplitude, ns.n_aux
    (18.75, 349)
    """

    n: int = 32
    dt: float = 1.0 / 128.0
    A: float = math.pi
    nu_h: float = 1e-2
    nu: float = 1e-5
    nu_0: float = (2.0 * math.pi) ** -2
    F: float | None = None
    kf2: float = 112.5
    phase_diffusivity: float = 1.0
    dealias: int = 0

    long_name: ClassVar[str] = "vorticity"
    #: 1 forward and 4 inverse transforms per RK4 stage. No whole (n, n) normal fields:
    #: the noise is 2 * n_aux scalar normals per step, see :attr:`normals_per_step`.
    transforms_per_step: ClassVar[tuple[int, int, int]] = (4, 16, 0)
    #: Rough stationary maximum of the flow speed at the default parameters (0.6-0.85
    #: measured at n = 32, 64, rounded up), scaled with the forcing amplitude in
    #: :meth:`stable_dt`.
    typical_speed: ClassVar[float] = 1.0

    def __post_init__(self) -> None:
        if self.F is None:
            # validate every field with the base rules, F resolved to its default
            _check_n(self.n)
            object.__setattr__(self, "F", self._default_forcing_amplitude())
            try:
                super().__post_init__()
            finally:
                object.__setattr__(self, "F", None)
        else:
            super().__post_init__()
        for name in ("nu_h", "nu", "nu_0", "phase_diffusivity", "kf2"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.F is not None and self.F < 0:
            raise ValueError(f"F must be >= 0 (or None for the default), got {self.F}")
        if self.dealias not in (0, 1) or isinstance(self.dealias, (bool, float)):
            raise ValueError(f"dealias must be the int 0 or 1, got {self.dealias!r}")

    # ---------------------------------------------------------------- metadata
    def _default_forcing_amplitude(self) -> float:
        return 300.0 * (self.n / 128.0) ** 2

    @property
    def forcing_amplitude(self) -> float:
        """:math:`F`: the field ``F`` or, when None, :math:`300 (n/128)^2`."""
        return float(self._default_forcing_amplitude() if self.F is None else self.F)

    def parameters(self) -> dict[str, Any]:
        """Dataclass fields as a plain dict, ``F`` resolved to a number."""
        p = super().parameters()
        p["F"] = self.forcing_amplitude
        return p

    @property
    def n_aux(self) -> int:
        """Number of hidden forcing phases (masked modes of the full fft2 plane)."""
        return int(self.forcing_modes().shape[0])

    @property
    def normals_per_step(self) -> int:
        """Scalar standard normals drawn per step: two half-step increments per phase."""
        return 2 * self.n_aux

    @property
    def dealias_cutoff(self) -> int:
        """Largest :math:`|k_x|, |k_y|` in the Jacobian: :math:`\\lfloor (n-1)/3 \\rfloor`
        with ``dealias=1``, ``n//2`` (every mode) with ``dealias=0``."""
        return (self.n - 1) // 3 if self.dealias else self.n // 2

    # ----------------------------------------------------------------- symbols
    def forcing_modes(self) -> np.ndarray:
        """Integer wavenumbers ``(ky, kx)`` of the forced modes, one row per phase.

        Returns
        -------
        numpy.ndarray of int64, shape (n_aux, 2)
            Modes of the full ``fft2`` plane with :math:`k_x^2 + k_y^2 \\le k_f^2`,
            excluding the Nyquist row and column, in ``fft2`` C order (``ky`` major,
            both in ``fftfreq`` order).
        """
        n = self.n
        k = np.fft.fftfreq(n, d=1.0 / n).astype(np.int64)
        ky, kx = np.meshgrid(k, k, indexing="ij")
        mask = (ky**2 + kx**2 <= self.kf2) & (ky != -(n // 2)) & (kx != -(n // 2))
        return np.stack([ky[mask], kx[mask]], axis=1)

    def forcing_mask(self) -> np.ndarray:
        """Mask :math:`m_k` on the full ``fft2`` plane, float, shape (n, n)."""
        out = np.zeros((self.n, self.n))
        modes = self.forcing_modes()
        out[modes[:, 0] % self.n, modes[:, 1] % self.n] = 1.0
        return out

    def damping_symbol(self) -> np.ndarray:
        """Symbol of :math:`D`, real, shape (n, n//2+1) (rfft2 layout).

        :math:`-\\nu_h/|k|^4 - \\nu |k|^4` for :math:`k \\ne 0`, :math:`-\\nu_0` at 0.
        """
        k2 = k_squared(self.n)
        with np.errstate(divide="ignore"):
            inv = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        d = -self.nu_h * inv**2 - self.nu * k2**2
        d[0, 0] = -self.nu_0
        return d

    def advection_symbol(self) -> np.ndarray:
        """Symbol of :math:`-A \\partial_x`, :math:`-i A k_x` (0 on the Nyquist column)."""
        return -self.A * dx_symbol(self.n)

    def linear_symbol(self) -> np.ndarray:
        """Symbol of the linear part :math:`D - A\\partial_x`, complex, (n, n//2+1)."""
        return self.damping_symbol() + self.advection_symbol()

    def inverse_laplacian_symbol(self) -> np.ndarray:
        """:math:`-1/|k|^2` (0 at k = 0): ``psi_hat = symbol * u_hat``, (n, n//2+1)."""
        k2 = k_squared(self.n)
        return np.where(k2 > 0, -1.0 / np.where(k2 > 0, k2, 1.0), 0.0)

    def dealias_mask(self) -> np.ndarray:
        """Band of the Jacobian, 0/1 floats in rfft2 layout, shape (n, n//2+1).

        ``dealias=1``: :math:`|k_x|, |k_y| \\le \\lfloor (n-1)/3 \\rfloor`;
        ``dealias=0``: every mode (no truncation).
        """
        ky, kx = wavenumbers(self.n)
        kc = self.dealias_cutoff
        return ((np.abs(ky) <= kc) & (np.abs(kx) <= kc)).astype(float)

    def _forcing_slots(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Forced rfft2 positions and the phases feeding them.

        Returns
        -------
        rows, cols, ia, ib : numpy.ndarray of int64, shape (n_slots,)
            Position ``(rows[q], cols[q])`` of wavenumber ``k`` (``k_x >= 0``), the index
            ``ia[q]`` of the phase of ``k`` and ``ib[q]`` of the phase of ``-k`` in
            :meth:`forcing_modes` (the mask is symmetric, so both exist). The mean
            comes first.
        """
        n = self.n
        modes = self.forcing_modes()
        index = {(int(a), int(b)): j for j, (a, b) in enumerate(modes)}
        half = [(0, 0)] + [(int(a), int(b)) for a, b in modes
                           if b >= 0 and (int(a), int(b)) != (0, 0)]
        rows = np.array([a % n for a, _ in half], dtype=np.int64)
        cols = np.array([b for _, b in half], dtype=np.int64)
        ia = np.array([index[(a, b)] for a, b in half], dtype=np.int64)
        ib = np.array([index[(-a, -b)] for a, b in half], dtype=np.int64)
        return rows, cols, ia, ib

    # ---------------------------------------------------------------- dynamics
    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Zero vorticity and phases uniform on :math:`[0, 2\\pi)` drawn from ``rng``.

        Returns
        -------
        u : numpy.ndarray, shape (n, n)
        aux : numpy.ndarray, shape (n_aux,)
        """
        return np.zeros(self.state_shape), rng.uniform(0.0, 2.0 * np.pi, self.n_aux)

    def _kernel(self):
        return _ns_kernel

    def _kernel_args(self) -> tuple:
        dm = self.dealias_mask()
        kxd = dx_symbol(self.n).imag * dm  # i * kxd is the derivative inside the band
        kyd = dy_symbol(self.n).imag * dm
        rows = np.flatnonzero(dm[:, 0] > 0).astype(np.int64)
        c = np.ascontiguousarray
        return (
            c(self.damping_symbol()),
            c(-self.A * dx_symbol(self.n).imag),  # advection symbol = i * this
            c(kxd),
            c(kyd),
            c(self.inverse_laplacian_symbol()),
            c(dm),
            rows,
            int(min(self.dealias_cutoff + 1, self.n // 2 + 1)),
            *self._forcing_slots(),
            0.5 * self.forcing_amplitude,
            MEAN_FORCING_KEPT,
            float(self.dt),
            math.sqrt(2.0 * self.phase_diffusivity * (0.5 * self.dt)),  # per half step
        )

    def stable_dt(self) -> float:
        """Rough RK4 stability limit :math:`2.5 / \\max_k |\\lambda_k|`.

        :math:`\\lambda_k` is the linear symbol plus the advection by a flow of speed
        :attr:`typical_speed` (scaled by :math:`F / F_{default}`) at the largest
        wavenumber the Jacobian sees, :math:`|\\lambda_k| \\le |L_k| + U \\sqrt{2}
        K`. The true limit depends on the state's maximum speed; treat this as an
        estimate, not a guarantee.
        """
        lin = float(np.abs(self.linear_symbol()).max())
        u_typ = self.typical_speed * self.forcing_amplitude / self._default_forcing_amplitude()
        rate = lin + u_typ * math.sqrt(2.0) * self.dealias_cutoff
        return 2.5 / rate if rate > 0 else math.inf


# --------------------------------------------------------------------------- helpers
def _check_field(system: NavierStokes2D, u, name: str) -> np.ndarray:
    u = np.asarray(u, dtype=float)
    if u.ndim < 2 or u.shape[-2:] != system.state_shape:
        raise ValueError(
            f"{name} must have shape (..., {system.n}, {system.n}), got {u.shape}"
        )
    return u


def nonlinear_term(system: NavierStokes2D, u) -> np.ndarray:
    """The Jacobian :math:`\\partial_x\\psi\\,\\partial_y u - \\partial_x u\\,
    \\partial_y\\psi` that the kernel uses (2/3-rule dealiased if ``dealias=1``), in numpy.

    Parameters
    ----------
    system : NavierStokes2D
        Supplies ``n`` and the dealiasing choice.
    u : array_like, shape (..., n, n)
        Vorticity fields.

    Returns
    -------
    numpy.ndarray, shape (..., n, n)
        The nonlinear tendency (vorticity per time unit), band-limited to
        :meth:`NavierStokes2D.dealias_mask`.
    """
    if not isinstance(system, NavierStokes2D):
        raise TypeError(f"system must be a NavierStokes2D, got {type(system).__name__}")
    u = _check_field(system, u, "u")
    dm = system.dealias_mask()
    dx = dx_symbol(system.n) * dm
    dy = dy_symbol(system.n) * dm
    uh = np.fft.rfft2(u)
    ph = system.inverse_laplacian_symbol() * uh
    s = system.state_shape
    psx, psy, ux, uy = (np.fft.irfft2(w, s=s) for w in (dx * ph, dy * ph, dx * uh, dy * uh))
    return np.fft.irfft2(dm * np.fft.rfft2(psx * uy - ux * psy), s=s)


def forcing(system: NavierStokes2D, phases) -> np.ndarray:
    """The forcing field :math:`f` for given phases, in plain numpy.

    Parameters
    ----------
    system : NavierStokes2D
    phases : array_like, shape (..., n_aux)
        Phases (radians) of the modes of :meth:`NavierStokes2D.forcing_modes`.

    Returns
    -------
    numpy.ndarray, shape (..., n, n)
        :math:`\\mathrm{Re\\,ifft2}(F m_k e^{i\\phi_k})` with 90 % of its mean removed
        (vorticity per time unit).
    """
    if not isinstance(system, NavierStokes2D):
        raise TypeError(f"system must be a NavierStokes2D, got {type(system).__name__}")
    phases = np.asarray(phases, dtype=float)
    if phases.ndim < 1 or phases.shape[-1] != system.n_aux:
        raise ValueError(
            f"phases must have shape (..., {system.n_aux}), got {phases.shape}"
        )
    n = system.n
    modes = system.forcing_modes()
    g = np.zeros((*phases.shape[:-1], n, n), dtype=np.complex128)
    g[..., modes[:, 0] % n, modes[:, 1] % n] = system.forcing_amplitude * np.exp(1j * phases)
    f = np.fft.ifft2(g).real
    return f - (1.0 - MEAN_FORCING_KEPT) * f.mean(axis=(-2, -1), keepdims=True)
