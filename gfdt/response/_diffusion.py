"""State-dependent diffusion perturbations and their conjugate variable.

For :math:`dx = F\\,dt + g\\,dW` (Ito) with :math:`D = g g^T/2`, the Fokker-Planck
operator carries :math:`\\partial_i\\partial_j(D_{ij} p)`. A parameter step that changes
:math:`D` by :math:`\\delta D(x)` has the conjugate (score :math:`s = \\nabla\\log p`,
summation over repeated indices, :math:`\\delta D` symmetric)

.. math::

    B = \\frac{\\partial_i\\partial_j(\\delta D_{ij}\\, p)}{p}
      = \\partial_i\\partial_j\\,\\delta D_{ij} + 2\\,(\\partial_i\\,\\delta D_{ij})\\, s_j
        + \\delta D_{ij}\\,(\\partial_i s_j + s_i s_j),

using :math:`\\partial_j p/p = s_j` and :math:`\\partial_i\\partial_j p / p =
\\partial_i s_j + s_i s_j`. For constant :math:`\\delta D` only the last term remains
(:class:`~gfdt.response.ParameterPerturbation`). The convention is checked in
``tests/test_sde_sensitivity.py`` against the 1-D zero-flux density
:math:`p \\propto e^{\\int F/D}/D`: there :math:`B = -\\mathcal{L}^*(\\partial_\\theta p)/p`
exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["DiffusionField"]

#: Default step (state units) of the central differences when none is bound.
DEFAULT_STEP = 1e-3


class DiffusionField:
    """A state-dependent :math:`\\delta D(x) = \\partial D/\\partial\\theta` and the two
    divergences its conjugate needs.

    Parameters
    ----------
    value : callable
        States ``(m, *state)`` to ``(m, d)`` (diagonal, ``diagonal=True``) or
        ``(m, d, d)`` (symmetric), per unit of the parameter.
    divergence : callable, optional
        :math:`v_j = \\sum_i \\partial_i\\,\\delta D_{ij}`, ``(m, *state) -> (m, d)``. None:
        central differences of ``value`` (``2 d`` evaluations per state).
    second : callable, optional
        :math:`\\sum_{ij}\\partial_i\\partial_j\\,\\delta D_{ij}`, ``(m, *state) -> (m,)``.
        None: central differences of ``value`` (diagonal: ``2 d`` evaluations; full:
        ``2 d^2``).
    diagonal : bool
        Whether ``value`` returns the diagonal only.
    step : float, optional
        Central-difference step in state units (default: bound by the estimator to
        1e-2 times the data's standard deviation: second differences need a larger step
        than first ones).
    name : str
    """

    def __init__(self, value: Callable, divergence: Callable | None = None,
                 second: Callable | None = None, *, diagonal: bool = True,
                 step: float | None = None, name: str = "dD") -> None:
        for arg, v in (("value", value), ("divergence", divergence), ("second", second)):
            if v is not None and not callable(v):
                raise TypeError(f"{arg} must be callable, got {type(v).__name__}")
        if value is None:
            raise TypeError("value must be callable, got None")
        if step is not None and not (np.isfinite(step) and step > 0):
            raise ValueError(f"step must be > 0, got {step!r}")
        self.value = value
        self.divergence_fn = divergence
        self.second_fn = second
        self.diagonal = bool(diagonal)
        self.step = None if step is None else float(step)
        self.name = name

    def __repr__(self) -> str:
        kind = "diagonal" if self.diagonal else "full"
        how = "closed-form" if self.divergence_fn is not None else "finite-difference"
        return f"DiffusionField({self.name!r}, {kind}, {how} divergences)"

    def bind_step(self, step: float) -> DiffusionField:
        """A copy whose finite-difference step is ``step`` unless one was given."""
        return DiffusionField(self.value, self.divergence_fn, self.second_fn,
                              diagonal=self.diagonal,
                              step=self.step if self.step is not None else float(step),
                              name=self.name)

    # --------------------------------------------------------------- values
    def _value(self, x: np.ndarray) -> np.ndarray:
        m = x.shape[0]
        d = int(np.prod(x.shape[1:]))
        v = np.asarray(self.value(x), dtype=float)
        want = (m, d) if self.diagonal else (m, d, d)
        if v.shape != want:
            raise ValueError(f"{self.name} returned shape {v.shape} for {m} states; expected "
                             f"{want}")
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{self.name} returned NaN or inf")
        return v

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\delta D` at states ``x``: (m, d) or (m, d, d)."""
        return self._value(x)

    def divergence(self, x: np.ndarray) -> np.ndarray:
        """:math:`v_j = \\sum_i\\partial_i\\,\\delta D_{ij}`, shape (m, d)."""
        m = x.shape[0]
        if self.divergence_fn is not None:
            return np.asarray(self.divergence_fn(x), dtype=float).reshape(m, -1)
        flat = x.reshape(m, -1)
        d, h = flat.shape[1], self.step or DEFAULT_STEP
        out = np.zeros((m, d))
        for i in range(d):
            xp, xm = flat.copy(), flat.copy()
            xp[:, i] += h
            xm[:, i] -= h
            dv = (self._value(xp.reshape(x.shape)) - self._value(xm.reshape(x.shape))) / (2 * h)
            if self.diagonal:
                out[:, i] += dv[:, i]
            else:
                out += dv[:, i, :]  # d_i dD_ij for every j
        return out

    def second(self, x: np.ndarray) -> np.ndarray:
        """:math:`\\sum_{ij}\\partial_i\\partial_j\\,\\delta D_{ij}`, shape (m,)."""
        m = x.shape[0]
        if self.second_fn is not None:
            return np.asarray(self.second_fn(x), dtype=float).reshape(m)
        flat = x.reshape(m, -1)
        d, h = flat.shape[1], self.step or DEFAULT_STEP
        v0 = self._value(x)
        out = np.zeros(m)

        def at(shift: dict[int, float]) -> np.ndarray:
            z = flat.copy()
            for i, s in shift.items():
                z[:, i] += s
            return self._value(z.reshape(x.shape))

        for i in range(d):
            vp, vm = at({i: h}), at({i: -h})
            if self.diagonal:
                out += (vp[:, i] - 2 * v0[:, i] + vm[:, i]) / h**2
                continue
            out += (vp[:, i, i] - 2 * v0[:, i, i] + vm[:, i, i]) / h**2
            for j in range(i + 1, d):  # mixed: both (i, j) and (j, i), symmetric
                mixed = (at({i: h, j: h}) - at({i: h, j: -h}) - at({i: -h, j: h})
                         + at({i: -h, j: -h}))[:, i, j] / (4 * h * h)
                out += 2 * mixed
        return out

    # ------------------------------------------------------------- conjugate
    def conjugate(self, x: np.ndarray, s: np.ndarray, trace: Callable) -> np.ndarray:
        """:math:`B` at states ``x`` with scores ``s`` (both ``(m, *state)``).

        ``trace(x, dD)`` returns :math:`\\sum_{ij}\\delta D_{ij}\\,\\partial_i s_j` per state
        for the given per-state ``dD`` ((m, d) or (m, d, d)).
        """
        m = x.shape[0]
        sf = s.reshape(m, -1)
        dD = self._value(x)
        quad = (np.einsum("mi,mi,mi->m", dD, sf, sf) if self.diagonal
                else np.einsum("mi,mij,mj->m", sf, dD, sf))
        first = 2.0 * np.einsum("mj,mj->m", self.divergence(x), sf)
        return self.second(x) + first + quad + trace(x, dD)
