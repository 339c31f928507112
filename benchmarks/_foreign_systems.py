"""Stochastic systems gfdt does not ship, written as user models (:class:`gfdt.systems.SDE`).

Every system here is an Ito SDE ``dx = f(x) dt + G(x) dW`` integrated by Euler-Maruyama
with a fixed step ``dt``, saving every ``stride`` steps (save interval ``dt * stride``).
Each class keeps its parameters and closed forms (exact scores, densities) and builds
its ``gfdt.systems.SDE`` from the equations (:attr:`_SDE.sde`): drift and noise in plain
numpy, which gfdt compiles. :func:`simulate` and :func:`paired_response` run them with
:func:`gfdt.simulate` and :func:`gfdt.perturbation_response` (paired noise), seeded from
an explicit :class:`numpy.random.Generator`; ``tests/test_foreign_systems.py`` checks
them against closed forms (discrete OU covariance and propagator, quadrature densities,
Stein identities), independently of the score estimators they test.

Systems
-------
:class:`DoubleWellChain`
    ``dx = -(I - J) grad V dt + sqrt(2/beta) dW`` with ``V = sum(x^4/4 - x^2/2) +
    c sum x_i x_{i+1}`` and a constant antisymmetric ``J`` (non-reversible). The
    stationary density is ``exp(-beta V)`` for any such ``J`` (the antisymmetric part is
    divergence-free with respect to it), so the exact score is ``-beta grad V``.
:class:`TanhField`
    ``du = (D lap u + a tanh(k u) - u + b) dt + sqrt(q) dW`` on a periodic ``n x n``
    grid with unit spacing (5-point Laplacian) and one independent Wiener process per
    grid point. The drift is ``-grad F`` with ``F(u) = sum(D/2 |grad u|^2 + u^2/2 -
    (a/k) log cosh(k u) - b u)``, so ``p ~ exp(-2 F / q)`` and the exact score is
    ``(2/q)`` times the drift.
:class:`CubicCAM`
    ``dx = (F + a x + b x^2 - c x^3) dt + (A - B x) dW1 + s dW2`` (Ito), the 1-D cubic
    model with correlated additive-multiplicative (CAM) noise used to test KGMM. With
    ``g2(x) = (A - B x)^2 + s^2`` the zero-flux Fokker-Planck solution is ``p ~
    exp(int 2 f / g2) / g2``, so the exact score is ``(2 f - g2') / g2``.
:class:`StochasticTriad`
    ``du1 = (-0.2 u1 - 0.4 u2 + u3) dt + 0.3 dW1``, ``du2 = (-0.2 u2 + 0.4 u1) dt +
    0.3 dW2``, ``du3 = -2 u3 dt + 1.5 (tanh u1 + 1) dW3`` (Ito). No closed-form score.

Truth
-----
:func:`paired_response` kicks copies of stationary states by ``delta`` along each
source coordinate and integrates them with the same noise as an unkicked copy; the
response is the member mean of the difference over ``delta``, with member-level
standard errors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

import gfdt
from gfdt.systems import SDE

__all__ = ["CubicCAM", "DoubleWellChain", "StochasticTriad", "TanhField", "paired_response",
           "simulate"]


class _SDE:
    """Shared interface: ``state_shape``, ``noise_shape``, ``dt``, ``stride``,
    ``drift(x)``, ``initial``, and :attr:`sde`, the system as a ``gfdt.systems.SDE``
    (built by :meth:`_build`, Euler-Maruyama)."""

    dt: float
    stride: int

    @property
    def save_interval(self) -> float:
        return self.dt * self.stride

    @functools.cached_property
    def sde(self) -> SDE:
        return self._build()

    def _build(self) -> SDE:
        raise NotImplementedError

    def initial(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return 0.1 * rng.standard_normal((n, *self.state_shape))

    exact_score = None


@dataclass(frozen=True)
class DoubleWellChain(_SDE):
    """Non-reversible coupled double wells (see the module docstring).

    Parameters
    ----------
    d : int
        Number of coordinates (an open chain: couplings between neighbours only).
    beta : float
        Inverse temperature.
    c : float
        Nearest-neighbour coupling of the potential.
    j : float
        Strength of the antisymmetric part: ``J[i, i+1] = j = -J[i+1, i]``.
    dt : float
        Euler-Maruyama step.
    stride : int
        Steps per saved sample.
    """

    d: int = 4
    beta: float = 3.0
    c: float = 0.15
    j: float = 1.0
    dt: float = 0.005
    stride: int = 20

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.d,)

    @property
    def J(self) -> np.ndarray:
        m = np.zeros((self.d, self.d))
        i = np.arange(self.d - 1)
        m[i, i + 1] = self.j
        m[i + 1, i] = -self.j
        return m

    def grad_potential(self, x: np.ndarray) -> np.ndarray:
        g = x * x * x - x  # not x**3: numpy's pow is ~10x slower
        g[..., :-1] += self.c * x[..., 1:]
        g[..., 1:] += self.c * x[..., :-1]
        return g

    def potential(self, x: np.ndarray) -> np.ndarray:
        return (x**4 / 4 - x**2 / 2).sum(-1) + self.c * (x[..., :-1] * x[..., 1:]).sum(-1)

    def drift(self, x: np.ndarray) -> np.ndarray:
        g = self.grad_potential(x)
        jg = np.zeros_like(g)  # J g without a matmul (BLAS is slow on tall thin arrays)
        jg[..., :-1] += self.j * g[..., 1:]
        jg[..., 1:] -= self.j * g[..., :-1]
        return -(g - jg)

    def _build(self) -> SDE:
        def drift(x, p):
            g = x * x * x - x
            g[:, :-1] += p["c"] * x[:, 1:]
            g[:, 1:] += p["c"] * x[:, :-1]
            jg = np.zeros_like(g)
            jg[:, :-1] += p["j"] * g[:, 1:]
            jg[:, 1:] -= p["j"] * g[:, :-1]
            return jg - g

        return SDE(drift, lambda x, p: np.sqrt(2.0 / p["beta"]),
                   {"beta": self.beta, "c": self.c, "j": self.j}, dt=self.dt, dim=self.d,
                   scheme="euler", name="double-well chain state")

    def exact_score(self, x: np.ndarray) -> np.ndarray:
        return -self.beta * self.grad_potential(np.asarray(x, dtype=float))


def _laplacian(u: np.ndarray) -> np.ndarray:
    """5-point periodic Laplacian (unit spacing) over the last two axes."""
    return (np.roll(u, 1, -1) + np.roll(u, -1, -1) + np.roll(u, 1, -2) + np.roll(u, -1, -2)
            - 4.0 * u)


@dataclass(frozen=True)
class TanhField(_SDE):
    """Periodic 2-D field with a non-polynomial local force (see the module docstring)."""

    n: int = 16
    D: float = 0.1
    a: float = 1.5
    k: float = 1.5
    b: float = 0.1
    q: float = 1.0
    dt: float = 0.02
    stride: int = 25

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.n, self.n)

    def drift(self, u: np.ndarray) -> np.ndarray:
        return self.D * _laplacian(u) + self.a * np.tanh(self.k * u) - u + self.b

    def _build(self) -> SDE:
        return SDE(lambda u, p: (p["D"] * _laplacian(u) + p["a"] * np.tanh(p["k"] * u) - u
                                 + p["b"]),
                   lambda u, p: np.sqrt(p["q"]),
                   {"D": self.D, "a": self.a, "k": self.k, "b": self.b, "q": self.q},
                   dt=self.dt, state_shape=(self.n, self.n), scheme="euler",
                   name="tanh field")

    def exact_score(self, u: np.ndarray) -> np.ndarray:
        return (2.0 / self.q) * self.drift(np.asarray(u, dtype=float))


@dataclass(frozen=True)
class CubicCAM(_SDE):
    """1-D cubic drift with correlated additive-multiplicative noise (Ito)."""

    F: float = 0.6
    a: float = -0.0222
    b: float = -0.2
    c: float = 0.0494
    A: float = 0.5
    B: float = -0.3
    s: float = 0.7071
    dt: float = 0.005
    stride: int = 40

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (1,)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (2,)

    def drift(self, x: np.ndarray) -> np.ndarray:
        return self.F + x * (self.a + x * (self.b - self.c * x))

    def _build(self) -> SDE:
        return SDE(lambda x, p: p["F"] + x * (p["a"] + x * (p["b"] - p["c"] * x)),
                   lambda x, p: np.stack([p["A"] - p["B"] * x, p["s"] + 0 * x], axis=2),
                   {k: getattr(self, k) for k in ("F", "a", "b", "c", "A", "B", "s")},
                   dt=self.dt, dim=1, scheme="euler", name="cubic CAM state")

    def g2(self, x: np.ndarray) -> np.ndarray:
        return (self.A - self.B * x) ** 2 + self.s**2

    def exact_score(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        dg2 = -2.0 * self.B * (self.A - self.B * x)
        return (2.0 * self.drift(x) - dg2) / self.g2(x)

    def density(self, grid: np.ndarray) -> np.ndarray:
        """Stationary density on a uniform ``grid`` (quadrature of the zero-flux solution)."""
        grid = np.asarray(grid, dtype=float)
        h = grid[1] - grid[0]
        ratio = 2.0 * self.drift(grid) / self.g2(grid)
        phi = np.concatenate([[0.0], np.cumsum(0.5 * (ratio[1:] + ratio[:-1]) * h)])
        logp = phi - np.log(self.g2(grid))
        p = np.exp(logp - logp.max())
        return p / (p.sum() * h)


@dataclass(frozen=True)
class StochasticTriad(_SDE):
    """Stochastic triad with state-dependent noise on the third mode (Ito)."""

    dt: float = 0.005
    stride: int = 20

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (3,)

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (3,)

    def drift(self, u: np.ndarray) -> np.ndarray:
        u1, u2, u3 = u[..., 0], u[..., 1], u[..., 2]
        return np.stack([-0.2 * u1 - 0.4 * u2 + u3, -0.2 * u2 + 0.4 * u1, -2.0 * u3], -1)

    def _build(self) -> SDE:
        def drift(u, p):
            u1, u2, u3 = u[:, 0], u[:, 1], u[:, 2]
            return np.stack([-p["t1"] * u1 - p["t2"] * u2 + u3, -p["t1"] * u2 + p["t2"] * u1,
                             -p["t3"] * u3], axis=1)

        def noise(u, p):
            one = np.ones_like(u[:, 0])
            return np.stack([p["t4"] * one, p["t5"] * one,
                             p["t6"] * (np.tanh(u[:, 0]) + 1.0)], axis=1)

        return SDE(drift, noise, {"t1": 0.2, "t2": 0.4, "t3": 2.0, "t4": 0.3, "t5": 0.3,
                                  "t6": 1.5}, dt=self.dt, scheme="euler",
                   name="triad state")


def _seed(rng: np.random.Generator) -> int:
    """A gfdt root seed drawn from ``rng`` (the explicit stream of the callers)."""
    return int(rng.integers(2**63))


def simulate(system: _SDE, n_members: int, n_samples: int, rng: np.random.Generator,
             spin_up: float = 50.0, initial: np.ndarray | None = None) -> np.ndarray:
    """Stationary trajectories, shape ``(n_members, n_samples, *state_shape)``.

    Members start from ``initial`` (or small random states) and are integrated for
    ``spin_up`` time units (rounded to whole steps) before the first saved sample, by
    :func:`gfdt.simulate` on :attr:`_SDE.sde`.
    """
    if n_members < 1 or n_samples < 1:
        raise ValueError("n_members and n_samples must be positive")
    x0 = system.initial(n_members, rng) if initial is None else np.array(initial, dtype=float)
    sde = system.sde
    burn = round(spin_up / system.dt) * system.dt
    ds = gfdt.simulate(sde, n_members=n_members, burn_in=burn,
                       duration=n_samples * system.save_interval,
                       save_interval=system.save_interval, seed=_seed(rng), initial=x0,
                       progress=False)
    out = ds[sde.variable].values
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{type(system).__name__} diverged: reduce dt")
    return out


def paired_response(system: _SDE, states: np.ndarray, max_lag: int, delta: float,
                    rng: np.random.Generator, sources: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Response to kicks by paired noise, and its member-level standard error.

    Each source coordinate is kicked by ``delta`` in a copy of every state, integrated with
    the same noise as the unkicked copy (:func:`gfdt.perturbation_response` with a
    constant perturbation direction; every source replays the same member streams).

    Parameters
    ----------
    system : SDE of this module
    states : ndarray, shape (n, *state_shape)
        Stationary initial states (independent, or far apart in time).
    max_lag : int
        Largest lag in saved samples (``stride`` steps each).
    delta : float
        Kick size, in the units of the state.
    rng : numpy.random.Generator
        Source of the shared noise.
    sources : ndarray of int, optional
        Flat indices of the kicked coordinates (default: all of them).

    Returns
    -------
    response, stderr : ndarray, shape (max_lag + 1, *state_shape, n_sources)
        ``response[t, ..., j]`` is the mean of ``(x_kicked_j(t) - x(t)) / delta`` over
        the ``n`` states; ``stderr`` its standard error over them.
    """
    states = np.asarray(states, dtype=float)
    shape = system.state_shape
    d = int(np.prod(shape))
    src = np.arange(d) if sources is None else np.asarray(sources, dtype=int)
    seed = _seed(rng)
    resp, se = [], []
    for j in src:
        e = np.zeros(d)
        e[j] = 1.0
        tr = gfdt.perturbation_response(system.sde, states, max_lag=max_lag,
                                        save_interval=system.save_interval, delta=delta,
                                        perturbation=e.reshape(shape), seed=seed,
                                        progress=False)
        resp.append(tr.response.values)
        se.append(tr.stderr.values)
    return np.stack(resp, axis=-1), np.stack(se, axis=-1)
