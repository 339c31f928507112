"""Score estimators: each learns grad log p of stationary data behind one interface.

The torch-based estimators are imported on first use, so ``import gfdt.scores`` (and a
Gaussian fit) does not load torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import (
    NotFittedError,
    ScoreEstimator,
    get_score_class,
    register_score,
    score_names,
)
from gfdt.scores.gaussian import GaussianScore

_LAZY = {
    "AutoScore": "auto",
    "DenoisingScoreModel": "dsm",
    "ScoreQuality": "quality",
    "ScoreQualityWarning": "quality",
    "HOLDScoreModel": "hold",
    "HamiltonianScoreModel": "hsm",
    "KGMMScoreModel": "kgmm",
    "KernelScoreModel": "kernel",
    "SnapshotDataset": "data",
    "SteinCorrected": "stein",
    "WhitenedScore": "whiten",
}

__all__ = ["AnalyticScore", "AutoScore", "DenoisingScoreModel", "GaussianScore", "HOLDScoreModel",
           "HamiltonianScoreModel", "KGMMScoreModel", "KernelScoreModel", "NotFittedError",
           "ScoreEstimator", "ScoreQuality", "ScoreQualityWarning", "SnapshotDataset",
           "SteinCorrected",
           "WhitenedScore", "get_score_class", "register_score", "score_names"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"gfdt.scores.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gfdt.scores' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
