"""Score estimators: each learns grad log p of stationary data behind one interface."""

from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator
from gfdt.scores.data import SnapshotDataset
from gfdt.scores.dsm import DenoisingScoreModel
from gfdt.scores.gaussian import GaussianScore
from gfdt.scores.hold import HOLDScoreModel
from gfdt.scores.hsm import HamiltonianScoreModel
from gfdt.scores.kernel import KernelScoreModel
from gfdt.scores.kgmm import KGMMScoreModel
from gfdt.scores.whiten import WhitenedScore

__all__ = ["AnalyticScore", "DenoisingScoreModel", "GaussianScore", "HOLDScoreModel",
           "HamiltonianScoreModel", "KGMMScoreModel", "KernelScoreModel",
           "ScoreEstimator", "SnapshotDataset", "WhitenedScore"]
