r"""Hamiltonian generative flows: integrate :math:`\dot x = V(x, t)` from :math:`T` to 0."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from gfdt.sampling._checks import _bar, _call, _check_int, _initial, _number

__all__ = ["hamiltonian_flow"]


# ------------------------------------------------------------------ HGF
def hamiltonian_flow(velocity: Callable, n_samples: int | None = None, *, x_init=None,
                     state_shape: Sequence[int] = (1,), alpha: float | None = None,
                     T: float | None = None, n_steps: int = 100, seed: int = 0,
                     progress: bool | None = None) -> np.ndarray:
    """Hamiltonian generative flow: integrate :math:`\\dot x = V(x, t)` from ``T`` to 0.

    :math:`V(x, t) = E[v_t \\mid x_t = x]` for the Hamiltonian flow
    :math:`\\dot x = v, \\dot v = F(x)` started at data :math:`\\times N(0, I)`: the ODE
    transports the law of :math:`x_T` back to the data law. With the oscillation force
    :math:`F = -\\alpha^2 x` and :math:`T = \\pi / (2\\alpha)`, :math:`x_T = v_0/\\alpha` is
    exactly :math:`N(0, I/\\alpha^2)`, the start drawn here; with zero force
    (``alpha=None``) the caller gives ``x_init``. Heun's method, uniform grid.

    Parameters
    ----------
    velocity : callable
        ``velocity(x, t)`` for ``x`` of shape ``(n, *state)``, ``t`` a float.
    n_samples : int, optional
        With ``alpha``: draw the start :math:`N(0, I/\\alpha^2)`.
    x_init : array_like, optional
        Start at ``T``.
    state_shape : sequence of int
    alpha : float, optional
        Oscillation frequency.
    T : float, optional
        Start time (default :math:`\\pi/(2\\alpha)`).
    n_steps : int
        Heun steps (two velocity evaluations each).
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape ``(n, *state)``
    """
    if not callable(velocity):
        raise TypeError("velocity must be callable")
    n_steps = _check_int(n_steps, "n_steps")
    if alpha is not None:
        alpha = _number(alpha, "alpha")
    if T is None:
        if alpha is None:
            raise ValueError("give T (or alpha, for T = pi / (2 alpha))")
        T = math.pi / (2 * alpha)
    T = _number(T, "T")
    rng = np.random.default_rng(seed)
    x = _initial(x_init, n_samples, state_shape)
    if x is None:
        if alpha is None or n_samples is None:
            raise ValueError("give x_init, or alpha and n_samples")
        x = rng.standard_normal((int(n_samples), *tuple(state_shape))) / alpha
    ts = np.linspace(T, 0.0, n_steps + 1)
    bar = _bar(n_steps, "Hamiltonian flow", progress)
    try:
        for i in range(n_steps):
            h = ts[i + 1] - ts[i]
            k1 = _call(velocity, x, ts[i], shape=x.shape)
            k2 = _call(velocity, x + h * k1, ts[i + 1], shape=x.shape)
            x = x + 0.5 * h * (k1 + k2)
            bar.update(1)
    finally:
        bar.close()
    return x
