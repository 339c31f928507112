"""Gaussian ("quasi-Gaussian", "linear") score: :math:`s(x) = -C^{-1}(x - \\mu)`."""

from __future__ import annotations

import numpy as np

from gfdt.scores.base import ScoreEstimator, as_samples

__all__ = ["GaussianScore"]


class GaussianScore(ScoreEstimator):
    """Score of the Gaussian with the data's mean and covariance.

    With this score the GFDT gives :math:`R(t) = C(t) C(0)^{-1}`, exact for linear
    systems and the baseline for everything else.

    Parameters
    ----------
    homogeneous : bool
        Treat the state axes as a periodic, translation-invariant field: the mean is a
        single number and the covariance is diagonal in Fourier space (estimated as
        the power spectrum averaged over samples). Otherwise the full covariance of the
        flattened state is used.
    rcond : float
        Eigenvalues (or spectral values) below ``rcond`` times the largest are
        treated as zero variance: the score ignores those directions.

    Attributes
    ----------
    mean_ : numpy.ndarray
        Mean: shape () when homogeneous, else the state shape.
    spectrum_ : numpy.ndarray
        Homogeneous only: :math:`E|\\hat x_k - \\hat\\mu_k|^2 / n_{cells}`, rfftn layout.
    covariance_ : numpy.ndarray, shape (d, d)
        Non-homogeneous only.
    precision_ : numpy.ndarray, shape (d, d)
        Non-homogeneous only: pseudo-inverse of the covariance.
    """

    def __init__(self, homogeneous: bool = False, rcond: float = 1e-12) -> None:
        self.homogeneous = homogeneous
        self.rcond = rcond

    def fit(self, X) -> GaussianScore:
        """Estimate mean and covariance from samples ``X`` of shape ``(n_samples, *state)``."""
        X = as_samples(X)
        self.state_shape_ = X.shape[1:]
        if self.homogeneous:
            axes = tuple(range(1, X.ndim))
            self.mean_ = np.asarray(X.mean())
            spec = np.zeros(np.fft.rfftn(X[0], axes=tuple(range(X.ndim - 1))).shape)
            for start in range(0, X.shape[0], 256):
                xh = np.fft.rfftn(X[start:start + 256] - self.mean_, axes=axes)
                spec += (np.abs(xh) ** 2).sum(axis=0)
            self.spectrum_ = spec / (X.shape[0] * np.prod(self.state_shape_))
            inv = np.zeros_like(self.spectrum_)
            ok = self.spectrum_ > self.rcond * self.spectrum_.max()
            inv[ok] = 1.0 / self.spectrum_[ok]
            self._inv_spectrum = inv
        else:
            Xf = X.reshape(X.shape[0], -1)
            self.mean_ = Xf.mean(axis=0).reshape(self.state_shape_)
            self.covariance_ = np.atleast_2d(np.cov(Xf, rowvar=False, bias=True))
            self.precision_ = np.linalg.pinv(self.covariance_, rcond=self.rcond, hermitian=True)
        return self

    def score(self, x) -> np.ndarray:
        """:math:`-C^{-1}(x - \\mu)` for x of shape ``(batch, *state)`` or the state shape."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        if self.homogeneous:
            axes = tuple(range(1, arr.ndim))
            xh = np.fft.rfftn(arr - self.mean_, axes=axes)
            s = -np.fft.irfftn(xh * self._inv_spectrum, s=self.state_shape_, axes=axes)
        else:
            d = (arr - self.mean_).reshape(arr.shape[0], -1)
            s = -(d @ self.precision_).reshape(arr.shape)
        return s[0] if single else s
