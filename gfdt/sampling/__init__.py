r"""Generative samplers that use a score: judge a score by what it generates.

* :func:`reverse_sde`, :func:`probability_flow`: variance-exploding (VE) diffusion with
  :math:`\sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^t`, for noise-conditional
  scores :math:`s(x, \sigma)` such as :class:`gfdt.scores.DenoisingScoreModel`;
* :func:`langevin`: unadjusted Langevin dynamics with any score :math:`s(x)`;
* :func:`vp_euler_maruyama`: the variance-preserving (VP) SDE of Song et al. (2021),
  Euler-Maruyama in reverse time, for time-dependent scores :math:`s(x, t)`;
* :func:`hold_lie_trotter`: HOLD's third-order Langevin process in reverse time, split
  into its exact Ornstein-Uhlenbeck part and a score step, for :math:`a`-block scores
  (:class:`gfdt.scores.HOLDScoreModel` or a callable);
* :func:`hamiltonian_flow`: Hamiltonian generative flows, integrating
  :math:`\dot x = V(x, t)` from :math:`T` back to 0;
* :func:`gmm_vp_score`, :func:`gmm_hold_score`,
  :func:`wasserstein1_gmm`: exact scores of Gaussian mixtures and the W1 distance, to
  check samplers.

All samplers take explicit seeds (``numpy.random.Generator`` streams), return numpy
arrays and show a progress bar on a terminal (``progress``).

The samplers live in submodules by kind (:mod:`~gfdt.sampling.diffusion`,
:mod:`~gfdt.sampling.langevin`, :mod:`~gfdt.sampling.hamiltonian`), the Gaussian-mixture
checks in :mod:`~gfdt.sampling.gmm`; every public name is importable from here.
"""

from gfdt.sampling.diffusion import probability_flow, reverse_sde, vp_euler_maruyama
from gfdt.sampling.gmm import gmm_hold_score, gmm_vp_score, wasserstein1_gmm
from gfdt.sampling.hamiltonian import hamiltonian_flow
from gfdt.sampling.langevin import hold_lie_trotter, langevin

__all__ = [
    "gmm_hold_score",
    "gmm_vp_score",
    "hamiltonian_flow",
    "hold_lie_trotter",
    "langevin",
    "probability_flow",
    "reverse_sde",
    "vp_euler_maruyama",
    "wasserstein1_gmm",
]
