"""Out-of-core GFDT: fit data 4x larger than the memory budget, and measure the peak.

The script simulates the (fast-mixing) OU field into netCDF segment files four times
the size of the memory budget, then fits the Gaussian-score GFDT in fresh
subprocesses:

* ``baseline``: imports gfdt, opens the files with ``xarray.open_mfdataset`` (Dask
  chunks along time) and reads one sample (so the reading machinery is loaded);
* ``out_of_core``: the same, then ``ResponseEstimator(memory_budget=...)`` on the
  Dask-backed data;
* ``in_memory``: the same, then loads all data and fits without a budget.

Each child is started by a small launcher process, which reads the child's peak
resident set size with ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` (a launcher has no
other child, and is small, so nothing else is mixed in; Linux carries a parent's peak
into a forked child, which is why the measuring parent must not be large); the child
also reports its ``VmHWM`` from ``/proc/self/status``. The memory a fit used is the
child's peak minus the baseline child's peak. A second run of each fit under
``tracemalloc`` gives the peak of the memory allocated by Python and numpy during the
fit (for the in-memory fit: from loading the data on). Both are reported against the
budget, with the largest difference between the two answers.

Usage::

    python benchmarks/out_of_core.py --quick --out results/out_of_core   # 32 MB budget
    python benchmarks/out_of_core.py                                     # 256 MB budget
    python benchmarks/out_of_core.py --budget 1GB

Writes ``results.json`` (shared schema) to ``--out`` and prints a summary.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = {
    # memory budget, grid, members, samples per netCDF segment, Dask chunk (samples), lags
    "quick": dict(budget="32MB", n=32, n_members=2, file_samples=512, chunk=128, max_lag=20),
    "default": dict(budget="256MB", n=32, n_members=4, file_samples=2048, chunk=512,
                    max_lag=50),
    "paper": dict(budget="1GB", n=32, n_members=8, file_samples=4096, chunk=1024,
                  max_lag=100),
}
FAST_OU = dict(dt=1 / 16, lam=0.5, kappa=0.02, A=0.3, eps2=0.004)
SAVE_INTERVAL = 0.5
logger = logging.getLogger("gfdt.benchmarks")


# ----------------------------------------------------------------------------- child
def child(argv: list[str]) -> None:
    """One measurement in a fresh process; prints a JSON line."""
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["simulate", "baseline", "out_of_core", "in_memory"])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--chunk", type=int, required=True)
    p.add_argument("--budget", required=True)
    p.add_argument("--max-lag", type=int, required=True)
    p.add_argument("--save", type=Path)
    p.add_argument("--trace", action="store_true")
    a = p.parse_args(argv)
    import tracemalloc

    import numpy as np
    import xarray as xr

    import gfdt

    if a.mode == "simulate":  # in a child too: the parent stays small
        cfg = json.loads(a.budget)
        ou = gfdt.systems.OrnsteinUhlenbeck(n=cfg["n"], **FAST_OU)
        gfdt.simulate(ou, n_members=cfg["n_members"], burn_in=40.0,
                      duration=cfg["per_member"] * SAVE_INTERVAL, save_interval=SAVE_INTERVAL,
                      seed=cfg["seed"], n_workers=cfg["workers"], output=a.data,
                      segment=cfg["file_samples"] * SAVE_INTERVAL, progress=cfg["progress"])
        print(json.dumps({"mode": "simulate"}))
        return
    files = sorted(a.data.glob("segment_*.nc"))
    lazy = xr.open_mfdataset(files, combine="by_coords", chunks={"time": a.chunk},
                             data_vars="minimal", coords="minimal", compat="override",
                             join="exact")
    first = lazy.u.isel(member=0, time=0).values  # load the reading machinery
    assert first.shape == (lazy.sizes["y"], lazy.sizes["x"])
    out = {"mode": a.mode, "files": len(files)}
    if a.mode != "baseline":
        if a.trace:
            tracemalloc.start()
        t0 = time.perf_counter()
        if a.mode == "in_memory":
            data, budget = lazy.load(), None
        else:
            data, budget = lazy, a.budget
        est = gfdt.ResponseEstimator(score="gaussian", max_lag=a.max_lag, bootstrap=False,
                                     memory_budget=budget, progress=False).fit(data)
        out["fit_s"] = time.perf_counter() - t0
        if a.trace:
            out["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        if a.save is not None:
            np.save(a.save, est.response_raw_.values)
        out["n_samples"] = est.n_samples_
    with open("/proc/self/status") as fh:
        out["vm_hwm"] = next(int(line.split()[1]) * 1024 for line in fh
                             if line.startswith("VmHWM"))
    print(json.dumps(out))


_LAUNCHER = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(proc.stderr)
out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {}
out["ru_maxrss"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
out["returncode"] = proc.returncode
print(json.dumps(out))
"""


def run_child(args: list[str]) -> dict:
    """Run one measurement in a fresh process, started by a small launcher."""
    cmd = [sys.executable, "-c", _LAUNCHER, sys.executable, str(Path(__file__).resolve()),
           "--child", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    out = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
    if proc.returncode != 0 or out.get("returncode") != 0:
        raise RuntimeError(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return out


# ---------------------------------------------------------------------------- parent
def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        child(argv[1:])
        return {}
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import numpy as np
    from _common import Timer, parser, setup_logging, write_results

    import gfdt
    from gfdt._memory import format_bytes, parse_bytes

    p = parser(__doc__.splitlines()[0], "results/out_of_core")
    p.add_argument("--budget", default=None, help="memory budget (default: by size)")
    args = p.parse_args(argv)
    setup_logging()
    cfg = dict(SIZES[args.size])
    if args.budget is not None:
        cfg["budget"] = args.budget
    budget = parse_bytes(cfg["budget"])
    ou = gfdt.systems.OrnsteinUhlenbeck(n=cfg["n"], **FAST_OU)  # parameters only
    state_bytes = 8 * ou.n * ou.n
    n_samples = -(-4 * budget // state_bytes)  # data = 4 x budget
    per_member = -(-n_samples // cfg["n_members"])
    per_member = cfg["file_samples"] * -(-per_member // cfg["file_samples"])
    timer = Timer()
    with tempfile.TemporaryDirectory(prefix="gfdt_ooc_") as tmp:
        tmp = Path(tmp)
        sim = {**cfg, "per_member": per_member, "seed": args.seed, "workers": args.workers,
               "progress": False if args.no_progress else None}
        with timer("simulate"):
            run_child(["simulate", "--data", str(tmp / "data"), "--chunk", "0",
                       "--budget", json.dumps(sim), "--max-lag", "0"])
        files = sorted((tmp / "data").glob("segment_*.nc"))
        disk = sum(f.stat().st_size for f in files)
        data_bytes = cfg["n_members"] * per_member * state_bytes
        logger.info("data: %s in %d files (%s of samples), budget %s", format_bytes(disk),
                    len(files), format_bytes(data_bytes), format_bytes(budget))
        common = ["--data", str(tmp / "data"), "--chunk", str(cfg["chunk"]),
                  "--budget", str(budget), "--max-lag", str(cfg["max_lag"])]
        res = {}
        with timer("baseline"):
            res["baseline"] = run_child(["baseline", *common])
        for mode in ("out_of_core", "in_memory"):
            with timer(mode):
                res[mode] = run_child([mode, *common, "--save", str(tmp / f"{mode}.npy")])
            with timer(f"{mode}_tracemalloc"):
                res[f"{mode}_traced"] = run_child([mode, *common, "--trace"])
        a = np.load(tmp / "out_of_core.npy")
        b = np.load(tmp / "in_memory.npy")
    rel_diff = float(np.abs(a - b).max() / np.abs(b).max())
    base = res["baseline"]["ru_maxrss"]
    memory = {
        "budget_bytes": budget,
        "data_bytes": data_bytes,
        "data_on_disk_bytes": disk,
        "files": len(files),
        "baseline_rss_bytes": base,
        "out_of_core_rss_bytes": res["out_of_core"]["ru_maxrss"],
        "in_memory_rss_bytes": res["in_memory"]["ru_maxrss"],
        "out_of_core_peak_bytes": res["out_of_core"]["ru_maxrss"] - base,
        "in_memory_peak_bytes": res["in_memory"]["ru_maxrss"] - base,
        "out_of_core_vm_hwm_peak_bytes": (res["out_of_core"]["vm_hwm"]
                                          - res["baseline"]["vm_hwm"]),
        "in_memory_vm_hwm_peak_bytes": res["in_memory"]["vm_hwm"] - res["baseline"]["vm_hwm"],
        "out_of_core_tracemalloc_peak_bytes": res["out_of_core_traced"]["tracemalloc_peak"],
        "in_memory_tracemalloc_peak_bytes": res["in_memory_traced"]["tracemalloc_peak"],
        "fit_s": {"out_of_core": res["out_of_core"]["fit_s"],
                  "in_memory": res["in_memory"]["fit_s"]},
    }
    memory["within_budget"] = bool(memory["out_of_core_peak_bytes"] < budget
                                   and memory["out_of_core_tracemalloc_peak_bytes"] < budget)
    lines = [
        f"budget                      {format_bytes(budget)}",
        f"data                        {format_bytes(data_bytes)} "
        f"({memory['data_bytes'] / budget:.1f} x budget; {len(files)} files, "
        f"{format_bytes(disk)} on disk)",
        f"baseline RSS                {format_bytes(base)} (import gfdt, open files)",
        f"out-of-core fit, RSS peak   {format_bytes(memory['out_of_core_peak_bytes'])} "
        f"above baseline ({memory['out_of_core_peak_bytes'] / budget:.2f} x budget; "
        f"VmHWM: {format_bytes(memory['out_of_core_vm_hwm_peak_bytes'])})",
        f"out-of-core fit, tracemalloc {format_bytes(memory['out_of_core_tracemalloc_peak_bytes'])}"
        f" ({memory['out_of_core_tracemalloc_peak_bytes'] / budget:.2f} x budget)",
        f"in-memory fit, RSS peak     {format_bytes(memory['in_memory_peak_bytes'])} "
        "above baseline",
        f"in-memory fit, tracemalloc  {format_bytes(memory['in_memory_tracemalloc_peak_bytes'])}",
        f"fit time                    out-of-core {memory['fit_s']['out_of_core']:.1f} s, "
        f"in memory {memory['fit_s']['in_memory']:.1f} s",
        f"max |difference| / max |R|  {rel_diff:.2e}",
        f"peak < budget               {memory['within_budget']}",
    ]
    print("\n".join(lines))
    config = {"size": args.size, "seed": args.seed, "save_interval": SAVE_INTERVAL,
              "samples_per_member": per_member, **cfg, **ou.parameters()}
    write_results(args.out, system="ou", config=config, timings=timer.timings,
                  reference="in_memory_fit",
                  errors={"gaussian_score": {"max_rel_diff": rel_diff}}, memory=memory)
    return memory


if __name__ == "__main__":
    main()
