"""The default number of EOF modes: cross-validated forecast error, one-standard-error rule.

The Gaussian GFDT response on the leading :math:`k` principal components,
:math:`R_k(\\tau) = C_k(\\tau) C_k(0)^{-1}`, is also the least-squares propagator that
forecasts :math:`a(t + \\tau)` from :math:`a(t)` (a linear inverse model). Its error on
held-out data therefore measures both ways a mode count can go wrong: too few modes
leave predictable (slow) variance unexplained, too many add propagator entries that are
fitted to noise (cross-covariances divided by small variances), which forecast held-out
data worse. The rule:

1. split the record into ``folds`` contiguous blocks (members in order); for each, fit
   :math:`C(0)` and :math:`C(\tau)` of the leading ``k_max`` PCs on the sample pairs
   outside the block, and forecast the pairs inside it :math:`\tau` steps ahead, for
   :math:`\tau = 1` and 2;
2. the error of :math:`k` modes is the held-out squared error of the forecast of all
   ``k_max`` PCs (the modes left out are forecast as zero), averaged over the two
   leads: the part of the field's (area-weighted) variance the truncated propagator
   fails to predict. A mode whose memory is shorter than the sampling interval (lag-1
   autocorrelation ~0.1) gains a little at lead 1 on a long record and nothing at
   lead 2, so it stays out; modes with memory forecast well at both;
3. take the smallest :math:`k` whose mean error over the folds is within one standard
   error of the minimum (Hastie, Tibshirani and Friedman, *Elements of Statistical
   Learning*, 2nd ed., sec. 7.10), preferring fewer modes among those the data cannot
   tell apart (0 modes, when forecasting zero is as good: white noise, 1 mode is kept
   with a warning).

Measured on ``benchmarks/climate_grid.py`` (748 ocean points): on the linear field (4
slow non-orthogonal patterns under a fast remainder) the rule gives 4 modes at 350, 750,
3750 and 15000 samples, where the response error is smallest; the plain minimum
sometimes takes 5 or 6 modes, with 1.5-2x the response error, and lead 1 alone takes 9
at 15000 samples (the fast remainder's modes). On the double-well field (3 patterns) it
gives 3 at 750-15000 samples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LEADS", "forecast_cv", "one_se_choice"]

#: Forecast leads (samples) whose held-out errors are averaged.
LEADS = (1, 2)


def _pairs(lengths: list[int], lag: int) -> np.ndarray:
    """Global indices t of the pairs (t, t + lag) inside one member."""
    out, start = [], 0
    for n in lengths:
        if n > lag:
            out.append(start + np.arange(n - lag))
        start += n
    return np.concatenate(out) if out else np.zeros(0, dtype=int)


def forecast_cv(pcs: np.ndarray, lengths: list[int], k_max: int, folds: int = 5,
                lag: int = 1) -> np.ndarray:
    """Held-out forecast error of the propagator on the leading k PCs, k = 0..k_max.

    Parameters
    ----------
    pcs : numpy.ndarray, shape ``(n, >= k_max)``
        Principal components, the samples of all members in time order.
    lengths : list of int
        Samples per member (they sum to ``n``).
    k_max : int
        Largest mode count tried.
    folds : int
        Contiguous blocks left out in turn.
    lag : int
        Forecast lead in samples.

    Returns
    -------
    numpy.ndarray, shape ``(folds, k_max + 1)``
        Mean squared forecast error per held-out pair (sum over the ``k_max`` PCs, in
        their variance units) of each fold and mode count.
    """
    a = np.asarray(pcs, dtype=float)[:, :k_max]
    n = a.shape[0]
    t = _pairs(lengths, lag)
    edges = np.linspace(0, n, folds + 1).astype(int)
    out = np.full((folds, k_max + 1), np.nan)
    for f in range(folds):
        lo, hi = edges[f], edges[f + 1]
        test = (t >= lo) & (t + lag < hi)
        train = (t + lag < lo) | (t >= hi)
        if test.sum() < 2 or train.sum() <= k_max:
            continue
        X0, X1 = a[t[train]], a[t[train] + lag]
        C0, C1 = X0.T @ X0, X1.T @ X0
        T0, T1 = a[t[test]], a[t[test] + lag]
        per_mode = (T1**2).sum(axis=0)
        tail = np.concatenate([np.cumsum(per_mode[::-1])[::-1], [0.0]])  # modes >= k
        out[f, 0] = tail[0]
        for k in range(1, k_max + 1):
            try:
                R = np.linalg.solve(C0[:k, :k], C1[:k, :k].T).T
            except np.linalg.LinAlgError:
                continue
            out[f, k] = ((T1[:, :k] - T0[:, :k] @ R.T) ** 2).sum() + tail[k]
        out[f] /= test.sum()
    return out


def one_se_choice(curves: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The smallest k whose mean error is within one standard error of the minimum.

    Parameters
    ----------
    curves : numpy.ndarray, shape ``(folds, k_max + 1)``
        From :func:`forecast_cv` (folds that could not be fitted are NaN).

    Returns
    -------
    k : int
        The chosen mode count; 0 when forecasting zero (no mode) is as good as the best
        mode count (no predictability the data can resolve).
    mean, stderr : numpy.ndarray, shape ``(k_max + 1,)``
        Mean error over the folds and its standard error.
    """
    ok = np.all(np.isfinite(curves), axis=1)
    if ok.sum() < 2:
        raise ValueError("the record is too short to choose n_modes by cross-validation "
                         f"({int(ok.sum())} usable folds): pass n_modes as an int")
    c = curves[ok]
    mean = c.mean(axis=0)
    se = c.std(axis=0, ddof=1) / np.sqrt(c.shape[0])
    best = int(np.argmin(mean))
    k = int(np.flatnonzero(mean <= mean[best] + se[best])[0])
    return k, mean, se
