"""Regenerate data/allen_cahn_truth.nc: a high-precision paired-perturbation truth.

The Allen-Cahn response (paper Eq. 9, default parameters, n = 32, dt = 1/32) to a unit
impulse at one pixel, lags 0..60 time units at stride 1, from paired ("common random
numbers") ensembles, with enough impulses that the truth's own standard error in the
paper's L2 norm over the field stays below ``--target-se`` (default 0.05) at every lag.

The work is done in batches that continue each other (the final unperturbed states of
batch b start batch b + 1; seeds are spawned per batch), written to a work folder, and
combined exactly (Chan's parallel mean/variance over independent members) into the
output file after every batch. An interrupted run resumes where it stopped::

    python data/make_allen_cahn_truth.py            # runs until the target is met
    python data/make_allen_cahn_truth.py --max-batches 2   # a bounded top-up

Each window runs one unperturbed copy and one kicked copy per pixel of ``PIXELS``, all
with the same noise (5 runs give 4 impulses).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

import gfdt
from gfdt.systems import AllenCahn

logger = logging.getLogger("gfdt.data")

HERE = Path(__file__).resolve().parent
PIXELS = [(0, 0), (16, 16), (0, 16), (16, 0)]
MAX_LAG = 60
SAVE_INTERVAL = 1.0


def combine(batches: list[xr.Dataset]) -> xr.Dataset:
    """Exact pooled mean and standard error of independent member batches (Chan et al.)."""
    n = 0
    mean = None
    m2 = None
    for b in batches:
        nb_ = int(b.attrs["n_members"])
        mb = b["response"].values
        m2b = b["stderr"].values ** 2 * nb_ * (nb_ - 1)
        if mean is None:
            n, mean, m2 = nb_, mb.copy(), m2b.copy()
            continue
        d = mb - mean
        tot = n + nb_
        mean = mean + d * nb_ / tot
        m2 = m2 + m2b + d**2 * n * nb_ / tot
        n = tot
    se = np.sqrt(m2 / (n - 1) / n)
    first = batches[0]
    out = first.copy(deep=True)
    out["response"].values = mean
    out["stderr"].values = se
    out["l2_stderr"] = ("lag", np.sqrt((se**2).sum(axis=(1, 2))),
                        {"long_name": "L2 norm over the field of the standard error",
                         "units": "1"})
    out.attrs.update(
        n_members=n,
        n_impulses=int(sum(int(b.attrs["n_impulses"]) for b in batches)),
        n_batches=len(batches),
        title="paired perturbation response of AllenCahn (high precision)",
        history=f"made by data/make_allen_cahn_truth.py with gfdt {gfdt.__version__}",
    )
    out.attrs.pop("gfdt_seed_entropy", None)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "allen_cahn_truth.nc")
    p.add_argument("--work", type=Path, default=HERE / ".work" / "allen_cahn_truth")
    p.add_argument("--members", type=int, default=64, help="members per batch")
    p.add_argument("--windows", type=int, default=4, help="windows per member per batch")
    p.add_argument("--spin-up", type=float, default=3000.0,
                   help="spin-up of batch 0 (the spatial mean relaxes over ~3000 time units)")
    p.add_argument("--target-se", type=float, default=0.05)
    p.add_argument("--max-batches", type=int, default=1000)
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    ac = AllenCahn()
    args.work.mkdir(parents=True, exist_ok=True)
    config = {"system": ac.parameters(), "members": args.members, "windows": args.windows,
              "pixels": PIXELS, "max_lag": MAX_LAG, "seed": args.seed,
              "delta": 2 * ac.dt}
    cfg_path = args.work / "config.json"
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()) != json.loads(json.dumps(config)):
            raise SystemExit(f"{args.work} holds a run with another configuration; "
                             "use another --work folder")
    else:
        cfg_path.write_text(json.dumps(config))

    files = sorted(args.work.glob("batch_*.nc"))

    def state_path(b: int) -> Path:  # initial fields of batch b
        return args.work / f"state_{b:04d}.npy"

    if state_path(len(files)).exists():
        state = np.load(state_path(len(files)))
    else:
        files = []
        t0 = time.perf_counter()
        spin = gfdt.simulate(ac, n_members=args.members, burn_in=args.spin_up,
                             duration=SAVE_INTERVAL, save_interval=SAVE_INTERVAL,
                             seed=np.random.SeedSequence([args.seed, 10**6]),
                             n_workers=args.workers)
        state = spin.u.isel(time=-1).values
        np.save(state_path(0), state)
        logger.info("spin-up of %d members: %.0f s", args.members, time.perf_counter() - t0)

    batches = [gfdt.io.load(f) for f in files]
    for _ in range(args.max_batches):
        if batches:
            pooled = combine(batches)
            worst = float(pooled["l2_stderr"].max())
            logger.info("%d impulses: L2 standard error max %.4f (target %.3f)",
                        pooled.attrs["n_impulses"], worst, args.target_se)
            if worst <= args.target_se:
                break
        b = len(batches)
        t0 = time.perf_counter()
        ds, state, _ = gfdt.perturbation_response(
            ac, state, max_lag=MAX_LAG, save_interval=SAVE_INTERVAL, delta=2 * ac.dt,
            seed=np.random.SeedSequence([args.seed, b]), n_windows=args.windows,
            pixel=PIXELS, n_workers=args.workers, return_state=True)
        ds.attrs["n_members"] = args.members
        np.save(state_path(b + 1), state)  # before the batch file: a kill redoes batch b
        gfdt.io.save(ds, args.work / f"batch_{b:04d}.nc")
        batches.append(ds)
        gfdt.io.save(combine(batches), args.out)
        logger.info("batch %d: %.0f s", b, time.perf_counter() - t0)
    if batches:
        gfdt.io.save(combine(batches), args.out)
        logger.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
