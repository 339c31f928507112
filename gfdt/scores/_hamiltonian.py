"""Leapfrog and the Hamiltonian score discrepancy: integrator, closed form and Monte Carlo.

The mathematics of :mod:`gfdt.scores.hsm` (see its module docstring), public there.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from gfdt.scores.base import as_samples

__all__ = ["gaussian_hamiltonian_discrepancy", "hamiltonian_score_discrepancy", "leapfrog",
           "leapfrog_matrix"]


# ------------------------------------------------------------------ integrators
def leapfrog(force: Callable, x, v, t, n_steps: int):
    """Leapfrog (velocity Verlet) integration of :math:`\\dot x = v,\\ \\dot v = F(x)`.

    Works on numpy arrays and on torch tensors alike (differentiable through ``force``).

    Parameters
    ----------
    force : callable
        Maps positions ``(batch, *state)`` to forces of the same shape.
    x, v : array or tensor, shape ``(batch, *state)``
        Initial positions and velocities.
    t : float or array of shape ``(batch,)``
        Integration time of each trajectory (step ``t / n_steps``).
    n_steps : int
        Leapfrog steps (``n_steps + 1`` force evaluations).

    Returns
    -------
    (x_t, v_t)
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    shape = (-1,) + (1,) * (x.ndim - 1)
    if isinstance(x, torch.Tensor):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        h = (t.reshape(shape) if t.ndim else t) / n_steps
    else:
        t = np.asarray(t, dtype=float)
        h = (t.reshape(shape) if t.ndim else t) / n_steps
    f = force(x)
    for _ in range(n_steps):
        v = v + 0.5 * h * f
        x = x + h * v
        f = force(x)
        v = v + 0.5 * h * f
    return x, v


def leapfrog_matrix(B: np.ndarray, t: float, n_steps: int) -> np.ndarray:
    """The linear map ``(x0, v0) -> (x_t, v_t)`` of leapfrog for the force ``-B x``."""
    d = B.shape[0]
    h = t / n_steps
    eye = np.eye(d)
    # v1/2 = v - h/2 B x; x' = x + h v1/2; v' = v1/2 - h/2 B x'
    kick = np.block([[eye, np.zeros((d, d))], [-0.5 * h * B, eye]])
    drift = np.block([[eye, h * eye], [np.zeros((d, d)), eye]])
    step = kick @ drift @ kick
    return np.linalg.matrix_power(step, n_steps)


def gaussian_hamiltonian_discrepancy(B, C, t: float, n_steps: int = 6):
    """Closed-form HSD for Gaussian data :math:`N(0, C)` and a linear force :math:`-Bx`.

    The leapfrog map is linear, so :math:`(x_t, v_t)` is jointly Gaussian and the
    velocity predictor is linear, :math:`V^*(x) = K x` with
    :math:`K = C_{vx} C_{xx}^{-1}`; then :math:`\\mathrm{HSD}_t = \\mathrm{tr}(K C_{xv})`.

    Parameters
    ----------
    B : array_like, shape (d, d)
        Force matrix (the score of :math:`N(0, C)` is :math:`B = C^{-1}`).
    C : array_like, shape (d, d)
        Data covariance.
    t : float
        Time (> 0).
    n_steps : int
        Leapfrog steps (the result is that of the integrator, not of the exact flow).

    Returns
    -------
    hsd : float
        :math:`E\\|V^*(x_t)\\|^2`.
    K : numpy.ndarray, shape (d, d)
        The velocity predictor's matrix.
    """
    B = np.atleast_2d(np.asarray(B, dtype=float))
    C = np.atleast_2d(np.asarray(C, dtype=float))
    d = C.shape[0]
    if B.shape != (d, d) or C.shape != (d, d):
        raise ValueError(f"B and C must be (d, d) matrices of the same size, got {B.shape} "
                         f"and {C.shape}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    M = leapfrog_matrix(B, float(t), int(n_steps))
    S0 = np.zeros((2 * d, 2 * d))
    S0[:d, :d] = C
    S0[d:, d:] = np.eye(d)
    S = M @ S0 @ M.T
    cxx, cvx = S[:d, :d], S[d:, :d]
    K = np.linalg.solve(cxx, cvx.T).T
    return float(np.trace(K @ cvx.T)), K


def hamiltonian_score_discrepancy(force: Callable, X, t: float, *, n_steps: int = 6,
                                  velocity: str | Callable = "linear",
                                  seed: int = 0) -> float:
    """Monte Carlo Hamiltonian score discrepancy :math:`\\mathrm{HSD}_t` of a force field.

    Trajectories start at the samples ``X`` with velocities :math:`N(0, I)` and run
    ``n_steps`` leapfrog steps to time ``t``.

    Parameters
    ----------
    force : callable
        Maps positions ``(batch, d)`` (numpy) to forces of the same shape.
    X : array_like, shape ``(n_samples, d)``
        Samples of the data distribution.
    t : float
        Time (> 0).
    n_steps : int
        Leapfrog steps.
    velocity : "linear" or callable
        ``"linear"``: the velocity predictor is the least-squares regression of
        :math:`v_t` on :math:`(1, x_t)` (exact when :math:`(x_t, v_t)` is jointly
        Gaussian), cross-fitted on two halves, and the estimate is the held-out
        objective :math:`E[2 V\\cdot v_t - \\|V\\|^2]` (no overfitting bias).
        A callable ``V(x_t, t)`` returns the predictor; the estimate is then
        :math:`E\\|V(x_t, t)\\|^2`.
    seed : int
        Seed of the initial velocities.

    Returns
    -------
    float
        :math:`E\\|V^*(x_t, t)\\|^2` (summed over coordinates, averaged over samples).
    """
    X = as_samples(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, d), got {X.shape}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(X.shape)
    xt, vt = leapfrog(lambda x: np.asarray(force(x), dtype=float), X, v0, float(t), n_steps)
    if callable(velocity):
        V = np.asarray(velocity(xt, float(t)), dtype=float)
        return float(np.mean(np.sum(V**2, axis=1)))
    if velocity != "linear":
        raise ValueError(f"velocity must be 'linear' or a callable, got {velocity!r}")
    n = len(X)
    feats = np.concatenate([np.ones((n, 1)), xt], axis=1)
    half = n // 2
    folds = [(slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))]
    vals = []
    for fit, ev in folds:
        coef, *_ = np.linalg.lstsq(feats[fit], vt[fit], rcond=None)
        V = feats[ev] @ coef
        vals.append(np.mean(np.sum(2 * V * vt[ev] - V**2, axis=1)))
    return float(np.mean(vals))
