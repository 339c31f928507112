"""Whitening wrapper: learn a score in coordinates where every direction has unit variance."""

from __future__ import annotations

import copy

import numpy as np

from gfdt.scores.base import ScoreEstimator, as_samples
from gfdt.scores.gaussian import GaussianScore

__all__ = ["WhitenedScore"]


class WhitenedScore(ScoreEstimator):
    r"""Fit any score estimator on whitened data and map its score back.

    With the data's mean :math:`\mu` and covariance :math:`C`, the estimator is fitted
    on :math:`w = C^{-1/2}(x - \mu)`, whose directions all have unit variance, and the
    score of :math:`x` follows by the chain rule,

    .. math:: s_x(x) = C^{-1/2}\, s_w\!\left(C^{-1/2}(x - \mu)\right) .

    Why: a learned score has errors of roughly uniform size over the directions of
    its input, while the true score is large along low-variance directions and small
    along high-variance ones. On turbulent fields, whose power spectrum spans many
    decades, a network trained on the raw field gets the score of the energetic large
    scales wrong by a large relative amount and cannot resolve the weak small scales
    at all below its smallest noise level. Whitened, every Fourier mode carries unit
    variance: the relative error is even across scales and the noise level is relative
    to each mode's own spread. The map is linear and (for homogeneous fields) a
    convolution, so translation equivariance of the inner estimator is kept.

    Parameters
    ----------
    estimator : ScoreEstimator, optional
        The inner estimator (unfitted; it is copied, then fitted on whitened data),
        typically a learned one such as
        :class:`~gfdt.scores.DenoisingScoreModel`. Default:
        :class:`~gfdt.scores.GaussianScore`, for which whitening changes nothing
        (a reference point, and an exact check of the wrapper).
    homogeneous : bool, optional
        Periodic, translation-invariant fields: :math:`C` is diagonal in Fourier space
        (the power spectrum). Otherwise the full covariance of the flattened state.
        Default: True for states with two or more axes.
    floor : float
        Spectral values (or eigenvalues) below ``floor`` times the largest are raised
        to it, so that directions without variance are not amplified without bound.

    Attributes
    ----------
    estimator_ : ScoreEstimator
        The fitted inner estimator (works in whitened units).
    mean_ : numpy.ndarray
        Scalar (homogeneous) or state-shaped mean.
    spectrum_ : numpy.ndarray
        Homogeneous: power per rfft mode, :math:`E|\hat x_k|^2 / n_{cells}`.
    eigvals_, eigvecs_ : numpy.ndarray
        Non-homogeneous: eigen-decomposition of the covariance.

    Examples
    --------
    >>> import numpy as np
    >>> from gfdt.scores import GaussianScore, WhitenedScore
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((4000, 2)) @ np.array([[3.0, 0.0], [1.0, 0.2]])
    >>> w = WhitenedScore(GaussianScore(), homogeneous=False).fit(X)
    >>> g = GaussianScore().fit(X)
    >>> bool(np.allclose(w.score(X[:5]), g.score(X[:5])))
    True
    """

    def __init__(self, estimator: ScoreEstimator | None = None,
                 homogeneous: bool | None = None,
                 floor: float = 1e-12) -> None:
        self.estimator = estimator
        self.homogeneous = homogeneous
        self.floor = floor

    # ------------------------------------------------------------- transforms
    def _axes(self, ndim: int) -> tuple[int, ...]:
        return tuple(range(1, ndim))

    def whiten(self, x) -> np.ndarray:
        """:math:`C^{-1/2}(x - \\mu)` for a batch ``(batch, *state)``."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        w = self._apply(arr - self.mean_, -0.5)
        return w[0] if single else w

    def _apply(self, arr: np.ndarray, power: float) -> np.ndarray:
        """Multiply a centred batch by :math:`C^{power}`."""
        if self.homogeneous_:
            axes = self._axes(arr.ndim)
            xh = np.fft.rfftn(arr, axes=axes)
            return np.fft.irfftn(xh * self.spectrum_**power, s=self.state_shape_, axes=axes)
        flat = arr.reshape(len(arr), -1)
        out = ((flat @ self.eigvecs_) * self.eigvals_**power) @ self.eigvecs_.T
        return out.reshape(arr.shape)

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> WhitenedScore:
        """Estimate mean and covariance of ``X`` (n_samples, ``*state``), whiten, fit."""
        inner = self.estimator
        if inner is None:
            inner = GaussianScore(homogeneous=bool(
                self.homogeneous if self.homogeneous is not None else np.ndim(X) >= 3))
        if not isinstance(inner, ScoreEstimator):
            raise TypeError(f"estimator must be a ScoreEstimator, got "
                            f"{type(self.estimator).__name__}")
        if isinstance(self.floor, bool) or not isinstance(self.floor, (int, float)) or \
                not 0 <= self.floor < 1:
            raise ValueError(f"floor must be a number in [0, 1), got {self.floor!r}")
        X = as_samples(X)
        self.state_shape_ = X.shape[1:]
        hom = self.homogeneous
        if hom is None:
            hom = X.ndim >= 3
        if not isinstance(hom, (bool, np.bool_)):
            raise TypeError(f"homogeneous must be True, False or None, got {hom!r}")
        self.homogeneous_ = bool(hom)
        # the Gaussian fit's moments: scalar mean and power spectrum, or full covariance
        gauss = GaussianScore(homogeneous=self.homogeneous_).fit(X)
        top = gauss.spectrum_.max() if self.homogeneous_ else np.linalg.eigvalsh(
            gauss.covariance_).max()
        if not top > 0:
            raise ValueError("X has zero variance (constant data): there is no direction "
                             "to whiten and no score to learn")
        self.mean_ = gauss.mean_
        if self.homogeneous_:
            self.spectrum_ = np.maximum(gauss.spectrum_, self.floor * gauss.spectrum_.max())
        else:
            lam, vec = np.linalg.eigh(gauss.covariance_)
            self.eigvals_ = np.maximum(lam, self.floor * lam.max())
            self.eigvecs_ = vec
        W = self._apply(X - self.mean_, -0.5)
        self.estimator_ = copy.deepcopy(inner).fit(W)
        return self

    def score(self, x) -> np.ndarray:
        """:math:`C^{-1/2} s_w(C^{-1/2}(x - \\mu))` for x ``(batch, *state)`` or one state."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        w = self._apply(arr - self.mean_, -0.5)
        s = self._apply(np.asarray(self.estimator_.score(w), dtype=float), -0.5)
        return s[0] if single else s
