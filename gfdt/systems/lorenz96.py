"""Two-scale Lorenz-96 model with additive noise on the fast variables.

.. math::

    \\dot X_k = X_{k-1}(X_{k+1} - X_{k-2}) - X_k + F - \\frac{hc}{J} \\sum_j Y_{j,k},

    dY_l = \\Big[c b\\, Y_{l+1}(Y_{l-1} - Y_{l+2}) - c Y_l
            + \\frac{hc}{J} X_{k(l)}\\Big] dt + \\sigma\\, dW_l,

with ``k = 0..K-1`` (periodic), the fast variables on ONE periodic ring of
``K*J`` points, ``l = j + J k`` (so :math:`Y_{J,k} = Y_{0,k+1}`: the ring is twisted
across sectors) and :math:`k(l) = \\lfloor l / J \\rfloor`. Independent Wiener
processes :math:`W_l` drive every fast variable; the slow ones carry no noise, so the
diffusion matrix is :math:`D = \\Sigma\\Sigma^T/2 = (\\sigma^2/2)` on the ``Y`` block
and zero on the ``X`` block.

This is the configuration of the ScoreUNet1D.jl Lorenz-96 study (K = 36, J = 10,
F = 10, h = 1, c = b = 10, sigma = 0.03, dt = 0.005, observed every 0.1).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import numba as nb
import numpy as np

from gfdt.systems.base import System

__all__ = ["Lorenz96TwoScale"]


@nb.njit(nogil=True, cache=True, fastmath=True)
def _drift(u, du, K, J, F, h, c, b):  # pragma: no cover - numba
    """du = drift(u) for one state u = (X_0..X_{K-1}, Y_0..Y_{KJ-1})."""
    n = K * J
    a = h * c / J
    for k in range(K):
        s = 0.0
        for j in range(J):
            s += u[K + k * J + j]
        km1 = k - 1 if k > 0 else K - 1
        km2 = (k - 2) % K
        kp1 = k + 1 if k < K - 1 else 0
        du[k] = u[km1] * (u[kp1] - u[km2]) - u[k] + F - a * s
    cb = c * b
    for ell in range(n):
        lp1 = ell + 1 if ell < n - 1 else 0
        lp2 = (ell + 2) % n
        lm1 = ell - 1 if ell > 0 else n - 1
        du[K + ell] = (cb * u[K + lp1] * (u[K + lm1] - u[K + lp2]) - c * u[K + ell]
                       + a * u[ell // J])


@nb.njit(nogil=True, cache=True, fastmath=True)
def _rk4_noise_step(u, k1, k2, k3, k4, tmp, rng, K, J, F, h, c, b, dt, sig):
    """One RK4 step of the drift, then Y += sig * sqrt(dt) * N(0, 1).

    pragma: no cover - numba
    """
    d = u.shape[0]
    _drift(u, k1, K, J, F, h, c, b)
    for i in range(d):
        tmp[i] = u[i] + 0.5 * dt * k1[i]
    _drift(tmp, k2, K, J, F, h, c, b)
    for i in range(d):
        tmp[i] = u[i] + 0.5 * dt * k2[i]
    _drift(tmp, k3, K, J, F, h, c, b)
    for i in range(d):
        tmp[i] = u[i] + dt * k3[i]
    _drift(tmp, k4, K, J, F, h, c, b)
    w = dt / 6.0
    for i in range(d):
        u[i] += w * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i])
    if sig != 0.0:
        s = sig * math.sqrt(dt)
        for i in range(K, d):
            u[i] += s * rng.standard_normal()


@nb.njit(nogil=True, cache=True)
def _l96_kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, K, J, F, h, c, b,
                dt, sig):  # pragma: no cover - numba
    """Integrate the two-scale Lorenz-96 SDE (see :class:`Lorenz96TwoScale`)."""
    d = u.shape[0]
    k1 = np.empty(d)
    k2 = np.empty(d)
    k3 = np.empty(d)
    k4 = np.empty(d)
    tmp = np.empty(d)
    check_every = save_every if save_every > 0 else 64
    j = 0
    for step in range(1, n_steps + 1):
        _rk4_noise_step(u, k1, k2, k3, k4, tmp, rng, K, J, F, h, c, b, dt, sig)
        saving = save_every > 0 and step % save_every == 0
        if saving or step % check_every == 0 or step == n_steps:
            vmax = 0.0
            for i in range(d):
                x = abs(u[i])
                if not (x <= vmax):  # NaN propagates
                    vmax = x
            if not (vmax <= threshold):
                return step
            if saving:
                out[j, :] = u
                aux_out[j, :] = aux
                j += 1
    return -1


def _ring(y: np.ndarray, shift: int) -> np.ndarray:
    """``y[..., l + shift]`` on the periodic fast ring (last axis)."""
    return np.roll(y, -shift, axis=-1)


@dataclasses.dataclass(frozen=True)
class Lorenz96TwoScale(System):
    """Two-scale Lorenz-96 with additive noise on the fast variables (module docstring).

    The state is one vector of length ``K (J + 1)``: ``X_0..X_{K-1}`` first, then
    ``Y_{j,k}`` at index ``K + j + J k`` (dims ``("state",)``, with integer
    coordinates ``sector`` (k) and ``fast`` (j, -1 for the X entries)).

    Time stepping: classical RK4 on the drift followed by the noise increment
    :math:`\\sigma\\sqrt{dt}\\,\\xi_l`, :math:`\\xi_l \\sim N(0, 1)` independently for
    every fast variable (strong order 1 for this additive noise, order 4 without
    noise). ``K J`` normals per step, drawn in the order of ``l``.

    Parameters
    ----------
    dt : float
        Time step (time units).
    K : int
        Number of slow variables (sectors), >= 4.
    J : int
        Fast variables per sector, >= 1 (``K J >= 4``).
    F : float
        Forcing of the slow variables.
    h : float
        Coupling strength.
    c : float
        Time-scale ratio (fast/slow).
    b : float
        Amplitude-scale ratio.
    noise : float
        :math:`\\sigma`, noise amplitude on every fast variable (state units per square
        root of time), >= 0.

    Examples
    --------
    >>> from gfdt.systems import Lorenz96TwoScale
    >>> L96 = Lorenz96TwoScale(K=8, J=4)
    >>> L96.state_shape
    (40,)
    """

    n: int = dataclasses.field(default=0, init=False, repr=False)
    dt: float = 0.005
    K: int = 36
    J: int = 10
    F: float = 10.0
    h: float = 1.0
    c: float = 10.0
    b: float = 10.0
    noise: float = 0.03

    long_name: ClassVar[str] = "two-scale Lorenz-96 state"
    homogeneous: ClassVar[bool] = False
    sensitivity_parameters: ClassVar[tuple[str, ...]] = ("F", "h", "c", "b")

    # ------------------------------------------------------------------ checks
    def _check_grid(self) -> None:
        for name in ("K", "J"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
        if self.K < 4:
            raise ValueError(f"K must be >= 4, got {self.K}")
        if self.J < 1 or self.K * self.J < 4:
            raise ValueError(f"J must be >= 1 with K*J >= 4, got J = {self.J}")
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")

    # -------------------------------------------------------------- metadata
    @property
    def state_shape(self) -> tuple[int]:
        """``(K (J + 1),)``: the slow variables, then the fast ring."""
        return (self.K * (self.J + 1),)

    @property
    def state_dims(self) -> tuple[str, ...]:
        return ("state",)

    @property
    def normals_per_step(self) -> int:
        """One normal per fast variable and step."""
        return self.K * self.J

    def coords(self) -> dict[str, tuple]:
        """``state`` index plus ``sector`` (k) and ``fast`` (j; -1 for X) per entry."""
        K, J = self.K, self.J
        sector = np.concatenate([np.arange(K), np.repeat(np.arange(K), J)])
        fast = np.concatenate([np.full(K, -1), np.tile(np.arange(J), K)])
        return {
            "state": ("state", np.arange(K * (J + 1)),
                      {"long_name": "state vector index (X_k, then Y at K + j + J k)"}),
            "sector": ("state", sector, {"long_name": "slow-variable sector k"}),
            "fast": ("state", fast, {"long_name": "fast index j within the sector (-1: X)"}),
        }

    def split(self, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Views ``X`` (..., K) and ``Y`` (..., K, J) of states ``u`` (..., K (J + 1))."""
        u = self._check_states(u)
        return u[..., :self.K], u[..., self.K:].reshape(*u.shape[:-1], self.K, self.J)

    # ------------------------------------------------------------- dynamics
    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``X = F + 0.1 N(0, 1)``, ``Y = 0.1 N(0, 1)`` (spin-up starts here)."""
        u = 0.1 * rng.standard_normal(self.state_shape)
        u[:self.K] += self.F
        return u, np.zeros(0)

    def _kernel(self) -> Callable[..., int]:
        return _l96_kernel

    def _kernel_args(self) -> tuple:
        return (int(self.K), int(self.J), float(self.F), float(self.h), float(self.c),
                float(self.b), float(self.dt), float(self.noise))

    def stable_dt(self) -> float:
        """RK4 limit ~2.78 over the fast damping-plus-advection rate scale ``c (1 + 2 b)``
        (a rough bound: the fast variables are O(1))."""
        return 2.78 / (self.c * (1.0 + 2.0 * self.b)) * 4.0

    # ------------------------------------------------------------ sensitivity
    def _check_states(self, u) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if u.ndim < 1 or u.shape[-1] != self.state_shape[0]:
            raise ValueError(
                f"u must have shape (..., {self.state_shape[0]}), got {np.shape(u)}"
            )
        return u

    def drift(self, u: np.ndarray) -> np.ndarray:
        """Deterministic drift at states ``u`` (vectorised over leading axes).

        Parameters
        ----------
        u : array_like, shape (..., K (J + 1))

        Returns
        -------
        numpy.ndarray, same shape: state units per time unit.
        """
        u = self._check_states(u)
        X, Y = u[..., :self.K], u[..., self.K:]
        a = self.h * self.c / self.J
        ysum = Y.reshape(*Y.shape[:-1], self.K, self.J).sum(-1)
        dX = (np.roll(X, 1, -1) * (np.roll(X, -1, -1) - np.roll(X, 2, -1)) - X + self.F
              - a * ysum)
        dY = (self.c * self.b * _ring(Y, 1) * (_ring(Y, -1) - _ring(Y, 2)) - self.c * Y
              + a * np.repeat(X, self.J, axis=-1))
        return np.concatenate([dX, dY], axis=-1)

    def drift_derivative(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\partial F/\\partial\\theta` at states ``u`` for
        ``parameter`` in :attr:`sensitivity_parameters` (analytic).

        Parameters
        ----------
        u : array_like, shape (..., K (J + 1))
        parameter : {"F", "h", "c", "b"}

        Returns
        -------
        numpy.ndarray, same shape as ``u``: state units per time unit per unit of the
        parameter.
        """
        self.check_parameter(parameter)
        u = self._check_states(u)
        K, J = self.K, self.J
        X, Y = u[..., :K], u[..., K:]
        ybar = Y.reshape(*Y.shape[:-1], K, J).mean(-1)
        xrep = np.repeat(X, J, axis=-1)
        adv = _ring(Y, 1) * (_ring(Y, -1) - _ring(Y, 2))
        if parameter == "F":
            dX, dY = np.ones_like(X), np.zeros_like(Y)
        elif parameter == "h":
            dX, dY = -self.c * ybar, (self.c / J) * xrep
        elif parameter == "c":
            dX, dY = -self.h * ybar, self.b * adv - Y + (self.h / J) * xrep
        else:  # "b"
            dX, dY = np.zeros_like(X), self.c * adv
        return np.concatenate([dX, dY], axis=-1)

    def drift_derivative_divergence(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\nabla\\cdot\\partial F/\\partial\\theta`, shape (m,): ``-K J`` for
        ``c`` (from the damping ``-c Y``), zero for F, h and b (the advection derivative
        has no diagonal part)."""
        self.check_parameter(parameter)
        u = self._check_states(u)
        value = -float(self.K * self.J) if parameter == "c" else 0.0
        return np.full(u.shape[:-1], value)

    def diffusion_derivative(self, parameter: str) -> np.ndarray | None:
        """:math:`\\partial D/\\partial\\theta`: None, since none of F, h, c, b enters the
        noise (``D = noise^2/2`` on the fast block)."""
        self.check_parameter(parameter)
        return None

    # ------------------------------------------------------------ observables
    def observables(self) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
        """The five sector-averaged observables of the ScoreUNet1D.jl study.

        ``phi1 = mean_k X_k``, ``phi2 = mean_k X_k^2``, ``phi3 = mean_k X_k Ybar_k``,
        ``phi4 = mean_k mean_j Y_{j,k}^2``, ``phi5 = mean_k X_k X_{k-1}``, with
        ``Ybar_k = mean_j Y_{j,k}``. Each maps states (m, K (J + 1)) to (m,).
        """
        def x_mean(u):
            return self.split(u)[0].mean(-1)

        def x2_mean(u):
            return (self.split(u)[0] ** 2).mean(-1)

        def x_ybar(u):
            X, Y = self.split(u)
            return (X * Y.mean(-1)).mean(-1)

        def y2_mean(u):
            return (self.split(u)[1] ** 2).mean((-2, -1))

        def x_xm1(u):
            X = self.split(u)[0]
            return (X * np.roll(X, 1, -1)).mean(-1)

        return {"X": x_mean, "X2": x2_mean, "XYbar": x_ybar, "Y2": y2_mean,
                "XXm1": x_xm1}
