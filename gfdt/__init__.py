"""gfdt: response functions of stochastic systems from unperturbed data.

The generalized fluctuation-dissipation theorem (GFDT) turns the score
:math:`\\nabla \\log p` of a system's stationary statistics into its response to small
perturbations. gfdt simulates stochastic systems, estimates scores and computes
responses, with perturbation ground truth to check them.
"""

import logging

# _progress first: tqdm.auto without its import-time TqdmWarning in notebooks
from gfdt import _progress as _progress
from gfdt import io, metrics, plotting, scores, stats, systems
from gfdt.response import ResponseEstimator, response_to_forcing
from gfdt.simulate import simulate
from gfdt.systems import AllenCahn, NavierStokes2D, OrnsteinUhlenbeck, SimulationDiverged
from gfdt.truth import forced_response, perturbation_response

__version__ = "0.1.0"

logging.getLogger("gfdt").addHandler(logging.NullHandler())

__all__ = [
    "AllenCahn",
    "NavierStokes2D",
    "OrnsteinUhlenbeck",
    "ResponseEstimator",
    "SimulationDiverged",
    "__version__",
    "forced_response",
    "io",
    "metrics",
    "perturbation_response",
    "plotting",
    "response_to_forcing",
    "scores",
    "simulate",
    "stats",
    "systems",
]
