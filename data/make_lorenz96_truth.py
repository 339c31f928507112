"""Regenerate data/lorenz96_truth.nc: finite-difference truth of the Lorenz-96 sensitivities.

Two-scale Lorenz-96 (``gfdt.systems.Lorenz96TwoScale`` defaults: K = 36, J = 10, F = 10,
h = 1, c = b = 10, noise 0.03 on Y, dt = 0.005). For each parameter F, h, c, b and two
half-widths ``d`` and ``2 d``, every member starts from a stationary state (one long
unperturbed run sampled every ``--spacing`` time units) and is run at theta + d and
theta - d with the same noise (common random numbers). The five sector-averaged
observables are recorded every 0.1 up to ``--tmax``:

* ``response`` (step_size, lag, observable, parameter): d<A(t)>/d theta after a
  parameter step at t = 0 (the quantity of the ScoreUNet1D.jl 5x4 table, which uses
  t = 0..6 at 0.1);
* ``sensitivity`` (step_size, observable, parameter): the static sensitivity, the
  plateau mean of the step response over ``--plateau`` <= t <= tmax;

each with a member-level standard error (``*_stderr``) and the standard error of the
paired difference between the two step sizes (``*_size_diff_stderr``; central
differences have error ~ d^2, so (R(2d) - R(d)) / 3 estimates the bias of R(d)).

The work is done in batches of members, each written to a work folder; the output file
is rebuilt from all batches after each one. An interrupted run resumes::

    python data/make_lorenz96_truth.py                  # 1000 members, ~4 min on 2 cores
    python data/make_lorenz96_truth.py --members 4000   # top up to 4000 members
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
from gfdt._parameter_truth import parameter_differences
from gfdt._runner import Integrator
from gfdt.systems import Lorenz96TwoScale

HERE = Path(__file__).resolve().parent
logger = logging.getLogger("gfdt.data")
STEPS = {"F": 0.25, "h": 0.05, "c": 0.25, "b": 0.25}  # half-widths d (2d is also run)
SAVE_INTERVAL = 0.1


def config(args) -> dict:
    return {"system": Lorenz96TwoScale().attrs(), "steps": STEPS, "tmax": args.tmax,
            "plateau": args.plateau, "spacing": args.spacing, "batch": args.batch,
            "seed": args.seed, "spin_up": args.spin_up}


def starting_states(system, work: Path, b: int, n: int, spacing: float, spin_up: float,
                    ss: np.random.SeedSequence) -> np.ndarray:
    """``n`` states ``spacing`` apart on one long run continued across batches."""
    integ = Integrator(system)
    rng = np.random.default_rng(ss)
    prev = work / f"end_{b - 1:04d}.npy"
    if b == 0:
        u, _ = system.initial_state(rng)
        integ(u, np.zeros(0), system._steps(spin_up, "spin_up"), rng)
    else:
        u = np.load(prev)
    every = system._steps(spacing, "spacing")
    out = np.empty((n, *system.state_shape))
    integ(u, np.zeros(0), n * every, rng, save_every=every, out=out)
    np.save(work / f"end_{b:04d}.npy", u)
    return out


def run_batch(system, work: Path, b: int, args) -> None:
    ss = np.random.SeedSequence([args.seed, b])
    s_start, s_noise = ss.spawn(2)
    init = starting_states(system, work, b, args.batch, args.spacing, args.spin_up, s_start)
    seeds = [int(x) for x in s_noise.generate_state(args.batch, dtype=np.uint64)]
    every = system._steps(SAVE_INTERVAL, "save interval")
    n_saves = round(args.tmax / SAVE_INTERVAL)
    steps = {p: [d, 2 * d] for p, d in STEPS.items()}
    t0 = time.perf_counter()
    r = parameter_differences(system, steps, system.observables(), init, n_saves=n_saves,
                              save_every=every, seeds=seeds, n_workers=args.workers)
    np.save(work / f"batch_{b:04d}.npy", r.astype(np.float32))
    logger.info("batch %d: %d members in %.0f s", b, len(init), time.perf_counter() - t0)


def combine(system, work: Path, args) -> xr.Dataset:
    files = sorted(work.glob("batch_*.npy"))
    r = np.concatenate([np.load(f).astype(float) for f in files])  # (N, P, S, T, m)
    N = r.shape[0]
    lag = np.arange(r.shape[3]) * SAVE_INTERVAL
    plateau = lag >= args.plateau - 1e-9
    stat = r[..., plateau, :].mean(-2)  # (N, P, S, m)

    def mse(x):  # mean and stderr over members, moved to (S, [T,] m, P)
        m = np.moveaxis(x.mean(0), 0, -1)
        s = np.moveaxis(x.std(0, ddof=1) / np.sqrt(N), 0, -1)
        return m, s

    rm, rs = mse(r)
    sm, sse = mse(stat)
    _, rds = mse(r[:, :, 1] - r[:, :, 0])
    _, sds = mse(stat[:, :, 1] - stat[:, :, 0])
    names = list(system.observables())
    params = list(STEPS)
    dims_r = ("step_size", "lag", "observable", "parameter")
    dims_s = ("step_size", "observable", "parameter")
    half = np.array([[STEPS[p], 2 * STEPS[p]] for p in params]).T
    return xr.Dataset(
        {"response": (dims_r, rm), "response_stderr": (dims_r, rs),
         "response_size_diff_stderr": (dims_r[1:], rds),
         "sensitivity": (dims_s, sm), "sensitivity_stderr": (dims_s, sse),
         "sensitivity_size_diff_stderr": (dims_s[1:], sds),
         "half_width": (("step_size", "parameter"), half)},
        coords={"lag": ("lag", lag, {"units": "1", "long_name": "time after the step"}),
                "observable": names, "parameter": params, "step_size": [0, 1]},
        attrs={**gfdt.conventions.global_attrs("Lorenz-96 finite-difference sensitivities"),
               **system.attrs(), "method": "paired finite differences (common random numbers)",
               "n_members": N, "plateau_start": args.plateau,
               "observables": "X: mean_k X_k; X2: mean_k X_k^2; XYbar: mean_k X_k Ybar_k; "
                              "Y2: mean_k,j Y_jk^2; XXm1: mean_k X_k X_k-1",
               "gfdt_config": json.dumps(config(args))},
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "lorenz96_truth.nc")
    p.add_argument("--work", type=Path, default=HERE / ".work" / "lorenz96_truth")
    p.add_argument("--members", type=int, default=1000, help="total members")
    p.add_argument("--batch", type=int, default=250, help="members per batch")
    p.add_argument("--tmax", type=float, default=10.0)
    p.add_argument("--plateau", type=float, default=4.0)
    p.add_argument("--spacing", type=float, default=2.0)
    p.add_argument("--spin-up", type=float, default=100.0)
    p.add_argument("--seed", type=int, default=96)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s",
                        datefmt="%H:%M:%S")
    system = Lorenz96TwoScale()
    args.work.mkdir(parents=True, exist_ok=True)
    cfg_file = args.work / "config.json"
    cfg = json.dumps(config(args), sort_keys=True)
    if cfg_file.exists() and cfg_file.read_text() != cfg:
        raise SystemExit(f"{args.work} holds a run with another configuration; use --work")
    cfg_file.write_text(cfg)
    n_batches = -(-args.members // args.batch)
    for b in range(n_batches):
        if (args.work / f"batch_{b:04d}.npy").exists():
            continue
        run_batch(system, args.work, b, args)
        ds = combine(system, args.work, args)
        gfdt.io.save(ds, args.out)
        rms = float(np.sqrt((ds.response_stderr.isel(step_size=0).sel(
            lag=slice(0, 6.0001)) ** 2).mean()))
        logger.info("%d members: RMS stderr of the 0..6 curves %.3f, of the static 5x4 %.3f",
                    ds.n_members, rms,
                    float(np.sqrt((ds.sensitivity_stderr.isel(step_size=0) ** 2).mean())))


if __name__ == "__main__":
    main()
