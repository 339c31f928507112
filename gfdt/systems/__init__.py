"""Stochastic systems gfdt simulates: one module per system plus shared spectral tools."""

from gfdt.systems.allen_cahn import AllenCahn
from gfdt.systems.base import SimulationDiverged, System, system_from_attrs
from gfdt.systems.lorenz96 import Lorenz96TwoScale
from gfdt.systems.navier_stokes import NavierStokes2D
from gfdt.systems.ou import OrnsteinUhlenbeck
from gfdt.systems.sde import SDE

__all__ = [
    "SDE",
    "AllenCahn",
    "Lorenz96TwoScale",
    "NavierStokes2D",
    "OrnsteinUhlenbeck",
    "SimulationDiverged",
    "System",
    "system_from_attrs",
]
