"""Shared plumbing of the benchmark scripts: sizes, output folder, results.json."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import gfdt
from gfdt._atomic import atomic_path, atomic_write_text
from gfdt.metrics import response_error, summarize_errors

logger = logging.getLogger("gfdt.benchmarks")


def parser(description: str, default_out: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    size = p.add_mutually_exclusive_group()
    size.add_argument("--quick", dest="size", action="store_const", const="quick",
                      help="CI size (a few minutes on 2 cores)")
    size.add_argument("--paper", dest="size", action="store_const", const="paper",
                      help="the paper's sizes (long; a GPU helps where scores are learned)")
    p.set_defaults(size="default")
    p.add_argument("--out", type=Path, default=Path(default_out),
                   help=f"output folder (default: {default_out})")
    p.add_argument("--seed", type=int, default=0, help="root random seed")
    p.add_argument("--workers", type=int, default=None, help="threads (default: all cores)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


class Timer:
    """Collects named wall-clock timings in seconds."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        yield
        self.timings[name] = round(time.perf_counter() - t0, 3)
        logger.info("%s: %.2f s", name, self.timings[name])


def errors_table(estimates: dict[str, xr.DataArray], reference,
                 max_lag: int | None = None) -> tuple[dict[str, dict], dict[str, xr.Dataset]]:
    """Per-method per-lag errors and their summaries over lags 0..max_lag."""
    per_lag, summary = {}, {}
    for name, est in estimates.items():
        e = response_error(est, reference)
        if max_lag is not None:
            e = e.isel(lag=slice(0, max_lag + 1))
        per_lag[name] = e
        summary[name] = summarize_errors(e)
    return summary, per_lag


def write_results(out: Path, *, system: str, config: dict[str, Any],
                  timings: dict[str, float], reference: str,
                  errors: dict[str, dict], **extra: Any) -> Path:
    """Write results.json in the schema shared by every benchmark."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {
        "system": system,
        "config": config,
        "timings_s": timings,
        "reference": reference,
        "errors": errors,
        **extra,
        "environment": {
            "gfdt": gfdt.__version__,
            "python": platform.python_version(),
            "numpy": np.__version__,
            "machine": platform.machine(),
        },
    }
    path = out / "results.json"
    atomic_write_text(path, json.dumps(doc, indent=2, default=float), "out")
    logger.info("wrote %s", path)
    return path


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Write a figure atomically (the format from the suffix of ``path``)."""
    path = Path(path)
    with atomic_path(path, "path") as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    logger.info("wrote %s", path)
    return path


def stack_responses(responses: dict[str, xr.DataArray]) -> xr.Dataset:
    """One Dataset with a response variable per method (for response.nc)."""
    data = {}
    for name, r in responses.items():
        da = r["response"] if isinstance(r, xr.Dataset) else r
        data[f"response_{name}"] = da.drop_attrs().assign_attrs(
            long_name=f"response to a unit impulse at the origin ({name})", units="1")
        if isinstance(r, xr.Dataset) and "stderr" in r:
            data[f"stderr_{name}"] = r["stderr"].drop_attrs().assign_attrs(
                long_name=f"standard error ({name})", units="1")
    ds = xr.Dataset(data)
    ds.attrs["Conventions"] = "CF-1.10"
    ds.attrs["source"] = f"gfdt {gfdt.__version__} benchmark"
    return ds


def peaks(r: xr.DataArray) -> dict:
    """Peak value and lag of R31, R51, R71 (offsets 2, 4, 6 points in +x, y offset 0)."""
    out = {}
    for off in (2, 4, 6):
        line = r.isel(y=0, x=off)
        i = int(line.argmax("lag"))
        out[f"R{off + 1}1"] = {"peak": float(line[i]), "lag": float(line["lag"][i])}
    return out
