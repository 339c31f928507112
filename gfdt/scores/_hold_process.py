"""HOLD's forward process in closed form (the mathematics of :mod:`gfdt.scores.hold`,
public there): coefficients, propagator, conditional mean and covariance, effective
noise, the data score from an :math:`a`-block score, and the torch pieces of training.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

__all__ = ["data_score_from_block", "drift_matrix", "effective_noise", "hold_coefficients",
           "mean_cov", "propagator"]


# ------------------------------------------------------------------ the process
def hold_coefficients(r: float = math.sqrt(3)) -> tuple[float, float, float]:
    """Critically damped coefficients ``(w, g, xi)`` with triple eigenvalue ``-r``.

    :math:`w = r/\\sqrt 3`, :math:`g = r\\sqrt{8/3}`, :math:`\\xi = 3r` make the
    characteristic polynomial :math:`\\lambda^3 + \\xi\\lambda^2 + (w^2 + g^2)\\lambda +
    \\xi w^2 = (\\lambda + r)^3`.
    """
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"r must be a positive finite rate, got {r}")
    return r / math.sqrt(3), r * math.sqrt(8 / 3), 3 * r


def drift_matrix(r: float = math.sqrt(3)) -> np.ndarray:
    """The 3 x 3 matrix :math:`A` of the forward SDE (per coordinate, order x, v, a)."""
    w, g, xi = hold_coefficients(r)
    return np.array([[0.0, w, 0.0], [-w, 0.0, g], [0.0, -g, -xi]])


def propagator(t, *, beta: float = 1.0, r: float = math.sqrt(3)) -> np.ndarray:
    """:math:`E_t = e^{\\beta t A}`, shape ``(*t.shape, 3, 3)``.

    Critical damping makes :math:`N = A + rI` nilpotent (:math:`N^3 = 0`, Cayley-Hamilton
    with the characteristic polynomial :math:`(\\lambda + r)^3`), so
    :math:`e^{\\tau A} = e^{-r\\tau}(I + \\tau N + \\tau^2 N^2 / 2)` exactly.
    """
    t = np.asarray(t, dtype=float)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    N = drift_matrix(r) + r * np.eye(3)
    tau = beta * t[..., None, None]
    return np.exp(-r * tau) * (np.eye(3) + tau * N + 0.5 * tau**2 * (N @ N))


def mean_cov(t, *, beta: float = 1.0, r: float = math.sqrt(3), s_v: float = 1.0,
             s_a: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form conditional mean map and covariance of the HOLD forward process.

    Given :math:`x_0`, with :math:`v_0 \\sim N(0, s_v^2)`, :math:`a_0 \\sim N(0, s_a^2)`:
    :math:`E[u_t] = m_t x_0`, :math:`\\mathrm{Cov}[u_t] = I + E_t(\\Sigma_0 - I)E_t^T`.

    Parameters
    ----------
    t : float or array_like
        Times (>= 0).
    beta, r : float
        Time scale and critical-damping rate.
    s_v, s_a : float
        Initial standard deviations of the auxiliary variables.

    Returns
    -------
    m : numpy.ndarray, shape ``(*t.shape, 3)``
        :math:`m_t = E_t e_x`.
    cov : numpy.ndarray, shape ``(*t.shape, 3, 3)``
        :math:`\\Sigma_t`.
    """
    E = propagator(t, beta=beta, r=r)
    S0 = np.diag([0.0, s_v**2, s_a**2]) - np.eye(3)
    cov = np.eye(3) + E @ S0 @ np.swapaxes(E, -1, -2)
    return E[..., :, 0], cov


def effective_noise(t, *, beta: float = 1.0, r: float = math.sqrt(3)) -> np.ndarray:
    """:math:`\\sigma_{\\rm eff}(t) = \\sqrt{(1 - |m_t|^2)/|m_t|^2}` (units of the data)."""
    m, _ = mean_cov(t, beta=beta, r=r)
    n2 = np.sum(m**2, axis=-1)
    return np.sqrt(np.maximum(1 - n2, 0) / n2)


def _coefs_torch(t: torch.Tensor, beta: float, r: float) -> dict[str, torch.Tensor]:
    """Per-time quantities (float64) for a batch of times ``t`` (s_v = s_a = 1)."""
    E = torch.as_tensor(propagator(t.detach().cpu().numpy(), beta=beta, r=r),
                        dtype=torch.float64, device=t.device)
    m = E[:, :, 0]
    n2 = (m**2).sum(1)
    one_m = torch.clamp(1 - n2, min=1e-300)
    # L[a, a]^2 = 1 / (Sigma^{-1})_aa, Sigma^{-1} = I + m m^T / (1 - |m|^2)
    laa = torch.rsqrt(1 + m[:, 2] ** 2 / one_m)
    c = laa * m[:, 2] / n2  # eps_a per unit of smoothed-data-score correction
    cb = c / torch.sqrt(1 + c**2)  # bounded as t grows (|m| -> 0)
    return {"m": m, "n2": n2, "one_m": one_m, "laa": laa, "sig": torch.sqrt(one_m / n2),
            "c": cb, "gain": 1 / (n2 * torch.sqrt(1 + c**2))}


def data_score_from_block(s_a: Callable, x, t: float, *, beta: float = 1.0,
                          r: float = math.sqrt(3), n_draws: int = 8,
                          seed: int = 0) -> np.ndarray:
    """Smoothed data score from an :math:`a`-block score (see the module notes).

    :math:`\\nabla\\log(p_0 * N_{\\sigma_{\\rm eff}(t)})(x) = |m|^2 (s_a + u_a)/m_a - m\\cdot u`
    averaged over ``n_draws`` points :math:`u` of the fibre :math:`m\\cdot u = |m|^2 x`.

    Parameters
    ----------
    s_a : callable
        ``s_a(u, t)`` with ``u`` of shape ``(batch, 3, *state)`` (channels x, v, a)
        returning :math:`\\nabla_a \\log p_t(u)`, shape ``(batch, *state)``.
    x : array_like, shape ``(batch, *state)``
        Points (units of the process, i.e. standardised data).
    t : float
        Time (> 0).
    beta, r : float
        Process parameters.
    n_draws : int
        Fibre points per ``x`` (the first is :math:`u = m x`).
    seed : int
        Seed of the fibre draws.

    Returns
    -------
    numpy.ndarray, shape of ``x``
    """
    x = np.asarray(x, dtype=float)
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    m, _ = mean_cov(float(t), beta=beta, r=r)
    n2 = float(m @ m)
    rng = np.random.default_rng(seed)
    out = np.zeros_like(x)
    for k in range(n_draws):
        zeta = np.zeros((len(x), 3, *x.shape[1:])) if k == 0 else \
            rng.standard_normal((len(x), 3, *x.shape[1:]))
        proj = np.tensordot(m, zeta, axes=([0], [1]))  # m . zeta, shape of x
        u = m.reshape(1, 3, *([1] * (x.ndim - 1))) * (x - proj / n2)[:, None] + zeta
        sa = np.asarray(s_a(u, float(t)), dtype=float)
        y = np.tensordot(m, u, axes=([0], [1]))
        out += n2 * (sa + u[:, 2]) / m[2] - y
    return out / n_draws


def _project(u: torch.Tensor, co: dict) -> torch.Tensor:
    """:math:`z = m\\cdot u / |m|^2` per coordinate, ``u`` of shape ``(batch, 3, *state)``."""
    shape = (-1, 3) + (1,) * (u.ndim - 2)
    y = (co["m"].reshape(shape) * u).sum(1)
    return y / co["n2"].reshape((-1,) + (1,) * (u.ndim - 2))


def _forward_sample(x0: torch.Tensor, eps: torch.Tensor, co: dict) -> torch.Tensor:
    """:math:`u_t = m x_0 + L \\epsilon`, :math:`L = \\mathrm{chol}(I - m m^T)` (float64)."""
    m = co["m"]
    eye = torch.eye(3, dtype=m.dtype, device=m.device)
    S = eye - m[:, :, None] * m[:, None, :]
    L = torch.linalg.cholesky(S)
    shape = (-1, 3, 3) + (1,) * (x0.ndim - 1)
    Le = (L.reshape(shape) * eps[:, None]).sum(2)
    return m.reshape((-1, 3) + (1,) * (x0.ndim - 1)) * x0[:, None] + Le
