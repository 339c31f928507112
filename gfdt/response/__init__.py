"""GFDT responses: the estimator, the correlation engine, conjugates, bootstrap, forcing.

* :class:`ResponseEstimator` (:mod:`~gfdt.response.estimator`): fit on unperturbed data;
  with ``reduce=gfdt.EOF(...)`` on principal components (:mod:`~gfdt.response.reduced`);
* :mod:`~gfdt.response.correlate`: the one lagged-correlation engine;
* :class:`Observable`, :class:`Perturbation` (:mod:`~gfdt.response.conjugate`): what
  responds and how the state is perturbed, with their numerical options;
* :class:`Bootstrap` (:mod:`~gfdt.response.bootstrap`): options of the error bars;
* :func:`response_to_forcing` (:mod:`~gfdt.response.forcing`): predictions;
* :class:`SensitivityEstimator` (:mod:`~gfdt.response.sensitivity`) and
  :class:`ParameterPerturbation` (:mod:`~gfdt.response.parameters`): responses to
  parameters of the drift and the noise (:class:`DiffusionField`: state-dependent noise);
* :func:`calibrate` (:mod:`~gfdt.response.calibration`): Gauss-Newton calibration.
"""

from gfdt.response._checks import MaxLagWarning, NonStationarityWarning, SteinWarning
from gfdt.response._diffusion import DiffusionField
from gfdt.response._plan import MemoryPlan, MemoryPlanError
from gfdt.response.bootstrap import Bootstrap, BootstrapWarning
from gfdt.response.calibration import CalibrationResult, calibrate
from gfdt.response.conjugate import Observable, Perturbation
from gfdt.response.estimator import ResponseEstimator
from gfdt.response.forcing import response_to_forcing
from gfdt.response.parameters import ParameterPerturbation
from gfdt.response.sensitivity import SensitivityEstimator

__all__ = ["Bootstrap", "BootstrapWarning", "CalibrationResult", "DiffusionField",
           "MaxLagWarning", "MemoryPlan", "MemoryPlanError", "NonStationarityWarning",
           "Observable", "ParameterPerturbation", "Perturbation", "ResponseEstimator",
           "SensitivityEstimator", "SteinWarning", "calibrate", "response_to_forcing"]
