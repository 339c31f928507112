"""Memory plans of the response fits: bytes from shapes and options, before allocating.

Every fit (:class:`~gfdt.ResponseEstimator`, :class:`~gfdt.SensitivityEstimator`,
:meth:`~gfdt.ResponseEstimator.null_bands`) asks :func:`plan_correlation` how much
memory its phases need (the score fit, the passes of lagged sums with their bootstrap
replicates, the outputs and standard errors), given the budget: ``memory_budget``, or
:func:`gfdt._memory.default_budget` (half of what the machine, its cgroup or
``ulimit -v`` leaves). The plan streams where it must: fewer blocks buffered, shorter
read blocks, and bootstrap replicates in chunks of ``replicates_per_pass`` with one
pass over the data per chunk (the replicates are reduced to running moments and
dropped). When even the smallest configuration does not fit, :class:`MemoryPlanError`
(a ValueError) is raised before anything large is allocated, naming the size, the
budget and options that would fit.

The counts are upper bounds of what numpy allocates (checked with tracemalloc in
``tests/test_memory_plan.py``); a quarter of the budget
(:data:`gfdt._memory.RESERVE_FRACTION`) is kept for what is not counted array by
array (library code, LAPACK work space, allocator slack).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable

from gfdt._memory import (
    RESERVE_FRACTION,
    MemoryPlanError,
    default_budget,
    format_bytes,
    parse_bytes,
    reserve,
)

__all__ = ["MemoryPlan", "MemoryPlanError", "plan_correlation", "resolve_budget"]

logger = logging.getLogger("gfdt")

#: Blocks buffered before they are folded into the replicates (most).
FLUSH = 64
#: Bytes of bootstrap replicates kept for ``predict(return_stderr=True)``.
KEEP_BYTES = 64 * 2**20
#: Homogeneous FFT work space (bytes) counted per pass (see gfdt.response.correlate).
FFT_WORK = 2 * 64 * 2**20
#: Small objects counted in every phase: coordinates, xarray wrappers, bookkeeping.
SMALL_BYTES = 2**16


@dataclasses.dataclass
class MemoryPlan:
    """What a fit will allocate, in bytes, and the streaming it chose to fit.

    Attributes
    ----------
    what : str
        The fit.
    budget : int
        Bytes the fit may use beyond the data.
    budget_source : str
        Where the budget comes from (``memory_budget`` or the default rule).
    peak : int
        Planned peak of the arrays counted (the largest phase), at most the budget less
        its reserve.
    phases : dict
        Bytes of each phase (score fit, lagged sums, outputs and standard errors).
    result_bytes : int
        One lag-by-state array of the result.
    block : int
        Source samples per read block.
    replicates_per_pass : int
        Bootstrap replicates held at once (0 without bootstrap).
    passes : int
        Passes over the data (1 without bootstrap).
    flush : int
        Bootstrap blocks buffered before they are folded into the replicates.
    keep_replicates : bool
        The replicates are kept for ``predict(return_stderr=True)`` (when all take at
        most :data:`KEEP_BYTES` and fit the budget).
    output_bytes : int
        Bytes of the reported response (e.g. for the buffers of ``null_bands``).
    store_blocks : int
        Blocks whose parts are kept, the replicates formed from them one at a time
        (0: replicates accumulated in passes).
    """

    what: str
    budget: int
    budget_source: str
    peak: int
    phases: dict
    result_bytes: int
    block: int
    replicates_per_pass: int = 0
    passes: int = 1
    flush: int = 1
    keep_replicates: bool = False
    output_bytes: int = 0
    store_blocks: int = 0

    def describe(self) -> str:
        """One paragraph for the log and ``summary()``."""
        parts = ", ".join(f"{k} {format_bytes(v)}" for k, v in self.phases.items())
        boot = (f"; bootstrap: {self.replicates_per_pass} replicates per pass, "
                f"{self.passes} pass{'es' if self.passes > 1 else ''} over the data"
                if self.replicates_per_pass else "")
        if self.store_blocks:
            boot = (f"; bootstrap: the parts of its {self.store_blocks} blocks kept, the "
                    "replicates formed one at a time (one pass)")
        return (f"memory plan of {self.what}: peak {format_bytes(self.peak)} beyond the data "
                f"({parts}; one result array {format_bytes(self.result_bytes)}), budget "
                f"{format_bytes(self.budget)} ({self.budget_source}; a quarter kept for "
                f"memory not counted here); read blocks of {self.block} samples{boot}")


def resolve_budget(memory_budget) -> tuple[int, str]:
    """The budget in bytes and its source: ``memory_budget`` or the default rule."""
    given = parse_bytes(memory_budget)
    if given is not None:
        return given, f"memory_budget={memory_budget!r}"
    return default_budget()


def _phases(*, R: int, L: int, d: int, homogeneous: bool, N: int, longest: int,
            score_fit: int, model_bytes: int, batch_size: int, normalize: bool,
            own_stats: bool, boot: tuple[int, int] | None, chunk: int, flush: int,
            block: int, fft_work: int, keep: bool = True, store: int = 0) -> dict[str, int]:
    """Bytes of each phase for one configuration (see the module notes)."""
    ph = _phase_arrays(R=R, L=L, d=d, homogeneous=homogeneous, longest=longest,
                       score_fit=score_fit, model_bytes=model_bytes, batch_size=batch_size,
                       normalize=normalize, own_stats=own_stats, boot=boot, chunk=chunk,
                       flush=flush, block=block, fft_work=fft_work, keep=keep, store=store)
    return {k: v + (SMALL_BYTES if k != "score fit" else 0) for k, v in ph.items()}


def _phase_arrays(*, R: int, L: int, d: int, homogeneous: bool, longest: int,
                  score_fit: int, model_bytes: int, batch_size: int, normalize: bool,
                  own_stats: bool, boot: tuple[int, int] | None, chunk: int, flush: int,
                  block: int, fft_work: int, keep: bool, store: int) -> dict[str, int]:
    D = 8 * d
    per_sample = (8 if homogeneous else 6) * D
    rows = min(block, longest)
    reads = per_sample * (rows + L) + 4 * min(batch_size, rows) * D + model_bytes
    small = 4 * 8 * d * d if not homogeneous else 4 * D  # eye, inverse, R(0) - I
    fft = fft_work if homogeneous else 0
    n_tr = 1 + int(normalize)
    out = R * (2 + int(normalize)) + small  # lag means (and sums), normalised response
    if boot is None:
        corr = 2 * R + R // (L + 1) + reads + fft
        return {"score fit": score_fit, "lagged sums": corr, "outputs": out + R}
    blen = boot[1]
    n_sub = max(1, -(-min(block, longest) // blen))
    buffered = R * (n_sub + 2 * (flush - 1))  # incoming, buffered and their copy
    per_block = n_sub * (2 * blen + L) * D + n_sub * R // (L + 1)
    if homogeneous:  # FFT groups of sub-blocks (gfdt.response.correlate.lagged_blocks_modes)
        per_block = min(6 * n_sub * (blen + L) * D, max(FFT_WORK // 2, 6 * (blen + L) * D))
    acc = 2 * n_tr * R
    # the bootstrap's total is counted apart: the lag means and the normalised response
    out = R * (1 + int(normalize)) + small
    # one replicate, its transforms, the finiteness mask
    transients = R * (2 + int(own_stats) + int(normalize)) + R // 8 + small
    keep = 8 * (R // (16 if homogeneous else 8)) * boot[0] * int(keep)
    keep = keep if keep <= KEEP_BYTES and keep else 0  # all replicates kept, or none
    if store:  # every block's part kept, replicates formed one at a time (one pass)
        first = R + store * R + n_sub * R + per_block + reads
        stderr = store * R + out + acc + keep + transients  # the total is released
        return {"score fit": score_fit, "lagged sums": first,
                "outputs and standard errors": stderr}
    first = R + chunk * R + buffered + R + per_block + reads
    later = chunk * R + buffered + per_block + reads + out + acc + keep
    stderr = chunk * R + out + acc + keep + transients  # the total is released
    return {"score fit": score_fit, "lagged sums": first,
            "outputs and standard errors": max(stderr, later)}


def plan_correlation(what: str, *, memory_budget, d: int,
                     shape_of: Callable[[int, int], tuple[int, ...]], homogeneous: bool,
                     lengths: list[int], L: int, score_fit: int, model_bytes: int = 0,
                     batch_size: int = 256, stride: int = 1, normalize: bool = False,
                     own_stats: bool = False, bootstrap: tuple[int, int] | None = None,
                     default_block: int | None = None, hints: tuple[str, ...] = (),
                     fft_work: int = FFT_WORK) -> MemoryPlan:
    """Plan a fit of lagged sums within its memory budget, or raise before allocating.

    Parameters
    ----------
    what : str
        The fit, for messages.
    memory_budget : int, str or None
        The estimator's ``memory_budget`` (None: :func:`gfdt._memory.default_budget`).
    d : int
        Values per state (targets and sources are about this wide).
    shape_of : callable
        ``shape_of(L, d)``: shape of the lag sums (lag first) for a largest lag and a
        state size; complex when ``homogeneous``.
    homogeneous : bool
        The FFT path (complex modes).
    lengths : list of int
        Samples per member.
    L : int
        Largest lag.
    score_fit : int
        Bytes of the score fit (0 when fitted already).
    model_bytes : int
        Arrays the fitted score holds.
    batch_size, stride : int
        Of the estimator.
    normalize, own_stats : bool
        Transforms of each replicate (normalisation; a Gaussian fitted here).
    bootstrap : (n_bootstrap, block_length[, n_blocks]), optional
        The bootstrap (None: off); with the number of blocks, the plan may keep every
        block's part instead of the replicates (fewer blocks than replicates).
    default_block : int, optional
        Read block when memory allows (default ``max(4 L, 2048)``).
    hints : tuple of str
        More options for the error message.
    fft_work : int
        FFT work space of the homogeneous path.

    Returns
    -------
    MemoryPlan

    Raises
    ------
    MemoryPlanError
        Even one replicate per pass, one block buffered and reads of one block do not
        fit; the message names options that would.
    """
    budget, source = resolve_budget(memory_budget)
    avail = budget - reserve(budget)
    longest = max(lengths)

    def phases(L_: int, d_: int, boot, chunk: int, flush: int, blk: int,
               keep_: bool = False, store_: int = 0) -> dict:
        R = 16 if homogeneous else 8
        for k in shape_of(L_, d_):
            R *= int(k)
        fit = int(score_fit * (d_ / d) ** 2) if d_ != d else score_fit
        return _phases(R=R, L=L_, d=d_, homogeneous=homogeneous, N=sum(lengths),
                       longest=longest, score_fit=fit, model_bytes=model_bytes,
                       batch_size=batch_size, normalize=normalize, own_stats=own_stats,
                       boot=boot, chunk=chunk, flush=flush, block=blk, fft_work=fft_work,
                       keep=keep_, store=store_)

    def least(L_: int, d_: int, boot) -> int:
        quantum_ = stride if boot is None else boot[1]
        return max(phases(L_, d_, boot, 1 if boot else 0, 1, quantum_).values())

    quantum = stride if bootstrap is None else bootstrap[1]
    block = default_block or max(4 * L, 2048)
    block = quantum * -(-block // quantum)
    n_boot = bootstrap[0] if bootstrap is not None else 0
    R = 16 if homogeneous else 8
    for k in shape_of(L, d):
        R *= int(k)
    chunk, flush, blk = n_boot, FLUSH, block
    if bootstrap is not None:  # blocks buffered, and per read, within KEEP_BYTES
        flush = min(FLUSH, max(1, KEEP_BYTES // R))
        blk = min(blk, quantum * max(1, KEEP_BYTES // R))

    keep = bootstrap is not None

    def peak(c: int, f: int, b: int) -> int:
        return max(phases(L, d, bootstrap, c, f, b, keep).values())

    # shrink, in order: the blocks buffered and read at once, the replicates kept for
    # predict(), then the replicates per pass
    while peak(chunk, flush, blk) > avail and (flush > 1 or blk > quantum):
        flush = max(1, flush // 2)
        blk = max(quantum, quantum * ((blk // quantum) // 2))
    K = bootstrap[2] if bootstrap is not None and len(bootstrap) > 2 else 0
    store = 0
    if 0 < K < n_boot:  # fewer blocks than replicates: keep the blocks' parts (one pass)
        for keep_ in (keep, False):
            if max(phases(L, d, bootstrap, n_boot, 1, blk, keep_, K).values()) <= avail:
                keep, store = keep_, K
                break
    if not store and keep and peak(chunk, flush, blk) > avail:
        keep = False
    if bootstrap is not None and not store and peak(chunk, flush, blk) > avail:
        chunk = max(1, search_largest(lambda c: peak(max(c, 1), flush, blk) <= avail, n_boot))
    ph = phases(L, d, bootstrap, chunk, flush, blk, keep, store)
    need = max(ph.values())
    if need > avail:
        total = int(need / (1 - RESERVE_FRACTION)) + 1
        fixes = []
        if bootstrap is not None and least(L, d, None) <= avail:
            fixes.append("bootstrap=False (no standard errors)")
        lag = search_largest(lambda k: least(k, d, bootstrap) <= avail, L - 1)
        if lag >= 1:
            fixes.append(f"max_lag <= {lag} samples")
        dim = search_largest(lambda k: least(L, max(k, 1), bootstrap) <= avail, d - 1)
        if not homogeneous and dim >= 1:
            fixes.append(f"a state reduced to at most {dim} values (e.g. its leading EOFs)")
        raise MemoryPlanError(
            f"{what} needs about {format_bytes(need)} beyond the data ("
            + ", ".join(f"{k} {format_bytes(v)}" for k, v in ph.items())
            + f"; one result array of shape {tuple(shape_of(L, d))} takes "
            f"{format_bytes(R)}), more than its memory budget of {format_bytes(budget)} "
            f"({source}) allows after a reserve of {format_bytes(reserve(budget))}. "
            "Options that would fit: " + "; ".join(
                fixes + list(hints) + [f"memory_budget of at least {format_bytes(total)} if "
                                       "the machine has it"]))
    passes = (1 if store else -(-n_boot // chunk)) if bootstrap is not None else 1
    plan = MemoryPlan(what, budget, source, need, ph, R, min(blk, longest),
                      (n_boot if store else chunk) if bootstrap else 0, passes, flush, keep,
                      store_blocks=store)
    logger.info("%s", plan.describe())
    return plan


def search_largest(fits: Callable[[int], bool], upper: int) -> int:
    """Largest ``k`` in ``0..upper`` with ``fits(k)`` (monotone), or -1."""
    if upper < 0 or not fits(0):
        return -1
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


# ------------------------------------------------------- the response estimator's plans
def score_fit_bytes(score, data, homogeneous: bool, memory_budget=None) -> tuple[int, int]:
    """Bytes of fitting ``score`` to ``data`` here and bytes the fitted model holds.

    A Gaussian score (a name or an unfitted :class:`~gfdt.scores.GaussianScore`): the
    stacked samples, their centred copy, the covariance and its pseudo-inverse with
    their work space (``2 N d + 5 d^2`` doubles; per member and per mode when
    homogeneous; streamed blocks for Dask-backed data). Other estimators fitted here
    report :meth:`~gfdt.scores.base.ScoreEstimator.fit_memory`; fitted ones, callables
    and ``"exact"`` cost nothing.
    """
    from gfdt.scores.base import ScoreEstimator, get_score_class
    from gfdt.scores.gaussian import GaussianScore

    n, d = data.n_samples, 1
    for k in data.state_shape:
        d *= int(k)
    if isinstance(score, str):
        if score.lower() == "exact":
            return 0, 0
        cls = get_score_class(score.lower())
        if cls is not GaussianScore:
            return int(cls.fit_memory(n, data.state_shape)), 0
    elif isinstance(score, ScoreEstimator):
        if score.is_fitted:
            return 0, 0
        if not isinstance(score, GaussianScore):
            return int(score.fit_memory(n, data.state_shape)), 0
    else:
        return 0, 0
    held = 0 if homogeneous else 16 * d * d
    if data.lazy:  # streamed in blocks that fit a given budget (gfdt._memory.stats_block)
        from gfdt._memory import stats_block

        given = parse_bytes(memory_budget)
        block = 2048
        if given is not None:
            try:
                block = stats_block(given, d, covariance=not homogeneous)
            except ValueError:
                block = 2
        return 8 * ((0 if homogeneous else 3 * d * d) + 6 * d * min(block, n)), held
    if homogeneous:  # member by member, or in blocks within a given budget
        given = parse_bytes(memory_budget)
        if given is None:
            return 4 * 8 * d * max(data.lengths), 0
        from gfdt._memory import stats_block

        try:
            return 6 * 8 * d * min(stats_block(given, d, covariance=False), n), 0
        except ValueError:
            return 6 * 8 * d * 2, 0
    return 8 * (2 * n * d + 5 * d * d), held


def state_shape_of(homogeneous: bool, state_shape: tuple[int, ...]
                   ) -> Callable[[int, int], tuple[int, ...]]:
    """``shape_of(L, d)`` of the plain GFDT's lag sums: ``(L + 1, modes)`` or ``(L + 1, d, d)``."""
    if homogeneous:
        modes = 1
        for k in state_shape[:-1]:
            modes *= int(k)
        ratio = modes * (int(state_shape[-1]) // 2 + 1) / max(1, modes * int(state_shape[-1]))
        return lambda L, d: (L + 1, max(1, round(d * ratio)))
    return lambda L, d: (L + 1, d, d)


def product_series(read: Callable, lengths: list[int], L: int, block: int,
                   autocov: bool, max_samples: int = 4096, stride: int = 1
                   ) -> Callable[[], list]:
    """The candidate series of the block-length rule for an estimator's ``read``.

    The lagged products of the first ``max_samples`` source times of up to 8 members
    (:func:`gfdt.response._blocklength.lagged_product_series`), read in blocks of at
    most ``block`` source times (the series do not depend on it): one extra read and
    score evaluation of those samples. ``autocov``: the sources are the targets over
    their power per column (a Gaussian score diagonal in the columns). With a source
    ``stride`` the series hold the source times only (``block`` a multiple of it).
    """
    import numpy as np

    from gfdt.response._blocklength import lagged_product_series

    def pieces(k: int, T: int):
        stop = min(T, max_samples)
        for a in range(0, stop, block):
            b = min(a + block, stop)
            u, s = read(k, a, min(b + L, T), b)
            yield u, (u[: b - a] if s is None else s)

    def series() -> list:
        members = list(enumerate(lengths[:8]))
        weights = 1.0
        if autocov:
            power, count = 0.0, 0
            for k, T in members:
                for _u, s in pieces(k, T):
                    power = power + np.sum(np.abs(s) ** 2, axis=0)
                    count += s.shape[0]
            weights = np.where(power > 0, count / np.where(power > 0, power, 1.0), 0.0)
        out: list[list[np.ndarray]] = []
        for k, T in members:
            parts = [lagged_product_series([(u, s * weights)], L)
                     for u, s in pieces(k, T)]
            for i in range(len(parts[0])):
                if len(out) <= i:
                    out.append([])
                out[i].append(np.concatenate([p[i][0] for p in parts if p[i]])[::stride])
        return out

    return series


def _budget_block(est, d: int, L: int, shape_of, homogeneous: bool, model_bytes: int,
                  given: int | None) -> tuple[int | None, int]:
    """Read block and FFT work space a given ``memory_budget`` allows (None, default
    work space without one; see :func:`gfdt._memory.correlation_block`)."""
    from gfdt._memory import correlation_block
    from gfdt.response.correlate import FFT_BYTES

    if given is None:
        return None, FFT_BYTES
    R = 16 if homogeneous else 8
    for k in shape_of(L, d):
        R *= int(k)
    try:
        return correlation_block(given, d=d, L=L, result_bytes=R, homogeneous=homogeneous,
                                 model_bytes=model_bytes, batch_size=int(est.batch_size),
                                 stride=int(est.source_stride))
    except ValueError:  # the plan decides (and names what would fit)
        return int(est.source_stride), min(FFT_BYTES, max(2**16, given // 16))


def plan_fit(est, data, L: int, *, d: int, shape_of, homogeneous: bool, score_fit: int,
             model_bytes: int, blen: int | None, what: str = "ResponseEstimator.fit",
             own_stats: bool = False, log: bool = True) -> tuple[MemoryPlan, int]:
    """The memory plan of an estimator's fit (``blen``: the bootstrap block length; 0
    for the smallest, before it is known) and the FFT work space."""
    from gfdt._memory import parse_bytes

    opts = est._bootstrap_options()
    given = parse_bytes(getattr(est, "memory_budget", None))
    block, fft_bytes = _budget_block(est, d, L, shape_of, homogeneous, model_bytes, given)
    if opts is None:
        boot = None
    elif blen:
        from gfdt.response.bootstrap import n_blocks

        boot = (opts.n, blen, n_blocks(data.lengths, blen))
    else:
        boot = (opts.n, L + 1)
    level = logger.level
    if not log:
        logger.setLevel(max(level, logging.WARNING))
    try:
        plan = plan_correlation(
            what, memory_budget=getattr(est, "memory_budget", None), d=d, shape_of=shape_of,
            homogeneous=homogeneous, lengths=data.lengths, L=L, score_fit=score_fit,
            model_bytes=model_bytes, batch_size=int(est.batch_size),
            stride=int(est.source_stride), normalize=bool(getattr(est, "normalize", False)),
            own_stats=own_stats, bootstrap=boot, default_block=block,
            fft_work=(FFT_WORK if given is None else 2 * fft_bytes) if homogeneous else 0)
    finally:
        logger.setLevel(level)
    return plan, fft_bytes


def start_bootstrap(est, data, L: int, shape: tuple[int, ...], dtype,
                    replan: Callable[[int], tuple[MemoryPlan, int]],
                    series: Callable[[], list] | None, floor_lag: int | None = None,
                    seed=None):
    """Block length, final plan and block accumulator of a fit.

    ``replan(blen)`` gives the plan and FFT work space for a block length (0 without
    bootstrap); ``series`` the candidates of the block-length rule; ``floor_lag``: the
    block floor is ``floor_lag + 1`` (default ``L + 1``); ``seed``: the resampling's
    seed sequence when the options give none (default: the estimator's stream).

    Returns
    -------
    (BlockBootstrap or None, int, MemoryPlan, int)
        The accumulator, the block length (0 without bootstrap), the plan and the FFT
        work space.
    """
    import numpy as np

    from gfdt.response.bootstrap import BlockBootstrap, n_blocks

    opts = est._bootstrap_options()
    if opts is None:
        est.block_length_ = None
        plan, fft = replan(0)
        est.memory_plan_ = plan
        return None, 0, plan, fft
    blen, factor = opts.choose(data.members, L if floor_lag is None else floor_lag,
                               int(est.source_stride), series=series)
    est.block_length_ = blen
    plan, fft = replan(blen)
    est.memory_plan_ = plan
    if opts.seed is not None:
        rng = np.random.default_rng(np.random.SeedSequence(opts.seed))
    elif seed is not None:
        rng = np.random.default_rng(seed)
    else:
        rng = est._seed_streams(opts)[0]
    boot = BlockBootstrap(n_blocks(data.lengths, blen), opts.n, shape, dtype, rng,
                          chunk=plan.replicates_per_pass or None, flush=plan.flush,
                          store=bool(plan.store_blocks))
    boot.variance_factor = factor
    return boot, blen, plan, fft


def prepare(est, data, L: int, homogeneous: bool, what: str = "ResponseEstimator.fit"
            ) -> MemoryPlan | None:
    """The upfront plan of a :class:`~gfdt.ResponseEstimator` fit (before the score is
    fitted; raises :class:`MemoryPlanError` when even its smallest configuration does
    not fit). Sets the estimator's ``_gaussian_here`` and ``_score_fit``. None for the
    observable/perturbation path (planned once its series are known)."""
    from gfdt.scores.gaussian import GaussianScore

    est._gaussian_here = (
        (isinstance(est.score, str) and est.score.lower() == "gaussian")
        or (isinstance(est.score, GaussianScore) and not est.score.is_fitted))
    est._score_fit = score_fit_bytes(est.score, data, homogeneous, est.memory_budget)
    if est.observable is not None or est.perturbation is not None:
        return None
    plan = est._plan_state(data, L, homogeneous, 0, est._score_fit[1], log=False, what=what)[0]
    d = 1
    for k in data.state_shape:
        d *= int(k)
    plan.output_bytes = 8 * (L + 1) * (d if homogeneous else d * d)
    return plan


def fit_plan(est, X, what: str = "ResponseEstimator.fit") -> MemoryPlan | None:
    """The upfront memory plan of ``est.fit(X)``, without fitting (see :func:`prepare`);
    the record's warnings (stationarity, max_lag) are given here, once."""
    from gfdt.data import as_trajectories

    data = as_trajectories(X, "X")
    L, homogeneous = est._preflight(data)  # the fit's own checks, in its order
    return prepare(est, data, L, homogeneous, what)
