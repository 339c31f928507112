"""Gridded climate fields with a known response: EOF-reduced GFDT against full-grid Gaussian.

Synthetic lat-lon fields with a land mask (``_climate_fields.py``): a slow part in 4
smooth non-orthogonal patterns with a non-normal linear drift (closed-form response),
or in 3 patterns whose amplitudes are coupled double wells (paired-ensemble truth),
plus a fast remainder. For record lengths from shorter than the grid to long, the
relative response error to a regional forcing patch over lags 1-12 of:

* full-grid Gaussian GFDT on the ocean points (where it runs: more samples than points;
  otherwise the rank error it raises is recorded);
* EOF + Gaussian at the default number of modes (with the default bootstrap) and at
  several fixed ``n_modes``;
* EOF + ``score="auto"`` (KGMM or MLP DSM on the principal components);

with wall time and peak memory (resident set high-water mark of the process during the
case, reset before it; see ``peak_rss``). Also: ``response_to`` on a 10^5-point grid
(a few hundred samples) without a points x points array, and the real files of
iris-sample-data and eofs with defaults (fit or a named error; time and memory of A1B).

Usage::

    python benchmarks/climate_grid.py --quick --out results/climate_grid_quick
    python benchmarks/climate_grid.py --out results/climate_grid      # default: targets
    python benchmarks/climate_grid.py --only linear nonlinear          # some parts
    python benchmarks/climate_grid.py --solvers                        # + xeofs/eofs timing

Writes ``results.json``, ``table.md`` and ``climate_grid_errors.png``,
``climate_grid_maps.png`` to ``--out``.
"""

from __future__ import annotations

import logging
import time
import traceback
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from _climate_fields import DoubleWellField, Grid, LinearField, relative_error
from _common import parser, save_figure, setup_logging, write_results

import gfdt

logger = logging.getLogger("gfdt.benchmarks")

SIZES = {
    "quick": dict(grid=(12, 18), linear_n=[100, 190, 950], nonlinear_n=[2000],
                  modes=[2, 4, 8], big=None, auto_linear=False, truth_pairs=10000,
                  dsm=dict(max_steps=400)),
    "default": dict(grid=(24, 36), linear_n=[350, 750, 3750, 15000],
                    nonlinear_n=[750, 3750, 15000], modes=[2, 3, 4, 6, 8, 16, 32],
                    big=(280, 420, 300), auto_linear=True, truth_pairs=40000, dsm=None),
}
SIZES["paper"] = SIZES["default"]
MAX_LAG = 12
SITE = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------- memory, timing
def _status(key: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss(fn):
    """Run ``fn()``; return (its result, seconds, peak resident bytes during it, resident
    bytes before it). The kernel's high-water mark is reset first (``clear_refs``); where
    that is not allowed, the process peak so far is reported."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    before = _status("VmRSS:")
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, _status("VmHWM:"), before


def _run(rows: list, label: dict, fn) -> dict:
    """One case: its numbers (or its error) as a row."""
    row = dict(label)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res, sec, peak, before = peak_rss(fn)
        row.update(res or {})
        row.update(time_s=round(sec, 2), peak_rss_gb=round(peak / 1e9, 3),
                   rss_before_gb=round(before / 1e9, 3))
        row["warnings"] = sorted({f"{w.category.__name__}: {str(w.message)[:90]}"
                                  for w in caught
                                  if not issubclass(w.category, DeprecationWarning)})
    except Exception as exc:  # a case that fails is a result too (e.g. the rank error)
        row["error"] = f"{type(exc).__name__}: {exc}"[:300]
        logger.info("case %s: %s", label, row["error"][:120])
        if not isinstance(exc, ValueError):
            logger.warning("%s", traceback.format_exc())
    logger.info("%s", {k: v for k, v in row.items() if k != "warnings"})
    rows.append(row)
    return row


# ----------------------------------------------------------------------- estimates
def _estimator(score: str, reduce, bootstrap: bool, dsm: dict | None, seed: int):
    opts = {"dsm_options": dsm} if (score == "auto" and dsm) else None
    return gfdt.ResponseEstimator(score=score, max_lag=MAX_LAG, bootstrap=bootstrap,
                                  progress=False, reduce=reduce, score_options=opts,
                                  seed=seed)


def _eof_case(x, f, truth, score, n_modes, bootstrap, dsm, seed, keep):
    def fn():
        eof = gfdt.EOF() if n_modes == "default" else gfdt.EOF(n_modes=n_modes)
        est = _estimator(score, eof, bootstrap, dsm, seed).fit(x)
        out = est.response_to(f)
        res = {"n_modes": int(est.reduce_.n_modes_),
               "rel_error": round(relative_error(out.response, truth), 4),
               "stein_error": round(float(est.stein_error_), 4),
               "captured": round(float(out.response.attrs["captured"]), 3)}
        if score == "auto":
            res["chosen"] = getattr(est.score_model_, "chosen_name_", None)
        if "stderr" in out:
            se = out.stderr.sel(lag=slice(1, MAX_LAG))
            err = (out.response - truth).sel(lag=slice(1, MAX_LAG))
            ok = np.isfinite(se.values) & (se.values > 0)
            res["within_2se"] = round(float(np.mean(np.abs(err.values[ok])
                                                    <= 2 * se.values[ok])), 3)
        keep[(score, n_modes)] = out
        return res
    return fn


def _full_case(x, f, truth, grid: Grid):
    def fn():
        flat = x.stack(space=("lat", "lon")).dropna("space")
        est = gfdt.ResponseEstimator(score="gaussian", max_lag=MAX_LAG, bootstrap=False,
                                     progress=False).fit(flat)
        R = est.response_.values  # (lag, d, d) on the ocean points, row-major order
        resp = grid.dataarray(np.einsum("lij,j->li", R, f.values[grid.ocean]), ("lag",),
                              {"lag": np.arange(MAX_LAG + 1.0)})
        return {"rel_error": round(relative_error(resp, truth), 4), "n_modes": None,
                "stein_error": round(float(est.stein_error_), 4)}
    return fn


def field_cases(kind: str, cfg: dict, seed: int, rows: list, maps: dict) -> None:
    grid = Grid(*cfg["grid"])
    fld = LinearField(grid) if kind == "linear" else DoubleWellField(grid)
    f = grid.regional_pattern()
    t0 = time.perf_counter()
    if kind == "linear":
        truth, truth_note = fld.response(f, MAX_LAG), "closed form"
    else:
        truth, tse = fld.response(f, MAX_LAG, n_pairs=cfg["truth_pairs"])
        rel_se = float(np.sqrt((tse.sel(lag=slice(1, MAX_LAG)) ** 2).sum())
                       / np.sqrt((truth.sel(lag=slice(1, MAX_LAG)) ** 2).sum()))
        truth_note = f"paired ensemble, {cfg['truth_pairs']} pairs, relative s.e. {rel_se:.4f}"
    logger.info("%s truth (%s): %.1f s", kind, truth_note, time.perf_counter() - t0)
    ns = cfg["linear_n"] if kind == "linear" else cfg["nonlinear_n"]
    for n in ns:
        x = fld.simulate(n, seed + n)
        base = {"field": kind, "n": n, "points": grid.d}
        keep: dict = {}
        _run(rows, {**base, "method": "full-grid gaussian"}, _full_case(x, f, truth, grid))
        _run(rows, {**base, "method": "EOF+gaussian default"},
             _eof_case(x, f, truth, "gaussian", "default", True, None, seed, keep))
        for k in cfg["modes"]:
            _run(rows, {**base, "method": f"EOF+gaussian k={k}"},
                 _eof_case(x, f, truth, "gaussian", k, False, None, seed, keep))
        if kind == "nonlinear" or cfg["auto_linear"]:
            _run(rows, {**base, "method": "EOF+auto default"},
                 _eof_case(x, f, truth, "auto", "default", False, cfg["dsm"], seed, keep))
        maps[(kind, n)] = (truth, keep)
    logger.info("%s field: truth %s", kind, truth_note)
    rows.append({"field": kind, "truth": truth_note, "points": grid.d})


# --------------------------------------------------------------------- the big grid
def big_case(cfg: dict, seed: int, rows: list) -> None:
    ny, nx, n = cfg["big"]
    grid = Grid(ny, nx)
    fld = LinearField(grid)
    t0 = time.perf_counter()
    x = fld.simulate(n, seed)
    logger.info("big grid: %d ocean points x %d samples made in %.1f s", grid.d, n,
                time.perf_counter() - t0)
    f = grid.regional_pattern()
    truth = fld.response(f, MAX_LAG)

    def fn(solver):
        est = _estimator("gaussian", gfdt.EOF(solver=solver), True, None, seed).fit(x)
        out = est.response_to(f)
        return {"n_modes": int(est.reduce_.n_modes_), "solver": est.reduce_.solver_,
                "rel_error": round(relative_error(out.response, truth), 4),
                "has_stderr": "stderr" in out}

    for solver in ("auto", "randomized"):
        row = _run(rows, {"field": "linear, 10^5-point grid", "n": n, "points": grid.d,
                          "method": f"EOF(solver={solver!r})+gaussian + response_to"},
                   lambda solver=solver: fn(solver))
        row["data_gb"] = round(x.nbytes / 1e9, 3)
        row["dense_dxd_gb"] = round(8 * grid.d**2 / 1e9, 1)


# ------------------------------------------------------------------------ real data
def _real_files() -> dict:
    import importlib.util

    out = {}
    spec = importlib.util.find_spec("iris_sample_data")
    if spec is not None:
        base = Path(spec.submodule_search_locations[0]) / "sample_data"
        out["A1B_north_america.nc"] = (base / "A1B_north_america.nc", "air_temperature")
        out["ostia_monthly.nc"] = (base / "ostia_monthly.nc", "surface_temperature")
    spec = importlib.util.find_spec("eofs")
    if spec is not None:
        base = Path(spec.submodule_search_locations[0]) / "examples" / "example_data"
        out["sst_ndjfm_anom.nc"] = (base / "sst_ndjfm_anom.nc", "sst")
        out["hgt_djf.nc"] = (base / "hgt_djf.nc", "z")
    return out


def _open(path: Path, var: str) -> xr.DataArray:
    ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    return ds[var].load()


def _detrended(da: xr.DataArray) -> xr.DataArray:
    """Time mean and linear trend removed per point (the A1B scenario warms by ~5 K)."""
    t = np.arange(da.sizes["time"], dtype=float)
    flat = da.values.reshape(len(t), -1)
    coef = np.polynomial.polynomial.polyfit(t, np.nan_to_num(flat), 1)
    fit = np.polynomial.polynomial.polyval(t, coef).T
    return da.copy(data=(flat - fit).reshape(da.shape))


def real_cases(rows: list, seed: int) -> None:
    files = _real_files()
    if not files:
        logger.warning("real files: iris-sample-data and eofs are not installed; skipped")
        return
    for name, (path, var) in files.items():
        raw = _open(path, var)
        variants = {"raw": raw}
        if name.startswith("A1B"):
            variants["detrended"] = _detrended(raw)
        for vname, da in variants.items():
            base = {"field": f"real: {name} ({vname})", "n": int(da.sizes["time"]),
                    "points": int(np.prod([da.sizes[d] for d in da.dims if d != "time"]))}

            def plain(da=da):
                data = da.stack(space=[d for d in da.dims if d != "time"]).dropna("space")
                est = gfdt.ResponseEstimator(progress=False).fit(data)
                return {"stein_error": round(float(est.stein_error_), 4)}

            def reduced(da=da, max_lag=None):
                kw = {} if max_lag is None else {"max_lag": max_lag}
                est = gfdt.ResponseEstimator(progress=False, reduce=gfdt.EOF(),
                                             seed=seed, **kw).fit(da)
                r0 = est.response_.isel(lag=0).values
                return {"n_modes": int(est.reduce_.n_modes_),
                        "stein_error": round(float(est.stein_error_), 4),
                        "r0_off_identity": round(float(np.abs(r0 - np.eye(len(r0))).max()), 6),
                        "max_lag": int(est.response_.sizes["lag"] - 1)}

            _run(rows, {**base, "method": "full grid, defaults"}, plain)
            row = _run(rows, {**base, "method": "reduce=EOF(), defaults"}, reduced)
            if "error" in row:  # e.g. a record shorter than the default max_lag
                lag = max(1, base["n"] // 5)
                _run(rows, {**base, "method": f"reduce=EOF(), max_lag={lag}"},
                     lambda da=da, lag=lag: reduced(da, lag))


# ------------------------------------------------------------------------- solvers
def solver_cases(rows: list, seed: int) -> None:
    """gfdt.EOF against xeofs and eofs (when installed) on A1B and a 10^5-point field."""
    rng = np.random.default_rng(seed)
    files = _real_files()
    cases = {}
    if "A1B_north_america.nc" in files:
        cases["A1B 240 x 1813"] = _detrended(_open(*files["A1B_north_america.nc"]))
    lat, lon = np.linspace(-60, 60, 250), np.linspace(0, 359, 400)
    cases["random 300 x 10^5"] = xr.DataArray(
        rng.standard_normal((300, 250, 400)), dims=("time", "lat", "lon"),
        coords={"time": np.arange(300.0), "lat": lat, "lon": lon})
    for cname, da in cases.items():
        def ours(da=da):
            e = gfdt.EOF(n_modes=20).fit(da)
            return {"solver": e.solver_}

        def xe(da=da):
            import xeofs

            m = xeofs.single.EOF(n_modes=20, use_coslat=True)
            m.fit(da, dim="time")
            return {}

        def eo(da=da):
            from eofs.xarray import Eof

            w = np.sqrt(np.cos(np.deg2rad(da[da.dims[1]].values)))[:, None]
            Eof(da, weights=w * np.ones(da.shape[2])).eofs(neofs=20)
            return {}

        for lib, fn in (("gfdt.EOF", ours), ("xeofs", xe), ("eofs", eo)):
            _run(rows, {"field": f"solvers: {cname}", "n": int(da.sizes["time"]),
                        "method": lib}, fn)


# -------------------------------------------------------------------------- outputs
def table(rows: list) -> str:
    head = "| field | n | points | method | modes | rel. error (lags 1-12) | time (s) | " \
           "peak RSS (GB) | note |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if "method" not in r:
            continue
        note = r.get("error") or ""
        if not note:
            bits = []
            for key in ("chosen", "solver", "within_2se", "stein_error", "r0_off_identity",
                        "dense_dxd_gb"):
                if r.get(key) is not None:
                    bits.append(f"{key} {r[key]}")
            note = ", ".join(bits)
        err = r.get("rel_error")
        lines.append(f"| {r['field']} | {r.get('n', '')} | {r.get('points', '')} | "
                     f"{r['method']} | {r.get('n_modes') or ''} | "
                     f"{'' if err is None else f'{err:.3f}'} | {r.get('time_s', '')} | "
                     f"{r.get('peak_rss_gb', '')} | {note[:110]} |")
    return "\n".join(lines)


def figures(rows: list, maps: dict, out: Path) -> None:
    kinds = [k for k in ("linear", "nonlinear") if any(r.get("field") == k for r in rows)]
    if kinds:
        fig, axes = plt.subplots(1, len(kinds), figsize=(6 * len(kinds), 4.2), squeeze=False)
        for ax, kind in zip(axes[0], kinds, strict=True):
            sel = [r for r in rows if r.get("field") == kind and "rel_error" in r]
            for n in sorted({r["n"] for r in sel}):
                fixed = sorted((r["n_modes"], r["rel_error"]) for r in sel
                               if r["n"] == n and r["method"].startswith("EOF+gaussian k="))
                color = None
                if fixed:
                    ks, es = zip(*fixed, strict=True)
                    color = ax.plot(ks, es, "o-", label=f"n = {n}")[0].get_color()
                for r in sel:
                    if r["n"] != n:
                        continue
                    if r["method"] == "EOF+gaussian default":
                        ax.plot(r["n_modes"], r["rel_error"], "*", ms=14, color=color)
                    elif r["method"] == "EOF+auto default":
                        ax.plot(r["n_modes"], r["rel_error"], "s", ms=8, mfc="none",
                                color=color)
                    elif r["method"] == "full-grid gaussian":
                        ax.axhline(r["rel_error"], ls=":", color=color)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("n_modes")
            ax.set_ylabel("relative response error, lags 1-12")
            ax.set_title(f"{kind} field (star: default n_modes; square: EOF+auto; "
                         "dotted: full grid)", fontsize="small")
            ax.legend(fontsize="small")
        fig.tight_layout()
        save_figure(fig, out / "climate_grid_errors.png")
        plt.close(fig)
    if maps:
        keys = list(maps)
        lags = [1, 3, 6]
        fig, axes = plt.subplots(len(keys), 3 * len(lags), figsize=(2.6 * 3 * len(lags),
                                                                     2.2 * len(keys)),
                                 squeeze=False, layout="constrained")
        for row, key in zip(axes, keys, strict=True):
            truth, keep = maps[key]
            est = {"truth": truth,
                   "EOF+gaussian": keep.get(("gaussian", "default"), {}).get("response"),
                   "EOF+auto": keep.get(("auto", "default"), {}).get("response")}
            vmax = float(np.nanmax(np.abs(truth.sel(lag=1).values)))
            col = 0
            for lag in lags:
                for name, r in est.items():
                    ax = row[col]
                    col += 1
                    if r is None:
                        ax.set_visible(False)
                        continue
                    ax.pcolormesh(r["lon"], r["lat"], np.ma.masked_invalid(r.sel(lag=lag)),
                                  cmap="RdBu_r", vmin=-vmax, vmax=vmax, shading="auto")
                    ax.set_title(f"{key[0]} n={key[1]}: {name}, lag {lag}", fontsize=6)
                    ax.set_xticks([])
                    ax.set_yticks([])
                    ax.set_facecolor("0.85")
        save_figure(fig, out / "climate_grid_maps.png")
        plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/climate_grid")
    p.add_argument("--only", nargs="+", default=None,
                   choices=["linear", "nonlinear", "big", "real"],
                   help="run only these parts (default: all)")
    p.add_argument("--solvers", action="store_true",
                   help="also time gfdt.EOF against xeofs and eofs (when installed)")
    args = p.parse_args(argv)
    setup_logging()
    cfg = SIZES[args.size]
    parts = args.only or ["linear", "nonlinear", "big", "real"]
    rows: list = []
    maps: dict = {}
    t0 = time.perf_counter()
    for kind in ("linear", "nonlinear"):
        if kind in parts:
            field_cases(kind, cfg, args.seed, rows, maps)
    if "big" in parts and cfg["big"] is not None:
        big_case(cfg, args.seed, rows)
    if "real" in parts:
        real_cases(rows, args.seed)
    if args.solvers:
        solver_cases(rows, args.seed)
    text = table(rows)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "table.md").write_text(text + "\n")
    figures(rows, maps, args.out)
    write_results(args.out, system="climate_grid", config={"size": args.size, **{
        k: v for k, v in cfg.items() if k != "dsm"}, "max_lag": MAX_LAG, "parts": parts},
        timings={"total": round(time.perf_counter() - t0, 1)},
        reference="closed form (linear), paired ensemble (nonlinear)",
        errors={}, rows=rows)
    return {"rows": rows}


if __name__ == "__main__":
    main()
