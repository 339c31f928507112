"""Automatic bootstrap block length: Politis and White (2004), corrected by Patton,
Politis and White (2009).

For the mean of a stationary series, the block length that minimises the mean square
error of the block-bootstrap variance is

.. math:: b_{opt} = \\left(\\frac{2 G^2}{D}\\right)^{1/3} n^{1/3},\\qquad
          G = \\sum_{|k| \\le M} \\lambda(k/M)\\,|k|\\,\\hat\\gamma(k),\\qquad
          D = c\\,\\Big(\\sum_{|k| \\le M} \\lambda(k/M)\\,\\hat\\gamma(k)\\Big)^2,

with :math:`\\hat\\gamma` the sample autocovariances, :math:`\\lambda` the flat-top
kernel (1 on :math:`|t| \\le 1/2`, :math:`2(1 - |t|)` on :math:`1/2 < |t| \\le 1`) and
:math:`c = 2` for the stationary bootstrap, :math:`4/3` for the circular (and moving)
block bootstrap. The bandwidth :math:`M = 2\\hat m` comes from the first run of
:math:`K_n = \\max(5, \\lfloor\\log_{10} n\\rfloor)` autocorrelations inside
:math:`\\pm 2\\sqrt{\\log_{10}(n)/n}`, at most :math:`\\lceil\\sqrt n\\rceil + K_n`; the
result is capped at :math:`\\lceil\\min(3\\sqrt n, n/3)\\rceil`. The tuning constants
are those of Patton's program, as :func:`arch.bootstrap.optimal_block_length` uses
them (tests/test_block_length.py checks the two agree).

gfdt's bootstrap resamples *non-overlapping* blocks, whose variance constant is 3/2
times that of moving blocks (Lahiri 1999): :math:`c = 2`, the stationary-bootstrap
value, which :func:`block_length_rule` uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["block_length_rule", "flat_top", "lagged_product_series", "optimal_block_length",
           "variance_bias"]


def _autocovariances(series: Sequence[np.ndarray], m_max: int) -> tuple[np.ndarray,
                                                                        np.ndarray, int]:
    """Pooled autocovariances (lags 0..m_max) and arch's autocorrelation moduli.

    Every member is centred on the pooled mean; products are summed over members and
    divided by the total length (as :math:`\\hat\\gamma(k) = n^{-1}\\sum_t`).
    """
    n = int(sum(len(x) for x in series))
    mean = sum(float(np.sum(x)) for x in series) / n
    eps = [np.asarray(x, dtype=float) - mean for x in series]
    acv = np.zeros(m_max + 1)
    acorr = np.zeros(m_max + 1)
    for i in range(m_max + 1):
        cross = v1 = v2 = 0.0
        for e in eps:
            T = e.shape[0]
            if i < T:
                cross += float(e[i:] @ e[: T - i])
            if i + 1 < T:
                v1 += float(e[i + 1:] @ e[i + 1:])
                v2 += float(e[: T - i - 1] @ e[: T - i - 1])
        acv[i] = cross / n
        acorr[i] = abs(cross) / math.sqrt(v1 * v2) if v1 > 0 and v2 > 0 else 0.0
    return acv, acorr, n


def flat_top(acv: np.ndarray, acorr: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Politis-White's :math:`G` and long-run variance for several series at once.

    Parameters
    ----------
    acv, acorr : numpy.ndarray, shape ``(m_max + 1, c)``
        Autocovariances and autocorrelation moduli at lags ``0 .. m_max`` of ``c``
        series.
    n : int
        Samples behind them (sets the run length :math:`K_n` and the band).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray), shape ``(c,)`` each
        :math:`G` and :math:`\\sum_{|k| \\le M} \\lambda(k/M)\\hat\\gamma(k)`, with
        :math:`M` twice the first lag of a run of :math:`K_n` autocorrelations inside
        the band (``m_max`` if there is none) and :math:`\\lambda` the flat-top kernel.
    """
    m_max = acv.shape[0] - 1
    kn = max(5, int(math.log10(n)))
    small = acorr < 2 * math.sqrt(math.log10(n) / n)
    m = np.full(acv.shape[1], m_max)
    found = np.zeros(acv.shape[1], dtype=bool)
    for i in range(kn, m_max + 1):  # the first run of kn small autocorrelations
        run = small[i - kn:i].all(axis=0) & ~found
        m = np.where(run, min(2 * max(i - kn, 1), m_max), m)
        found |= run
    k = np.arange(1, m_max + 1)[:, None]
    lam = np.where(k <= m, np.where(k / m <= 0.5, 1.0, 2 * (1 - k / m)), 0.0)
    g = np.sum(2 * lam * k * acv[1:], axis=0)
    long_run = acv[0] + np.sum(2 * lam * acv[1:], axis=0)
    return g, long_run


def _terms(x) -> tuple[float, float, int, int]:
    """Politis-White's :math:`G`, long-run variance, :math:`n` and cap of a series."""
    arr = np.asarray(x, dtype=float) if not isinstance(x, (list, tuple)) else None
    series = [arr] if arr is not None else [np.asarray(v, dtype=float) for v in x]
    if any(s.ndim != 1 for s in series):
        raise ValueError("x must be one-dimensional (or a sequence of 1-D members)")
    if any(not np.all(np.isfinite(s)) for s in series):
        raise ValueError("x contains NaN or inf")
    n = int(sum(s.shape[0] for s in series))
    if n < 3:
        raise ValueError(f"x needs at least 3 samples for a block length, got {n}")
    b_max = math.ceil(min(3 * math.sqrt(n), n / 3))
    kn = max(5, int(math.log10(n)))
    m_max = math.ceil(math.sqrt(n)) + kn
    acv, acorr, _ = _autocovariances(series, m_max)
    if acv[0] <= 0:  # a constant series: no dependence to cover
        return 0.0, 0.0, n, b_max
    g, long_run = flat_top(acv[:, None], acorr[:, None], n)
    g, long_run = float(g[0]), float(long_run[0])
    return g, long_run, n, b_max


def optimal_block_length(x) -> tuple[float, float]:
    """Politis-White block lengths ``(stationary, circular)`` of a series (samples).

    Parameters
    ----------
    x : array_like, shape (n,), or a sequence of such arrays
        One series, or independent members of one process (autocovariances pooled,
        :math:`n` their total length).

    Returns
    -------
    (float, float)
        The optimal expected block length of the stationary bootstrap and the block
        length of the circular bootstrap, in samples (not rounded).

    Raises
    ------
    ValueError
        Fewer than 3 samples in all, or a series that is not finite.
    """
    g, long_run, n, b_max = _terms(x)
    if long_run == 0 and g == 0:
        return 1.0, 1.0
    if long_run <= 0:  # a long-run variance estimate of zero: blocks cannot help
        return float(b_max), float(b_max)
    b_sb = (2 * g**2 / (2 * long_run**2)) ** (1 / 3) * n ** (1 / 3)
    b_cb = (2 * g**2 / (4 / 3 * long_run**2)) ** (1 / 3) * n ** (1 / 3)
    return float(min(b_sb, b_max)), float(min(b_cb, b_max))


def variance_bias(x) -> float:
    r""":math:`\hat G / \hat\sigma^2_\infty` of a series (samples; 0 if undefined).

    The block-bootstrap variance of a mean with blocks of :math:`b` samples is biased by
    :math:`-G/(b\,\sigma^2_\infty)` relative to the long-run variance
    :math:`\sigma^2_\infty` (Kunsch 1989; Hall, Horowitz and Jing 1995), the bias term
    of Politis and White's rule.
    """
    g, long_run, _, _ = _terms(x)
    return max(0.0, g / long_run) if long_run > 0 else 0.0


def block_length_rule(series: Sequence[Sequence[np.ndarray]], floor: int,
                      longest: int, spacing: int = 1) -> tuple[int, list[float], float]:
    """gfdt's block length: the longest Politis-White length of several series.

    Parameters
    ----------
    series : sequence of candidates, each a sequence of 1-D members
        Scalar summaries of what the bootstrap resamples (e.g. the lagged products
        :math:`x(t + \tau) s(t)` at a few lags).
    floor : int
        Smallest block (``max_lag + 1``: a block holds every lag of its source times).
    longest : int
        Longest member (the largest block).
    spacing : int
        Samples between consecutive values of the series (the source stride): lengths
        and the bias ratio are returned in samples.

    Returns
    -------
    (int, list of float, float)
        The block length (samples), the Politis-White length of each candidate
        (non-overlapping blocks: the stationary-bootstrap constant, see the module
        notes), and the largest :func:`variance_bias` ratio of the candidates.
    """
    found, bias = [], 0.0
    for members in series:
        members = [m for m in members if len(m) >= 3]
        if not members or sum(len(m) for m in members) < 8:
            continue
        found.append(spacing * optimal_block_length(list(members))[0])
        bias = max(bias, spacing * variance_bias(list(members)))
    best = max(found) if found else float(floor)
    return int(min(max(floor, math.ceil(best)), longest)), found, bias


def lagged_product_series(pairs: Sequence[tuple[np.ndarray, np.ndarray | None]], L: int,
                          weights: np.ndarray | None = None) -> list[list[np.ndarray]]:
    """Scalar summaries of the summands :math:`A(t + \\tau) B(t)^T` the bootstrap resamples.

    For a few lags :math:`\\tau \\in \\{0, 1, L/2, L\\}`, one series per member: the trace
    :math:`\\mathrm{Re}\\sum_i A_i(t + \\tau)\\,\\overline{B_i(t)}` when targets and
    sources match (the state response: its diagonal), else the product of the sums of
    the standardised targets and sources.

    Parameters
    ----------
    pairs : sequence of (targets, sources)
        Per member: targets ``(Tu, p)`` and sources ``(Ts, q)`` (real or complex) from
        the same start; sources None when they are the targets, scaled per column by
        ``weights`` (a score diagonal in the columns).
    L : int
        Largest lag.
    weights : numpy.ndarray, optional
        Per-column scale of the sources when they are None.

    Returns
    -------
    list of lists of numpy.ndarray
        Per lag, the members' 1-D series.
    """
    taus = sorted({0, 1, L // 2, L} & set(range(L + 1)))
    out: list[list[np.ndarray]] = []
    for tau in taus:
        members = []
        for u, s in pairs:
            if s is None:
                s = u * (1.0 if weights is None else weights)
            n = min(s.shape[0], u.shape[0] - tau)
            if n < 1:
                continue
            a, b = u[tau:tau + n], s[:n]
            if a.shape[1] == b.shape[1]:
                z = np.einsum("ti,ti->t", a, np.conj(b)).real
            else:
                def standard_sum(x: np.ndarray) -> np.ndarray:
                    sd = x.std(axis=0)
                    return (x / np.where(sd > 0, sd, 1.0)).sum(axis=1)

                z = (standard_sum(a) * np.conj(standard_sum(b))).real
            members.append(np.asarray(z, dtype=float))
        out.append(members)
    return out
