"""Closed-form scores: wrap a function (e.g. a system's exact score) as an estimator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gfdt.scores.base import ScoreEstimator, as_points, score_output

__all__ = ["AnalyticScore"]


class AnalyticScore(ScoreEstimator):
    """A known score function behind the estimator interface.

    Parameters
    ----------
    function : callable
        Maps a batch of shape ``(batch, *state)`` to scores of the same shape.
    name : str
        Label used in outputs.
    affine : bool
        The function is affine in the state (constant Jacobian, e.g. a Gaussian score):
        the diffusion conjugate of :class:`~gfdt.ParameterPerturbation` then takes the
        trace of the Jacobian once.

    Examples
    --------
    >>> import numpy as np
    >>> s = AnalyticScore(lambda x: -x, name="standard normal").fit(np.zeros((2, 3)))
    >>> s(np.ones((1, 3)))
    array([[-1., -1., -1.]])
    """

    def __init__(self, function: Callable[[np.ndarray], np.ndarray], name: str = "analytic",
                 affine: bool = False):
        self.function = function
        self.name = name
        self.affine = affine

    def fit(self, X=None) -> AnalyticScore:
        """Nothing to learn; kept for the common interface."""
        if not callable(self.function):
            raise TypeError("function must be callable")
        self.fitted_ = True
        return self

    def score(self, x) -> np.ndarray:
        """The function at ``x``, as float64 (after :meth:`fit`)."""
        self._check_fitted()
        return score_output(self.function(as_points(x)), "function")
