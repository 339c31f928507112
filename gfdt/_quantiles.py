"""Exact quantiles over a stream of arrays in bounded memory (order-statistic buffers).

A quantile :math:`p` of :math:`n` values, with numpy's default (linear) rule, is
:math:`a_j + (h - j)(a_{j+1} - a_j)` with :math:`a` sorted, :math:`h = p(n - 1)` and
:math:`j = \\lfloor h \\rfloor`: it needs only the :math:`j + 2` smallest values (or the
:math:`n - j` largest). :class:`StreamQuantiles` keeps, per position, those few order
statistics of the arrays seen so far, updated in place one array at a time: the tails
of a 95% band of 100 arrays need 4 + 4 of them instead of all 100.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["StreamQuantiles", "buffer_sizes"]


def buffer_sizes(n: int, probs: Sequence[float]) -> list[tuple[str, int]]:
    """For each probability, which tail holds it (``"low"`` or ``"high"``) and the
    number of order statistics kept."""
    out = []
    for p in probs:
        h = p * (n - 1)
        j = math.floor(h)
        low, high = min(j + 2, n), n - j
        out.append(("low", low) if low <= high else ("high", high))
    return out


class StreamQuantiles:
    """Quantiles per position of ``n`` arrays of one shape, added one at a time.

    Parameters
    ----------
    n : int
        Number of arrays that will be added (>= 1).
    probs : sequence of float
        Probabilities in [0, 1].
    shape : tuple of int
        Shape of every array.

    Notes
    -----
    Memory: the largest low and the largest high buffer, each ``k`` arrays; an added
    array costs two temporaries of its size. The result equals
    ``numpy.quantile(stack, probs, axis=0)`` (NaN propagates as there).
    """

    def __init__(self, n: int, probs: Sequence[float], shape: tuple[int, ...]) -> None:
        self.n, self.probs = int(n), [float(p) for p in probs]
        sizes = buffer_sizes(self.n, self.probs)
        self.k_low = max([k for side, k in sizes if side == "low"], default=0)
        self.k_high = max([k for side, k in sizes if side == "high"], default=0)
        self.low = np.full((self.k_low, *shape), np.inf)  # ascending
        self.high = np.full((self.k_high, *shape), -np.inf)  # descending
        self.nan = np.zeros(shape, dtype=bool)
        self.seen = 0

    @staticmethod
    def bytes(n: int, probs: Sequence[float], item_bytes: int) -> int:
        """Bytes of the buffers and temporaries for arrays of ``item_bytes``."""
        sizes = buffer_sizes(n, probs)
        k = (max([s for side, s in sizes if side == "low"], default=0)
             + max([s for side, s in sizes if side == "high"], default=0))
        return int((k + 3) * item_bytes)

    def add(self, values: np.ndarray) -> None:
        """Insert one array (not modified)."""
        v = np.asarray(values, dtype=float)
        self.nan |= np.isnan(v)
        v = np.where(np.isnan(v), 0.0, v)
        x = v
        for i in range(self.k_low):  # keep the smallest: minimum stays, maximum moves on
            moved = np.maximum(self.low[i], x)
            np.minimum(self.low[i], x, out=self.low[i])
            x = moved
        x = v
        for i in range(self.k_high):
            moved = np.minimum(self.high[i], x)
            np.maximum(self.high[i], x, out=self.high[i])
            x = moved
        self.seen += 1

    def quantiles(self) -> list[np.ndarray]:
        """The quantiles (numpy's linear rule), one array per probability."""
        if self.seen != self.n:
            raise RuntimeError(f"{self.seen} arrays added, {self.n} expected")
        out = []
        for p, (side, _) in zip(self.probs, buffer_sizes(self.n, self.probs), strict=True):
            h = p * (self.n - 1)
            j = math.floor(h)
            j1 = min(j + 1, self.n - 1)
            if side == "low":
                a, b = self.low[j], self.low[j1]
            else:
                a, b = self.high[self.n - 1 - j], self.high[self.n - 1 - j1]
            q = a + (h - j) * (b - a)
            q[self.nan] = np.nan
            out.append(q)
        return out
