"""Stein-corrected score: the linear map that makes the Stein identity hold on the data."""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import xarray as xr

from gfdt.data import Trajectories, as_trajectories
from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator, as_samples, check_flag, score_output
from gfdt.scores.gaussian import GaussianScore

__all__ = ["SteinCorrected"]

_BLOCK = 2048  # samples per pass of the moment accumulation


class SteinCorrected(ScoreEstimator):
    r"""A score with the affine correction that makes the Stein identity exact on the data.

    For the true score :math:`s = \nabla\log p`, integration by parts gives
    :math:`E[s] = 0` and :math:`-E[(x - \mu) s^T] = I`. For an estimate :math:`s` the
    moments :math:`\bar s = E[s]` and :math:`C = -E[(x - \mu)(s - \bar s)^T]` are
    measured on the fitting data, and the corrected score is

    .. math:: s'(x) = K\,(s(x) - \bar s), \qquad K = C^{-T},

    so that :math:`E[s'] = 0` and :math:`-E[(x - \mu) s'^T] = C K^T = I` hold on the
    data to round-off. An affine score is corrected to an affine score; a Gaussian score
    of the wrong scale or covariance becomes the Gaussian score of the data
    (:math:`-\hat\Sigma^{-1}(x - \hat\mu)`, biased covariance).

    For homogeneous periodic fields :math:`C` is translation-averaged: diagonal in
    spatial Fourier modes, one (complex) number :math:`c_k` per mode, and
    :math:`\hat s'_k = (\hat s_k - \hat{\bar s}_k) / \overline{c_k}`; the identity then
    holds translation-averaged (per mode), :math:`E[s'] = 0` per point. For vectors
    :math:`C` is the full :math:`d\times d` matrix.

    Parameters
    ----------
    estimator : ScoreEstimator or callable
        The score to correct: a fitted estimator, an unfitted one (a copy is fitted on
        the data in :meth:`fit`), or a callable ``(batch, *state) -> (batch, *state)``.
        Default: :class:`~gfdt.scores.GaussianScore`, which the correction leaves
        unchanged (a reference point, and an exact check of the wrapper).
    homogeneous : bool, optional
        Per-mode correction of a periodic field. Default: True for states with two or
        more axes.
    rcond : float
        Smallest singular value (homogeneous: :math:`|c_k|`) relative to the largest
        below which :math:`C` is refused as singular.

    Attributes
    ----------
    score_model_ : ScoreEstimator
        The (fitted) inner score.
    mean_ : numpy.ndarray
        Data mean, state-shaped.
    score_mean_ : numpy.ndarray
        :math:`\bar s`, state-shaped.
    stein_matrix_ : numpy.ndarray
        :math:`C` before correction: ``(d, d)``, or per rfft mode for fields.
    correction_ : numpy.ndarray
        :math:`K^T = C^{-1}` ``(d, d)`` (the scores are rows), or
        :math:`1/\overline{c_k}` per rfft mode.
    """

    accepts_trajectories = True

    def __init__(self, estimator: ScoreEstimator | Callable | None = None,
                 homogeneous: bool | None = None, rcond: float = 1e-10) -> None:
        self.estimator = estimator
        self.homogeneous = homogeneous
        self.rcond = rcond

    @property
    def affine(self) -> bool:
        """Whether the corrected score is affine (the inner one is)."""
        from gfdt.response.parameters import is_affine_score

        inner = getattr(self, "score_model_", None)
        return inner is not None and is_affine_score(inner)

    def _inner(self, data: Trajectories) -> ScoreEstimator:
        s = GaussianScore() if self.estimator is None else self.estimator
        if isinstance(s, ScoreEstimator):
            if s.is_fitted:
                return s
            inner = copy.deepcopy(s)
            if getattr(inner, "accepts_trajectories", False):
                return inner.fit(data)
            return inner.fit(data.samples())
        if callable(s):
            return AnalyticScore(s, name=getattr(s, "__name__", "callable")).fit()
        raise TypeError(f"estimator must be a ScoreEstimator or a callable, got "
                        f"{type(s).__name__}")

    def fit(self, X) -> SteinCorrected:
        """Measure :math:`\\bar s` and :math:`C` on ``X`` (fitting the inner score first if
        it is not fitted).

        Parameters
        ----------
        X : array_like ``(n_samples, *state)``, or xarray data / Trajectories (time
            series, as :class:`~gfdt.ResponseEstimator` takes them)
        """
        check_flag(self.homogeneous, "homogeneous", optional=True)
        if not (0 < self.rcond < 1):
            raise ValueError(f"rcond must be in (0, 1), got {self.rcond!r}")
        if isinstance(X, (Trajectories, xr.DataArray, xr.Dataset)):
            data = X if isinstance(X, Trajectories) else as_trajectories(X, "X")
        else:  # samples (n_samples, *state), as every score estimator takes them
            data = as_trajectories(as_samples(X, "X"), "X")
        if data.n_samples < 2:
            raise ValueError("X needs at least 2 samples")
        inner = self._inner(data)
        shape = tuple(data.state_shape)
        hom = len(shape) >= 2 if self.homogeneous is None else bool(self.homogeneous)
        d = int(np.prod(shape))
        axes = tuple(range(1, 1 + len(shape)))
        n, sx, ss = 0, np.zeros(d), np.zeros(d)
        cross = None
        for x in data.blocks(_BLOCK):
            s = score_output(inner(x), "score")
            if s.shape != x.shape:
                raise ValueError(f"score returned shape {s.shape} for a batch of shape "
                                 f"{x.shape}")
            if not np.all(np.isfinite(s)):
                raise ValueError("score returned NaN or inf")
            b = x.shape[0]
            sx += x.reshape(b, d).sum(axis=0)
            ss += s.reshape(b, d).sum(axis=0)
            if hom:
                xh = np.fft.rfftn(x, axes=axes).reshape(b, -1)
                sh = np.fft.rfftn(s, axes=axes).reshape(b, -1)
                part = (xh * sh.conj()).sum(axis=0)
            else:
                part = x.reshape(b, d).T @ s.reshape(b, d)
            cross = part if cross is None else cross + part
            n += b
        xbar, sbar = sx / n, ss / n
        if hom:
            xbh = np.fft.rfftn(xbar.reshape(shape)).reshape(-1)
            sbh = np.fft.rfftn(sbar.reshape(shape)).reshape(-1)
            c = -(cross / n - xbh * sbh.conj()) / d
            if np.any(np.abs(c) <= self.rcond * np.abs(c).max()):
                raise ValueError("X: the score is uncorrelated with the state in some Fourier "
                                 "mode (C singular); cannot Stein-correct it")
            corr = 1.0 / c.conj()
        else:
            c = -(cross / n - np.outer(xbar, sbar))
            sv = np.linalg.svd(c, compute_uv=False)
            if sv[-1] <= self.rcond * sv[0]:
                raise ValueError("X: -E[(x - mean) s^T] is singular; cannot Stein-correct "
                                 "the score")
            corr = np.linalg.inv(c)
        self.score_model_ = inner
        self.state_shape_ = shape
        self.homogeneous_ = hom
        self.mean_ = xbar.reshape(shape)
        self.score_mean_ = sbar.reshape(shape)
        self.stein_matrix_ = c
        self.correction_ = corr
        self.n_samples_ = n
        return self

    def score(self, x) -> np.ndarray:
        """:math:`K(s(x) - \\bar s)` at ``x`` ``(batch, *state)`` (or one state)."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        s = score_output(self.score_model_(arr), "score") - self.score_mean_
        b = arr.shape[0]
        if self.homogeneous_:
            axes = tuple(range(1, arr.ndim))
            sh = np.fft.rfftn(s, axes=axes)
            out = np.fft.irfftn(sh * self.correction_.reshape(sh.shape[1:]),
                                s=self.state_shape_, axes=axes)
        else:
            out = (s.reshape(b, -1) @ self.correction_).reshape(arr.shape)
        return out[0] if single else out
