"""OU SPDE benchmark: Gaussian GFDT, exact-score GFDT and paired truth vs closed form.

For the linear (OU) system every answer is known: the response is the discrete
propagator :math:`g_k^m`. The script simulates the paper's OU SPDE, estimates the
response with the Gaussian and the exact score, computes the paired-perturbation
truth, and compares each with the closed form. GFDT estimates are normalised as in
the paper, :math:`R(t) R(0)^{-1}`; the unnormalised errors are reported beside them.

Usage::

    python benchmarks/ou.py --quick --out results/ou     # CI size, < 1 min
    python benchmarks/ou.py                              # default size
    python benchmarks/ou.py --paper                      # 128 members x 2000 time units
    python benchmarks/ou.py --quick --stein              # + Stein-corrected rows (*_stein)

Writes ``results.json`` (shared schema), ``response.nc`` and PNG figures to ``--out``.
"""

from __future__ import annotations

import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
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

logger = logging.getLogger("gfdt.benchmarks")

SIZES = {
    # members, burn-in, recorded duration (time units), truth members, max_lag
    # (the slowest OU mode, |k| ~ 3.4, relaxes over ~164 time units: burn in >= 1000)
    "quick": dict(n_members=8, burn_in=1000.0, duration=1000.0, truth_members=8, max_lag=100,
                  dsm=dict(max_steps=300, eval_every=100)),
    "default": dict(n_members=32, burn_in=1000.0, duration=2000.0, truth_members=32,
                    max_lag=100, dsm=dict(max_steps=1500)),
    "paper": dict(n_members=128, burn_in=1000.0, duration=2000.0, truth_members=128,
                  max_lag=100, dsm=dict(max_steps=5000)),
}


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/ou")
    p.add_argument("--stein", action="store_true",
                   help="also fit every score with stein_correction=True (rows *_stein)")
    args = p.parse_args(argv)
    setup_logging()
    cfg = SIZES[args.size]
    progress = False if args.no_progress else None
    ou = gfdt.systems.OrnsteinUhlenbeck()
    save_interval = 1.0
    timer = Timer()
    with timer("simulate"):
        ds = gfdt.simulate(ou, n_members=cfg["n_members"], burn_in=cfg["burn_in"],
                           duration=cfg["duration"], save_interval=save_interval,
                           seed=args.seed, n_workers=args.workers, progress=progress)
    L = cfg["max_lag"]
    with timer("truth"):
        truth = gfdt.perturbation_response(
            ou, ds.u.isel(time=-1, member=slice(0, cfg["truth_members"])), max_lag=L,
            save_interval=save_interval, delta=2 * ou.dt, seed=args.seed + 1,
            n_workers=args.workers, progress=progress)
    estimates, raw = {}, {}
    stein = {}
    for name in ("gaussian", "exact"):
        for corrected in (False, True) if args.stein else (False,):
            key = f"{name}_score" + ("_stein" if corrected else "")
            with timer(f"gfdt_{key}"):
                est = gfdt.ResponseEstimator(score=name, max_lag=L, normalize=True,
                                             progress=progress,
                                             stein_correction=corrected).fit(ds)
            estimates[key] = est.response_
            raw[key] = est.response_raw_
            stein[key] = est.stein_error_
    X = ds.u.isel(time=slice(None, None, 2)).values.reshape(-1, ou.n, ou.n)
    with timer("dsm_train"):
        model = gfdt.scores.DenoisingScoreModel(progress=progress, seed=args.seed,
                                                **cfg["dsm"]).fit(X)
    with timer("gfdt_dsm"):
        est = gfdt.ResponseEstimator(score=model, max_lag=L, normalize=True,
                                     progress=progress).fit(ds)
    estimates["dsm_score"] = est.response_
    raw["dsm_score"] = est.response_raw_
    stein["dsm_score"] = est.stein_error_
    dsm_stein_error = est.stein_error_
    if args.stein:
        with timer("gfdt_dsm_stein"):
            est_c = gfdt.ResponseEstimator(score=model, max_lag=L, normalize=True,
                                           progress=progress, stein_correction=True).fit(ds)
        estimates["dsm_score_stein"] = est_c.response_
        raw["dsm_score_stein"] = est_c.response_raw_
        stein["dsm_score_stein"] = est_c.stein_error_
    held_out = ds.u.isel(time=slice(1, None, 25)).values.reshape(-1, ou.n, ou.n)
    score_report = {"rel_fisher": gfdt.metrics.relative_fisher_error(model, ou.exact_score,
                                                                     held_out),
                    "stein_error": dsm_stein_error, "train_s": timer.timings["dsm_train"],
                    "steps": model.n_steps_}
    estimates["dynamical"] = truth["response"]
    exact = ou.exact_response(truth["lag"].values)
    errors, per_lag = errors_table(estimates, exact, max_lag=L)
    raw_errors, _ = errors_table(raw, exact, max_lag=L)
    for name, e in raw_errors.items():
        logger.info("%-15s unnormalised: L2 max %.4f  L-inf max %.4f", name, e["l2_max"],
                    e["linf_max"])
    for name, e in errors.items():
        logger.info("%-15s L2 max %.4f  L-inf max %.4f (lags 0..%d)", name, e["l2_max"],
                    e["linf_max"], L)
    args.out.mkdir(parents=True, exist_ok=True)
    nc = stack_responses({"closed_form": exact, **estimates, "dynamical": truth})
    gfdt.io.save(nc, args.out / "response.nc")

    fig, ax = plt.subplots(figsize=(8.5, 4.5), layout="constrained")
    gfdt.plotting.plot_response({"closed form": exact, "Gaussian": estimates["gaussian_score"],
                                 "exact score": estimates["exact_score"],
                                 "learned (DSM)": estimates["dsm_score"]}, ax=ax)
    ax.set_title("OU SPDE: response downstream of the kick")
    save_figure(fig, args.out / "response.png")
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    gfdt.plotting.plot_errors(per_lag, axes=axes)
    axes[0].set_title("L2 error vs closed form")
    axes[1].set_title("L-inf error vs closed form")
    save_figure(fig, args.out / "errors.png")
    plt.close(fig)

    config = {"size": args.size, "seed": args.seed, "save_interval": save_interval,
              "stein": bool(args.stein), **cfg, **ou.parameters()}
    config["dsm"] = dict(cfg["dsm"])
    write_results(args.out, system="ou", config=config, timings=timer.timings,
                  reference="exact", errors=errors, stein_error=stein, score=score_report,
                  errors_unnormalized=raw_errors,
                  peaks={name: peaks(r) for name, r in {"closed_form": exact,
                                                         **estimates}.items()})
    return errors


if __name__ == "__main__":
    main()
