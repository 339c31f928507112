"""Regenerate data/navier_stokes_truth.nc: a high-precision paired-perturbation truth.

The 2-D Navier-Stokes response (paper Eqs. 11-13, default parameters, n = 32,
dt = 1/128) to a unit impulse of vorticity at one pixel restricted to the resolved
modes (``kick="resolved"``: the Nyquist row and column removed, the kick an operator
with a zeroed Nyquist wavenumber implies; see the theory page, "Kick conventions"),
at every time step up to
``MAX_LAG`` steps (2 time units), from paired ("common random numbers") ensembles:
the kicked copy shares the unperturbed copy's noise *and* hidden forcing phases. The
paper kicks by delta = 1/64 at pixel (0, 0), with one window of 1024 steps and 128
members; here many short windows over several pixels make impulses cheap, and the
run continues until the truth's own standard error in the paper's L2 norm over the
field stays below ``--target-se`` (default 0.03) over the first 0.75 time units, and
for at least ``--min-batches`` batches.

Members are independent: each is spun up from its own random state over ``--spin-up``
time units (the hypoviscous large scales relax over ~100 time units), so the standard
error across members is honest. The work is done in batches that continue each other,
written to a work folder and combined exactly into the output file after every batch
(``data/_truth_batches.py``). An interrupted run resumes where it stopped::

    python data/make_navier_stokes_truth.py                 # default: 3 batches at least
    python data/make_navier_stokes_truth.py --max-batches 1 # a bounded top-up
    python data/make_navier_stokes_truth.py --kick pixel \
        --out data/navier_stokes_truth_pixel.nc               # the plain pixel kick

Each window runs one unperturbed copy and one kicked copy per pixel of ``PIXELS``, all
with the same noise (9 runs give 8 impulses).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from _truth_batches import run_batches

from gfdt.systems import NavierStokes2D

HERE = Path(__file__).resolve().parent
PIXELS = [(0, 0), (16, 16), (0, 16), (16, 0), (8, 8), (24, 24), (8, 24), (24, 8)]
MAX_LAG = 256  # steps of dt = 1/128: 2 time units
TARGET_LAGS = 96  # 0.75 time units


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=None,
                   help="default: data/navier_stokes_truth.nc (resolved kick) or "
                        "data/navier_stokes_truth_pixel.nc (pixel kick)")
    p.add_argument("--work", type=Path, default=None,
                   help="work folder of the batches (default: data/.work/<out name>)")
    p.add_argument("--kick", choices=("resolved", "pixel"), default="resolved")
    p.add_argument("--members", type=int, default=32, help="members per batch")
    p.add_argument("--windows", type=int, default=8, help="windows per member per batch")
    p.add_argument("--spin-up", type=float, default=1000.0, help="spin-up of batch 0")
    p.add_argument("--target-se", type=float, default=0.03)
    p.add_argument("--min-batches", type=int, default=3)
    p.add_argument("--max-batches", type=int, default=1000)
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    ns = NavierStokes2D()
    if args.out is None:
        args.out = HERE / ("navier_stokes_truth.nc" if args.kick == "resolved"
                           else "navier_stokes_truth_pixel.nc")
    if args.work is None:
        args.work = HERE / ".work" / args.out.stem
    run_batches(ns, out=args.out, work=args.work, kick=args.kick, script=Path(__file__).name,
                members=args.members, windows=args.windows, pixels=PIXELS, max_lag=MAX_LAG,
                save_interval=ns.dt, delta=1.0 / 64.0, spin_up=args.spin_up,
                target_se=args.target_se, target_lags=TARGET_LAGS,
                min_batches=args.min_batches, max_batches=args.max_batches,
                seed=args.seed, workers=args.workers)


if __name__ == "__main__":
    main()
