"""Closed-form denoising score matching in low dimension: the kernel-density score.

The minimiser of the denoising score-matching loss at noise level :math:`h` over *all*
functions, for the empirical measure of samples :math:`x_1..x_M`, is the score of the
Gaussian kernel density estimate of bandwidth :math:`h`,

.. math::

    s_h(x) = \\sum_i w_i(x)\\,\\frac{x_i - x}{h^2}, \\qquad
    w_i(x) \\propto e^{-\\|x - x_i\\|^2 / 2h^2}.

In one or two coordinates this optimum is cheap to evaluate exactly and is better than
any network trained on the same loss (measured on the 1-D cubic CAM model: response error
0.08 against 0.14-0.24 for every network configuration tried). The bandwidth is chosen
on held-out samples by the implicit (Hyvarinen) score-matching objective
:math:`J(h) = E[\\|s_h\\|^2/2 + \\nabla\\cdot s_h]`, which equals the Fisher divergence to
the data's score up to a constant, so it ranks bandwidths without knowing the score.
Everything here works in standardised units.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kde_score", "select_bandwidth"]

_CHUNK_ELEMENTS = 4_000_000  # points x centres per evaluation chunk


def kde_score(centres: np.ndarray, h: float, x: np.ndarray,
              divergence: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Score of the Gaussian KDE of bandwidth ``h`` on ``centres`` at points ``x``.

    Parameters
    ----------
    centres : numpy.ndarray, shape ``(M, d)``
    h : float
        Bandwidth (same units as ``x``).
    x : numpy.ndarray, shape ``(n, d)``
    divergence : bool
        Also return :math:`\\nabla\\cdot s_h` at ``x``.

    Returns
    -------
    numpy.ndarray, shape ``(n, d)`` (and the divergence, shape ``(n,)``)
    """
    n, d = x.shape
    out = np.empty((n, d))
    div = np.empty(n)
    step = max(1, _CHUNK_ELEMENTS // max(1, len(centres)))
    for a in range(0, n, step):
        diff = centres[None, :, :] - x[a:a + step, None, :]  # (b, M, d)
        logw = -(diff**2).sum(-1) / (2.0 * h * h)
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        w /= w.sum(axis=1, keepdims=True)
        m = np.einsum("bk,bkd->bd", w, diff) / h**2
        out[a:a + step] = m
        if divergence:
            second = np.einsum("bk,bkd->b", w, diff**2) / h**4
            div[a:a + step] = -d / h**2 + second - (m**2).sum(axis=1)
    return (out, div) if divergence else out


def select_bandwidth(centres: np.ndarray, x_val: np.ndarray,
                     grid: np.ndarray) -> tuple[float, np.ndarray]:
    """The bandwidth of ``grid`` with the lowest held-out score-matching objective.

    Parameters
    ----------
    centres : numpy.ndarray, shape ``(M, d)``
        Training samples (standardised).
    x_val : numpy.ndarray, shape ``(n, d)``
        Held-out samples (standardised).
    grid : numpy.ndarray
        Candidate bandwidths, increasing.

    Returns
    -------
    h : float
    objective : numpy.ndarray
        :math:`J(h)` on the grid.
    """
    obj = np.empty(len(grid))
    for k, h in enumerate(grid):
        s, div = kde_score(centres, float(h), x_val, divergence=True)
        obj[k] = float(np.mean(0.5 * (s**2).sum(axis=1) + div))
    return float(grid[int(np.argmin(obj))]), obj


#: training samples kept as kernel centres at most (a seeded subsample beyond)
MAX_CENTRES = 8000
#: held-out samples used to choose the bandwidth at most
MAX_VALIDATION = 4000
#: candidate bandwidths (standardised units)
BANDWIDTHS = np.geomspace(0.03, 1.0, 16)


def fit_kde(read, n_train: int, n_val: int, mean: np.ndarray, std: np.ndarray,
            seed: int) -> dict:
    """Centres and held-out bandwidth of the kernel-density score of time-ordered data.

    Parameters
    ----------
    read : callable
        ``read(start, stop)`` returns snapshots ``(k, d)`` in data units.
    n_train, n_val : int
        The first ``n_train`` snapshots train, the next ``n_val`` validate.
    mean, std : numpy.ndarray
        Standardisation.
    seed : int
        Seed of the subsamples.

    Returns
    -------
    dict
        ``centres`` (standardised, at most :data:`MAX_CENTRES`), ``bandwidth``,
        ``objective`` (on :data:`BANDWIDTHS`), ``x_val`` (held-out samples, data units).
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(3,)))
    x_train = (read(0, n_train) - mean) / std
    x_val = read(n_train, n_train + n_val)
    if not (np.all(np.isfinite(x_train)) and np.all(np.isfinite(x_val))):
        raise ValueError("X contains NaN or inf")
    x_train = x_train.reshape(n_train, -1)
    if n_train > MAX_CENTRES:
        x_train = x_train[np.sort(rng.choice(n_train, MAX_CENTRES, replace=False))]
    xv = ((x_val - mean) / std).reshape(len(x_val), -1)
    if len(xv) > MAX_VALIDATION:
        xv = xv[np.sort(rng.choice(len(xv), MAX_VALIDATION, replace=False))]
    h, obj = select_bandwidth(x_train, xv, BANDWIDTHS)
    return {"centres": x_train, "bandwidth": h, "objective": obj, "x_val": x_val}
