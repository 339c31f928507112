"""Sum-rule calibration of a score: make the Stein identity -E[x s^T] = I hold on data.

For every density, :math:`-E[(x - \\bar x)\\, s(x)^T] = I` (integration by parts). A
smoothed score (a kernel or noised density) breaks it: :math:`M = -E[(x - \\bar x) s^T]
\\ne I`. The linear map :math:`s_{cal} = M^{-T} s` restores it exactly on the
calibration samples, since :math:`-E[x s_{cal}^T] = M M^{-1} = I`. For homogeneous
periodic fields the translation-averaged :math:`M` is diagonal in Fourier space and the
calibration is one real factor per Fourier mode.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger("gfdt")

__all__ = ["apply_calibration", "fit_calibration"]


def fit_calibration(X: np.ndarray, S: np.ndarray, homogeneous: bool,
                    floor: float = 0.05) -> np.ndarray:
    """The calibration from samples ``X`` and their scores ``S`` (same shape, any units).

    Parameters
    ----------
    X, S : numpy.ndarray, shape ``(n_samples, *state)``
    homogeneous : bool
        Per-Fourier-mode factors (translation-invariant fields) instead of a matrix.
    floor : float
        Homogeneous only: modes whose factor is below ``floor`` (no usable signal) are
        left uncalibrated (factor 1).

    Returns
    -------
    numpy.ndarray
        ``homogeneous``: factors :math:`m_k` in rfftn layout (divide :math:`\\hat s_k` by
        them); else :math:`M^{-1}`, shape ``(d, d)`` (``s_cal = s @ M^{-1}`` row-wise).
    """
    n = len(X)
    state = X.shape[1:]
    if homogeneous:
        axes = tuple(range(1, X.ndim))
        acc = np.zeros(np.fft.rfftn(X[0]).shape)
        xm = X.mean()
        for a in range(0, n, 512):
            xh = np.fft.rfftn(X[a:a + 512] - xm, axes=axes, norm="ortho")
            sh = np.fft.rfftn(S[a:a + 512], axes=axes, norm="ortho")
            acc += -(xh * sh.conj()).real.sum(axis=0)
        m = acc / n
        bad = ~(m > floor)
        if np.any(bad):
            logger.warning("sum-rule calibration: %d of %d Fourier modes have factor <= %g; "
                           "left uncalibrated", int(bad.sum()), m.size, floor)
            m[bad] = 1.0
        return m
    d = int(np.prod(state))
    if n < 10 * d:
        logger.warning("sum-rule calibration from %d samples in dimension %d is noisy", n, d)
    xf = (X - X.mean(axis=0)).reshape(n, d)
    M = -(xf.T @ S.reshape(n, d)) / n
    try:
        return np.linalg.inv(M)
    except np.linalg.LinAlgError:
        raise ValueError("sum-rule calibration: the Stein matrix -E[x s^T] is singular") from None


def apply_calibration(S: np.ndarray, cal: np.ndarray, homogeneous: bool) -> np.ndarray:
    """Calibrated scores of a batch ``S`` of shape ``(batch, *state)``."""
    if homogeneous:
        axes = tuple(range(1, S.ndim))
        sh = np.fft.rfftn(S, axes=axes)
        return np.fft.irfftn(sh / cal, s=S.shape[1:], axes=axes)
    b = len(S)
    return (S.reshape(b, -1) @ cal).reshape(S.shape)
