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
import warnings
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import scipy.fft as sfft
import xarray as xr
from scipy.linalg import blas

logger = logging.getLogger("gfdt")

_FLUSH = 64  # blocks buffered before they are folded into the replicates

#: Fewest bootstrap blocks for standard errors worth the name.
MIN_BLOCKS = 20


class BootstrapWarning(UserWarning):
    """The bootstrap standard errors are unreliable (e.g. too few blocks).

    Filter it with ``warnings.simplefilter("ignore", gfdt.response.BootstrapWarning)``
    once you have judged the errors.
    """


def n_blocks(lengths: Sequence[int], block_length: int) -> int:
    """Number of blocks when every member is cut into ``block_length`` pieces."""
    return int(sum(math.ceil(T / block_length) for T in lengths))


class BlockBootstrap:
    """Running total of per-block parts plus resampled totals, in passes.

    The multiplicities of all ``n_bootstrap`` replicates are drawn up front; a pass over
    the data folds every block into the replicates ``r0 .. r0 + chunk`` of that pass
    (one in-place matrix product per batch of blocks), so memory holds ``chunk``
    replicates, not all of them. The total (the point estimate) is summed in the
    first pass only. The same seed gives the same replicates whatever the chunk.

    Parameters
    ----------
    n_blocks : int
        Number of blocks that will be added per pass (in a fixed order).
    n_bootstrap : int
        Number of replicates (0: keep the total only).
    shape : tuple of int
        Shape of one block's part, starting with the lag axis (L + 1).
    dtype : numpy dtype
    rng : numpy.random.Generator
    chunk : int, optional
        Replicates held per pass (default: all, one pass).
    flush : int, optional
        Blocks buffered before they are folded into the replicates (default 64).
    store : bool
        Keep every block's part instead (``n_blocks`` arrays of the result's size, for
        records of fewer blocks than replicates) and form the replicates one at a time
        from them: one pass, whatever ``n_bootstrap``.
    """

    def __init__(self, n_blocks: int, n_bootstrap: int, shape: tuple[int, ...], dtype,
                 rng: np.random.Generator, chunk: int | None = None,
                 flush: int | None = None, store: bool = False) -> None:
        self.n_blocks = int(n_blocks)
        self.n_bootstrap = int(n_bootstrap)
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.total = np.zeros(self.shape, dtype=dtype)
        self.counts = np.zeros(self.shape[0])
        self.size = int(np.prod(self.shape))
        self.chunk = max(1, min(self.n_bootstrap, int(chunk or self.n_bootstrap or 1)))
        self.flush = max(1, int(flush or _FLUSH))
        self.r0 = 0
        self.first_pass = True
        self.variance_factor = 1.0  # set by the fit (Bootstrap.choose)
        self.store = bool(store) and self.n_bootstrap > 0
        if self.store:
            self.chunk = self.n_bootstrap
        if self.n_bootstrap:
            self.weights = rng.multinomial(self.n_blocks, np.full(self.n_blocks,
                                                                  1.0 / self.n_blocks),
                                           size=self.n_bootstrap).astype(float)
            if self.store:
                self.parts = np.zeros((self.n_blocks, self.size), dtype=dtype)
                self.part_counts = np.zeros((self.n_blocks, self.shape[0]))
            else:
                self._new_chunk()
        self._parts: list[np.ndarray] = []
        self._cnts: list[np.ndarray] = []
        self._done = 0

    @property
    def n_passes(self) -> int:
        """Passes over the data needed for all replicates."""
        return max(1, -(-self.n_bootstrap // self.chunk))

    def _new_chunk(self) -> None:
        r1 = min(self.r0 + self.chunk, self.n_bootstrap)
        self.boot = np.zeros((r1 - self.r0, self.size), dtype=self.dtype)
        self.boot_counts = np.zeros((r1 - self.r0, self.shape[0]))

    def next_pass(self) -> bool:
        """Start the pass of the next chunk of replicates; False when all are done."""
        if self.r0 + self.chunk >= self.n_bootstrap:
            return False
        self.r0 += self.chunk
        self.first_pass = False
        self.boot = None  # free the previous chunk before the next is allocated
        self._new_chunk()
        self._done = 0
        return True

    def add(self, parts: np.ndarray, counts: np.ndarray) -> None:
        """Add blocks: ``parts`` (k, *shape), ``counts`` (k, L + 1)."""
        if self.first_pass:
            self.total += parts.sum(axis=0)
            self.counts += counts.sum(axis=0)
        if not self.n_bootstrap:
            self._done += parts.shape[0]
            return
        k = parts.shape[0]
        if self.store:  # every block's part kept
            if self._done + k > self.n_blocks:
                raise RuntimeError(f"bootstrap: {self._done + k} blocks added, "
                                   f"{self.n_blocks} expected")
            self.parts[self._done:self._done + k] = parts.reshape(k, -1)
            self.part_counts[self._done:self._done + k] = counts
            self._done += k
            return
        if self._parts and sum(p.shape[0] for p in self._parts) + k > self.flush:
            self._flush()  # at most flush - 1 buffered blocks are copied together
        self._parts.append(parts.reshape(k, -1))
        self._cnts.append(counts)
        if k >= self.flush or sum(p.shape[0] for p in self._parts) >= self.flush:
            self._flush()

    def _flush(self) -> None:
        if not self._parts:
            return
        parts = self._parts[0] if len(self._parts) == 1 else np.concatenate(self._parts)
        cnts = np.concatenate(self._cnts)
        self._parts, self._cnts = [], []
        k0, k1 = self._done, self._done + parts.shape[0]
        if k1 > self.n_blocks:
            raise RuntimeError(f"bootstrap: {k1} blocks added, {self.n_blocks} expected")
        r1 = self.r0 + self.boot.shape[0]
        w = self.weights[self.r0:r1, k0:k1]
        # boot += w @ parts in place (BLAS with beta = 1: no temporary of boot's size)
        if np.iscomplexobj(self.boot):
            wt = np.asfortranarray(w.T.astype(complex))
            blas.zgemm(1.0, np.ascontiguousarray(parts).T, wt, beta=1.0, c=self.boot.T,
                       overwrite_c=True)
        else:
            wt = np.asfortranarray(w.T)
            blas.dgemm(1.0, np.ascontiguousarray(parts, dtype=float).T, wt, beta=1.0,
                       c=self.boot.T, overwrite_c=True)
        self.boot_counts += w @ cnts
        self._done = k1

    def mean(self) -> np.ndarray:
        """The lag average over all blocks, shape ``shape``."""
        return self.total / self.counts.reshape(-1, *([1] * (len(self.shape) - 1)))

    def replicates(self) -> Iterator[np.ndarray]:
        """Lag averages of the resampled data of this pass's chunk, one fresh array of
        shape ``shape`` each (the caller may modify it)."""
        for rep, count in self.distinct_replicates():
            for _ in range(count):
                yield rep.copy() if count > 1 else rep

    def distinct_replicates(self) -> Iterator[tuple[np.ndarray, int]]:
        """Like :meth:`replicates`, each distinct replicate once with its multiplicity
        (with kept block parts: few blocks give few distinct resamples, e.g. 10 of 3
        blocks, whatever ``n_bootstrap``)."""
        self._flush()
        if self._done != self.n_blocks:
            raise RuntimeError(f"bootstrap: {self._done} blocks added, {self.n_blocks} "
                               "expected")
        lag_shape = (-1, *([1] * (len(self.shape) - 1)))
        if self.store:  # one replicate at a time from the kept parts
            rows, counts = np.unique(self.weights, axis=0, return_counts=True)
            for w, count in zip(rows, counts, strict=True):
                num = w.astype(self.parts.dtype) @ self.parts
                with np.errstate(invalid="ignore", divide="ignore"):
                    num = num.reshape(self.shape)
                    num /= (w @ self.part_counts).reshape(lag_shape)
                yield num, int(count)
            return
        for b in range(self.boot.shape[0]):
            c = self.boot_counts[b]
            with np.errstate(invalid="ignore", divide="ignore"):
                yield (self.boot[b].reshape(self.shape) / c.reshape(lag_shape)), 1


class ReplicateMoments:
    """Standard deviations over replicates, accumulated one replicate at a time.

    Sums of the deviations from a centre (the point estimate: no cancellation) and of
    their squares, updated in place: two arrays per statistic, whatever the number of
    replicates. A replicate with a non-finite value is skipped.

    Parameters
    ----------
    centres : sequence of numpy.ndarray
        The point estimate of each statistic.
    keep : int, optional
        Index of a statistic whose replicates are also kept (copies, in one array of
        ``keep_count`` rows).
    keep_count : int
        Most replicates kept.
    """

    def __init__(self, centres: Sequence[np.ndarray], keep: int | None = None,
                 keep_count: int = 0) -> None:
        self.centres = [np.asarray(c) for c in centres]
        self.n = [0] * len(self.centres)
        self.s1: list[np.ndarray | None] = [None] * len(self.centres)
        self.s2: list[np.ndarray | None] = [None] * len(self.centres)
        self.keep = keep
        self.keep_count = int(keep_count)
        self._kept: np.ndarray | None = None
        self.n_kept = 0

    def update(self, i: int, v: np.ndarray, count: int = 1) -> None:
        """Add replicate ``v`` of statistic ``i``, ``count`` times (``v`` is
        overwritten)."""
        if not np.all(np.isfinite(v)):
            return
        if i == self.keep:
            for _ in range(min(count, self.keep_count - self.n_kept)):
                if self._kept is None:
                    self._kept = np.empty((self.keep_count, *v.shape), dtype=v.dtype)
                self._kept[self.n_kept] = v
                self.n_kept += 1
        if self.s1[i] is None:
            self.s1[i] = np.zeros(v.shape, dtype=v.dtype)
            self.s2[i] = np.zeros(v.shape, dtype=float)
        v -= self.centres[i].reshape(v.shape)
        if count != 1:  # count v, then count v^2 = (count v)^2 / count, in place
            v *= count
        self.s1[i] += v
        if np.iscomplexobj(v):
            np.multiply(v, v.conj(), out=v)
            w = v.real
        else:
            np.multiply(v, v, out=v)
            w = v
        if count != 1:
            w /= count
        self.s2[i] += w
        self.n[i] += count

    @property
    def kept(self) -> np.ndarray:
        """The kept replicates, ``(n_kept, *shape)``."""
        return np.empty(0) if self._kept is None else self._kept[: self.n_kept]

    def std(self, i: int) -> np.ndarray | None:
        """Standard deviation (ddof 1) of statistic ``i``; None with < 2 replicates.

        Computed in place (the sums are consumed)."""
        n, s1, s2 = self.n[i], self.s1[i], self.s2[i]
        if n < 2:
            return None
        if np.iscomplexobj(s1):
            s1 = np.abs(s1)
        np.multiply(s1, s1, out=s1)
        s1 /= n
        s2 -= s1.real if np.iscomplexobj(s1) else s1
        s2 /= n - 1
        np.clip(s2, 0, None, out=s2)
        self.s1[i] = self.s2[i] = None
        return np.sqrt(s2, out=s2)


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


class Bootstrap:
    """Options of the block bootstrap of :class:`~gfdt.ResponseEstimator`.

    Parameters
    ----------
    n : int
        Replicates (at least 2).
    block_length : int, optional
        Block length in samples (source times). Default: the Politis-White length
        of the lagged products the bootstrap resamples
        (:mod:`gfdt.response._blocklength`), at least ``max_lag + 1``, at most the
        longest member.
    seed : int, optional
        Seed of the resampling (default: the estimator's ``seed``).
    """

    def __init__(self, n: int = 100, block_length: int | None = None,
                 seed: int | None = None) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise ValueError(f"Bootstrap(n=...) must be an int >= 2, got {n!r}")
        if block_length is not None and (isinstance(block_length, bool)
                                         or not isinstance(block_length, (int, np.integer))
                                         or block_length < 1):
            raise ValueError(f"Bootstrap(block_length=...) must be None or a positive int, "
                             f"got {block_length!r}")
        check_seed(seed, "Bootstrap(seed=...)")
        self.n = int(n)
        self.block_length = None if block_length is None else int(block_length)
        self.seed = seed

    @classmethod
    def from_keywords(cls, bootstrap, n_bootstrap: int = 100,
                      block_length: int | None = None) -> Bootstrap | None:
        """Options from the estimator's ``bootstrap`` (bool or Bootstrap) and keywords.

        Returns None for ``bootstrap=False``; the keywords are checked either way.
        """
        if isinstance(bootstrap, Bootstrap):
            return bootstrap
        if not isinstance(bootstrap, (bool, np.bool_)):
            raise TypeError(f"bootstrap must be True, False or a Bootstrap(...), "
                            f"got {bootstrap!r}")
        nb = n_bootstrap
        if isinstance(nb, bool) or not isinstance(nb, (int, np.integer)) or nb < 2:
            raise ValueError(f"n_bootstrap must be an int >= 2, got {nb!r}")
        bl = block_length
        if bl is not None and (isinstance(bl, bool) or not isinstance(bl, (int, np.integer))
                               or bl < 1):
            raise ValueError(f"block_length must be None or a positive int, got {bl!r}")
        return cls(n=int(nb), block_length=bl) if bootstrap else None

    def __repr__(self) -> str:
        return (f"Bootstrap(n={self.n}, block_length={self.block_length}, "
                f"seed={self.seed})")

    def __eq__(self, other) -> bool:
        return isinstance(other, Bootstrap) and (self.n, self.block_length, self.seed) == (
            other.n, other.block_length, other.seed)

    def choose_block_length(self, members: Sequence, L: int, stride: int,
                            series: Callable[[], list] | None = None) -> int:
        """Block length for data ``members`` (a multiple of ``stride``), logged
        (:meth:`choose` without the variance correction)."""
        return self.choose(members, L, stride, series)[0]

    def choose(self, members: Sequence, L: int, stride: int,
               series: Callable[[], list] | None = None) -> tuple[int, float]:
        """Block length (a multiple of ``stride``) and the variance correction factor.

        Default length: the Politis-White length (:mod:`gfdt.response._blocklength`)
        of the candidate series ``series()`` returns (lists of 1-D members, e.g. the
        lagged products the bootstrap resamples; default: the data's coordinates summed
        after standardising), the longest of them, at least ``L + 1``. The factor
        multiplies the replicates' variance: :math:`(1 + \\hat G/(b\\,\\hat\\sigma^2_\\infty))
        \\,K/(K - 1)`, the first-order bias of a block-bootstrap variance with blocks
        of :math:`b` samples (largest over the candidates) and of resampling :math:`K`
        blocks with replacement.
        """
        from gfdt.response._blocklength import block_length_rule

        lengths = [m.shape[0] for m in members]
        cands = series() if series is not None else [_standard_sum(members)]
        blen, found, bias = block_length_rule(cands, L + 1, max(lengths),
                                              stride if series is not None else 1)
        if self.block_length is None:
            logger.info("bootstrap: Politis-White block lengths %s samples (floor max_lag "
                        "+ 1 = %d): %d", ", ".join(f"{b:.3g}" for b in found), L + 1, blen)
        else:
            blen = self.block_length
        blen = min(blen, max(lengths))
        blen += -blen % stride  # blocks start on source times
        K = n_blocks(lengths, blen)
        if K < MIN_BLOCKS:
            msg = (f"bootstrap: only {K} blocks of {blen} samples (fewer than {MIN_BLOCKS}); "
                   "the standard errors are unreliable"
                   + (" (NaN: no error can be estimated from one block)" if K < 2 else "")
                   + ": use more or longer members, a smaller max_lag (blocks hold at "
                   "least max_lag + 1 samples), or a shorter block_length")
            logger.warning(msg)
            warnings.warn(msg, BootstrapWarning, stacklevel=6)
        factor = (1 + bias / blen) * (K / (K - 1) if K > 1 else 1.0)
        logger.info("bootstrap: %d blocks of %d samples; variance correction %.3g", K, blen,
                    factor)
        return int(blen), float(factor)


def _standard_sum(members: Sequence, max_samples: int = 4096) -> list[np.ndarray]:
    """Each member's coordinates standardised and summed: one 1-D series per member."""
    out = []
    for m in list(members)[:8]:
        x = np.asarray(m[:max_samples], dtype=float).reshape(min(len(m), max_samples), -1)
        sd = x.std(axis=0)
        out.append(((x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)).sum(axis=1))
    return out


def check_seed(seed, name: str = "seed") -> None:
    """Raise unless ``seed`` is None or an int >= 0."""
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise ValueError(f"{name} must be None or an int >= 0, got {seed!r}")


def own_statistics(m: np.ndarray, modes: bool) -> Callable[[np.ndarray], np.ndarray]:
    r"""Replicate lag means rescaled by the replicate's own lag-0 statistics.

    For a score fitted to the same data as a Gaussian, :math:`-s = C^{-1}(x - \mu)`,
    the lag means are :math:`m(t) = \hat C(t)\,C^{-1}`. A replicate must use its own
    covariance :math:`C^*`, not the fitted one: with :math:`C^* \propto` the
    replicate's lag-0 sums, :math:`m^*(t)\, m^*(0)^{-1} m(0) = \hat C^*(t)
    \hat C^*(0)^{-1} \hat C(0) C^{-1}`, which is the point estimate for the original
    data. ``m`` (L + 1, p, p) real or, with ``modes``, (L + 1, M) per-mode (the
    covariance is diagonal in the modes).
    """
    m0 = m[0]
    if modes:
        def rescale(rep: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.where(rep[0] != 0, m0 / rep[0], 0.0)
            return rep * factor

        return rescale

    def rescale_matrix(rep: np.ndarray) -> np.ndarray:
        # one flat product (a broadcast (L + 1)-stack of products is several times slower)
        M = np.linalg.inv(rep[0]) @ m0
        return (np.ascontiguousarray(rep).reshape(-1, M.shape[0]) @ M).reshape(rep.shape)

    return rescale_matrix


def replicate_stds(boot: BlockBootstrap, transforms: Sequence[Callable],
                   centres: Sequence[np.ndarray], repass: Callable[[], object] | None = None,
                   keep: int | None = None) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Standard deviations over the replicates of each transform of them, in passes.

    ``transforms[i]`` maps the previous transform's value (the replicate's lag means
    for ``i = 0``) to statistic ``i``, whose point estimate is ``centres[i]``. The
    replicates of each pass's chunk are turned into running moments
    (:class:`ReplicateMoments`) and dropped; ``repass()`` streams the data again for the
    next chunk. A replicate in which a transform fails (e.g. a singular matrix) is
    skipped. The deviations are scaled by the bootstrap's ``variance_factor``; with
    fewer than 2 blocks (or 2 good replicates) a statistic's deviation is None. Also
    returns the kept values of statistic ``keep``.
    """
    acc = ReplicateMoments(centres, keep=keep, keep_count=boot.n_bootstrap)
    while True:
        for rep, count in boot.distinct_replicates():
            vals, v = [], rep
            try:
                for f in transforms:
                    v = np.asarray(f(v))
                    vals.append(v)
            except (ValueError, np.linalg.LinAlgError):
                continue
            for i in range(len(vals) - 1, -1, -1):  # updated in place, later ones first
                v = vals[i]
                shared = any(np.shares_memory(v, w) for w in vals[:i])
                own = v.flags.owndata or np.shares_memory(v, rep)
                acc.update(i, v.copy() if shared or not own else v, count)
            del rep, vals, v
        if not boot.next_pass():
            break
        if repass is None:
            raise RuntimeError("bootstrap: several passes planned but no repass given")
        repass()
    scale = float(np.sqrt(getattr(boot, "variance_factor", 1.0)))
    out = []
    for i in range(len(centres)):
        se = None if boot.n_blocks < 2 else acc.std(i)
        if se is not None:
            se *= scale
        out.append(se)
    return out, (acc.kept if boot.n_blocks >= 2 else np.empty(0))


def stderr_arrays(boot: BlockBootstrap, raw_of: Callable[[np.ndarray], np.ndarray],
                  norm_of: Callable[[np.ndarray], np.ndarray] | None,
                  like_raw: xr.DataArray, like: xr.DataArray, block_length: int,
                  keep_bytes: int, repass: Callable[[], None] | None = None
                  ) -> tuple[xr.DataArray, xr.DataArray, np.ndarray | None]:
    """Standard errors of the raw and the reported response, from the replicates
    (:func:`replicate_stds`).

    ``raw_of`` maps a replicate's lag means to the raw response, ``norm_of`` (None:
    not normalised) the raw response to the reported one. With fewer than 2 blocks,
    or fewer than 2 good replicates, the standard error is NaN: no error can be
    estimated. Returns the two standard errors (like ``like_raw`` and ``like``) and
    the replicates of the reported response when they take at most ``keep_bytes``
    (else None).
    """
    from gfdt.conventions import attrs as cf_attrs

    small = 8 * like.size * boot.n_bootstrap <= keep_bytes
    transforms = [raw_of] + ([norm_of] if norm_of is not None else [])
    centres = [like_raw.values] + ([like.values] if norm_of is not None else [])
    ses, kept = replicate_stds(boot, transforms, centres, repass,
                               keep=len(centres) - 1 if small else None)
    reps = kept.reshape(-1, *like.shape) if small and len(kept) > 1 else None
    scale2 = float(getattr(boot, "variance_factor", 1.0))

    def wrap(se, ref: xr.DataArray) -> xr.DataArray:
        out = ref.copy(data=np.full(ref.shape, np.nan) if se is None
                       else np.reshape(se, ref.shape))
        out.name = "stderr"
        out.attrs.update({**cf_attrs("stderr", what=ref.attrs.get("long_name", "response")),
                          "n_bootstrap": int(boot.n_bootstrap),
                          "block_length": int(block_length),
                          "n_blocks": int(boot.n_blocks),
                          "variance_correction": scale2})
        return out

    raw_se = wrap(ses[0], like_raw)
    return raw_se, (wrap(ses[1], like) if len(ses) > 1 else raw_se), reps
