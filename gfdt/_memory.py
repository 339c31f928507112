"""Memory budgets: parsing sizes and choosing block lengths that fit them."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["correlation_block", "estimator_bytes", "format_bytes", "parse_bytes", "reserve",
           "stats_block"]

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}

#: Floor of the FFT work space of the homogeneous path (bytes).
MIN_FFT_BYTES = 2**16
#: Fraction of a budget kept for memory outside the arrays counted here: library code
#: and caches loaded on first use, Dask graphs, and allocator slack (freed blocks of a
#: few MB that the C allocator keeps; it grows with the block size).
RESERVE_FRACTION = 0.25


def reserve(budget: int) -> int:
    """Bytes of ``budget`` kept for memory that is not counted array by array."""
    return int(RESERVE_FRACTION * budget)


def parse_bytes(value, name: str = "memory_budget") -> int | None:
    """A size in bytes from an int or a string like ``"256MB"``, ``"1.5 GiB"`` or ``"2e8"``.

    Decimal units (kB, MB, GB, TB) are powers of 1000, binary ones (KiB, MiB, GiB,
    TiB) powers of 1024, as in Dask. None stays None.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string like '256MB', "
                        f"got {value!r}")
    if isinstance(value, (int, np.integer, float, np.floating)):
        size = float(value)
    elif isinstance(value, str):
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if m is None or m[2].lower() not in _UNITS:
            raise ValueError(f"{name} = {value!r} is not a size; write e.g. '256MB', "
                             "'1.5GiB' or a number of bytes")
        size = float(m[1]) * _UNITS[m[2].lower()]
    else:
        raise TypeError(f"{name} must be a number of bytes or a string like '256MB', "
                        f"got {type(value).__name__}")
    if not np.isfinite(size) or size <= 0:
        raise ValueError(f"{name} must be a positive size, got {value!r}")
    return int(size)


def format_bytes(n: float) -> str:
    """``123456789`` -> ``'123.5 MB'``."""
    for unit, k in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= k:
            return f"{n / k:.1f} {unit}"
    return f"{int(n)} B"


def estimator_bytes(obj) -> int:
    """Bytes held by the numpy arrays among an object's attributes (e.g. a fitted score)."""
    return int(sum(v.nbytes for v in vars(obj).values() if isinstance(v, np.ndarray)))


def stats_block(budget: int, d: int, covariance: bool) -> int:
    """Samples per block of a streaming mean (and covariance) pass within ``budget`` bytes.

    Fixed, with ``covariance``: the accumulator, a block's scatter matrix and the
    result (``3 d^2`` doubles; a homogeneous spectrum is small). Per sample: the block
    read (twice while Dask assembles it), its deviation and its FFT (6 ``d`` doubles).
    """
    fixed = (3 * 8 * d * d if covariance else 0) + reserve(budget)
    per_sample = 6 * 8 * d
    block = (budget - fixed) // per_sample
    if block < 2:
        need = fixed + 2 * per_sample
        raise ValueError(f"memory_budget = {format_bytes(budget)} is too small for the "
                         f"statistics of states of {d} values; give at least "
                         f"{format_bytes(need)}")
    return int(block)


def correlation_block(budget: int, *, d: int, L: int, result_bytes: int, homogeneous: bool,
                      model_bytes: int, batch_size: int, stride: int = 1,
                      bootstrap: tuple[int, int, int] | None = None) -> tuple[int, int]:
    """Source samples per block of the lagged cross-correlation, and FFT work space.

    A block of ``B`` source samples reads ``B + L`` samples (the targets of its last
    source reach ``L`` samples further), so blocks overlap by ``L``.

    Parameters
    ----------
    budget : int
        Bytes the fit may use on top of the data it was given (:func:`reserve` of it
        is kept for memory not counted array by array).
    d : int
        Values per state.
    L : int
        Largest lag (samples).
    result_bytes : int
        Size of the lag-sum accumulator (the result).
    homogeneous : bool
        FFT path (more per-sample arrays, plus an FFT work space).
    model_bytes : int
        Arrays held by the score model (e.g. a precision matrix).
    batch_size : int
        States per score evaluation.
    stride : int
        Blocks are multiples of it.
    bootstrap : (n_bootstrap, block_length) or None
        Replicate accumulators (``n_bootstrap`` plus the buffered blocks, each of the
        result's size), per-block parts of each chunk, and the bootstrap's FFT work
        space.

    Returns
    -------
    block : int
        Source samples per block (a multiple of ``stride`` and of the bootstrap block).
    fft_bytes : int
        Work space for the FFTs over time of the homogeneous path.
    """
    unit = 8 * d
    # accumulator, a lag-sum of the same size, the final response and its copies
    fixed = 4 * result_bytes + model_bytes + 4 * batch_size * unit + reserve(budget)
    per_sample = (8 if homogeneous else 6) * unit
    fft_bytes = 0
    if homogeneous:
        fft_bytes = int(min(64 * 2**20, max(MIN_FFT_BYTES, budget // 16)))
        fixed += 2 * fft_bytes  # the transforms of a mode chunk and their product
    quantum = stride
    if bootstrap is not None:
        from gfdt.response.bootstrap import _FLUSH

        n_boot, blen = bootstrap
        fixed += (n_boot + _FLUSH) * result_bytes
        per_sample += 2 * unit + result_bytes / blen  # blocked targets, per-block parts
        if homogeneous:  # transforms of blocked targets and sources (capped at 64 MB)
            per_sample += 5 * unit * (blen + L) / blen
        quantum = blen
    block = int((budget - fixed) / per_sample) - L
    block -= block % quantum
    if block < quantum:
        need = fixed + per_sample * (quantum + L)
        raise ValueError(
            f"memory_budget = {format_bytes(budget)} is too small: the result and work "
            f"space take {format_bytes(fixed)} and a block of {quantum + L} samples of "
            f"{d} values about {format_bytes(per_sample * (quantum + L))}; give at least "
            f"{format_bytes(need)} (or lower max_lag"
            + (", n_bootstrap or block_length" if bootstrap is not None else "") + ")")
    return block, max(fft_bytes, 1)
