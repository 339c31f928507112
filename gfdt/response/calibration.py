"""Calibration of parameters to target statistics by Gauss-Newton steps on sensitivities."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

__all__ = ["CalibrationResult", "calibrate"]

logger = logging.getLogger("gfdt")


@dataclasses.dataclass
class CalibrationResult:
    """What :func:`calibrate` found.

    Attributes
    ----------
    parameters : dict
        The calibrated parameters (name -> value).
    stderr : dict
        Their standard errors, the square roots of the diagonal of ``covariance``.
    covariance : numpy.ndarray, shape (q, q)
        :math:`(S^T W S)^{-1}` at the last step: the covariance of the parameters
        implied by the noise of the target and simulated statistics.
    statistics : numpy.ndarray, shape (p,)
        Simulated statistics at the last simulated parameters: with ``converged``, those
        before the last step, which was within the parameters' standard errors and is
        not simulated again.
    statistics_stderr : numpy.ndarray, shape (p,)
    n_iterations : int
        Gauss-Newton steps taken.
    n_simulations : int
        Calls of ``simulate_stats``.
    n_sensitivity_evaluations : int
        Calls of a callable ``sensitivity`` (each usually one more fit).
    converged : bool
        The last step was within ``tol`` standard errors for every parameter.
    history : list of dict
        Per iteration: parameters, statistics, step, standard errors, chi-square.
    """

    parameters: dict[str, float]
    stderr: dict[str, float]
    covariance: np.ndarray
    statistics: np.ndarray
    statistics_stderr: np.ndarray
    n_iterations: int
    n_simulations: int
    n_sensitivity_evaluations: int
    converged: bool
    history: list[dict[str, Any]]


def _stats(simulate_stats: Callable, theta: dict, p: int | None) -> tuple[np.ndarray, np.ndarray]:
    out = simulate_stats(dict(theta))
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError("simulate_stats must return (stats, stderr)")
    stats = np.asarray(out[0], dtype=float).reshape(-1)
    se = np.asarray(out[1], dtype=float).reshape(-1)
    if p is not None and stats.shape != (p,):
        raise ValueError(f"simulate_stats returned {stats.size} statistics, target has {p}")
    if se.shape != stats.shape:
        raise ValueError(f"simulate_stats: stderr has shape {se.shape}, stats {stats.shape}")
    if not (np.all(np.isfinite(stats)) and np.all(np.isfinite(se)) and np.all(se >= 0)):
        raise ValueError("simulate_stats returned non-finite statistics or negative stderr")
    return stats, se


def _sensitivity(sensitivity, theta: dict, p: int, q: int) -> np.ndarray:
    S = sensitivity(dict(theta)) if callable(sensitivity) else sensitivity
    S = np.asarray(S, dtype=float)
    if S.shape != (p, q):
        raise ValueError(f"sensitivity must have shape (n_statistics, n_parameters) = "
                         f"({p}, {q}), got {S.shape}")
    if not np.all(np.isfinite(S)):
        raise ValueError("sensitivity contains NaN or inf")
    return S


def calibrate(simulate_stats: Callable[[dict], tuple[np.ndarray, np.ndarray]],
              target: np.ndarray, theta0: Mapping[str, float],
              sensitivity: Callable[[dict], np.ndarray] | np.ndarray, *,
              target_stderr: np.ndarray | None = None, max_iter: int = 10,
              tol: float = 1.0, damping: float = 1.0) -> CalibrationResult:
    """Calibrate parameters so that simulated statistics match a target (Gauss-Newton).

    Each step linearises the statistics with the sensitivity matrix
    :math:`S_{ij} = \\partial\\langle A_i\\rangle/\\partial\\theta_j` and solves the
    weighted least-squares problem:

    .. math:: \\theta \\leftarrow \\theta + (S^T W S)^{-1} S^T W\\,
              (\\text{target} - \\text{stats}(\\theta)),

    :math:`W = \\mathrm{diag}(1 / (\\sigma_{target}^2 + \\sigma_{stats}^2))`. It stops
    when every component of the full (undamped) step is within ``tol`` times the
    parameter's standard error :math:`\\sqrt{(S^T W S)^{-1}_{jj}}` (further steps would
    chase noise), or after
    ``max_iter`` steps. Progress is logged (``logging.getLogger("gfdt")``, INFO).

    Parameters
    ----------
    simulate_stats : callable
        ``simulate_stats(theta)`` with ``theta`` a dict name -> value returns
        ``(stats, stderr)``, each shape (p,): the statistics of a simulation at those
        parameters and their standard errors.
    target : array_like, shape (p,)
        Target statistics.
    theta0 : mapping
        Starting parameters, name -> value (the order of the sensitivity's columns).
    sensitivity : callable or array_like
        ``sensitivity(theta) -> (p, q)`` (re-evaluated at every step, e.g. a
        :class:`~gfdt.SensitivityEstimator` fitted on that step's simulation), or a fixed
        ``(p, q)`` matrix.
    target_stderr : array_like, shape (p,), optional
        Standard errors of the target (default: zero).
    max_iter : int
        Most Gauss-Newton steps.
    tol : float
        Stopping threshold, in parameter standard errors.
    damping : float
        Fraction of the Gauss-Newton step taken, in (0, 1].

    Returns
    -------
    CalibrationResult
    """
    if not isinstance(theta0, Mapping) or not theta0:
        raise TypeError("theta0 must be a non-empty mapping name -> value")
    names = list(theta0)
    theta = {k: float(v) for k, v in theta0.items()}
    if not all(np.isfinite(list(theta.values()))):
        raise ValueError("theta0 has non-finite values")
    target = np.asarray(target, dtype=float).reshape(-1)
    if target.size == 0 or not np.all(np.isfinite(target)):
        raise ValueError("target must be a non-empty finite array")
    p, q = target.size, len(names)
    if p < q:
        raise ValueError(f"target has {p} statistics for {q} parameters: the calibration "
                         "is underdetermined")
    tse = np.zeros(p) if target_stderr is None else np.asarray(target_stderr, float).reshape(-1)
    if tse.shape != (p,) or not np.all(np.isfinite(tse)) or np.any(tse < 0):
        raise ValueError(f"target_stderr must be {p} finite values >= 0")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if not (np.isfinite(tol) and tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if not (0 < damping <= 1):
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")

    n_sim = n_sens = 0
    history: list[dict[str, Any]] = []
    converged = False
    stats, se = _stats(simulate_stats, theta, p)
    n_sim += 1
    cov = np.full((q, q), np.nan)
    it = 0
    for it in range(1, max_iter + 1):
        S = _sensitivity(sensitivity, theta, p, q)
        n_sens += callable(sensitivity)
        var = tse**2 + se**2
        if np.any(var <= 0):
            raise ValueError("calibrate needs positive standard errors of the statistics "
                             "(simulate_stats stderr or target_stderr) to weight them")
        w = 1.0 / var
        resid = target - stats
        normal = S.T @ (w[:, None] * S)
        try:
            cov = np.linalg.inv(normal)
        except np.linalg.LinAlgError:
            raise ValueError("the sensitivity matrix is rank deficient: the statistics do "
                             "not determine the parameters") from None
        step = damping * cov @ (S.T @ (w * resid))
        psd = np.sqrt(np.diag(cov))
        chi2 = float(resid @ (w * resid))
        theta = {k: theta[k] + float(step[j]) for j, k in enumerate(names)}
        history.append({"parameters": dict(theta), "statistics": stats.copy(),
                        "step": step.copy(), "stderr": psd.copy(), "chi2": chi2})
        logger.info("calibrate: step %d, chi2 %.3g, |step| / stderr %s -> %s", it, chi2,
                    np.round(np.abs(step) / psd, 3).tolist(), theta)
        if np.all(np.abs(step) <= tol * damping * psd):  # the full Gauss-Newton step
            converged = True
            break
        stats, se = _stats(simulate_stats, theta, p)
        n_sim += 1
    return CalibrationResult(
        parameters=theta, stderr={k: float(np.sqrt(cov[j, j])) for j, k in enumerate(names)},
        covariance=cov, statistics=stats, statistics_stderr=se, n_iterations=it,
        n_simulations=n_sim, n_sensitivity_evaluations=n_sens, converged=converged,
        history=history)
