"""Memory budgets: parsing sizes, the memory available, and block lengths that fit."""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["MemoryPlanError", "available_memory", "check_fit_memory", "correlation_block",
           "default_budget", "estimator_bytes", "format_bytes", "parse_bytes", "reserve",
           "stats_block"]

#: Fraction of the available memory (:func:`available_memory`) a fit plans for when no
#: ``memory_budget`` is given.
DEFAULT_FRACTION = 0.5


class MemoryPlanError(ValueError):
    """A fit would need more memory than its budget (raised before allocating)."""


def check_fit_memory(what: str, need: int, fix: str, memory_budget=None) -> None:
    """Raise :class:`MemoryPlanError` when ``need`` bytes exceed the budget less its
    reserve (``memory_budget``, or :func:`default_budget`)."""
    given = parse_bytes(memory_budget)
    budget, source = (given, f"memory_budget={memory_budget!r}") if given is not None \
        else default_budget()
    if need > budget - reserve(budget):
        raise MemoryPlanError(
            f"{what} needs about {format_bytes(need)}, more than its memory budget of "
            f"{format_bytes(budget)} ({source}) allows after a reserve of "
            f"{format_bytes(reserve(budget))}; {fix}")

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9,
          "gb": 10**9, "t": 10**12, "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30,
          "tib": 2**40}

#: Floor of the FFT work space of the homogeneous path (bytes).
MIN_FFT_BYTES = 2**16
#: Fraction of a budget kept for memory outside the arrays counted here: library code
#: and caches loaded on first use, Dask graphs, and allocator slack (freed blocks of a
#: few MB that the C allocator keeps; it grows with the block size).
RESERVE_FRACTION = 0.25


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _status_kb(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (e.g. ``VmSize``), in bytes."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limits() -> list[tuple[int, str]]:
    """Room left under the memory limits of this process's cgroups (v2 and v1)."""
    out = []
    try:
        with open("/proc/self/cgroup") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return out
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0":  # v2: the group and its parents
            rel = parts[2].strip("/")
            while True:
                base = os.path.join("/sys/fs/cgroup", rel)
                limit = _read_int(os.path.join(base, "memory.max"))
                used = _read_int(os.path.join(base, "memory.current"))
                if limit is not None and used is not None:
                    out.append((limit - used, "cgroup memory.max"))
                if not rel:
                    break
                rel = os.path.dirname(rel)
        elif "memory" in parts[1].split(","):
            base = os.path.join("/sys/fs/cgroup/memory", parts[2].strip("/"))
            for b in (base, "/sys/fs/cgroup/memory"):
                limit = _read_int(os.path.join(b, "memory.limit_in_bytes"))
                used = _read_int(os.path.join(b, "memory.usage_in_bytes"))
                if limit is not None and used is not None and limit < 2**60:
                    out.append((limit - used, "cgroup memory.limit_in_bytes"))
                    break
    return out


def available_memory() -> tuple[int, str]:
    """Bytes this process can still allocate, and the limit that binds.

    The smallest of: the physical memory available (``MemAvailable`` of
    /proc/meminfo, else ``os.sysconf``), the room under this process's cgroup memory
    limits (v2 ``memory.max`` minus ``memory.current``, or v1), and the room under the
    address-space and data-segment limits (``ulimit -v``: ``RLIMIT_AS`` minus the
    current ``VmSize``; ``ulimit -d``: ``RLIMIT_DATA`` minus ``VmData``). On systems
    without these (not Linux) only what ``os.sysconf`` reports is used; when nothing
    can be read, 4 GB is assumed.

    Returns
    -------
    (int, str)
        Bytes (>= 0) and a description of the binding limit.
    """
    cands: list[tuple[int, str]] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    cands.append((int(line.split()[1]) * 1024, "MemAvailable"))
                    break
    except (OSError, ValueError, IndexError):
        pass
    if not cands:
        try:
            cands.append((os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"),
                          "available physical pages"))
        except (ValueError, OSError, AttributeError):
            pass
    cands += _cgroup_limits()
    try:
        import resource

        for lim, field, label in ((resource.RLIMIT_AS, "VmSize", "RLIMIT_AS (ulimit -v)"),
                                  (resource.RLIMIT_DATA, "VmData", "RLIMIT_DATA (ulimit -d)")):
            soft = resource.getrlimit(lim)[0]
            used = _status_kb(field)
            if soft != resource.RLIM_INFINITY and soft > 0 and used is not None:
                cands.append((soft - used, label))
    except (ImportError, ValueError, OSError):
        pass
    if not cands:
        return 4 * 10**9, "assumed (no memory information found)"
    size, label = min(cands)
    return max(0, int(size)), label


def default_budget() -> tuple[int, str]:
    """The budget of a fit without ``memory_budget``: :data:`DEFAULT_FRACTION` of
    :func:`available_memory`, with a description for the log."""
    size, label = available_memory()
    budget = max(1, int(DEFAULT_FRACTION * size))
    return budget, (f"default: {DEFAULT_FRACTION:.0%} of the {format_bytes(size)} available "
                    f"({label})")


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
