"""The one lagged-correlation engine of gfdt: :math:`\\sum_t A(t + \\tau)\\, B(t)^T`.

Every GFDT estimate is a lag average of targets :math:`A` (e.g. :math:`x - \\mu`, or an
observable minus its mean) against sources :math:`B` (e.g. :math:`-s`, or a conjugate
variable), over all time pairs of every member with *unbiased* lag means (each lag is
divided by its own number of pairs; no circular wrap in time). This module holds the
pieces every path shares:

* :func:`pair_counts`: pairs per lag and per block of source times, with a source
  stride;
* the kernels: :func:`lagged_outer` (all column pairs, loop over lags),
  :func:`lagged_modes` (matching columns, e.g. spatial Fourier modes, zero-padded FFTs
  in time) and their per-block forms for the bootstrap;
* :class:`LagSums`, the accumulator (plain totals, or per-block parts folded into
  bootstrap replicates by :class:`~gfdt.response.bootstrap.BlockBootstrap`);
* :func:`correlate`, the driver: members in overlapping time blocks (a block of ``B``
  sources reads ``B + L`` samples), one read per block, a progress bar.

Layouts: targets ``(Tu, p)`` and sources ``(Ts, q)``, ``Tu <= Ts + L`` (shorter only
at the end of a member); sources outside the stride grid are zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import scipy.fft as sfft

from gfdt._progress import tqdm
from gfdt.response.bootstrap import BlockBootstrap

__all__ = ["LagSums", "correlate", "lagged_blocks_modes", "lagged_blocks_outer",
           "lagged_modes", "lagged_outer", "pair_counts"]

#: Work space of one batch of time FFTs (bytes).
FFT_BYTES = 64 * 2**20


def fft_workers() -> int:
    """Threads for scipy's FFTs: the CPUs this process may use (at most 8)."""
    import os

    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return max(1, min(8, n))


def pair_counts(start: int, stop: int, T: int, L: int, block_length: int,
                stride: int = 1) -> np.ndarray:
    """Pairs ``(t, t + tau)`` per block of source times ``start..stop`` (member length T).

    Only source times on the grid ``0, stride, 2 stride, ...`` count; ``start`` and
    ``block_length`` must be multiples of ``stride``.

    Returns
    -------
    numpy.ndarray, shape (n_blocks, L + 1)
        Integer counts as floats.
    """
    starts = np.arange(start, stop, block_length)
    ends = np.minimum(starts + block_length, stop)
    lags = np.arange(L + 1)
    span = np.clip(np.minimum(ends[:, None], T - lags[None, :]) - starts[:, None], 0, None)
    return (-(-span // stride)).astype(float)


def lagged_outer(u: np.ndarray, s: np.ndarray, L: int) -> np.ndarray:
    """:math:`\\sum_t u(t + \\tau)\\, s(t)^T` for all column pairs, tau = 0..L.

    ``u`` (Tu, p) targets, ``s`` (Ts, q) sources, ``Tu <= Ts + L``.

    Returns
    -------
    numpy.ndarray, shape (L + 1, p, q)
    """
    Ts = s.shape[0]
    out = np.zeros((L + 1, u.shape[1], s.shape[1]))
    for lag in range(L + 1):
        n = min(Ts, u.shape[0] - lag)
        if n > 0:
            out[lag] = u[lag:lag + n].T @ s[:n]
    return out


def lagged_modes(uh: np.ndarray, sh: np.ndarray, L: int,
                 work_bytes: int = FFT_BYTES) -> np.ndarray:
    """:math:`c[\\tau, k] = \\sum_t u_k(t + \\tau) \\overline{s_k(t)}`, tau = 0..L.

    ``uh`` (Tu, M) targets, ``sh`` (Ts, M) sources (matching columns, complex), with
    ``Tu <= Ts + L``; zero padding to ``nfft >= Ts + L`` removes circular wrap. The
    columns are transformed in chunks of three ``(chunk, nfft)`` arrays within
    ``work_bytes``, time made the contiguous axis (FFTs over strided columns are
    several times slower).

    Returns
    -------
    numpy.ndarray, complex, shape (L + 1, M)
    """
    Ts, M = sh.shape
    nfft = sfft.next_fast_len(Ts + L)
    chunk = max(1, work_bytes // (16 * nfft * 3))
    out = np.empty((L + 1, M), dtype=complex)
    freq = np.empty((min(chunk, M), nfft), dtype=complex)
    for a in range(0, M, chunk):
        b = min(a + chunk, M)
        part = freq[: b - a]
        part[:] = 0
        _add_products(part, uh[:, a:b], sh[:, a:b])
        out[:, a:b] = sfft.ifft(part, axis=1, workers=fft_workers(),
                                overwrite_x=True)[:, : L + 1].T
    return out


def _add_products(freq: np.ndarray, uh: np.ndarray, sh: np.ndarray) -> None:
    """``freq += fft(uh) * conj(fft(sh))`` per column, time zero-padded to ``nfft``.

    ``freq`` (M, nfft); ``uh`` (Tu, M), ``sh`` (Ts, M) with ``Ts + L <= nfft``, or
    None for ``sh = uh`` (then ``|fft(uh)|^2``, one transform). The columns are copied,
    transposed, into zero-padded buffers and transformed in place.
    """
    M, nfft = freq.shape
    workers = fft_workers()
    chunk = min(M, max(1, FFT_BYTES // (16 * nfft * 2)))
    bu = np.empty((chunk, nfft), dtype=complex)  # reused: no page faults per chunk
    bs = None if sh is None else np.empty_like(bu)
    for a in range(0, M, chunk):
        b = min(a + chunk, M)
        fu = _padded_fft(bu[: b - a], uh[:, a:b], workers)
        if sh is None:
            re, im = fu.real, fu.imag  # |fu|^2 in place, added to the real part
            np.square(re, out=re)
            np.square(im, out=im)
            acc = freq[a:b].real
            acc += re
            acc += im
            continue
        fs = _padded_fft(bs[: b - a], sh[:, a:b], workers)
        np.conjugate(fs, out=fs)
        fu *= fs
        freq[a:b] += fu


def _padded_fft(buf: np.ndarray, cols: np.ndarray, workers: int) -> np.ndarray:
    """FFT along time of ``cols`` (T, m), transposed into ``buf`` (m, nfft) and
    zero-padded; transformed in place where scipy can."""
    T = cols.shape[0]
    buf[:, :T] = cols.T
    buf[:, T:] = 0
    return sfft.fft(buf, axis=1, workers=workers, overwrite_x=True)


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


def lagged_blocks_modes(uh: np.ndarray, sh: np.ndarray, L: int,
                        block_length: int) -> np.ndarray:
    """Per-block :func:`lagged_modes`: blocks of ``block_length`` source times.

    ``sh`` (Ts, M) are the sources of consecutive blocks (the last may be shorter),
    ``uh`` (Tu, M) the targets from the same start.

    Returns
    -------
    numpy.ndarray, complex, shape (n_blocks, L + 1, M)
    """
    Ts, M = sh.shape
    n_sub = math.ceil(Ts / block_length)
    nfft = sfft.next_fast_len(block_length + L)
    out = np.empty((n_sub, L + 1, M), dtype=complex)
    group = max(1, FFT_BYTES // max(1, 16 * nfft * M * 4))
    workers = fft_workers()
    for g0 in range(0, n_sub, group):
        g1 = min(g0 + group, n_sub)
        a, b = g0 * block_length, min(g1 * block_length, Ts)
        e = min(b + L, uh.shape[0])
        tb = _target_blocks(uh[a:e], g1 - g0, block_length, L)
        sb = _source_blocks(sh[a:b], g1 - g0, block_length)
        fu = sfft.fft(tb, n=nfft, axis=1, workers=workers)
        fs = sfft.fft(sb, n=nfft, axis=1, workers=workers)
        out[g0:g1] = sfft.ifft(fu * fs.conj(), axis=1, workers=workers)[:, : L + 1]
    return out


def lagged_blocks_outer(u: np.ndarray, s: np.ndarray, L: int, block_length: int) -> np.ndarray:
    """Per-block :func:`lagged_outer`: blocks of ``block_length`` source times.

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


#: Largest frequency-domain accumulator of :class:`LagSums` (bytes); beyond it every block
#: is transformed back at once.
FREQ_BYTES = 128 * 2**20


class LagSums:
    """Lag sums :math:`\\sum_t A(t + \\tau) B(t)^T` and pair counts over many blocks.

    Parameters
    ----------
    L : int
        Largest lag (samples).
    modes : bool
        Matching columns (complex spatial Fourier modes, FFT in time; shape
        ``(L + 1, M)``), or all column pairs (real; shape ``(L + 1, p, q)``).
    shape : tuple of int
        Shape of the sums, lag axis first.
    stride : int
        Source stride (counts only source times on its grid).
    bootstrap : BlockBootstrap, optional
        Keeps per-block parts of ``block_length`` source times for the replicates.
    block_length : int
        Bootstrap block length (samples), with ``bootstrap``.
    fft_bytes : int
        Work space of the time FFTs (``modes`` without bootstrap).
    block : int, optional
        Most source times per :meth:`add` (``modes`` without bootstrap). Given, and
        when ``(nfft, M)`` complex numbers take at most :data:`FREQ_BYTES`, the products
        of the time transforms are summed in the frequency domain over all blocks with
        one FFT length ``nfft >= block + L`` and transformed back once (by
        linearity; it saves a third of the time FFTs).
    """

    def __init__(self, L: int, *, modes: bool, shape: tuple[int, ...], stride: int = 1,
                 bootstrap: BlockBootstrap | None = None, block_length: int = 0,
                 fft_bytes: int = FFT_BYTES, block: int | None = None) -> None:
        self.L, self.modes, self.stride = int(L), bool(modes), int(stride)
        self.bootstrap = bootstrap
        self.block_length = int(block_length)
        self.fft_bytes = int(fft_bytes)
        # with a bootstrap the blocks' parts are summed there (no second array)
        self.sums = (np.zeros(shape, dtype=complex if modes else float) if bootstrap is None
                     else None)
        self.counts = np.zeros(self.L + 1)
        self.freq: np.ndarray | None = None  # (M, nfft) sum of time-transform products
        if modes and bootstrap is None and block is not None:
            nfft = sfft.next_fast_len(int(block) + self.L)
            if 16 * nfft * shape[1] <= FREQ_BYTES:
                self.freq = np.zeros((shape[1], nfft), dtype=complex)

    def add(self, u: np.ndarray, s: np.ndarray, start: int, stop: int, T: int) -> None:
        """Add the pairs of source times ``start..stop`` of a member of length ``T``.

        ``u`` holds the targets ``start .. min(stop + L, T)``, ``s`` the sources
        ``start .. stop`` (zero off the stride grid), both 2-D; ``s = None``: the
        sources are the targets themselves (an autocorrelation; stride 1).
        """
        L = self.L
        same = s is None
        if same:
            s = u[: stop - start]
        if self.bootstrap is not None:
            blen = self.block_length
            parts = (lagged_blocks_modes(u, s, L, blen) if self.modes
                     else lagged_blocks_outer(u, s, L, blen))
            self.bootstrap.add(parts, pair_counts(start, stop, T, L, blen, self.stride))
            return
        self.counts += pair_counts(start, stop, T, L, stop - start, self.stride)[0]
        if self.freq is not None:
            _add_products(self.freq, u, None if same and u.shape[0] == s.shape[0] else s)
        elif self.modes:
            self.sums += lagged_modes(u, s, L, self.fft_bytes)
        else:
            self.sums += lagged_outer(u, s, L)

    def total(self) -> tuple[np.ndarray, np.ndarray]:
        """The lag sums and the pair counts per lag (not copies: do not modify)."""
        if self.bootstrap is not None:
            return self.bootstrap.total, self.bootstrap.counts
        if self.freq is not None:
            back = sfft.ifft(self.freq, axis=1, workers=fft_workers())[:, : self.L + 1]
            return self.sums + back.T, self.counts
        return self.sums, self.counts

    def mean(self, release: bool = False) -> np.ndarray:
        """Unbiased lag means: every lag divided by its own number of pairs.

        ``release``: with a bootstrap, its total is divided in place and dropped (the
        bootstrap's later passes do not need it): no second array of the result's size.
        """
        sums, counts = self.total()
        scale = counts.reshape(-1, *([1] * (sums.ndim - 1)))
        if release and self.bootstrap is not None:
            self.bootstrap.total = None
            sums /= scale
            return sums
        return sums / scale


def correlate(lengths: Sequence[int], read: Callable[[int, int, int, int], tuple],
              sums: LagSums, block: int, *, progress: bool | None = None,
              desc: str = "GFDT") -> LagSums:
    """Stream every member through ``sums`` in blocks of ``block`` source times.

    Parameters
    ----------
    lengths : sequence of int
        Samples per member.
    read : callable
        ``read(k, a, e, b)`` returns ``(targets, sources)`` of member ``k``: targets
        of samples ``a..e-1`` and sources of ``a..b-1`` (``e = min(b + L, T)``), each
        2-D, or sources None when they are the targets; it does the one read of the
        block and any transform (scores, FFTs).
    sums : LagSums
    block : int
        Source times per block (a multiple of the stride and of the bootstrap block).
    progress : bool, optional
        Progress bar (default: only on a terminal).
    desc : str
        Label of the progress bar.

    Returns
    -------
    LagSums
        ``sums``, filled.
    """
    L = sums.L
    bar = tqdm(total=int(sum(lengths)), desc=desc, unit="state", unit_scale=True,
               disable=None if progress is None else not progress, leave=False)
    try:
        for k, T in enumerate(lengths):
            for a in range(0, T, block):
                b = min(a + block, T)
                e = min(b + L, T)
                u, s = read(k, a, e, b)
                sums.add(u, s, a, b, T)
                bar.update(b - a)
    finally:
        bar.close()
    return sums
