"""Generalization benchmark: score estimators on systems gfdt was not designed around.

For each system, fits ``gfdt.ResponseEstimator`` with every applicable score
(``"gaussian"``, ``"exact"`` where a closed form exists, ``"dsm"``, ``"kgmm"`` for at
most 16 coordinates, ``"auto"`` when gfdt has it) and compares the response with a
paired-noise truth. Systems: the three foreign ones of ``_foreign_systems.py`` (4-D
non-reversible double-well chain, periodic 16 x 16 tanh field, 1-D cubic CAM model),
the stochastic triad (no exact score), and gfdt's Ornstein-Uhlenbeck and Allen-Cahn.

**Dimension sweep.** Two families of non-reversible, non-Gaussian chains of
``_chains.py`` at d = 4, 8, 16, 32, 64 coordinates (``--dims``): ``ring`` (quartic
double wells on a ring, nearest-neighbour coupling and rotation) and ``tilted``
(asymmetric log-cosh double wells, log-cosh coupling of range 3, a random sparse
rotation). Each is fitted with the Gaussian score, the exact score (the floor) and
``score="auto"`` at its defaults, against the paired-noise truth of the response to
kicks of coordinate 0 (lags 0..39); the table gives the errors, the auto fit's wall
time and whether its quality report warned, and ``dimensions.png`` plots error and
training time against the dimension.

**Error.** The relative Frobenius error of the response over all lags 0..max_lag and
all entries,

    err = ||R_est - R_true||_F / ||R_true||_F,

with ``R[t, i, j]`` (vectors: response of coordinate i to a kick of coordinate j) or
``R[t, r]`` (homogeneous fields: response at offset r to a kick at the origin). One
number over all lags, because a response is used whole (``predict`` convolves all of
it). ``error`` uses the normalised estimate :math:`R(t) R(0)^{-1}` (the paper's
convention): the raw estimate with even the *exact* score carries the sampling error of
the Stein identity :math:`-E[x s^T] = I`, which grows with the dimension (on the 256-point
OU field at quick size it makes the exact score look worse than the Gaussian fit, whose
R(0) is I by construction). ``error_raw`` (``normalize=False``, ``ResponseEstimator``'s
default) is reported next to it. The same definitions serve every estimator; the truth's
own standard error in the norm is ``truth_rel_se``.

``--quick`` (CI size): the four foreign systems at small size with the Gaussian, exact
and ``auto`` scores only (``auto`` is DSM or KGMM, whichever it chooses; field fits at
600 steps), and the sweep at d = 4, 16 from 8 x 3000 samples plus the case built to fail
(the ring at d = 32 from 2 x 500 samples, on which the quality report must warn).

Usage::

    python benchmarks/generalization.py --quick --out results/generalization
    python benchmarks/generalization.py --systems double_well,tanh_field
    python benchmarks/generalization.py --dsm-options '{"max_steps": 3000}'
    python benchmarks/generalization.py --systems "" --families ring --dims 4,16,64

Writes ``results.json``, ``table.md``, ``errors.png`` and (with the sweep)
``dimensions.png`` to ``--out``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _chains import make_chain, stationary_states
from _chains import paired_response as chain_response
from _chains import simulate as chain_simulate
from _common import parser, save_figure, setup_logging
from _foreign_systems import (
    CubicCAM,
    DoubleWellChain,
    StochasticTriad,
    TanhField,
    paired_response,
    simulate,
)

import gfdt

logger = logging.getLogger("gfdt.benchmarks")
TRUTH_AC = Path(__file__).resolve().parents[1] / "data" / "allen_cahn_truth.nc"

# members x samples of the training data; truth states; max_lag (saved samples)
SYSTEMS = ("double_well", "tanh_field", "cam", "triad", "ou", "allen_cahn")
SIZES = {
    "quick": dict(members=8, samples=1000, field_samples=500, truth=2000, field_truth=300,
                  ac_members=8, ac_duration=200.0, ou_duration=400.0,
                  chain_members=8, chain_samples=3000, chain_truth=3000, dims=(4, 16),
                  estimators="gaussian,exact,auto", field_steps=600, max_time=60.0,
                  systems="double_well,tanh_field,cam,triad"),
    "default": dict(members=16, samples=4000, field_samples=2000, truth=20000,
                    field_truth=2000, ac_members=16, ac_duration=500.0, ou_duration=1000.0,
                    chain_members=32, chain_samples=6000, chain_truth=20000,
                    dims=(4, 8, 16, 32, 64), estimators="", field_steps=None,
                    max_time=240.0, systems=",".join(SYSTEMS)),
}
FAMILIES = ("ring", "tilted")
#: The case built to fail: the ring at 32 coordinates from 2 x 500 samples (the
#: quality report must warn).
LITTLE_DATA = dict(family="ring", d=32, members=2, samples=500, label="little_data")
CHAIN_MAX_LAG = 39  # saved samples (0.05 time units each)


@dataclass
class Case:
    """One system: training data, truth, exact score and how to call the estimator."""

    name: str
    data: Any  # list of (time, *state) arrays, or an xarray Dataset from gfdt.simulate
    truth: np.ndarray  # (L+1, ...) raw response
    truth_se: np.ndarray
    max_lag: int
    exact: Callable | str | None
    dim: int
    homogeneous: bool = False
    extra: dict = field(default_factory=dict)
    source: int | None = None  # the truth is the response to kicks of this coordinate only


def _foreign_case(name, system, cfg, rng_data, rng_truth, max_lag, *, homogeneous=False,
                  delta=0.02) -> Case:
    samples = cfg["field_samples"] if homogeneous else cfg["samples"]
    x = simulate(system, cfg["members"], samples, rng_data, spin_up=50.0)
    n_truth = cfg["field_truth"] if homogeneous else cfg["truth"]
    # truth states: an independent ensemble, stationary after its own spin-up
    starts = simulate(system, n_truth, 1, rng_truth, spin_up=50.0)[:, 0]
    sources = [0] if homogeneous else None
    r, se = paired_response(system, starts, max_lag, delta, rng_truth, sources=sources)
    if homogeneous:
        r, se = r[..., 0], se[..., 0]
    elif r.shape[1:] == (1, 1):
        r, se = r.reshape(-1), se.reshape(-1)
    exact = getattr(system, "exact_score", None)
    return Case(name, list(x), r, se, max_lag, exact, int(np.prod(system.state_shape)),
                homogeneous, {"system": repr(system), "truth_states": n_truth,
                              "delta": delta})


def make_case(name: str, size: str, seed: int) -> Case:
    """Simulate the training data and compute the truth of system ``name``."""
    cfg = SIZES[size]
    ss = np.random.SeedSequence([seed, SYSTEMS.index(name)])
    rng_data, rng_truth = (np.random.default_rng(s) for s in ss.spawn(2))
    if name == "double_well":
        return _foreign_case(name, DoubleWellChain(), cfg, rng_data, rng_truth, 39)
    if name == "tanh_field":
        return _foreign_case(name, TanhField(), cfg, rng_data, rng_truth, 20,
                             homogeneous=True, delta=0.05)
    if name == "cam":
        return _foreign_case(name, CubicCAM(), cfg, rng_data, rng_truth, 40)
    if name == "triad":
        case = _foreign_case(name, StochasticTriad(), cfg, rng_data, rng_truth, 40)
        case.exact = None
        return case
    if name == "ou":
        ou = gfdt.OrnsteinUhlenbeck(n=16)
        ds = gfdt.simulate(ou, n_members=cfg["members"], burn_in=1000.0,
                           duration=cfg["ou_duration"], save_interval=1.0,
                           seed=int(ss.generate_state(1)[0]), progress=False)
        r = ou.exact_response(np.arange(41) * 1.0).values
        return Case(name, ds, r, np.zeros_like(r), 40, "exact", 256, True,
                    {"system": repr(ou), "truth": "closed-form discrete propagator"})
    if name == "allen_cahn":
        ac = gfdt.AllenCahn()
        ds = gfdt.simulate(ac, n_members=cfg["ac_members"], burn_in=1000.0,
                           duration=cfg["ac_duration"], save_interval=1.0,
                           seed=int(ss.generate_state(1)[0]), progress=False)
        t = gfdt.io.load(TRUTH_AC).isel(lag=slice(0, 61))
        return Case(name, ds, t["response"].values, t["stderr"].values, 60, "exact",
                    ac.n**2, True, {"system": repr(ac), "truth": str(TRUTH_AC.name)})
    raise ValueError(f"unknown system {name!r}; choose from {SYSTEMS}")


def make_chain_case(family: str, d: int, size: str, seed: int, members: int | None = None,
                    samples: int | None = None, label: str | None = None) -> Case:
    """A chain of the dimension sweep: data (``members`` x ``samples``, default the
    size's), and the truth of kicks of coordinate 0."""
    cfg = SIZES[size]
    ss = np.random.SeedSequence([seed, 100 + FAMILIES.index(family), d])
    rng_data, rng_truth = (np.random.default_rng(s) for s in ss.spawn(2))
    system = make_chain(family, d)
    members = cfg["chain_members"] if members is None else members
    samples = cfg["chain_samples"] if samples is None else samples
    x = chain_simulate(system, members, samples, rng_data)
    starts = stationary_states(system, cfg["chain_truth"], rng_truth)
    r, se = chain_response(system, starts, CHAIN_MAX_LAG, 0.05, rng_truth, source=0)
    return Case(label or f"{family}_{d}", list(x), r, se, CHAIN_MAX_LAG, system.exact_score,
                d, extra={"system": repr(system), "family": family,
                          "truth_states": cfg["chain_truth"], "delta": 0.05,
                          "samples": members * samples, "label": label or ""},
                source=0)


def relative_error(est: np.ndarray, truth: np.ndarray) -> float:
    """||est - truth||_F / ||truth||_F over all lags and entries."""
    est = np.asarray(est, dtype=float).reshape(truth.shape)
    return float(np.linalg.norm(est - truth) / np.linalg.norm(truth))


def estimate(case: Case, score, options: dict | None = None
             ) -> tuple[np.ndarray, np.ndarray, float, Any]:
    """Normalised and raw GFDT responses of ``case`` with ``score``, wall seconds, fit
    (with ``cpu_s_``: the process's CPU seconds, to tell a slow fit from a shared
    machine)."""
    t0, c0 = time.perf_counter(), time.process_time()
    est = gfdt.ResponseEstimator(score=score, max_lag=case.max_lag, normalize=True,
                                 homogeneous=case.homogeneous or None, bootstrap=False,
                                 progress=False, score_options=options or None)
    est.fit(case.data)
    est.cpu_s_ = time.process_time() - c0
    r, raw = np.asarray(est.response_.values), np.asarray(est.response_raw_.values)
    if case.source is not None:  # (lag, d, d): the column of the kicked coordinate
        r, raw = r[..., case.source], raw[..., case.source]
    return r, raw, time.perf_counter() - t0, est


def scores_for(case: Case, dsm_options: dict, kgmm_options: dict,
               field_steps: int | None = None) -> dict[str, tuple]:
    """(score, score_options) of every estimator that applies to ``case``;
    ``field_steps``: the training steps of ``auto`` on fields (None: its default)."""
    out: dict[str, tuple] = {"gaussian": ("gaussian", None)}
    if case.exact is not None:
        out["exact"] = (case.exact, None)
    auto = {"n_threads": 1, "max_time": dsm_options.get("max_time"),
            "progress": dsm_options.get("progress")}
    if field_steps is not None and case.homogeneous:
        auto["dsm_options"] = {"max_steps": field_steps}
    if case.source is not None:  # the sweep: auto only (it is DSM on these vectors)
        return {**out, "auto": ("auto", auto)}
    out["dsm"] = ("dsm", {"n_threads": 1, **dsm_options})
    if case.dim <= 16:
        out["kgmm"] = ("kgmm", {"n_threads": 1, **kgmm_options})
    out["auto"] = ("auto", auto)
    return out


def run_case(case: Case, dsm_options: dict, kgmm_options: dict, only=None,
             field_steps: int | None = None) -> dict:
    rows = {}
    truth_rel_se = float(np.linalg.norm(case.truth_se) / np.linalg.norm(case.truth))
    for label, (score, opts) in scores_for(case, dsm_options, kgmm_options,
                                           field_steps).items():
        if only and label not in only:
            continue
        try:
            r, raw, secs, fit = estimate(case, score, opts)
        except Exception as exc:
            logger.warning("%s / %s failed: %s", case.name, label, exc)
            rows[label] = {"error": None, "seconds": None, "failed": repr(exc)}
            continue
        rows[label] = {"error": relative_error(r, case.truth),
                       "error_raw": relative_error(raw, case.truth), "seconds": round(secs, 1),
                       "cpu_s": round(fit.cpu_s_, 1)}
        quality = getattr(fit.score_model_, "quality_", None)
        if quality is not None:  # False: the estimator warned (ScoreQualityWarning)
            rows[label]["better_than_gaussian"] = bool(quality.better_than_gaussian)
            inner = getattr(fit.score_model_, "chosen_", fit.score_model_)
            rows[label]["train_s"] = round(float(getattr(inner, "train_time_", 0.0)), 1)
            rows[label]["steps"] = int(getattr(inner, "n_steps_", 0))
            if quality.fisher_gain is not None:  # the report's figures (vectors)
                rows[label]["fisher_gain"] = round(quality.fisher_gain, 4)
                rows[label]["fisher_gain_stderr"] = round(quality.fisher_gain_stderr, 4)
                rows[label]["coordinates_not_better"] = len(quality.coordinates_not_better)
        logger.info("%-12s %-9s error %.3f  raw %.3f  (%.1f s)", case.name, label,
                    rows[label]["error"], rows[label]["error_raw"], secs)
    return {"estimators": rows, "truth_rel_se": truth_rel_se, "max_lag": case.max_lag,
            "dim": case.dim, **case.extra}


def table(results: dict) -> str:
    labels = ["gaussian", "exact", "dsm", "kgmm", "auto"]
    lines = ["Relative error, normalised / raw response (seconds of fit), over lags 0..max_lag",
             "",
             "| system | " + " | ".join(labels) + " | truth s.e. |",
             "|---" * (len(labels) + 2) + "|"]
    for name, res in results.items():
        cells = []
        for lab in labels:
            row = res["estimators"].get(lab)
            if row is None or row["error"] is None:
                cells.append("-" if row is None else "failed")
            else:
                cells.append(f"{row['error']:.3f} / {row['error_raw']:.3f} "
                             f"({row['seconds']:.0f} s)")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['truth_rel_se']:.3f} |")
    return "\n".join(lines)


def sweep_table(results: dict) -> str:
    """The dimension sweep: errors of the Gaussian, exact and auto scores, fit time."""
    lines = ["Dimension sweep: relative error of the normalised response to kicks of "
             "coordinate 0, lags 0..39 (auto: wall seconds of the fit incl. the GFDT, "
             "training seconds and steps; warned: ScoreQualityWarning)", "",
             "| family | d | gaussian | exact | auto | auto / gaussian | auto / exact | "
             "auto fit wall (CPU) s | train s, steps | report: Fisher gain, coords not "
             "better | warned | truth s.e. |",
             "|---" * 12 + "|"]
    for res in results.values():
        e = res["estimators"]
        g, x, a = (e.get(k, {}).get("error") for k in ("gaussian", "exact", "auto"))
        auto = e.get("auto", {})

        def f(v):
            return "-" if v is None else f"{v:.3f}"

        fam = res["family"] + (" (2 x 500 samples)" if res.get("label") else "")
        lines.append(
            f"| {fam} | {res['dim']} | {f(g)} | {f(x)} | {f(a)} | "
            f"{f(a / g if a is not None and g else None)} | "
            f"{f(a / x if a is not None and x else None)} | {auto.get('seconds', '-')} "
            f"({auto.get('cpu_s', '-')}) | {auto.get('train_s', '-')}, "
            f"{auto.get('steps', '-')} | {auto.get('fisher_gain', '-')} +- "
            f"{auto.get('fisher_gain_stderr', '-')}, "
            f"{auto.get('coordinates_not_better', '-')} | "
            f"{'no' if auto.get('better_than_gaussian', True) else 'yes'} | "
            f"{res['truth_rel_se']:.3f} |")
    return "\n".join(lines)


def sweep_figure(results: dict, path: Path) -> None:
    """Error against dimension (left) and the auto fit's training time (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, at) = plt.subplots(1, 2, figsize=(10, 4))
    styles = {"gaussian": ":", "exact": "--", "auto": "-"}
    for k, fam in enumerate(sorted({r["family"] for r in results.values()})):
        rows = sorted((r for r in results.values() if r["family"] == fam
                       and not r.get("label")), key=lambda r: r["dim"])
        dims = [r["dim"] for r in rows]
        for lab, ls in styles.items():
            vals = [r["estimators"].get(lab, {}).get("error") for r in rows]
            ax.plot(dims, [np.nan if v is None else v for v in vals], ls, marker="o",
                    color=f"C{k}", label=f"{fam}: {lab}")
        at.plot(dims, [r["estimators"].get("auto", {}).get("seconds") or np.nan
                       for r in rows], "-", marker="o", color=f"C{k}", label=fam)
    for a in (ax, at):
        a.set_xscale("log", base=2)
        a.set_xlabel("coordinates d")
    ax.set_ylabel("relative error of the normalised response")
    ax.set_title("response error against dimension")
    at.set_ylabel("score='auto' fit (s, incl. the GFDT)")
    at.set_title("fit time (2 CPU cores)")
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(0.0, -0.18))
    at.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def figure(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["gaussian", "exact", "dsm", "kgmm", "auto"]
    names = list(results)
    fig, ax = plt.subplots(figsize=(1.6 * len(names) + 2, 4))
    w = 0.16
    for k, lab in enumerate(labels):
        vals = [results[n]["estimators"].get(lab, {}).get("error") for n in names]
        xs = [i + (k - 2) * w for i, v in enumerate(vals) if v is not None]
        ax.bar(xs, [v for v in vals if v is not None], w, label=lab)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("relative error of the normalised response")
    ax.set_title("GFDT response error against paired truth")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/generalization")
    p.add_argument("--systems", default=None,
                   help=f"comma-separated subset of {','.join(SYSTEMS)} (default: all; "
                        "--quick: the four foreign ones)")
    p.add_argument("--families", default=",".join(FAMILIES),
                   help=f"chain families of the dimension sweep ({','.join(FAMILIES)}; "
                        "empty: no sweep)")
    p.add_argument("--dims", default=None,
                   help="comma-separated dimensions of the sweep (default: 4,8,16,32,64; "
                        "--quick 4,16)")
    p.add_argument("--estimators", default="",
                   help="comma-separated subset of estimators (default: all; --quick: "
                        "gaussian,exact,auto)")
    p.add_argument("--dsm-options", default="{}", help="JSON options of score='dsm'")
    p.add_argument("--kgmm-options", default="{}", help="JSON options of score='kgmm'")
    args = p.parse_args(argv)
    setup_logging()
    import torch

    torch.set_num_threads(1)
    cfg = SIZES[args.size]
    # the 5-minute budget per fit: training stops after 240 s whatever max_steps says
    # (--quick: 60 s, and auto only: it is DSM or KGMM, whichever it chooses)
    dsm_options = {"progress": False if args.no_progress else None,
                   "max_time": cfg["max_time"], **json.loads(args.dsm_options)}
    kgmm_options = {"progress": False if args.no_progress else None,
                    **json.loads(args.kgmm_options)}
    only = [s for s in (args.estimators or cfg["estimators"]).split(",") if s]
    t_start = time.perf_counter()
    results, sweep = {}, {}
    dims = (SIZES[args.size]["dims"] if args.dims is None
            else tuple(int(v) for v in args.dims.split(",") if v))
    jobs = [(name, lambda n=name: make_case(n, args.size, args.seed), results)
            for name in (cfg["systems"] if args.systems is None
                         else args.systems).split(",") if name]
    families = [f for f in args.families.split(",") if f]
    jobs += [(f"{fam}_{d}", lambda f=fam, d=d: make_chain_case(f, d, args.size, args.seed),
              sweep) for fam in families for d in dims]
    if LITTLE_DATA["family"] in families:
        jobs.append(("little_data", lambda: make_chain_case(
            size=args.size, seed=args.seed, **LITTLE_DATA), sweep))
    for name, make, into in jobs:
        t0 = time.perf_counter()
        case = make()
        setup_s = time.perf_counter() - t0
        logger.info("%s: data and truth in %.1f s", name, setup_s)
        into[name] = {**run_case(case, dsm_options, kgmm_options, only, cfg["field_steps"]),
                      "setup_s": round(setup_s, 1),
                      "total_s": round(time.perf_counter() - t0, 1)}
    md = "\n\n".join(([table(results)] if results else [])
                      + ([sweep_table(sweep)] if sweep else []))
    print(md)
    total = time.perf_counter() - t_start
    print(f"\ntotal wall time {total:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    doc = {"size": args.size, "seed": args.seed, "dsm_options": dsm_options,
           "kgmm_options": kgmm_options, "error": "relative Frobenius, normalised and raw "
           "response, all lags 0..max_lag", "results": results, "sweep": sweep,
           "total_s": round(total, 1), "gfdt": gfdt.__version__}
    (args.out / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    (args.out / "table.md").write_text(md + "\n")
    if results:
        figure(results, args.out / "errors.png")
    if sweep:
        sweep_figure(sweep, args.out / "dimensions.png")
    return doc


if __name__ == "__main__":
    main()
