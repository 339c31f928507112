"""``score="auto"``: the learned estimator chosen for the data by a fixed rule of its shape."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import numpy as np

from gfdt.scores.base import (
    ScoreEstimator,
    check_flag,
    check_number,
    get_score_class,
    register_score,
)

__all__ = ["AutoScore", "choose_score"]

logger = logging.getLogger("gfdt")


def choose_score(state_shape: tuple[int, ...], max_kgmm_dim: int = 3,
                 periodic: bool | None = True) -> tuple[str, str]:
    """The estimator :class:`AutoScore` fits on states of ``state_shape``, and why.

    The rule (measured on the systems of ``benchmarks/generalization.py``):

    - **2-D states known to be periodic** (``periodic=True``: fields of gfdt's systems,
      or ``homogeneous=True``): ``"dsm"``, whose defaults there are the periodic CNN
      with the small-noise range (tanh field: response error 0.038, exact score 0.041;
      Allen-Cahn 0.23, exact 0.22). A 2-D state not known to be periodic (a lat-lon
      box with coastlines) is a vector here: a periodic CNN would wrap it around.
    - **vectors of at most** ``max_kgmm_dim`` **coordinates**: ``"kgmm"``, cluster-averaged
      Tweedie targets interpolated by a small MLP (1-D cubic CAM model: 0.072, exact
      score 0.085).
    - **every other state** (vectors, flattened): ``"dsm"`` with the vector defaults
      (:class:`~gfdt.scores.networks.CoordinateMLP`, noise up to the data's scale,
      batch 512, training length by the data and the dimension, the clean score's noise
      level by held-out implicit score matching, Stein projection; 4-D double-well
      chain: 0.10, exact 0.10, KGMM 0.16; the dimension sweep of
      ``benchmarks/generalization.py`` holds from 4 to 64 coordinates).

    Parameters
    ----------
    state_shape : tuple of int
        Shape of one state.
    max_kgmm_dim : int
        Largest vector dimension given to KGMM.
    periodic : bool or None
        Whether the axes of a 2-D state are periodic (None or False: not known to be;
        :class:`AutoScore` passes its ``homogeneous``).

    Returns
    -------
    name : str
        Registered score name.
    reason : str
        The rule that applied, for logs and summaries.
    """
    shape = tuple(int(n) for n in state_shape)
    if len(shape) == 2 and periodic:
        return "dsm", f"2-D field {shape[0]}x{shape[1]}: DSM with the periodic CNN"
    d = int(np.prod(shape)) if shape else 1
    if len(shape) <= 1 and d <= max_kgmm_dim:
        return "kgmm", f"vector of {d} <= {max_kgmm_dim} coordinates: KGMM"
    if len(shape) == 2:  # AutoScore.fit gives it the plain MLP (a CNN would wrap it around)
        return "dsm", (f"{d} coordinates (state shape {shape}, not known to be periodic): "
                       "DSM with the MLP")
    return "dsm", (f"{d} coordinates (state shape {shape}): DSM with the coordinate-"
                   "feature MLP")


@register_score("auto")
class AutoScore(ScoreEstimator):
    """The learned score estimator chosen for the data by :func:`choose_score`.

    :meth:`fit` looks at the shape of the states, builds the chosen estimator with its
    own defaults (overridden by ``dsm_options`` or ``kgmm_options``, and by the shared
    parameters below where the chosen estimator has them), fits it, logs the choice and
    keeps it as ``chosen_``. Scores, the quality report and the summary come from it.

    Parameters
    ----------
    max_kgmm_dim : int
        Vectors with at most this many coordinates go to KGMM.
    dsm_options, kgmm_options : dict, optional
        Options of the DSM or KGMM estimator when it is chosen.
    homogeneous : bool, optional
        Periodic translation-invariant fields, passed to DSM. Only a 2-D state with
        ``homogeneous=True`` gets the periodic CNN (the response estimator passes True
        for gfdt's periodic systems); otherwise the vector rule applies (MLP).
    seed : int
        Seed of the chosen estimator.
    device : str
        Torch device of the chosen estimator.
    n_threads : int, optional
        Torch CPU threads of the chosen estimator.
    max_time : float, optional
        Training budget in seconds (DSM only).
    progress : bool, optional
        Progress bar.

    Attributes
    ----------
    chosen_ : ScoreEstimator
        The fitted estimator.
    chosen_name_ : str
        Its registered name (``"dsm"`` or ``"kgmm"``).
    reason_ : str
        The rule that chose it.
    quality_ : ScoreQuality
        The chosen estimator's held-out quality report.
    """

    def __init__(
        self,
        max_kgmm_dim: int = 3,
        dsm_options: dict | None = None,
        kgmm_options: dict | None = None,
        homogeneous: bool | None = None,
        seed: int = 0,
        device: str = "auto",
        n_threads: int | None = None,
        max_time: float | None = None,
        progress: bool | None = None,
    ) -> None:
        self.max_kgmm_dim = max_kgmm_dim
        self.dsm_options = dsm_options
        self.kgmm_options = kgmm_options
        self.homogeneous = homogeneous
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.max_time = max_time
        self.progress = progress

    def _check_params(self) -> None:
        check_number(self.max_kgmm_dim, "max_kgmm_dim", low=0, integer=True)
        for name in ("dsm_options", "kgmm_options"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict or None, got {type(value).__name__}")
        check_flag(self.homogeneous, "homogeneous", optional=True)
        check_number(self.seed, "seed", low=0, integer=True)
        check_number(self.n_threads, "n_threads", low=1, integer=True, optional=True)
        check_number(self.max_time, "max_time", low=0, low_open=True, optional=True)
        check_flag(self.progress, "progress", optional=True)

    def _build(self, name: str) -> ScoreEstimator:
        """The chosen estimator with the shared parameters it accepts and its options."""
        cls = get_score_class(name)
        accepted = inspect.signature(cls.__init__).parameters
        shared = {"homogeneous": self.homogeneous, "seed": self.seed, "device": self.device,
                  "n_threads": self.n_threads, "max_time": self.max_time,
                  "progress": self.progress}
        opts = {k: v for k, v in shared.items() if k in accepted}
        opts.update((self.dsm_options if name == "dsm" else self.kgmm_options) or {})
        return cls(**opts)

    def fit(self, X) -> AutoScore:
        """Choose the estimator for the states of ``X`` and fit it.

        Parameters
        ----------
        X : array_like, shape ``(n_samples, *state)``
            Time-ordered stationary samples.

        Returns
        -------
        AutoScore
            ``self``, fitted.
        """
        self._check_params()
        shape = np.shape(X)
        if len(shape) < 2:
            raise ValueError(f"X must have shape (n_samples, *state), got shape {shape}")
        name, reason = choose_score(tuple(shape[1:]), self.max_kgmm_dim,
                                    bool(self.homogeneous))
        logger.info("score='auto' chose %r (%s)", name, reason)
        est = self._build(name)
        if name == "dsm" and len(shape) == 3 and not self.homogeneous \
                and "network" not in (self.dsm_options or {}):  # a 2-D state as a vector
            est.set_params(network="mlp", homogeneous=False)
        est = est.fit(X)
        self.chosen_, self.chosen_name_, self.reason_ = est, name, reason
        self.state_shape_ = tuple(shape[1:])
        self.quality_ = getattr(est, "quality_", None)
        return self

    def score(self, x, **kwargs: Any) -> np.ndarray:
        """:math:`\\nabla \\log p` at ``x`` (data units), from the chosen estimator.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        **kwargs
            Passed to the chosen estimator's ``score``.

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        self._check_fitted()
        return self.chosen_.score(x, **kwargs)

    def quality_report(self, X, exact_score=None, *, seed: int = 0):
        """The chosen estimator's quality report on held-out samples ``X`` (see
        :meth:`gfdt.scores.quality.QualityMixin.quality_report`)."""
        self._check_fitted()
        return self.chosen_.quality_report(X, exact_score, seed=seed)

    def summary(self) -> str:
        """The choice, its reason and the chosen estimator's summary, as text."""
        self._check_fitted()
        return (f"AutoScore chose {self.chosen_name_!r} ({self.reason_})\n"
                + self.chosen_.summary())
