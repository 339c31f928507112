"""gfdt: response functions of stochastic systems from unperturbed data.

The generalized fluctuation-dissipation theorem (GFDT) turns the score
:math:`\\nabla \\log p` of a system's stationary statistics into its response to small
perturbations. gfdt simulates stochastic systems, estimates scores and computes
responses, with perturbation ground truth to check them.

Heavy dependencies load on first use: ``gfdt.plotting`` (matplotlib), ``gfdt.io``,
``gfdt.metrics``, ``gfdt.sampling`` and the learned score estimators (torch) are
imported when first accessed, so ``import gfdt`` and a Gaussian fit never import torch
or matplotlib.
"""

import importlib
import logging
from typing import Any

# _progress first: tqdm.auto without its import-time TqdmWarning in notebooks
from gfdt import _progress as _progress
from gfdt import conventions, data, reduce, scores, stats, systems
from gfdt.anomalies import anomalies
from gfdt.reduce import EOF
from gfdt.response import (
    Bootstrap,
    CalibrationResult,
    Observable,
    ParameterPerturbation,
    Perturbation,
    ResponseEstimator,
    SensitivityEstimator,
    calibrate,
    response_to_forcing,
)
from gfdt.simulate import simulate
from gfdt.systems import (
    AllenCahn,
    Lorenz96TwoScale,
    NavierStokes2D,
    OrnsteinUhlenbeck,
    SimulationDiverged,
)
from gfdt.truth import forced_response, perturbation_response

__version__ = conventions.version()

logging.getLogger("gfdt").addHandler(logging.NullHandler())

_LAZY = ("io", "metrics", "nullmodel", "plotting", "sampling")

__all__ = [
    "EOF",
    "AllenCahn",
    "Bootstrap",
    "CalibrationResult",
    "Lorenz96TwoScale",
    "NavierStokes2D",
    "Observable",
    "OrnsteinUhlenbeck",
    "ParameterPerturbation",
    "Perturbation",
    "ResponseEstimator",
    "SensitivityEstimator",
    "SimulationDiverged",
    "__version__",
    "anomalies",
    "calibrate",
    "conventions",
    "data",
    "forced_response",
    "io",
    "metrics",
    "nullmodel",
    "perturbation_response",
    "plotting",
    "reduce",
    "response_to_forcing",
    "sampling",
    "scores",
    "simulate",
    "stats",
    "systems",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"gfdt.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gfdt' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
