"""Memory plans on real gridded files under an address-space limit (``ulimit -v``).

Each case runs in its own process whose address space is capped with
``RLIMIT_AS`` (what ``ulimit -v`` sets; default 4,000,000 kB), so the default budget
(half of the memory available, see :func:`gfdt._memory.available_memory`) is derived
from the cap. A case either finishes, or raises the planned error
(:class:`gfdt.response.MemoryPlanError`, or another ValueError raised before any large
allocation); the table also flags what must never happen: a process killed by the OS
or numpy's own ``MemoryError``.

Files (pip packages, installed offline): ``iris-sample-data``'s ``A1B_north_america.nc``
(240 yearly air temperatures on a 37 x 49 grid: 1813 points) and a 20 x 20 box of it,
and ``ostia_monthly.nc`` (54 monthly SSTs, 18 x 432, land as NaN) with its land dropped.
Cases: the default fit (``ResponseEstimator()``: Gaussian score, ``max_lag=100``,
bootstrap), the same with ``max_lag=12``, ``null_bands`` (100 red-noise
surrogates) of each, and the route the rank error names, ``reduce=gfdt.EOF()``
(``fit+EOF``, ``null_bands+EOF``; ``--quick``: the A1B field's only).

Usage::

    python benchmarks/memory_plan.py --quick    # the default fits (seconds)
    python benchmarks/memory_plan.py            # with max_lag=12 and null_bands

Writes ``memory_plan.md`` and ``results.json`` to ``--out``.
"""

from __future__ import annotations

import json
import logging
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import parser, setup_logging

from gfdt._atomic import atomic_write_text

logger = logging.getLogger("gfdt.benchmarks")

CHILD = r'''
import json, resource, sys, time, warnings
limit = int(sys.argv[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
case, kind, max_lag = sys.argv[2], sys.argv[3], sys.argv[4]
out = {"case": case, "kind": kind, "max_lag": max_lag}
t0 = time.perf_counter()
try:
    import numpy as np
    import xarray as xr
    import gfdt
    from gfdt._memory import default_budget
    from gfdt.response import MemoryPlanError
    from importlib.resources import files
    root = files("iris_sample_data") / "sample_data"
    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    if case.startswith("A1B"):
        da = xr.open_dataset(root / "A1B_north_america.nc", decode_times=coder)[
            "air_temperature"].load().astype(float)
        if case == "A1B box":
            da = da.isel(latitude=slice(10, 30), longitude=slice(10, 30))
    else:
        da = xr.open_dataset(root / "ostia_monthly.nc", decode_times=coder)[
            "surface_temperature"].load().astype(float)
        da = da.stack(space=("latitude", "longitude")).dropna("space", how="any")
        da = da.reset_index("space")  # plain positions: one state dim
    out["shape"] = list(da.shape)
    out["default_budget"] = default_budget()[1]
    kw = {} if max_lag == "default" else {"max_lag": int(max_lag)}
    if kind.endswith("+EOF"):  # the reduced route the rank error names
        kw["reduce"] = gfdt.EOF()
    est = gfdt.ResponseEstimator(progress=False, **kw)
    warnings.simplefilter("ignore")
    try:
        if kind.startswith("fit"):
            est.fit(da)
            out["outcome"] = "finished"
            out["plan"] = est.memory_plan_.describe()
        else:
            bands = est.null_bands(da)
            out["outcome"] = "finished"
            out["plan"] = "null_bands " + str(bands.attrs.get("center", "exact median"))
    except MemoryPlanError as exc:
        out["outcome"] = "planned error (MemoryPlanError)"
        out["plan"] = str(exc)
    except ValueError as exc:
        out["outcome"] = "ValueError before allocating"
        out["plan"] = str(exc)
except MemoryError as exc:
    out["outcome"] = "numpy MemoryError"
    out["plan"] = str(exc)
out["seconds"] = round(time.perf_counter() - t0, 2)
out["max_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
print("RESULT " + json.dumps(out))
'''

CASES = [("A1B", "A1B full field"), ("A1B box", "A1B 20 x 20 box"),
         ("OSTIA", "OSTIA, land dropped")]


def run_case(case: str, kind: str, max_lag: str, limit_kb: int, timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-c", CHILD, str(limit_kb), case, kind,
                               max_lag], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"case": case, "kind": kind, "max_lag": max_lag, "outcome": "timeout",
                "seconds": round(time.perf_counter() - t0, 1)}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    how = (f"killed by signal {-proc.returncode}" if proc.returncode < 0
           else f"exit {proc.returncode}")
    return {"case": case, "kind": kind, "max_lag": max_lag, "outcome": f"died ({how})",
            "plan": proc.stderr[-2000:], "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/memory_plan")
    p.add_argument("--limit-kb", type=int, default=4_000_000,
                   help="address-space limit of each case in kB (ulimit -v)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per case")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of data:call:max_lag, e.g. 'A1B box:fit:default'")
    args = p.parse_args(argv)
    setup_logging()
    runs = [(c, "fit", "default") for c, _ in CASES] + [("A1B", "fit+EOF", "default")]
    if args.size != "quick":
        runs += [(c, "fit", "12") for c, _ in CASES]
        runs += [(c, "null_bands", "default") for c, _ in CASES]
        runs += [(c, "null_bands", "12") for c, _ in CASES]
        runs += [(c, "fit+EOF", "default") for c, _ in CASES[1:]]
        runs += [(c, "null_bands+EOF", "12") for c, _ in CASES]
    if args.only:
        runs = [tuple(item.split(":")) for item in args.only.split(",")]
    rows = []
    for case, kind, lag in runs:
        r = run_case(case, kind, lag, args.limit_kb, args.timeout)
        logger.info("%s %s max_lag=%s: %s in %s s", case, kind, lag, r["outcome"],
                    r.get("seconds"))
        rows.append(r)
    names = dict(CASES)
    lines = [f"Address-space limit {args.limit_kb} kB (ulimit -v); "
             f"{rows[0].get('default_budget', '')}", "",
             "| data | call | max_lag | outcome | s | max RSS MB | plan / error |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        plan = " ".join(str(r.get("plan", "")).split())
        lines.append(f"| {names[r['case']]} {r.get('shape', '')} | {r['kind']} | "
                     f"{r['max_lag']} | {r['outcome']} | {r.get('seconds', '')} | "
                     f"{r.get('max_rss_MB', '')} | {plan} |")
    md = "\n".join(lines)
    print(md)
    bad = [r for r in rows if r["outcome"].startswith(("died", "numpy", "timeout"))]
    print(f"\n{len(rows) - len(bad)} of {len(rows)} cases finished or raised the planned "
          f"error; {len(bad)} killed, timed out or numpy MemoryError")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "memory_plan.md", md + "\n")
    doc = {"benchmark": "memory_plan", "limit_kb": args.limit_kb, "rows": rows}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    resource.getrusage(resource.RUSAGE_CHILDREN)
    return doc


if __name__ == "__main__":
    main()
