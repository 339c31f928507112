"""Solver speed: gfdt's numba kernels vs a batched numpy reference vs the FFT bound.

For each system and grid size, in one run on the same machine:

* **gfdt**: member-steps per second of the compiled kernel, members spread over
  ``--workers`` threads as :func:`gfdt.simulate` does;
* **numpy**: the shipped reference implementation of the same scheme with all members
  in one array and ``scipy.fft`` with ``workers=-1`` (best of a few ensemble sizes);
* **FFT bound**: the member-steps per second a step would reach if it cost only its
  real 2-D transforms (rocket-fft low-level calls on preallocated arrays in numba,
  one per thread), and the same with the step's standard-normal draws added
  (**FFT+RNG bound**).

Usage::

    python benchmarks/solvers.py --quick --out results/solvers

Writes ``results.json`` (``"speed"`` holds the rates and the two ratios per system and
size) and ``speed.png``.
"""

from __future__ import annotations

import logging
import os
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numba as nb
import numpy as np
from _common import parser, save_figure, setup_logging, write_results

import gfdt
from gfdt._runner import Integrator, run_tasks
from gfdt.systems import reference
from gfdt.systems._spectral import irfft2_into, rfft2_into

logger = logging.getLogger("gfdt.benchmarks")


def _systems() -> dict:
    out = {
        "ou": (gfdt.systems.OrnsteinUhlenbeck, reference.ou_reference_run, False),
        "allen_cahn": (gfdt.systems.AllenCahn, reference.ac_reference_run, False),
    }
    if hasattr(gfdt.systems, "NavierStokes2D"):
        out["navier_stokes"] = (gfdt.systems.NavierStokes2D, reference.ns_reference_run, True)
    return out


@nb.njit(nogil=True, cache=True)
def _transforms(u, uh, n_fwd, n_inv, reps):  # pragma: no cover - numba
    for _ in range(reps):
        for _ in range(n_fwd):
            rfft2_into(u, uh)
        for _ in range(n_inv):
            irfft2_into(uh, u)


@nb.njit(nogil=True, cache=True)
def _normals(rng, x, reps):  # pragma: no cover - numba
    for _ in range(reps):
        for i in range(x.shape[0]):  # one step's scalar draws, as the kernels make them
            x[i] = rng.standard_normal()


def _threaded_rate(fn, workers: int, units_per_task: int, repeats: int = 3) -> float:
    """Units per second when ``workers`` threads each run ``fn(task)`` (best of repeats)."""
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_tasks(fn, range(workers), workers)
        best = max(best, workers * units_per_task / (time.perf_counter() - t0))
    return best


def bound_rates(n: int, n_fwd: int, n_inv: int, n_normals: int, workers: int,
                steps: int) -> tuple[float, float]:
    """Member-steps/s if a step cost only its transforms (and its ``n_normals`` scalar
    standard-normal draws)."""
    m = n // 2 + 1

    def fft_task(_):
        u = np.random.default_rng(0).standard_normal((n, n))
        _transforms(u, np.empty((n, m), complex), n_fwd, n_inv, steps)

    def fft_rng_task(k):
        fft_task(k)
        _normals(np.random.default_rng(k), np.empty(n_normals), steps)

    fft_task(0)
    fft_rng_task(0)  # compile
    return (_threaded_rate(fft_task, workers, steps),
            _threaded_rate(fft_rng_task, workers, steps))


def kernel_rate(system, workers: int, steps: int) -> float:
    integ = Integrator(system)
    states = [system.initial_state(np.random.default_rng(k)) for k in range(workers)]
    integ(states[0][0].copy(), states[0][1].copy(), 2, np.random.default_rng(0))

    def task(k):
        u, aux = states[k]
        integ(u, aux, steps, np.random.default_rng(k))

    return _threaded_rate(task, workers, steps)


def numpy_rate(system, ref, hidden: bool, members_list, steps: int) -> tuple[float, int]:
    best, best_m = 0.0, 0
    for m in members_list:
        rngs = [np.random.default_rng(k) for k in range(m)]
        states = [system.initial_state(r) for r in rngs]
        u0 = np.stack([s[0] for s in states])
        args = (u0, np.stack([s[1] for s in states])) if hidden else (u0,)
        ref(system, *args, 2, rngs)
        t0 = time.perf_counter()
        ref(system, *args, steps, rngs)
        rate = m * steps / (time.perf_counter() - t0)
        if rate > best:
            best, best_m = rate, m
    return best, best_m


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__.splitlines()[0], "results/solvers")
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    args = p.parse_args(argv)
    setup_logging()
    workers = args.workers or os.cpu_count() or 1
    scale = {"quick": 0.25, "default": 1.0, "paper": 4.0}[args.size]
    results: dict = {}
    for name, (cls, ref, hidden) in _systems().items():
        for n in args.sizes:
            system = cls(n=n)
            n_fwd, n_inv, _ = system.transforms_per_step
            n_normals = system.normals_per_step  # scalars per step
            steps = max(200, int(scale * 4e5 / n**2 * 32))
            k_rate = kernel_rate(system, workers, steps)
            np_rate, np_members = numpy_rate(system, ref, hidden, (16, 64),
                                             max(20, steps // 20))
            b_fft, b_rng = bound_rates(n, n_fwd, n_inv, n_normals, workers, steps)
            row = {
                "gfdt_member_steps_per_s": k_rate,
                "numpy_member_steps_per_s": np_rate,
                "numpy_best_members": np_members,
                "fft_bound_member_steps_per_s": b_fft,
                "fft_rng_bound_member_steps_per_s": b_rng,
                "transforms_per_step": {"forward": n_fwd, "inverse": n_inv},
                "normals_per_step": n_normals,
                "ratio_vs_numpy": k_rate / np_rate,
                "ratio_vs_fft_bound": k_rate / b_fft if n_fwd + n_inv else None,
                "ratio_vs_fft_rng_bound": k_rate / b_rng,
            }
            results.setdefault(name, {})[str(n)] = row
            logger.info(
                "%-13s n=%-3d gfdt %9.0f  numpy %9.0f  bound %9.0f (+rng %9.0f) "
                "member-steps/s -> x%.1f numpy, %.2f of FFT bound, %.2f of FFT+RNG bound",
                name, n, k_rate, np_rate, b_fft, b_rng, row["ratio_vs_numpy"],
                row["ratio_vs_fft_bound"] or float("nan"), row["ratio_vs_fft_rng_bound"])
    args.out.mkdir(parents=True, exist_ok=True)
    _plot(results, args.out / "speed.png")
    write_results(args.out, system="solvers", config={"size": args.size, "workers": workers,
                                                      "sizes": args.sizes},
                  timings={}, reference="numpy reference and FFT bound", errors={},
                  speed=results)
    return results


def _plot(results: dict, path) -> None:
    labels, cols = [], {"gfdt": [], "numpy": [], "FFT bound": [], "FFT+RNG bound": []}
    for name, by_n in results.items():
        for n, r in by_n.items():
            labels.append(f"{name}\nn={n}")
            cols["gfdt"].append(r["gfdt_member_steps_per_s"])
            cols["numpy"].append(r["numpy_member_steps_per_s"])
            cols["FFT bound"].append(r["fft_bound_member_steps_per_s"])
            cols["FFT+RNG bound"].append(r["fft_rng_bound_member_steps_per_s"])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(labels)) + 1.5, 4),
                           layout="constrained")
    for i, (k, v) in enumerate(cols.items()):
        ax.bar(x + (i - 1.5) * 0.2, v, width=0.2, label=k)
    ax.set_xticks(x, labels)
    ax.set_yscale("log")
    ax.set_ylabel("member-steps per second")
    gfdt.plotting.legend_outside(ax)
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    main()
