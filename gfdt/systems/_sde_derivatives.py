"""Derivatives of a user SDE in its parameters and its state, without user code.

:class:`SymbolicDerivatives` differentiates the traced sympy expressions exactly
(:mod:`gfdt.systems._sde_trace`); :class:`NumericDerivatives` takes central differences
of the user's numpy functions when they cannot be traced, with the parameter steps it
used in :attr:`NumericDerivatives.steps`. Both give, per parameter :math:`\\theta`:

* :math:`\\partial F/\\partial\\theta` at states, and its divergence (symbolic only; the
  sensitivity estimator differences it numerically otherwise);
* :math:`\\partial D/\\partial\\theta` (:math:`D = g g^T/2`): None when the noise does not
  depend on :math:`\\theta`, a constant array, or a :class:`~gfdt.response.DiffusionField`
  with its divergences :math:`\\sum_i\\partial_i\\,\\delta D_{ij}` and
  :math:`\\sum_{ij}\\partial_i\\partial_j\\,\\delta D_{ij}` for state-dependent noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from gfdt.systems._sde_trace import Traced, numpy_function

__all__ = ["NumericDerivatives", "SymbolicDerivatives", "theta_step"]


def theta_step(value: float) -> float:
    """Central-difference step of a parameter: :math:`\\epsilon^{1/3}\\max(|\\theta|, 1)`
    (balances the :math:`h^2` truncation and :math:`\\epsilon/h` round-off errors)."""
    return float(np.finfo(float).eps ** (1 / 3) * max(abs(float(value)), 1.0))


class SymbolicDerivatives:
    """Exact derivatives of a traced model (expressions built lazily per parameter).

    Parameters
    ----------
    traced : Traced
    names : sequence of str
        Parameter names, in the order of ``traced.p``.
    """

    method = "symbolic"

    def __init__(self, traced: Traced, names: Sequence[str]) -> None:
        self.tr = traced
        self.names = list(names)
        self._cache: dict[tuple, Any] = {}

    def _fn(self, key: tuple, exprs: Callable[[], list]) -> Callable | None:
        """A cached batched evaluator of ``exprs()`` (None when all are zero)."""
        if key not in self._cache:
            ex = exprs()
            self._cache[key] = (None if all(e == 0 for e in ex)
                                else numpy_function(ex, self.tr.x, self.tr.p, key[0]))
        return self._cache[key]

    def _sym(self, name: str) -> sp.Symbol:
        return self.tr.p[self.names.index(name)]

    def steps(self) -> dict[str, float]:
        return {}

    def drift_derivative(self, X: np.ndarray, P: np.ndarray, name: str) -> np.ndarray:
        """:math:`\\partial F/\\partial\\theta`, shape (n, d)."""
        t = self._sym(name)
        fn = self._fn(("dF", name), lambda: [sp.diff(f, t) for f in self.tr.drift])
        return np.zeros_like(X) if fn is None else fn(X, P)

    def drift_divergence(self, X: np.ndarray, P: np.ndarray, name: str) -> np.ndarray:
        """:math:`\\nabla\\cdot\\partial F/\\partial\\theta`, shape (n,)."""
        t = self._sym(name)
        fn = self._fn(("divF", name),
                      lambda: [sum((sp.diff(f, t, xi) for f, xi in
                                    zip(self.tr.drift, self.tr.x, strict=True)), sp.S.Zero)])
        return np.zeros(X.shape[0]) if fn is None else fn(X, P)[:, 0]

    # ------------------------------------------------------------ diffusion
    def _dD(self, name: str) -> tuple[list, bool]:
        """Entries of dD/dtheta (diagonal list, or the full matrix row-major) and whether
        the noise is diagonal."""
        key = ("dDexpr", name)
        if key not in self._cache:
            t = self._sym(name)
            D = self.tr.diffusion()
            diag = self.tr.noise is None
            entries = [sp.diff(e, t) for e in (D if diag else list(D))]
            self._cache[key] = (entries, diag)
        return self._cache[key]

    def diffusion(self, name: str, P: np.ndarray) -> Any:
        """None, a constant array ((d,) or (d, d)), or a DiffusionField at parameters P."""
        from gfdt.response._diffusion import DiffusionField

        entries, diag = self._dD(name)
        if all(e == 0 for e in entries):
            return None
        d, x = self.tr.d, self.tr.x
        xs = set(x)
        if not any(e.free_symbols & xs for e in entries):
            fn = numpy_function(entries, x, self.tr.p, "dD")
            vals = fn(np.zeros((1, d)), P)[0]
            return vals if diag else vals.reshape(d, d)
        value = self._fn(("dD", name), lambda: entries)
        if diag:
            div = [sp.diff(entries[j], x[j]) for j in range(d)]
            div2 = [sum((sp.diff(entries[j], x[j], 2) for j in range(d)), sp.S.Zero)]
        else:
            M = [entries[i * d:(i + 1) * d] for i in range(d)]
            div = [sum((sp.diff(M[i][j], x[i]) for i in range(d)), sp.S.Zero)
                   for j in range(d)]
            div2 = [sum((sp.diff(M[i][j], x[i], x[j]) for i in range(d) for j in range(d)),
                        sp.S.Zero)]
        fdiv = self._fn(("divD", name), lambda: div)
        fdiv2 = self._fn(("div2D", name), lambda: div2)
        P = np.array(P, dtype=float)
        shape = (d,) if diag else (d, d)

        def val(X):
            X = X.reshape(X.shape[0], -1)
            return value(X, P).reshape(X.shape[0], *shape)

        def first(X):
            X = X.reshape(X.shape[0], -1)
            return np.zeros_like(X) if fdiv is None else fdiv(X, P)

        def second(X):
            X = X.reshape(X.shape[0], -1)
            return np.zeros(X.shape[0]) if fdiv2 is None else fdiv2(X, P)[:, 0]

        return DiffusionField(val, divergence=first, second=second, diagonal=diag,
                              name=f"dD/d{name}")


class NumericDerivatives:
    """Central differences of the user's numpy functions (untraceable models).

    Parameters
    ----------
    drift, noise : callable
        The user's functions ``f(x, p)`` on batches; ``noise`` may be a constant.
    names : sequence of str
    state_shape : tuple of int
    """

    method = "central differences"

    def __init__(self, drift: Callable, noise: Any, names: Sequence[str],
                 state_shape: tuple[int, ...]) -> None:
        self.f = drift
        self.g = noise
        self.names = list(names)
        self.state_shape = tuple(state_shape)
        self._steps: dict[str, float] = {}

    def steps(self) -> dict[str, float]:
        """The parameter steps used so far, name -> step."""
        return dict(self._steps)

    def _pm(self, P: np.ndarray, name: str) -> tuple[dict, dict, float]:
        k = self.names.index(name)
        h = theta_step(P[k])
        self._steps[name] = h
        up = {n: float(v) for n, v in zip(self.names, P, strict=True)}
        dn = dict(up)
        up[name] += h
        dn[name] -= h
        return up, dn, h

    def _call(self, fn, X, p) -> np.ndarray:
        n = X.shape[0]
        with np.errstate(all="ignore"):
            return np.asarray(fn(X.reshape(n, *self.state_shape), p), dtype=float)

    def drift_derivative(self, X: np.ndarray, P: np.ndarray, name: str) -> np.ndarray:
        up, dn, h = self._pm(P, name)
        out = (self._call(self.f, X, up) - self._call(self.f, X, dn)) / (2 * h)
        return out.reshape(X.shape[0], -1)

    def drift_divergence(self, X: np.ndarray, P: np.ndarray, name: str) -> None:
        return None  # the sensitivity estimator differences dF/dtheta in the state

    def _D(self, X: np.ndarray, p: dict) -> np.ndarray:
        """D = g g^T / 2 at states X: (n, d) for diagonal noise, (n, d, d) for full."""
        n, d = X.shape[0], X.shape[1]
        if callable(self.g):
            g = self._call(self.g, X, p)
        else:
            g = np.asarray(self.g, dtype=float)
        if g.ndim == 0:
            return np.full((n, d), 0.5 * float(g) ** 2)
        if g.shape[:1] == (n,) and g.size == n * d:
            return 0.5 * g.reshape(n, d) ** 2
        if g.ndim == 3:
            return 0.5 * np.einsum("nik,njk->nij", g, g)
        if g.size == d:
            return np.broadcast_to(0.5 * g.reshape(d) ** 2, (n, d)).copy()
        return np.broadcast_to(0.5 * g @ g.T, (n, d, d)).copy()

    def diffusion(self, name: str, P: np.ndarray) -> Any:
        from gfdt.response._diffusion import DiffusionField

        if not callable(self.g):
            return None
        d = int(np.prod(self.state_shape))
        up, dn, h = self._pm(P, name)

        def val(X):
            X = X.reshape(X.shape[0], -1)
            return (self._D(X, up) - self._D(X, dn)) / (2 * h)

        probe = np.random.default_rng(0).standard_normal((4, d))
        v = val(probe)
        if not np.any(v != 0):
            return None
        return DiffusionField(val, diagonal=v.ndim == 2, name=f"dD/d{name}")
