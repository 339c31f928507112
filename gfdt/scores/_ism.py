"""Held-out Fisher divergence of a clean vector score, up to a constant (implicit score
matching), coordinate by coordinate.

For a score :math:`s` and the data's density :math:`p` (score :math:`s^*`), integration
by parts gives, per coordinate :math:`j`,

.. math:: J_j(s) = E\\left[\\tfrac12 s_j(x)^2 + \\partial_j s_j(x)\\right]
          = \\tfrac12 E\\,(s_j - s^*_j)^2 - \\tfrac12 E\\,s^{*2}_j ,

so differences of :math:`J_j` between two scores, estimated on samples neither was
fitted to, are differences of their Fisher errors in coordinate :math:`j` at zero
noise: the score the GFDT uses, not a noised one. The derivative
:math:`\\partial_j s_j` comes from central differences of the score (any estimator;
exact for affine scores up to rounding); the Gaussian score's terms are in closed
form.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["gaussian_ism_terms", "ism_terms", "value_and_divergence"]

#: Step of the central differences, in standardised units.
FD_STEP = 1e-2


def value_and_divergence(fn: Callable[[np.ndarray], np.ndarray], xs: np.ndarray,
                         step: float = FD_STEP) -> tuple[np.ndarray, np.ndarray]:
    """``fn(xs)`` and its diagonal derivatives :math:`\\partial_j f_j` (central
    differences), both of shape ``(n, d)``; ``fn`` maps ``(k, *state)`` to the same
    shape."""
    n = len(xs)
    flat = xs.reshape(n, -1)
    d = flat.shape[1]
    f = np.asarray(fn(xs), dtype=float).reshape(n, d)
    div = np.empty((n, d))
    for j in range(d):  # 2 d evaluations of the n samples
        shifted = np.concatenate([flat, flat])
        shifted[:n, j] += step
        shifted[n:, j] -= step
        fj = np.asarray(fn(shifted.reshape(2 * n, *xs.shape[1:])),
                        dtype=float).reshape(2 * n, d)[:, j]
        div[:, j] = (fj[:n] - fj[n:]) / (2 * step)
    return f, div


def ism_terms(score: Callable[[np.ndarray], np.ndarray], xs: np.ndarray,
              step: float = FD_STEP) -> np.ndarray:
    """:math:`\\tfrac12 s_j(x)^2 + \\partial_j s_j(x)` per sample and coordinate.

    Parameters
    ----------
    score : callable
        ``(k, *state) -> (k, *state)``, the score in the units of ``xs``.
    xs : numpy.ndarray, shape ``(n, *state)``
    step : float
        Central-difference step.

    Returns
    -------
    numpy.ndarray, shape ``(n, d)``
    """
    s, div = value_and_divergence(score, xs, step)
    return 0.5 * s**2 + div


def gaussian_ism_terms(xs: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """:func:`ism_terms` of the Gaussian score :math:`-C^{-1} x` in closed form."""
    flat = xs.reshape(len(xs), -1)
    prec = np.linalg.inv(cov)
    return 0.5 * (flat @ prec) ** 2 - np.diag(prec)[None, :]
