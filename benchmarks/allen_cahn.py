"""Allen-Cahn benchmark: Gaussian, exact-score and learned-score GFDT against the paired truth.

The paper's second experiment (Fig. 1, row 2). The reference is the high-precision
paired-perturbation truth stored in ``data/allen_cahn_truth.nc`` (regenerate with
``python data/make_allen_cahn_truth.py``, or pass ``--truth-impulses N`` to compute a
small one in the run). Every estimate is normalised as in the paper,
:math:`R(t) R(0)^{-1}`; the raw Stein diagnostic is reported beside it.

Usage::

    python benchmarks/allen_cahn.py --quick --out results/allen_cahn   # CI size
    python benchmarks/allen_cahn.py                                     # <= 15 min, 2 cores
    python benchmarks/allen_cahn.py --paper                             # 128 members
    python benchmarks/allen_cahn.py --quick --stein    # + Stein-corrected rows (*_stein)

Writes ``results.json`` (shared schema plus ``"score"``), ``response.nc`` and PNG figures.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import (
    Timer,
    errors_table,
    parser,
    peaks,
    save_figure,
    setup_logging,
    stack_responses,
    write_results,
)

import gfdt
from gfdt.metrics import relative_fisher_error, response_error, summarize_errors

logger = logging.getLogger("gfdt.benchmarks")

TRUTH = Path(__file__).resolve().parents[1] / "data" / "allen_cahn_truth.nc"

SIZES = {
    "quick": dict(n_members=8, burn_in=1000.0, duration=400.0, train_stride=2,
                  dsm=dict(max_steps=300, eval_every=100)),
    "default": dict(n_members=32, burn_in=3000.0, duration=1000.0, train_stride=2,
                    dsm=dict(max_steps=3000, max_time=420.0)),
    "paper": dict(n_members=128, burn_in=3000.0, duration=2000.0, train_stride=2,
                  dsm=dict(max_steps=20000, patience=10, max_time=1500.0)),
}
MAX_LAG = 60


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/allen_cahn")
    p.add_argument("--truth", type=Path, default=TRUTH, help="stored paired truth (netCDF)")
    p.add_argument("--truth-impulses", type=int, default=0,
                   help="compute a fresh truth with this many members x 4 pixels instead")
    p.add_argument("--stein", action="store_true",
                   help="also fit every score with stein_correction=True (rows *_stein)")
    args = p.parse_args(argv)
    setup_logging()
    cfg = SIZES[args.size]
    progress = False if args.no_progress else None
    ac = gfdt.systems.AllenCahn()
    timer = Timer()
    with timer("simulate"):
        ds = gfdt.simulate(ac, n_members=cfg["n_members"], burn_in=cfg["burn_in"],
                           duration=cfg["duration"], save_interval=1.0, seed=args.seed,
                           n_workers=args.workers, progress=progress)
    if args.truth_impulses:
        with timer("truth"):
            truth = gfdt.perturbation_response(
                ac, ds.u.isel(time=-1), max_lag=MAX_LAG, save_interval=1.0, delta=2 * ac.dt,
                seed=args.seed + 1, pixel=[(0, 0), (16, 16), (0, 16), (16, 0)],
                n_windows=max(1, args.truth_impulses // (4 * cfg["n_members"])),
                n_workers=args.workers, progress=progress)
    else:
        if not args.truth.exists():
            raise SystemExit(f"no stored truth at {args.truth}: run data/make_allen_cahn_truth.py"
                             " or pass --truth-impulses")
        truth = gfdt.io.load(args.truth)
    truth = truth.isel(lag=slice(0, MAX_LAG + 1))
    logger.info("truth: %d impulses, L2 standard error max %.3f", truth.attrs["n_impulses"],
                float(np.sqrt((truth["stderr"] ** 2).sum(("y", "x"))).max()))

    X = ds.u.isel(time=slice(None, None, cfg["train_stride"])).values.reshape(-1, ac.n, ac.n)
    with timer("dsm_train"):
        model = gfdt.scores.DenoisingScoreModel(progress=progress, seed=args.seed,
                                                **cfg["dsm"]).fit(X)
    estimates, raw, stein = {}, {}, {}
    scores = {"gaussian_score": "gaussian", "exact_score": "exact", "dsm_score": model}
    for (name, score), corrected in itertools.product(
            scores.items(), (False, True) if args.stein else (False,)):
        key = name + ("_stein" if corrected else "")
        with timer(f"gfdt_{key}"):
            est = gfdt.ResponseEstimator(score=score, max_lag=MAX_LAG, normalize=True,
                                         progress=progress, stein_correction=corrected).fit(ds)
        estimates[key] = est.response_
        raw[key] = est.response_raw_
        stein[key] = est.stein_error_
        if key == "gaussian_score":
            gauss_model = est.score_model_
    errors, per_lag = errors_table(estimates, truth, max_lag=MAX_LAG)
    for name, est in estimates.items():
        deb = response_error(est, truth["response"], stderr=truth["stderr"])
        errors[name].update({k: v for k, v in summarize_errors(deb).items()
                             if k.startswith("l2_debiased")})
    raw_errors, _ = errors_table(raw, truth, max_lag=MAX_LAG)
    held_out = ds.u.isel(time=slice(1, None, 25)).values.reshape(-1, ac.n, ac.n)
    score_report = {
        "rel_fisher": relative_fisher_error(model, ac.exact_score, held_out),
        "rel_fisher_gaussian": relative_fisher_error(gauss_model, ac.exact_score, held_out),
        "stein_error": stein["dsm_score"],
        "train_s": timer.timings["dsm_train"],
        "steps": model.n_steps_,
    }
    for name, e in errors.items():
        logger.info("%-15s L2 max %.3f (debiased %.3f)  L-inf max %.3f", name, e["l2_max"],
                    e["l2_debiased_max"], e["linf_max"])
    for name, e in raw_errors.items():
        logger.info("%-15s unnormalised: L2 max %.3f  L-inf max %.3f", name, e["l2_max"],
                    e["linf_max"])
    logger.info("DSM: relative Fisher %.3f (Gaussian %.3f), %d steps in %.0f s",
                score_report["rel_fisher"], score_report["rel_fisher_gaussian"],
                model.n_steps_, score_report["train_s"])

    args.out.mkdir(parents=True, exist_ok=True)
    gfdt.io.save(stack_responses({**estimates, "dynamical": truth}), args.out / "response.nc")
    fig, axes = plt.subplots(1, 3, figsize=(17, 4.5), layout="constrained")
    gfdt.plotting.plot_response({"truth": truth, "Gaussian": estimates["gaussian_score"],
                                 "exact score": estimates["exact_score"],
                                 "learned (DSM)": estimates["dsm_score"]}, ax=axes[0])
    axes[0].set_title("Allen-Cahn: response downstream of the kick")
    gfdt.plotting.plot_errors(per_lag, axes=axes[1:])
    axes[1].set_title("L2 error vs paired truth")
    axes[2].set_title("L-inf error vs paired truth")
    save_figure(fig, args.out / "allen_cahn.png")
    plt.close(fig)
    config = {"size": args.size, "seed": args.seed, "max_lag": MAX_LAG,
              "stein": bool(args.stein),
              "truth_impulses": int(truth.attrs["n_impulses"]),
              **{k: v for k, v in cfg.items() if k != "dsm"}, "dsm": cfg["dsm"],
              **ac.parameters()}
    write_results(args.out, system="allen_cahn", config=config, timings=timer.timings,
                  reference="dynamical", errors=errors, score=score_report, stein_error=stein,
                  errors_unnormalized=raw_errors,
                  peaks={name: peaks(r) for name, r in
                         {"dynamical": truth["response"], **estimates}.items()})
    return errors


if __name__ == "__main__":
    main()
