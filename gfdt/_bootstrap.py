"""Block bootstrap of lagged cross-correlations (error bars of GFDT responses).

A lag average :math:`\\frac{1}{N_\\tau}\\sum_t a(t + \\tau) b(t)^T` is a sum over
source times :math:`t`. Cutting every member into consecutive blocks of source times
(of length ``block_length``; a pair belongs to the block of its source time, so pairs
straddling a block boundary count once) splits the numerator and the pair count
:math:`N_\\tau` into per-block parts. A bootstrap replicate draws ``n_blocks`` blocks
with replacement from all blocks of all members (multinomial multiplicities) and
recomputes the ratio from the same parts: the score is never re-evaluated. Blocks
much longer than the correlation time of the summands are nearly independent, which
is what makes the replicate spread a standard error.

The replicates are accumulated while the blocks stream past (memory: ``n_bootstrap``
times the size of the result), with the multiplicities drawn up front.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import scipy.fft as sfft

logger = logging.getLogger("gfdt")

_FFT_BYTES = 64 * 2**20  # workspace of one batch of block FFTs
_FLUSH = 64  # blocks buffered before they are folded into the replicates


def n_blocks(lengths: Sequence[int], block_length: int) -> int:
    """Number of blocks when every member is cut into ``block_length`` pieces."""
    return int(sum(math.ceil(T / block_length) for T in lengths))


def block_pair_counts(start: int, stop: int, T: int, L: int, block_length: int,
                      stride: int = 1) -> np.ndarray:
    """Pairs ``(t, t + tau)`` per block of sources ``start..stop`` (member length T).

    Only source times on the grid ``0, stride, 2 stride, ...`` count; ``start`` and
    ``block_length`` must be multiples of ``stride``.

    Returns an array of shape (n_sub_blocks, L + 1).
    """
    starts = np.arange(start, stop, block_length)
    ends = np.minimum(starts + block_length, stop)
    lags = np.arange(L + 1)
    span = np.clip(np.minimum(ends[:, None], T - lags[None, :]) - starts[:, None], 0, None)
    return (-(-span // stride)).astype(float)


def _target_blocks(u: np.ndarray, n_sub: int, block_length: int, L: int) -> np.ndarray:
    """Targets of every block, zero past the end: shape (n_sub, block_length + L, ...)."""
    width = block_length + L
    idx = np.arange(n_sub)[:, None] * block_length + np.arange(width)[None, :]
    valid = idx < u.shape[0]
    out = u[np.minimum(idx, u.shape[0] - 1)]
    out[~valid] = 0
    return out


def _source_blocks(s: np.ndarray, n_sub: int, block_length: int) -> np.ndarray:
    pad = n_sub * block_length - s.shape[0]
    if pad:
        s = np.concatenate([s, np.zeros((pad, *s.shape[1:]), dtype=s.dtype)])
    return s.reshape(n_sub, block_length, *s.shape[1:])


def lagged_blocks_fft(uh: np.ndarray, sh: np.ndarray, L: int, block_length: int) -> np.ndarray:
    """Per-block :math:`\\sum_t u_k(t + \\tau)\\overline{s_k(t)}` for matching columns.

    ``sh`` (Ts, M) are the sources of consecutive blocks of ``block_length`` (the last
    may be shorter), ``uh`` (Tu, M) the targets from the same start, ``Tu <= Ts + L``
    (shorter only at the end of a member). Zero padding removes circular wrap.

    Returns
    -------
    numpy.ndarray, complex, shape (n_blocks, L + 1, M)
    """
    Ts, M = sh.shape
    n_sub = math.ceil(Ts / block_length)
    nfft = sfft.next_fast_len(block_length + L)
    out = np.empty((n_sub, L + 1, M), dtype=complex)
    per_block = 16 * nfft * M * 4
    group = max(1, _FFT_BYTES // max(1, per_block))
    for g0 in range(0, n_sub, group):
        g1 = min(g0 + group, n_sub)
        a, b = g0 * block_length, min(g1 * block_length, Ts)
        e = min(b + L, uh.shape[0])
        tb = _target_blocks(uh[a:e], g1 - g0, block_length, L)
        sb = _source_blocks(sh[a:b], g1 - g0, block_length)
        fu = sfft.fft(tb, n=nfft, axis=1)
        fs = sfft.fft(sb, n=nfft, axis=1)
        out[g0:g1] = sfft.ifft(fu * fs.conj(), axis=1)[:, : L + 1]
    return out


def lagged_blocks_outer(u: np.ndarray, s: np.ndarray, L: int, block_length: int) -> np.ndarray:
    """Per-block :math:`\\sum_t u(t + \\tau) s(t)^T` (all column pairs), real.

    ``u`` (Tu, p) targets, ``s`` (Ts, q) sources, as in :func:`lagged_blocks_fft`.

    Returns
    -------
    numpy.ndarray, shape (n_blocks, L + 1, p, q)
    """
    Ts, q = s.shape
    p = u.shape[1]
    n_sub = math.ceil(Ts / block_length)
    tb = _target_blocks(u, n_sub, block_length, L)  # (n_sub, bl + L, p)
    sb = _source_blocks(s, n_sub, block_length)  # (n_sub, bl, q)
    out = np.empty((n_sub, L + 1, p, q))
    for lag in range(L + 1):
        out[:, lag] = np.matmul(tb[:, lag:lag + block_length].transpose(0, 2, 1), sb)
    return out


class BlockBootstrap:
    """Running total of per-block parts plus ``n_bootstrap`` resampled totals.

    Parameters
    ----------
    n_blocks : int
        Number of blocks that will be added (in a fixed order).
    n_bootstrap : int
        Number of replicates (0: keep the total only).
    shape : tuple of int
        Shape of one block's part, starting with the lag axis (L + 1).
    dtype : numpy dtype
    rng : numpy.random.Generator
    """

    def __init__(self, n_blocks: int, n_bootstrap: int, shape: tuple[int, ...], dtype,
                 rng: np.random.Generator) -> None:
        self.n_blocks = int(n_blocks)
        self.n_bootstrap = int(n_bootstrap)
        self.shape = tuple(shape)
        self.total = np.zeros(self.shape, dtype=dtype)
        self.counts = np.zeros(self.shape[0])
        self.size = int(np.prod(self.shape))
        if self.n_bootstrap:
            self.weights = rng.multinomial(self.n_blocks, np.full(self.n_blocks,
                                                                  1.0 / self.n_blocks),
                                           size=self.n_bootstrap).astype(float)
            self.boot = np.zeros((self.n_bootstrap, self.size), dtype=dtype)
            self.boot_counts = np.zeros((self.n_bootstrap, self.shape[0]))
        self._parts: list[np.ndarray] = []
        self._cnts: list[np.ndarray] = []
        self._done = 0

    def add(self, parts: np.ndarray, counts: np.ndarray) -> None:
        """Add blocks: ``parts`` (k, *shape), ``counts`` (k, L + 1)."""
        self.total += parts.sum(axis=0)
        self.counts += counts.sum(axis=0)
        if not self.n_bootstrap:
            self._done += parts.shape[0]
            return
        self._parts.append(parts.reshape(parts.shape[0], -1))
        self._cnts.append(counts)
        if sum(p.shape[0] for p in self._parts) >= _FLUSH:
            self._flush()

    def _flush(self) -> None:
        if not self._parts:
            return
        parts = np.concatenate(self._parts)
        cnts = np.concatenate(self._cnts)
        k0, k1 = self._done, self._done + parts.shape[0]
        if k1 > self.n_blocks:
            raise RuntimeError(f"bootstrap: {k1} blocks added, {self.n_blocks} expected")
        w = np.ascontiguousarray(self.weights[:, k0:k1])
        if np.iscomplexobj(parts):  # two real products: no complex copy of the weights
            self.boot.real += w @ np.ascontiguousarray(parts.real)
            self.boot.imag += w @ np.ascontiguousarray(parts.imag)
        else:
            self.boot += w @ parts
        self.boot_counts += w @ cnts
        self._done = k1
        self._parts, self._cnts = [], []

    def mean(self) -> np.ndarray:
        """The lag average over all blocks, shape ``shape``."""
        return self.total / self.counts.reshape(-1, *([1] * (len(self.shape) - 1)))

    def replicates(self) -> Iterator[np.ndarray]:
        """Lag averages of the resampled data, one array of shape ``shape`` each."""
        self._flush()
        if self._done != self.n_blocks:
            raise RuntimeError(f"bootstrap: {self._done} blocks added, {self.n_blocks} "
                               "expected")
        for b in range(self.n_bootstrap):
            c = self.boot_counts[b]
            with np.errstate(invalid="ignore", divide="ignore"):
                yield (self.boot[b].reshape(self.shape)
                       / c.reshape(-1, *([1] * (len(self.shape) - 1))))


def replicate_std(replicates: Iterator[np.ndarray],
                  transforms: Sequence[Callable[[np.ndarray], np.ndarray]],
                  keep: int | None = None) -> tuple[list[np.ndarray | None], list[np.ndarray]]:
    """Standard deviation (ddof 1) over replicates of each transform of them.

    A replicate in which a transform fails (e.g. a singular matrix) is skipped; a
    transform with fewer than two good replicates gives None. With ``keep``, the
    values of transform ``keep`` are also returned, one array per good replicate.
    """
    kept: list[np.ndarray] = []
    n = [0] * len(transforms)
    mean: list[np.ndarray | None] = [None] * len(transforms)
    m2: list[np.ndarray | None] = [None] * len(transforms)
    for rep in replicates:
        for i, f in enumerate(transforms):
            try:
                v = np.asarray(f(rep))
            except (ValueError, np.linalg.LinAlgError):
                continue
            if not np.all(np.isfinite(v)):
                continue
            if i == keep:
                kept.append(v)
            if mean[i] is None:
                mean[i] = np.zeros_like(v)
                m2[i] = np.zeros_like(v)
            n[i] += 1
            delta = v - mean[i]
            mean[i] += delta / n[i]
            m2[i] += delta * (v - mean[i])
    out = []
    for i in range(len(transforms)):
        if n[i] < 2:
            out.append(None)
        else:
            out.append(np.sqrt(m2[i] / (n[i] - 1)))
    return out, kept


def integrated_time(members: Sequence, *, max_members: int = 8, max_samples: int = 4096,
                    max_coords: int = 256) -> float:
    """Integrated autocorrelation time (samples) of the data, Sokal's window.

    :math:`\\tau_{int} = 1 + 2\\sum_{k=1}^{W}\\rho(k)` with :math:`\\rho` the
    autocorrelation pooled over coordinates (each centred on its own mean; autocovariances
    summed, so energetic coordinates weigh more) and members, and the smallest window
    :math:`W \\geq 5\\tau_{int}(W)`. Uses at most ``max_members`` members, their first
    ``max_samples`` samples and ``max_coords`` evenly spaced coordinates.
    """
    acov: np.ndarray | None = None
    pairs = np.zeros(0)
    for x in list(members)[:max_members]:
        arr = np.asarray(x[:max_samples], dtype=float)
        T = arr.shape[0]
        flat = arr.reshape(T, -1)
        step = max(1, flat.shape[1] // max_coords)
        flat = flat[:, ::step]
        flat = flat - flat.mean(axis=0)
        nfft = sfft.next_fast_len(2 * T)
        f = sfft.rfft(flat, n=nfft, axis=0)
        c = sfft.irfft((f * f.conj()).real.sum(axis=1), n=nfft)[:T]
        if acov is None:
            acov = np.zeros(T)
            pairs = np.zeros(T)
        m = min(T, acov.size)
        if m < acov.size:
            acov, pairs = acov[:m], pairs[:m]
        acov += c[:m]
        pairs += (T - np.arange(m))
    if acov is None or acov[0] <= 0:
        return 1.0
    rho = (acov / pairs) / (acov[0] / pairs[0])
    tau = 1.0
    for w in range(1, rho.size):
        tau += 2.0 * rho[w]
        if w >= 5.0 * tau:
            break
    return float(max(tau, 1.0))
