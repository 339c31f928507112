"""Coverage of the bootstrap bands: nominal 95% against closed forms on AR(1)/VAR(1) data.

For a stationary VAR(1) :math:`x_{t+1} = A x_t + \\xi_t` (1-D: AR(1),
:math:`A = \\phi`) the GFDT response with the Gaussian score is, for infinite data,
:math:`R(k) = C(k) C(0)^{-1} = A^k`, raw and normalised alike. Each of ``n_sim``
independent simulations (stationary start, seeded) is fitted by
``ResponseEstimator(score="gaussian", max_lag=12, normalize=...)``; a band
:math:`\\hat R \\pm 1.96\\,\\mathrm{se}` (``response_stderr_``) covers the truth when
:math:`|\\hat R - A^k| \\le 1.96\\,\\mathrm{se}`. A correct 95% band covers in 95% of the
simulations. The Monte Carlo error of the coverage pooled over lags 1-12 is about
:math:`0.4/\\sqrt{n_{sim}}` (the 12 lags of one simulation are covered or missed
together), 0.013 with 1000 simulations; the ``±`` of each lag in the table is its
binomial error.

Beside the coverage the table gives the median standard error (over simulations and
entries), the spread of :math:`\\hat R` over the simulations (the true standard error,
RMS over the matrix entries) and their ratio, the median number of bootstrap blocks,
and for the 1-D case Bartlett's closed form
:math:`\\mathrm{var}\\, r_k \\approx [(1 + \\phi^2)(1 - \\phi^{2k})/(1 - \\phi^2) -
2k\\phi^{2k}]/T`.

Systems: AR(1) with phi = 0.9 and a 2x2 VAR(1) with eigenvalues 0.7 and 0.8 (long
memory), their shorter-memory versions (phi = 0.5; eigenvalues 0.5 and 0.6), the
regime ``tests/test_coverage.py`` checks, and AR(1) with phi = 0.8 at 1200 samples
(100 years of a monthly index; 1000 simulations in the default size). The block length
is the default (Politis-White on the lagged products, floor max_lag + 1); the table's
``blocks`` column is the median number of blocks. ``--systems`` picks a subset; the
summary lines give the pooled coverage and the share of fits without a
BootstrapWarning.

Usage::

    python benchmarks/stderr_coverage.py --quick      # under a minute on 2 cores
    python benchmarks/stderr_coverage.py              # more simulations and a longer series

Writes ``coverage.csv``, ``coverage.md`` and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from pathlib import Path

import numpy as np
from _common import parser, setup_logging
from scipy.linalg import solve_discrete_lyapunov

import gfdt
from gfdt._atomic import atomic_write_text

logger = logging.getLogger("gfdt.benchmarks")

#: Systems: 1-D AR(1) with phi = 0.9 (a monthly climate index: ENSO-like memory of
#: ~10 months), and a coupled 2x2 VAR(1) with unit innovations.
SYSTEMS = {
    "ar1": np.array([[0.9]]),
    # 100 years of monthly data of an index with a decorrelation time of ~5 months (the
    # case of the issue on short real records), at its own length (CASE_LENGTHS)
    "ar1_phi0.8": np.array([[0.8]]),
    "var1_2x2": np.array([[0.7, 0.2], [0.0, 0.8]]),
    # shorter memory: enough bootstrap blocks at these lengths (the reliable regime,
    # as in tests/test_coverage.py)
    "ar1_phi0.5": np.array([[0.5]]),
    "var1_2x2_fast": np.array([[0.5, 0.2], [0.0, 0.6]]),
}
SIZES = {
    # simulations per configuration (per length when a tuple), series lengths (samples):
    # the pooled coverage of one configuration has a Monte Carlo error of about 0.4 /
    # sqrt(n_sim) (its 12 lags move together), so 1000 simulations on the short series
    "quick": dict(n_sim=200, lengths=(732,)),
    "default": dict(n_sim=(1000, 300), lengths=(732, 4000)),
    "paper": dict(n_sim=1000, lengths=(732, 4000)),
}
#: Systems measured at their own lengths (samples) instead of the size's lengths.
CASE_LENGTHS = {"ar1_phi0.8": (1200,)}
#: Simulations of the CASE_LENGTHS systems per configuration (default and paper sizes).
CASE_SIMS = {"quick": 200, "default": 1000, "paper": 1000}
MAX_LAG = 12
REPORT_LAGS = (1, 3, 6, 12)
Z95 = 1.959964


def simulate(A: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A stationary VAR(1) path of ``n`` samples, unit innovations, shape (n, d)."""
    d = A.shape[0]
    c0 = solve_discrete_lyapunov(A, np.eye(d))
    x = np.empty((n, d))
    x[0] = np.linalg.cholesky(c0) @ rng.standard_normal(d)
    z = rng.standard_normal((n, d))
    for t in range(1, n):
        x[t] = A @ x[t - 1] + z[t]
    return x


def bartlett_se(phi: float, k: int, n: int) -> float:
    var = ((1 + phi**2) * (1 - phi ** (2 * k)) / (1 - phi**2) - 2 * k * phi ** (2 * k)) / n
    return float(np.sqrt(var))


def run_config(name: str, A: np.ndarray, n: int, normalize: bool, n_sim: int,
               seed: int) -> tuple[list[dict], dict]:
    """Coverage per lag for one system, length and normalisation."""
    truth = np.stack([np.linalg.matrix_power(A, k) for k in range(MAX_LAG + 1)])
    est_r, est_se, blocks, warned = [], [], [], {}
    streams = np.random.SeedSequence([seed, n, int(normalize)]).spawn(n_sim)
    t0 = time.perf_counter()
    for k, ss in enumerate(streams):
        rng = np.random.default_rng(ss)
        x = simulate(A, n, rng)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = gfdt.ResponseEstimator(score="gaussian", max_lag=MAX_LAG, normalize=normalize,
                                         seed=int(rng.integers(2**31)), progress=False).fit(x)
        for w in caught:
            key = w.category.__name__
            warned[key] = warned.get(key, 0) + 1
        d = A.shape[0]
        blocks.append(n // max(1, int(getattr(est, "block_length_", n))))
        est_r.append(est.response_.values.reshape(MAX_LAG + 1, d, d))
        est_se.append(est.response_stderr_.values.reshape(MAX_LAG + 1, d, d))
        if (k + 1) % 50 == 0:
            logger.info("%s n=%d normalize=%s: %d/%d", name, n, normalize, k + 1, n_sim)
    R, S = np.stack(est_r), np.stack(est_se)
    covered = np.abs(R - truth) <= Z95 * S
    rows = []
    for lag in range(1, MAX_LAG + 1):
        emp_sd = float(np.sqrt(np.mean(R[:, lag].var(axis=0, ddof=1))))
        mean_se = float(np.sqrt(np.mean(S[:, lag] ** 2)))
        median_se = float(np.median(S[:, lag]))
        cov = float(covered[:, lag].mean())
        row = {"system": name, "length": n, "normalize": normalize, "lag": lag,
               "coverage": cov, "mc_error": float(np.sqrt(max(cov * (1 - cov), 1e-4)
                                                          / covered[:, lag].size)),
               "median_stderr": median_se, "rms_stderr": mean_se, "empirical_sd": emp_sd,
               "ratio": median_se / emp_sd if emp_sd > 0 else float("nan"),
               "median_blocks": float(np.median(blocks)),
               "bias": float(np.mean(R[:, lag] - truth[lag]))}
        if A.shape == (1, 1):
            row["bartlett_se"] = bartlett_se(float(A[0, 0]), lag, n)
        rows.append(row)
    info = {"seconds": round(time.perf_counter() - t0, 2), "warnings": warned, "n_sim": n_sim,
            "no_bootstrap_warning": 1 - warned.get("BootstrapWarning", 0) / n_sim,
            "median_block_length": float(np.median([n / b for b in blocks])),
            "coverage_lags_1_12": float(covered[:, 1:].mean())}
    return rows, info


def table(rows: list[dict], lags=REPORT_LAGS) -> str:
    """Markdown table of the reported lags."""
    head = ("| system | T | normalize | lag | coverage | median se | empirical sd | "
            "median se / sd | blocks | Bartlett se |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if r["lag"] not in lags:
            continue
        bart = f"{r['bartlett_se']:.3f}" if "bartlett_se" in r else ""
        lines.append(f"| {r['system']} | {r['length']} | {r['normalize']} | {r['lag']} | "
                     f"{r['coverage']:.3f} ± {r['mc_error']:.3f} | {r['median_stderr']:.3f} | "
                     f"{r['empirical_sd']:.3f} | {r['ratio']:.2f} | {r['median_blocks']:g} | "
                     f"{bart} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/coverage")
    p.add_argument("--n-sim", type=int, default=None, help="simulations per configuration")
    p.add_argument("--systems", default=",".join(SYSTEMS),
                   help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    args = p.parse_args(argv)
    setup_logging()
    cfg = dict(SIZES[args.size])
    if args.n_sim is not None:
        cfg["n_sim"] = args.n_sim
    rows, infos = [], {}
    for name in args.systems.split(","):
        if name not in SYSTEMS:
            raise SystemExit(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")
        A = SYSTEMS[name]
        sims = cfg["n_sim"] if isinstance(cfg["n_sim"], tuple) else (cfg["n_sim"],) * len(
            cfg["lengths"])
        for n, n_sim in zip(CASE_LENGTHS.get(name, cfg["lengths"]), sims, strict=False):
            if name in CASE_LENGTHS and args.n_sim is None:
                n_sim = CASE_SIMS[args.size]
            for normalize in (False, True):
                r, info = run_config(name, A, n, normalize, n_sim, args.seed)
                rows += r
                infos[f"{name}/T={n}/normalize={normalize}"] = info
                logger.info("%s T=%d normalize=%s: coverage (lags 1-12) %.3f in %.1f s",
                            name, n, normalize, info["coverage_lags_1_12"], info["seconds"])
    md = table(rows)
    print(md)
    for key, info in infos.items():
        print(f"{key}: coverage over lags 1-12 {info['coverage_lags_1_12']:.3f}, "
              f"{info['seconds']} s, warnings {info['warnings'] or 'none'} (of "
              f"{info['n_sim']} fits; {info['no_bootstrap_warning']:.1%} without a "
              "BootstrapWarning)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0]) + (["bartlett_se"] if "bartlett_se" not in rows[0] else [])
    csv = [",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]
    atomic_write_text(out / "coverage.csv", "\n".join(csv) + "\n")
    atomic_write_text(out / "coverage.md", md + "\n")
    doc = {"benchmark": "coverage", "size": args.size, "seed": args.seed, "config": cfg,
           "max_lag": MAX_LAG, "systems": {k: v.tolist() for k, v in SYSTEMS.items()},
           "summary": infos, "rows": rows, "gfdt_version": gfdt.__version__}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    main()
