"""Two families of non-reversible, non-Gaussian chains of any dimension, for the
dimension sweep of ``generalization.py``: numba simulators and paired-noise truths.

Both are Ito SDEs ``dx = -(I - J) grad V(x) dt + sqrt(2 / beta) dW`` with a constant
antisymmetric ``J``. The antisymmetric part is divergence-free with respect to
``exp(-beta V)`` (``grad V . J grad V = 0`` and ``tr(J Hess V) = 0``), so the stationary
density is ``exp(-beta V)`` for any such ``J`` and the exact score is ``-beta grad V``;
``J`` changes the dynamics (hence the response) but not the statistics. They are
integrated by Euler-Maruyama with a fixed step ``dt``, saving every ``stride`` steps.
Nothing here uses gfdt: the truths are an independent check of its estimates.

Families
--------
:class:`RingDoubleWell` (``"ring"``)
    ``V = sum_i (x_i^4/4 - x_i^2/2) + c sum_i x_i x_{i+1}`` on a ring (indices mod d),
    ``J = j (P - P^T)`` with ``P`` the cyclic shift (rotation between ring neighbours);
    ``beta = 1.5``, ``c = 0.15``, ``j = 0.8`` (the chain of issue 23).
:class:`TiltedLogCosh` (``"tilted"``)
    A non-polynomial, asymmetric single-site double well with Gaussian tails,
    ``u(x) = x^2/2 - (a/k) log cosh(k x) - b x``, and a *nonlinear* coupling of range
    3, ``g sum_i log cosh(x_i - x_{i+3})``; ``J`` is a fixed random sparse antisymmetric
    matrix with entries at ring offsets 2 and 5 (a rotation of a different range and
    pattern, not translation invariant). A score of the form "pointwise nonlinearity
    plus linear coupling" is not exact here.

Truth
-----
:func:`paired_response` kicks stationary states by ``+-delta`` along one coordinate and
integrates both copies with the same noise; the response is the mean of
``(x_+(t) - x_-(t)) / (2 delta)`` (central differences), with its standard error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

__all__ = ["FAMILIES", "RingDoubleWell", "TiltedLogCosh", "make_chain", "paired_response",
           "simulate", "stationary_states"]


# ------------------------------------------------------------------ numba kernels
@numba.njit(cache=True)
def _grad_v(kind, x, p, out):
    """grad V at one state ``x`` (d,) into ``out``; ``kind`` 0 ring, 1 tilted."""
    d = x.shape[0]
    if kind == 0:
        c = p[0]
        for i in range(d):
            xi = x[i]
            out[i] = xi * xi * xi - xi + c * (x[(i - 1) % d] + x[(i + 1) % d])
    else:
        a, k, b, g = p[0], p[1], p[2], p[3]
        for i in range(d):
            out[i] = x[i] - a * np.tanh(k * x[i]) - b
        for i in range(d):
            t = g * np.tanh(x[i] - x[(i + 3) % d])
            out[i] += t
            out[(i + 3) % d] -= t


@numba.njit(cache=True)
def _drift(kind, x, p, jptr, jidx, jval, gv, out):
    """-(I - J) grad V at ``x``; J in CSR form (jptr, jidx, jval)."""
    _grad_v(kind, x, p, gv)
    d = x.shape[0]
    for i in range(d):
        acc = -gv[i]
        for q in range(jptr[i], jptr[i + 1]):
            acc += jval[q] * gv[jidx[q]]
        out[i] = acc


@numba.njit(cache=True)
def _simulate(kind, p, jptr, jidx, jval, beta, dt, stride, x0, n_samples, spin_up_steps,
              rng):
    m, d = x0.shape
    out = np.empty((m, n_samples, d))
    amp = np.sqrt(2.0 / beta * dt)
    gv = np.empty(d)
    f = np.empty(d)
    for mem in range(m):
        x = x0[mem].copy()
        for s in range(spin_up_steps + n_samples * stride):
            if s >= spin_up_steps and (s - spin_up_steps) % stride == 0:
                out[mem, (s - spin_up_steps) // stride] = x
            _drift(kind, x, p, jptr, jidx, jval, gv, f)
            for i in range(d):
                x[i] += f[i] * dt + amp * rng.standard_normal()
    return out


@numba.njit(cache=True)
def _paired(kind, p, jptr, jidx, jval, beta, dt, stride, states, source, delta, max_lag,
            rng):
    n, d = states.shape
    s1 = np.zeros((max_lag + 1, d))
    s2 = np.zeros((max_lag + 1, d))
    amp = np.sqrt(2.0 / beta * dt)
    gv = np.empty(d)
    fp = np.empty(d)
    fm = np.empty(d)
    z = np.empty(d)
    for k in range(n):
        xp = states[k].copy()
        xm = states[k].copy()
        xp[source] += delta
        xm[source] -= delta
        for t in range(max_lag + 1):
            for i in range(d):
                r = (xp[i] - xm[i]) / (2 * delta)
                s1[t, i] += r
                s2[t, i] += r * r
            if t == max_lag:
                break
            for _ in range(stride):
                _drift(kind, xp, p, jptr, jidx, jval, gv, fp)
                _drift(kind, xm, p, jptr, jidx, jval, gv, fm)
                for i in range(d):
                    z[i] = amp * rng.standard_normal()
                for i in range(d):
                    xp[i] += fp[i] * dt + z[i]
                    xm[i] += fm[i] * dt + z[i]
    return s1, s2


# ------------------------------------------------------------------ the families
def _csr(J: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(J)
    ptr = np.zeros(J.shape[0] + 1, dtype=np.int64)
    np.add.at(ptr, rows + 1, 1)
    return np.cumsum(ptr), cols.astype(np.int64), J[rows, cols].astype(float)


class _Chain:
    """Shared interface: ``d``, ``beta``, ``dt``, ``stride``, ``J``, ``grad_potential``,
    ``potential``, ``exact_score``, ``drift`` (numpy, batched over leading axes)."""

    kind: int
    d: int
    beta: float
    dt: float
    stride: int

    @property
    def save_interval(self) -> float:
        return self.dt * self.stride

    @property
    def state_shape(self) -> tuple[int, ...]:
        return (self.d,)

    def _params(self) -> np.ndarray:
        raise NotImplementedError

    def exact_score(self, x: np.ndarray) -> np.ndarray:
        """-beta grad V(x), any leading axes."""
        return -self.beta * self.grad_potential(np.asarray(x, dtype=float))

    def drift(self, x: np.ndarray) -> np.ndarray:
        """-(I - J) grad V(x), any leading axes."""
        g = self.grad_potential(np.asarray(x, dtype=float))
        return -(g - g @ self.J.T)

    def _kernel_args(self) -> tuple:
        return (self.kind, self._params(), *_csr(self.J), float(self.beta), float(self.dt),
                int(self.stride))


@dataclass(frozen=True)
class RingDoubleWell(_Chain):
    """Quartic double wells on a ring with nearest-neighbour coupling and rotation."""

    d: int = 8
    beta: float = 1.5
    c: float = 0.15
    j: float = 0.8
    dt: float = 0.005
    stride: int = 10
    kind: int = 0

    def _params(self) -> np.ndarray:
        return np.array([self.c])

    @property
    def J(self) -> np.ndarray:
        m = np.zeros((self.d, self.d))
        i = np.arange(self.d)
        np.add.at(m, (i, (i + 1) % self.d), self.j)
        np.add.at(m, ((i + 1) % self.d, i), -self.j)
        return m

    def grad_potential(self, x: np.ndarray) -> np.ndarray:
        return x * x * x - x + self.c * (np.roll(x, 1, -1) + np.roll(x, -1, -1))

    def potential(self, x: np.ndarray) -> np.ndarray:
        return (x**4 / 4 - x**2 / 2).sum(-1) + self.c * (x * np.roll(x, -1, -1)).sum(-1)


@dataclass(frozen=True)
class TiltedLogCosh(_Chain):
    """Tilted log-cosh double wells, log-cosh coupling of range 3, random sparse rotation."""

    d: int = 8
    beta: float = 1.0
    a: float = 2.0
    k: float = 2.0
    b: float = 0.25
    g: float = 0.5
    j: float = 0.7
    rotation_seed: int = 7
    dt: float = 0.005
    stride: int = 10
    kind: int = 1

    def _params(self) -> np.ndarray:
        return np.array([self.a, self.k, self.b, self.g])

    @property
    def J(self) -> np.ndarray:
        """Antisymmetric, entries at ring offsets 2 and 5 with random weights in
        +-[0.5, 1] j (seeded), summed where offsets coincide (small d)."""
        rng = np.random.default_rng([self.rotation_seed, self.d])
        m = np.zeros((self.d, self.d))
        i = np.arange(self.d)
        for off in (2, 5):
            w = self.j * rng.uniform(0.5, 1.0, self.d) * rng.choice([-1.0, 1.0], self.d)
            np.add.at(m, (i, (i + off) % self.d), w)
            np.add.at(m, ((i + off) % self.d, i), -w)
        return m

    def grad_potential(self, x: np.ndarray) -> np.ndarray:
        t = self.g * np.tanh(x - np.roll(x, -3, -1))  # t_i = g tanh(x_i - x_{i+3})
        return x - self.a * np.tanh(self.k * x) - self.b + t - np.roll(t, 3, -1)

    def potential(self, x: np.ndarray) -> np.ndarray:
        u = x**2 / 2 - self.a / self.k * np.log(np.cosh(self.k * x)) - self.b * x
        return u.sum(-1) + self.g * np.log(np.cosh(x - np.roll(x, -3, -1))).sum(-1)


FAMILIES = {"ring": RingDoubleWell, "tilted": TiltedLogCosh}


def make_chain(family: str, d: int) -> _Chain:
    """The chain of ``family`` (``"ring"`` or ``"tilted"``) with ``d`` coordinates."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose from {sorted(FAMILIES)}")
    if d < 4:
        raise ValueError(f"d must be at least 4, got {d}")
    return FAMILIES[family](d=d)


# ------------------------------------------------------------------ drivers
def simulate(system: _Chain, n_members: int, n_samples: int, rng: np.random.Generator,
             spin_up: float = 20.0, stride: int | None = None) -> np.ndarray:
    """Stationary trajectories, shape ``(n_members, n_samples, d)``, saved every
    ``stride`` steps (default ``system.stride``) after ``spin_up`` time units."""
    if n_members < 1 or n_samples < 1:
        raise ValueError("n_members and n_samples must be positive")
    kind, p, ptr, idx, val, beta, dt, st = system._kernel_args()
    st = st if stride is None else int(stride)
    x0 = 0.1 * rng.standard_normal((n_members, system.d))
    out = _simulate(kind, p, ptr, idx, val, beta, dt, st, x0, n_samples,
                    round(spin_up / dt), rng)
    if not np.all(np.isfinite(out)):
        raise FloatingPointError(f"{type(system).__name__} diverged: reduce dt")
    return out


def stationary_states(system: _Chain, n: int, rng: np.random.Generator,
                      gap: float = 2.0, per_member: int = 100) -> np.ndarray:
    """``n`` stationary states, ``per_member`` from each of ``ceil(n / per_member)``
    members, ``gap`` time units apart (shape ``(n, d)``)."""
    m = -(-n // per_member)
    x = simulate(system, m, per_member, rng, stride=round(gap / system.dt))
    return x.reshape(-1, system.d)[:n]


def paired_response(system: _Chain, states: np.ndarray, max_lag: int, delta: float,
                    rng: np.random.Generator, source: int = 0
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Response to a kick of coordinate ``source`` by paired noise, central differences.

    Returns
    -------
    response, stderr : ndarray, shape (max_lag + 1, d)
        Mean of ``(x_+(t) - x_-(t)) / (2 delta)`` over the ``states`` and its standard
        error; lags in saved samples (``stride`` steps each).
    """
    states = np.ascontiguousarray(states, dtype=float)
    kind, p, ptr, idx, val, beta, dt, st = system._kernel_args()
    s1, s2 = _paired(kind, p, ptr, idx, val, beta, dt, st, states, int(source),
                     float(delta), int(max_lag), rng)
    n = len(states)
    mean = s1 / n
    var = np.maximum(s2 / n - mean**2, 0.0) * n / max(n - 1, 1)
    return mean, np.sqrt(var / n)
