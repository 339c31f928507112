"""Score estimators: each learns grad log p of stationary data behind one interface."""

from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator
from gfdt.scores.dsm import DenoisingScoreModel
from gfdt.scores.gaussian import GaussianScore

__all__ = ["AnalyticScore", "DenoisingScoreModel", "GaussianScore", "ScoreEstimator"]
