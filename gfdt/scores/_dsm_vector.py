"""DSM's clean score of vectors: the network's noise level and the size of the learned
correction chosen on held-out samples by implicit score matching, and the Stein
projection of the correction.

The GFDT uses the clean score

.. math:: s(x) = -C^{-1}x + \\lambda\\,\\bigl(F(x, \\sigma_e) - A(x)\\bigr),

the Gaussian part exactly at zero noise, the network at one noise level
:math:`\\sigma_e`, less :math:`A`, the least-squares affine part of the network's output
over the training samples (:mod:`gfdt.scores._projection`), times a scale
:math:`\\lambda`. The network's output at the smallest trained noise ``sigma_min`` is
the least biased but the noisiest (the sigma^2-weighted loss gives it the least
weight); at a larger noise it is smoother and shrunk towards the Gaussian. Which is
better depends on the data, so :math:`\\sigma_e` is chosen among ``sigma_min * 2**k``
(``k = 0..2``, at most ``sigma_max``), and :math:`\\lambda` in ``[0, MAX_SCALE]``, by
the held-out implicit score-matching objective :math:`J(s) = E[\\tfrac12\\|s\\|^2 +
\\nabla\\cdot s]` (:mod:`gfdt.scores._ism`), the Fisher divergence of the clean score up
to a constant. :math:`J` is quadratic in :math:`\\lambda`,

.. math:: J(s_G + \\lambda G) = J(s_G) + \\lambda\\,E[s_G\\cdot G + \\nabla\\cdot G]
          + \\tfrac12\\lambda^2 E\\|G\\|^2 ,

so the best scale has a closed form. It is 1 for a correction that is right, below 1
for a noisy one (0 when it only adds noise: the score falls back to the Gaussian's, and
the quality report warns), above 1 for one the noise has shrunk.
"""

from __future__ import annotations

import logging

import numpy as np

from gfdt.scores._dsm_task import read_rows, strided
from gfdt.scores._ism import value_and_divergence
from gfdt.scores._projection import affine_part

__all__ = ["EVAL_LEVELS", "MAX_SCALE", "affine_part_of", "choose_clean_score"]

logger = logging.getLogger("gfdt")

#: Candidate noise levels of the clean score, in units of ``sigma_min``.
EVAL_LEVELS = (1.0, 2.0, 4.0)
#: Largest scale of the learned correction.
MAX_SCALE = 2.0
#: Score evaluations x coordinates spent per candidate on the held-out objective.
_ISM_EVALUATIONS = 2**22
#: Training samples (strided) of the affine fit of the Stein projection.
_PROJECTION_SAMPLES = 32768


def affine_part_of(est, data, n_train: int, mean, std, sigma: float) -> tuple:
    """The affine part of ``est``'s network output at ``sigma`` over (at most
    ``_PROJECTION_SAMPLES``, strided) training samples ``0 .. n_train - 1`` of ``data``
    (standardised units)."""

    idx = strided(0, n_train, _PROJECTION_SAMPLES)

    def read(a: int, b: int) -> np.ndarray:
        return ((read_rows(data, idx[a:b], est.chunk_size) - mean) / std).reshape(b - a, -1)

    def correction(x: np.ndarray) -> np.ndarray:
        xs = x.reshape(len(x), *est.state_shape_)
        return est._network_std(xs, sigma, 4096).reshape(x.shape)

    return affine_part(correction, read, len(idx), 4096)


def choose_clean_score(est, data, n_train: int, mean, std, xs_heldout: np.ndarray
                       ) -> dict[float, tuple[float, float]]:
    """Set ``est.sigma_eval_``, ``est.projection_`` and ``est.correction_scale_`` to the
    candidate with the least held-out implicit score-matching objective on
    ``xs_heldout`` (standardised samples).

    Returns ``{sigma: (scale, objective)}`` of every candidate (objective: mean over
    samples and coordinates; the Gaussian score's is ``est.gaussian_objective_``).
    """
    n0 = len(xs_heldout)
    d = int(np.prod(xs_heldout.shape[1:]))
    m = max(2, min(n0, _ISM_EVALUATIONS // (2 * d * d)))
    sub = xs_heldout[np.unique(np.linspace(0, n0 - 1, m).astype(int))]
    flat = sub.reshape(len(sub), d)
    prec = np.linalg.inv(np.atleast_2d(est.prior_stat_))
    sg = -flat @ prec
    j_gauss = float((0.5 * sg**2).sum(1).mean() - np.trace(prec))
    levels = [est.sigma_min_ * k for k in EVAL_LEVELS if est.sigma_min_ * k <= est.sigma_max_]
    out, best = {}, None
    for sig in levels:
        proj = (affine_part_of(est, data, n_train, mean, std, sig)
                if est.stein_projection else None)

        def correction(xs: np.ndarray, sig=sig, proj=proj) -> np.ndarray:
            f = est._network_std(xs, sig, 4096).reshape(len(xs), -1)
            if proj is not None:
                centre, mu, lin = proj
                f = f - mu - (xs.reshape(len(xs), -1) - centre) @ lin
            return f.reshape(xs.shape)

        g, div = value_and_divergence(correction, sub)
        a = float(((sg * g).sum(1) + div.sum(1)).mean())
        b = float((g**2).sum(1).mean())
        scale = float(np.clip(-a / b, 0.0, MAX_SCALE)) if b > 0 else 0.0
        obj = (j_gauss + scale * a + 0.5 * scale**2 * b) / d
        out[sig] = (scale, obj)
        if best is None or obj < best[2]:
            best = (sig, proj, obj, scale)
    est.sigma_eval_, est.projection_, _, est.correction_scale_ = best
    est.gaussian_objective_ = j_gauss / d
    logger.info("DSM: clean score from the network at sigma %.3g, correction x %.3g "
                "(held-out implicit score matching per coordinate: Gaussian %.4f; %s)",
                est.sigma_eval_, est.correction_scale_, j_gauss / d,
                ", ".join(f"{k:.3g}: x{v[0]:.2f} {v[1]:.4f}" for k, v in out.items()))
    return out
