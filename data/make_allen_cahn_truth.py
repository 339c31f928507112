"""Regenerate data/allen_cahn_truth.nc: a high-precision paired-perturbation truth.

The Allen-Cahn response (paper Eq. 9, default parameters, n = 32, dt = 1/32) to a unit
impulse at one pixel, lags 0..60 time units at stride 1, from paired ("common random
numbers") ensembles, with enough impulses that the truth's own standard error in the
paper's L2 norm over the field stays below ``--target-se`` (default 0.05) at every lag.

The work is done in batches that continue each other, written to a work folder and
combined exactly into the output file after every batch (``data/_truth_batches.py``).
An interrupted run resumes where it stopped::

    python data/make_allen_cahn_truth.py            # runs until the target is met
    python data/make_allen_cahn_truth.py --max-batches 2   # a bounded top-up

Each window runs one unperturbed copy and one kicked copy per pixel of ``PIXELS``, all
with the same noise (5 runs give 4 impulses).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _truth_batches import run_batches

from gfdt.systems import AllenCahn

HERE = Path(__file__).resolve().parent
PIXELS = [(0, 0), (16, 16), (0, 16), (16, 0)]
MAX_LAG = 60
SAVE_INTERVAL = 1.0


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
    run_batches(ac, out=args.out, work=args.work, script=Path(__file__).name,
                members=args.members, windows=args.windows, pixels=PIXELS, max_lag=MAX_LAG,
                save_interval=SAVE_INTERVAL, delta=2 * ac.dt, spin_up=args.spin_up,
                target_se=args.target_se, target_lags=MAX_LAG, min_batches=1,
                max_batches=args.max_batches, seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    main()
