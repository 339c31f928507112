"""How good is a learned score? A held-out report against the Gaussian score.

Four figures, on samples the estimator did not train on:

* **Denoising loss** at the smallest noise level :math:`\\sigma` (standardised units),
  :math:`L(s) = E\\,\\|\\sigma s(x + \\sigma z) + z\\|^2 / d`, of the learned score and
  of the Gaussian fit's score :math:`-(C + \\sigma^2)^{-1}(x - \\mu)`, on the same
  samples and the same noise draws. Up to a constant, :math:`L(s) = \\sigma^2
  E\\|s - s^*_\\sigma\\|^2 / d`, so the difference of the two losses divided by
  :math:`\\sigma^2` is the gain over the Gaussian in Fisher units. The noise comes in
  antithetic pairs :math:`(z, -z)`: the pair mean is still an unbiased estimate, and
  the cross term :math:`2\\sigma z\\cdot s`, whose noise would hide the
  :math:`O(\\sigma^2)` signal, cancels to :math:`O(\\sigma^2)` (as in implicit score
  matching).
* **Fisher gain per coordinate** (vectors): :math:`E(s_{G,j} - s^*_j)^2 -
  E(s_j - s^*_j)^2` at zero noise, the score the GFDT uses, from the implicit
  score-matching identity (:mod:`gfdt.scores._ism`), and its standard error. The GFDT
  response to a kick of coordinate :math:`j` is :math:`-E[x(t)\\, s_j(x(0))]`: where
  the learned :math:`s_j` is no better than the Gaussian's, that response is the
  Gaussian's, whatever the average gain says (a network that has learned the
  non-Gaussian score of some coordinates and not of others: 16-coordinate double-well
  ring, average denoising gain 0.38 +- 0.04 Fisher units, the kicked coordinate's
  0.00, its response the Gaussian's to three digits).
* **Stein error** of :math:`R(0)`: :math:`\\|-E[(x - \\bar x) s^T] - I\\|_F / \\sqrt d`
  (for homogeneous fields the translation-averaged analogue), the GFDT response at lag 0
  against its exact value, next to the Gaussian score's on the same samples (both
  carry the sampling error of the held-out mean, which grows with the dimension; a
  learned score well above the Gaussian's breaks the lag-0 identity).
* **Relative Fisher error** :math:`E\\|s - s^*\\|^2 / E\\|s^*\\|^2` when an exact score
  :math:`s^*` is given.

When the learned score is not better than the Gaussian's (gain not above twice its
standard error, or below 1 % of the Gaussian score's own size; vectors: the Fisher
gain, on average and in every coordinate), :class:`ScoreQualityWarning` is raised at
fit time and
:meth:`QualityMixin.summary` says so: the responses to kicks of those coordinates are
not distinguishable from the Gaussian's.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gfdt.scores._ism import gaussian_ism_terms, ism_terms
from gfdt.scores.base import as_samples

__all__ = ["QualityMixin", "ScoreQuality", "ScoreQualityWarning", "gaussian_noised_score",
           "stein_error"]

#: Score evaluations spent on the denoising losses (pairs of draws per held-out sample).
_EVALUATIONS = 4096
#: Elements (states x coordinates) of the largest batch of noised states evaluated at once.
_ELEMENTS = 2**22
#: Vectors: score evaluations x coordinates of the Fisher gain (2 d shifted copies of
#: each held-out sample for the derivatives).
_ISM_EVALUATIONS = 2**24
#: Fields: at most this many elements in all the noise draws (one pair per sample at least;
#: a field's per-sample loss already averages over its coordinates).
_PAIR_ELEMENTS = 2**20


class ScoreQualityWarning(UserWarning):
    """A learned score is no better than the Gaussian score on held-out data."""


def _user_stacklevel() -> int:
    """``stacklevel`` of the first caller outside the gfdt package (for warnings)."""
    root = str(Path(__file__).resolve().parents[1])
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(root):
        frame, level = frame.f_back, level + 1
    return level


@dataclass
class ScoreQuality:
    """Held-out quality of a learned score (see the module docstring).

    Attributes
    ----------
    sigma : float
        Noise level of the denoising losses (units of the data's standard deviation).
    n_heldout : int
        Held-out samples used.
    denoising_loss, gaussian_denoising_loss : float
        Denoising losses of the learned and the Gaussian score (same samples and noise).
    gain : float
        ``(gaussian_denoising_loss - denoising_loss) / sigma**2``: Fisher units,
        positive when the learned score is better.
    gain_stderr : float
        Standard error of ``gain`` (paired over the held-out samples).
    gaussian_size : float
        :math:`E\\|s_G\\|^2 / d` of the Gaussian score at the noised points (the scale
        of ``gain``).
    stein_error : float
        Stein error of :math:`R(0)` of the learned score on the held-out samples.
    relative_fisher_error : float or None
        Against the exact score, when one was given.
    better_than_gaussian : bool
        Fields: ``gain > 2 gain_stderr`` and ``gain > 0.01 gaussian_size``. Vectors:
        the same of the Fisher gain, on average and in every coordinate
        (``coordinates_not_better`` empty).
    gaussian_stein_error : float or None
        Stein error of :math:`R(0)` of the Gaussian score on the same samples.
    coordinate_gain, coordinate_gain_stderr : numpy.ndarray or None
        Fisher gain per coordinate at zero noise (vectors; shape ``(d,)``, flattened
        state order; standardised units) and its standard error; None for homogeneous
        fields.
    coordinates_not_better : tuple of int
        Coordinates (flat indices) whose Fisher gain is not above twice its standard
        error or below 1 % of the Gaussian score's size :math:`E s_{G,j}^2` there.
    fisher_gain, fisher_gain_stderr : float or None
        The mean of ``coordinate_gain`` and its standard error (vectors).
    """

    sigma: float
    n_heldout: int
    denoising_loss: float
    gaussian_denoising_loss: float
    gain: float
    gain_stderr: float
    gaussian_size: float
    stein_error: float
    relative_fisher_error: float | None
    better_than_gaussian: bool
    gaussian_stein_error: float | None = None
    coordinate_gain: np.ndarray | None = None
    coordinate_gain_stderr: np.ndarray | None = None
    coordinates_not_better: tuple[int, ...] = ()
    fisher_gain: float | None = None
    fisher_gain_stderr: float | None = None

    def summary(self) -> str:
        """A few lines for a human."""
        lines = [f"held-out samples: {self.n_heldout}",
                 f"denoising loss at sigma={self.sigma:.3g}: {self.denoising_loss:.6f} "
                 f"(Gaussian score: {self.gaussian_denoising_loss:.6f})",
                 f"gain over the Gaussian: {self.gain:.4g} +- {self.gain_stderr:.2g} "
                 f"(Fisher units; Gaussian score size {self.gaussian_size:.4g})",
                 f"Stein error of R(0): {self.stein_error:.4f}"
                 + ("" if self.gaussian_stein_error is None else
                    f" (Gaussian score: {self.gaussian_stein_error:.4f})")]
        if self.coordinate_gain is not None:
            g, se = self.coordinate_gain, self.coordinate_gain_stderr
            k = int(np.argmin(g / np.maximum(se, 1e-300)))
            lines.append(f"Fisher gain over the Gaussian at zero noise: "
                         f"{self.fisher_gain:.4g} +- {self.fisher_gain_stderr:.2g}; per "
                         f"coordinate {g.min():.4g} to {g.max():.4g}, least significant: "
                         f"coordinate {k}, {g[k]:.4g} +- {se[k]:.2g}")
            if self.coordinates_not_better:
                lines.append(f"no better than the Gaussian in "
                             f"{len(self.coordinates_not_better)} of {len(g)} coordinates: "
                             f"{_short(self.coordinates_not_better)} (the responses to kicks "
                             "of these are the Gaussian's)")
        if self.relative_fisher_error is not None:
            lines.append(f"relative Fisher error: {self.relative_fisher_error:.4f}")
        if not self.better_than_gaussian:
            lines.append("WARNING: the learned score is no better than the Gaussian score "
                         "on held-out data; use score='gaussian', more data or a longer "
                         "training")
        return "\n".join(lines)


def _short(idx: tuple[int, ...], n: int = 12) -> str:
    """``idx`` as text, the first ``n`` of them."""
    head = ", ".join(str(i) for i in idx[:n])
    return head + (", ..." if len(idx) > n else "")


def gaussian_noised_score(xs: np.ndarray, stat: np.ndarray, homogeneous: bool,
                          sigma: float) -> np.ndarray:
    """:math:`-(C + \\sigma^2 I)^{-1} x` at centred, standardised points ``xs``.

    ``stat``: power spectrum (rfftn layout) for homogeneous fields, else the covariance.
    """
    if homogeneous:
        axes = tuple(range(1, xs.ndim))
        xh = np.fft.rfftn(xs, axes=axes)
        var = np.maximum(stat, 1e-12 * np.max(stat)) if sigma == 0 else stat
        return -np.fft.irfftn(xh / (var + sigma**2), s=xs.shape[1:], axes=axes)
    lam, vec = np.linalg.eigh(np.atleast_2d(stat))
    lam = np.maximum(lam, 1e-12 * lam.max() if sigma == 0 else 0)
    c = xs.reshape(len(xs), -1) @ vec / (lam + sigma**2)
    return -(c @ vec.T).reshape(xs.shape)


def stein_error(X: np.ndarray, S: np.ndarray, homogeneous: bool) -> float:
    """:math:`\\|-E[(x - \\bar x) s^T] - I\\|_F / \\sqrt d` (homogeneous: translation-averaged,
    the L2 norm over the field of :math:`M(r) - \\delta_r`)."""
    state = X.shape[1:]
    d = int(np.prod(state))
    if homogeneous:
        axes = tuple(range(1, X.ndim))
        xh = np.fft.rfftn(X - X.mean(), axes=axes)
        sh = np.fft.rfftn(S, axes=axes)
        m = -np.fft.irfftn((xh * sh.conj()).mean(axis=0), s=state,
                           axes=tuple(range(len(state)))) / d
        eye = np.zeros(state)
        eye[(0,) * len(state)] = 1.0
        return float(np.linalg.norm(m - eye))
    xf = (X - X.mean(axis=0)).reshape(len(X), d)
    m = -(xf.T @ S.reshape(len(X), d)) / len(X)
    return float(np.linalg.norm(m - np.eye(d)) / np.sqrt(d))


class QualityMixin:
    """Score-quality report for a learned estimator.

    The estimator provides ``mean_``, ``std_``, ``homogeneous_`` and, through
    :meth:`_assess` at the end of ``fit``, the Gaussian statistics of its training data;
    it may override :meth:`_noised_score_std` (default: its clean score in standardised
    units, ``_score_std``).
    """

    def _noised_score_std(self, xs: np.ndarray, sigma: float) -> np.ndarray:
        """Score of the data smoothed at ``sigma``, standardised units."""
        return self._score_std(xs)

    def _assess(self, x_heldout: np.ndarray, stat: np.ndarray, sigma: float,
                homogeneous: bool) -> None:
        """Keep the Gaussian statistics, report on ``x_heldout`` and warn if needed."""
        self.gaussian_stat_ = np.asarray(stat)
        self.quality_sigma_ = float(sigma)
        self.homogeneous_ = bool(homogeneous)
        self.quality_ = self.quality_report(x_heldout)
        if not self.quality_.better_than_gaussian:
            q = self.quality_
            where = ""
            if q.coordinates_not_better:
                where = (f"; no better in {len(q.coordinates_not_better)} of "
                         f"{len(q.coordinate_gain)} coordinates "
                         f"({_short(q.coordinates_not_better)}): the responses to kicks of "
                         "these are the Gaussian's")
            figure = (f"denoising loss {q.denoising_loss:.6f} vs "
                      f"{q.gaussian_denoising_loss:.6f}, gain {q.gain:.3g} +- "
                      f"{q.gain_stderr:.2g}" if q.fisher_gain is None else
                      f"Fisher gain at zero noise {q.fisher_gain:.3g} +- "
                      f"{q.fisher_gain_stderr:.2g}")
            warnings.warn(
                f"{type(self).__name__}: the learned score is no better than the Gaussian "
                f"score on held-out data ({figure}{where}); use score='gaussian', more "
                "data or a longer training", ScoreQualityWarning,
                stacklevel=_user_stacklevel())

    def quality_report(self, X, exact_score: Callable | None = None, *,
                       seed: int = 0) -> ScoreQuality:
        """The quality figures of the fitted score on held-out samples ``X``.

        Parameters
        ----------
        X : array_like, shape ``(n_samples, *state)``
            Samples not used in training, data units.
        exact_score : callable, optional
            The exact score (data units); gives the relative Fisher error.
        seed : int
            Seed of the noise draws.

        Returns
        -------
        ScoreQuality
        """
        self._check_fitted()
        X = as_samples(X)
        if X.shape[1:] != tuple(self.state_shape_):
            raise ValueError(f"X must have states of shape {self.state_shape_}, got "
                             f"{X.shape[1:]}")
        sigma = self.quality_sigma_
        xs = (X - self.mean_) / self.std_
        n, d = len(xs), int(np.prod(xs.shape[1:]))
        pairs = max(1, min(_EVALUATIONS // (2 * n), _PAIR_ELEMENTS // (2 * n * d)))
        chunk = max(1, _ELEMENTS // (2 * pairs * d))  # held-out samples per evaluation
        rng = np.random.default_rng(seed)
        per, per_g, size = [], [], np.zeros(d)
        for a in range(0, n, chunk):
            xc = xs[a:a + chunk]
            z = rng.standard_normal((pairs, *xc.shape))
            xn = np.concatenate([xc + sigma * z, xc - sigma * z]).reshape(-1, *xc.shape[1:])
            zz = np.concatenate([z, -z]).reshape(xn.shape)
            s = self._noised_score_std(xn, sigma)
            g = gaussian_noised_score(xn, self.gaussian_stat_, self.homogeneous_, sigma)
            # per sample and coordinate, averaged over the noise draws: (samples, d)
            per.append(((sigma * s + zz) ** 2).reshape(2 * pairs, len(xc), d).mean(0))
            per_g.append(((sigma * g + zz) ** 2).reshape(2 * pairs, len(xc), d).mean(0))
            size += (g**2).reshape(-1, d).sum(0) / (2 * pairs * n)
        per, per_g = np.concatenate(per), np.concatenate(per_g)
        diff = (per_g - per) / sigma**2  # (n, d)
        gain = float(diff.mean())
        se = float(diff.mean(1).std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        better = bool(gain > 2 * se and gain > 0.01 * size.mean())
        fisher = None
        if not self.homogeneous_:  # vectors: the Fisher gain at zero noise decides
            fisher = self._fisher_gain(xs)
            better = fisher[2] > 2 * fisher[3] and not fisher[4]
        S = np.asarray(self.score(X), dtype=float)
        G = gaussian_noised_score(xs, self.gaussian_stat_, self.homogeneous_, 0.0) / self.std_
        rel_fisher = None
        if exact_score is not None:
            ref = np.asarray(exact_score(X), dtype=float)
            if ref.shape != X.shape:
                raise ValueError(f"exact_score returned shape {ref.shape}, expected "
                                 f"{X.shape}")
            rel_fisher = float(((S - ref) ** 2).sum() / (ref**2).sum())
        return ScoreQuality(
            sigma=sigma, n_heldout=n, denoising_loss=float(per.mean()),
            gaussian_denoising_loss=float(per_g.mean()), gain=gain, gain_stderr=se,
            gaussian_size=float(size.mean()),
            stein_error=stein_error(X, S, self.homogeneous_),
            relative_fisher_error=rel_fisher, better_than_gaussian=bool(better),
            gaussian_stein_error=stein_error(X, G, self.homogeneous_),
            **({} if fisher is None else dict(
                coordinate_gain=fisher[0], coordinate_gain_stderr=fisher[1],
                fisher_gain=fisher[2], fisher_gain_stderr=fisher[3],
                coordinates_not_better=fisher[4])))

    def _fisher_gain(self, xs: np.ndarray) -> tuple:
        """Fisher gain over the Gaussian at zero noise per coordinate (implicit score
        matching on at most ``_ISM_EVALUATIONS / (2 d)`` of the standardised held-out
        samples ``xs``): gain, its standard error, their means, coordinates not better."""
        d = int(np.prod(xs.shape[1:]))
        m = max(2, min(len(xs), _ISM_EVALUATIONS // (2 * d * d)))
        sub = xs[np.unique(np.linspace(0, len(xs) - 1, m).astype(int))]
        cov = np.atleast_2d(self.gaussian_stat_)
        diff = 2 * (gaussian_ism_terms(sub, cov) - ism_terms(self._score_std, sub))
        n = len(sub)
        g = diff.mean(0)
        se = diff.std(0, ddof=1) / np.sqrt(n) if n > 1 else np.full(d, np.inf)
        size = (sub.reshape(n, d) @ np.linalg.inv(cov)) ** 2
        not_better = tuple(int(j) for j in np.flatnonzero(
            ~((g > 2 * se) & (g > 0.01 * size.mean(0)))))
        total_se = float(diff.mean(1).std(ddof=1) / np.sqrt(n)) if n > 1 else float("inf")
        return g, se, float(g.mean()), total_se, not_better

    def summary(self) -> str:
        """The estimator, its training and its held-out quality report, as text."""
        self._check_fitted()
        head = f"{type(self).__name__}"
        n_steps = getattr(self, "n_steps_", None)
        if n_steps is not None:
            head += f": {n_steps} steps in {getattr(self, 'train_time_', float('nan')):.1f} s"
        q = getattr(self, "quality_", None)
        if q is None:
            return head + "\n(no held-out quality report)"
        return head + "\n" + q.summary()
