"""Speed of the lagged-correlation engine: a Gaussian homogeneous GFDT fit against a loop.

The case of issue 13: 128 members x 2000 frames of a 32 x 32 periodic field, lags
0..100, score ``"gaussian"`` (homogeneous). Timed in the same run:

* ``gfdt``: ``ResponseEstimator(score="gaussian", homogeneous=True, bootstrap=False)``
  on all members (the Gaussian fit included);
* ``gfdt_bootstrap``: the same with the default block bootstrap (100 replicates);
* ``direct_loop``: the reference: the spatial FFT once per member, then a numpy loop
  over lags of :math:`\\sum_t \\hat u_k(t + \\tau)\\overline{\\hat s_k(t)}` (the score
  modes from the fitted model, so only the correlation differs). It is timed on
  ``--direct-members`` members and extrapolated linearly to all (it is linear in the
  members); the engine's lag sums on those members are checked against it.

The data are an AR(1) process in time of a spatially smoothed white noise (Gaussian,
homogeneous; generated with numpy, not timed). The machine load (1-minute load
average) is recorded before and after, since the 2-core machine is shared.

    python benchmarks/correlation_speed.py            # the issue's size
    python benchmarks/correlation_speed.py --quick    # CI size
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.fft as sfft

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Timer, parser, setup_logging, write_results

import gfdt
from gfdt.response.correlate import LagSums, correlate

logger = logging.getLogger("gfdt.benchmarks")

SIZES = {  # members, frames, grid, lags, members of the direct loop
    "quick": (8, 400, 16, 20, 8),
    "default": (128, 2000, 32, 100, 16),
    "paper": (128, 2000, 32, 100, 32),
}


def make_data(n_members: int, n_frames: int, n: int, seed: int,
              phi: float = 0.95) -> list[np.ndarray]:
    """AR(1) in time of smoothed white noise: members of shape (n_frames, n, n)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(n) * n
    filt = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / (2.0 * n))[:, : n // 2 + 1]
    members = []
    for _ in range(n_members):
        w = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((n_frames, n, n))) * filt,
                          s=(n, n))
        x = np.empty_like(w)
        x[0] = w[0] / np.sqrt(1 - phi**2)
        for t in range(1, n_frames):
            x[t] = phi * x[t - 1] + w[t]
        members.append(x)
    return members


def direct_loop(members: list[np.ndarray], model, mean: float, L: int) -> np.ndarray:
    """Lag sums by a numpy loop over lags (spatial FFT once per member), (L + 1, M)."""
    acc = None
    for x in members:
        uh = np.fft.rfftn(x - mean, axes=(1, 2)).reshape(x.shape[0], -1)
        sh = -model.spectral_score(uh, mean)
        if acc is None:
            acc = np.zeros((L + 1, uh.shape[1]), dtype=complex)
        T = x.shape[0]
        for lag in range(L + 1):
            acc[lag] += (uh[lag:] * sh[: T - lag].conj()).sum(axis=0)
    return acc


def engine_sums(members: list[np.ndarray], model, mean: float, L: int) -> np.ndarray:
    """The same lag sums by gfdt's engine."""
    M = members[0].shape[1] * (members[0].shape[2] // 2 + 1)

    def read(k, a, e, b):
        uh = sfft.rfftn(members[k][a:e] - mean, axes=(1, 2)).reshape(e - a, -1)
        return uh, -model.spectral_score(uh[: b - a], mean)

    sums = correlate([m.shape[0] for m in members], read,
                     LagSums(L, modes=True, shape=(L + 1, M)), 2048, progress=False)
    return sums.total()[0]


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/correlation_speed")
    p.add_argument("--direct-members", type=int, default=None,
                   help="members the direct loop is timed on (default: by size)")
    p.add_argument("--no-bootstrap-run", action="store_true",
                   help="skip the timing with the bootstrap")
    args = p.parse_args(argv)
    setup_logging()
    n_members, n_frames, n, L, n_direct = SIZES[args.size]
    if args.direct_members is not None:
        n_direct = min(args.direct_members, n_members)
    progress = not args.no_progress
    t_gen = time.perf_counter()
    members = make_data(n_members, n_frames, n, args.seed)
    logger.info("data: %d members x %d frames of %d x %d (%.1f s to make)", n_members,
                n_frames, n, n, time.perf_counter() - t_gen)
    load_before = os.getloadavg()[0]
    timer = Timer()
    with timer("gfdt"):
        est = gfdt.ResponseEstimator(score="gaussian", max_lag=L, homogeneous=True,
                                     bootstrap=False, progress=progress).fit(members)
    if not args.no_bootstrap_run:
        with timer("gfdt_bootstrap"):
            boot = gfdt.ResponseEstimator(score="gaussian", max_lag=L, homogeneous=True,
                                          seed=args.seed, progress=progress).fit(members)
    model, mean = est.score_model_, float(est.mean_)
    with timer("direct_loop_subset"):
        ref = direct_loop(members[:n_direct], model, mean, L)
    direct_total = timer.timings["direct_loop_subset"] * n_members / n_direct
    check = engine_sums(members[:n_direct], model, mean, L)
    rel = float(np.abs(check - ref).max() / np.abs(ref).max())
    load_after = os.getloadavg()[0]
    speedup = direct_total / timer.timings["gfdt"]
    logger.info("direct loop, extrapolated to %d members: %.1f s; gfdt %.2f s: %.1fx "
                "(load %.2f -> %.2f); engine vs loop max rel. diff %.1e", n_members,
                direct_total, timer.timings["gfdt"], speedup, load_before, load_after, rel)
    config = {"size": args.size, "n_members": n_members, "n_frames": n_frames, "n": n,
              "max_lag": L, "direct_members": n_direct, "cpu_count": os.cpu_count(),
              "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
              else None}
    extra = {"speed": {"direct_loop_extrapolated_s": round(direct_total, 3),
                       "speedup_vs_direct_loop": round(speedup, 2),
                       "engine_vs_loop_max_rel_diff": rel,
                       "load_average_1min": [load_before, load_after],
                       "gfdt_timings_s": est.timings_}}
    if not args.no_bootstrap_run:
        extra["speed"]["gfdt_bootstrap_block_length"] = boot.block_length_
    write_results(args.out, system="correlation_speed", config=config,
                  timings=timer.timings, reference="direct numpy loop over lags",
                  errors={}, **extra)
    est.response_.to_netcdf(args.out / "response.nc")
    return extra


if __name__ == "__main__":
    main()
