"""Gaussian ("quasi-Gaussian", "linear") score: :math:`s(x) = -C^{-1}(x - \\mu)`."""

from __future__ import annotations

import os

import numpy as np
import scipy.fft

from gfdt.scores.base import ScoreEstimator, as_samples, check_flag, check_number, register_score

__all__ = ["GaussianScore"]


@register_score("gaussian")
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

    def _check_params(self) -> None:
        check_flag(self.homogeneous, "homogeneous")
        check_number(self.rcond, "rcond", low=0)

    def fit_memory(self, n_samples: int, state_shape: tuple[int, ...]) -> int:
        """Bytes of :meth:`fit`: the samples as float64, their centred copy, the
        covariance and its pseudo-inverse with their work space (``2 n d + 5 d^2``
        doubles); homogeneous: the samples and the spectra of a batch of 256."""
        d = int(np.prod(state_shape))
        if getattr(self, "homogeneous", False):
            return int(8 * (n_samples * d + 3 * 256 * d))
        return int(8 * (2 * n_samples * d + 5 * d * d))

    def fit(self, X) -> GaussianScore:
        """Estimate mean and covariance from samples ``X`` of shape ``(n_samples, *state)``."""
        self._check_params()
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
            self._set_inverse_spectrum()
        else:
            Xf = X.reshape(X.shape[0], -1)
            self.mean_ = Xf.mean(axis=0).reshape(self.state_shape_)
            self.covariance_ = np.atleast_2d(np.cov(Xf, rowvar=False, bias=True))
            self.precision_ = np.linalg.pinv(self.covariance_, rcond=self.rcond, hermitian=True)
        return self

    def fit_blocks(self, blocks) -> GaussianScore:
        """Estimate mean and covariance in one streaming pass over blocks of samples.

        The same estimate as :meth:`fit` on all blocks concatenated (up to rounding),
        in memory of one block plus the result: block moments are merged with the
        pairwise update of Chan, Golub and LeVeque, about a shift taken from the first
        block (so a large mean costs no precision).

        Parameters
        ----------
        blocks : iterable of array_like, each of shape ``(n_i, *state)``
            E.g. consecutive time blocks read from files.

        Returns
        -------
        GaussianScore
            ``self``, fitted.
        """
        self._check_params()
        n = 0
        shift = mean = m2 = None
        state_shape = None
        for X in blocks:
            X = np.asarray(X, dtype=float)
            if X.ndim < 2 or X.shape[0] == 0:
                raise ValueError(f"blocks must have shape (n_samples, *state), got {X.shape}")
            if not np.all(np.isfinite(X)):
                raise ValueError("blocks contain NaN or inf")
            if state_shape is None:
                state_shape = X.shape[1:]
                shift = X.mean() if self.homogeneous else X.mean(axis=0)
            elif X.shape[1:] != state_shape:
                raise ValueError(f"blocks have different state shapes: {state_shape} and "
                                 f"{X.shape[1:]}")
            k = X.shape[0]
            if self.homogeneous:
                # per-sample spatial means carry the mean and mode 0; the other modes
                # do not depend on the (scalar) mean
                axes = tuple(range(1, X.ndim))
                ncell = int(np.prod(state_shape))
                dev = X - shift
                means = dev.reshape(k, -1).mean(axis=1)
                b_mean = means.mean()
                # scipy's FFT on all cores; |z|^2 as re^2 + im^2 (no square root)
                xh = scipy.fft.rfftn(dev, axes=axes, workers=os.cpu_count() or 1)
                power = xh.real**2
                power += xh.imag**2
                spec = power.sum(axis=0)
                spec.flat[0] = ncell**2 * np.sum((means - b_mean) ** 2)
            else:
                dev = (X - shift).reshape(k, -1)
                b_mean = dev.mean(axis=0)
                c = dev - b_mean
                spec = c.T @ c
            if mean is None:
                mean, m2 = b_mean, spec
            else:
                delta = b_mean - mean
                w = n * k / (n + k)
                if self.homogeneous:
                    spec.flat[0] += ncell**2 * w * delta**2
                    m2 = m2 + spec
                else:
                    m2 = m2 + spec + w * np.outer(delta, delta)
                mean = mean + delta * k / (n + k)
            n += k
        if n < 2:
            raise ValueError(f"blocks hold {n} samples; at least 2 are needed")
        self.state_shape_ = state_shape
        if self.homogeneous:
            self.mean_ = np.asarray(shift + mean)
            self.spectrum_ = m2 / (n * np.prod(state_shape))
            self._set_inverse_spectrum()
        else:
            self.mean_ = (shift.ravel() + mean).reshape(state_shape)
            self.covariance_ = np.atleast_2d(m2 / n)
            self.precision_ = np.linalg.pinv(self.covariance_, rcond=self.rcond, hermitian=True)
        return self

    def fit_spectrum(self, mean: float, spectrum: np.ndarray,
                     state_shape: tuple[int, ...]) -> GaussianScore:
        """Fit a homogeneous score from its mean and power spectrum, computed elsewhere.

        Parameters
        ----------
        mean : float
            Mean of the field.
        spectrum : numpy.ndarray
            :math:`E|\\hat x_k - \\hat\\mu_k|^2 / n_{cells}` on the ``rfftn`` grid of the
            state (the layout of ``spectrum_``).
        state_shape : tuple of int

        Returns
        -------
        GaussianScore
            ``self``, fitted as :meth:`fit` would on data with these moments.
        """
        self._check_params()
        if not self.homogeneous:
            raise ValueError("fit_spectrum needs homogeneous=True")
        spectrum = np.asarray(spectrum, dtype=float)
        if spectrum.shape != np.fft.rfftn(np.zeros(state_shape)).shape:
            raise ValueError(f"spectrum has shape {spectrum.shape}, not the rfftn grid of "
                             f"{tuple(state_shape)}")
        self.state_shape_ = tuple(state_shape)
        self.mean_ = np.asarray(float(mean))
        self.spectrum_ = spectrum
        self._set_inverse_spectrum()
        return self

    def _set_inverse_spectrum(self) -> None:
        inv = np.zeros_like(self.spectrum_)
        ok = self.spectrum_ > self.rcond * self.spectrum_.max()
        inv[ok] = 1.0 / self.spectrum_[ok]
        self._inv_spectrum = inv

    def spectral_score(self, xh: np.ndarray, center=None) -> np.ndarray:
        """Fourier modes of the score of a homogeneous fit, from the modes of the states.

        Parameters
        ----------
        xh : numpy.ndarray, complex, shape (batch, M)
            ``rfftn`` over the state axes of ``x - center``, flattened per state.
        center : float, optional
            What was subtracted from the states (default: ``mean_``).

        Returns
        -------
        numpy.ndarray, complex, shape (batch, M)
            ``rfftn`` of :meth:`score` at the states (up to rounding), without the
            round trip through the field.
        """
        self._check_fitted()
        if not self.homogeneous:
            raise ValueError("spectral_score needs a homogeneous fit (homogeneous=True)")
        if center is not None and float(center) != float(self.mean_):
            xh = xh.copy()
            xh[:, 0] += (float(center) - float(self.mean_)) * np.prod(self.state_shape_)
        return -xh * self._inv_spectrum.reshape(-1)

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
