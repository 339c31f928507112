"""Exact scores of 1-D Gaussian mixtures and the W1 distance to them, to check samplers."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import ndtr

from gfdt.sampling._checks import _states
from gfdt.sampling.diffusion import _vp_alpha
from gfdt.scores.hold import mean_cov

__all__ = ["gmm_hold_score", "gmm_vp_score", "wasserstein1_gmm"]


# ------------------------------------------------------------------ exact GMM scores
def _gmm_arrays(weights, means, stds):
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)
    sd = np.asarray(stds, dtype=float)
    if not (w.ndim == mu.ndim == sd.ndim == 1 and len(w) == len(mu) == len(sd)):
        raise ValueError("weights, means and stds must be 1-D of one length")
    if not all(np.all(np.isfinite(a)) for a in (w, mu, sd)):
        raise ValueError("weights, means and stds must be finite")
    if np.any(w < 0) or not np.isclose(w.sum(), 1) or np.any(sd <= 0):
        raise ValueError("weights must be >= 0 and sum to 1; stds must be > 0")
    return w, mu, sd


def _gmm_logpdf_grad(y: np.ndarray, w, centres, var) -> np.ndarray:
    """d/dy log sum_k w_k N(y; centres_k, var_k), elementwise in ``y``."""
    d = y[..., None] - centres
    logc = np.log(w) - 0.5 * np.log(var) - 0.5 * d**2 / var
    logc -= logc.max(axis=-1, keepdims=True)
    resp = np.exp(logc)
    resp /= resp.sum(axis=-1, keepdims=True)
    return -(resp * d / var).sum(axis=-1)


def gmm_vp_score(weights, means, stds, *, beta_min: float = 0.1,
                 beta_max: float = 20.0) -> Callable:
    """Exact VP-SDE score :math:`s(x, t)` of a 1-D Gaussian mixture (each coordinate).

    :math:`x_t \\sim \\sum_k \\pi_k N(\\alpha_t \\mu_k, \\alpha_t^2\\sigma_k^2 + 1 - \\alpha_t^2)`.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)

    def score(x, t):
        a = float(_vp_alpha(t, beta_min, beta_max))
        return _gmm_logpdf_grad(np.asarray(x, dtype=float), w, a * mu,
                                a**2 * sd**2 + 1 - a**2)

    return score


def gmm_hold_score(weights, means, stds, *, beta: float = 1.0,
                   r: float = math.sqrt(3)) -> Callable:
    """Exact HOLD :math:`a`-block score :math:`s_a(u, t)` of a 1-D Gaussian mixture.

    :math:`s_a = -u_a + m_a \\varphi(y)`, :math:`y = m\\cdot u`,
    :math:`\\varphi = (\\log p_y)'(y) + y/|m|^2` with
    :math:`y \\sim \\sum_k \\pi_k N(|m|^2\\mu_k, |m|^4\\sigma_k^2 + |m|^2(1 - |m|^2))`
    (module notes of :mod:`gfdt.scores.hold`); ``u`` of shape ``(n, 3, *state)``.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)

    def s_a(u, t):
        u = np.asarray(u, dtype=float)
        m, _ = mean_cov(float(t), beta=beta, r=r)
        n2 = float(m @ m)
        y = np.tensordot(m, u, axes=([0], [1]))
        var = n2**2 * sd**2 + n2 * max(1 - n2, 0.0)
        phi = _gmm_logpdf_grad(y, w, n2 * mu, var) + y / n2
        return -u[:, 2] + m[2] * phi

    return s_a


def wasserstein1_gmm(samples, weights, means, stds, *, n_grid: int = 40001) -> float:
    """Wasserstein-1 distance of 1-D samples to a Gaussian mixture (exact target CDF).

    :math:`W_1 = \\int |F_n(x) - F(x)|\\, dx`, trapezoidal on a fine grid covering the
    samples and 10 standard deviations around every component.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)
    x = np.sort(_states(np.reshape(samples, (-1, 1)), "samples").ravel())
    lo = min(x[0], float(np.min(mu - 10 * sd)))
    hi = max(x[-1], float(np.max(mu + 10 * sd)))
    grid = np.linspace(lo, hi, n_grid)
    Fn = np.searchsorted(x, grid, side="right") / len(x)
    F = (w * ndtr((grid[:, None] - mu) / sd)).sum(axis=1)
    return float(np.trapezoid(np.abs(Fn - F), grid))
