"""Speed check of the NavierStokes2D kernel (standalone; not the final benchmark).

Measures member-steps per second of

* **kernel**: the compiled kernel, one member per thread (``--workers`` threads), driven
  through :class:`gfdt._runner.Integrator` like :func:`gfdt.simulate`;
* **numpy**: :func:`gfdt.systems._ns_reference.ns_reference_run` with all members in
  one array (scipy.fft, ``workers=-1``), best of 2, 16 and 64 members;
* **FFT bound**: a step costing only its real 2-D transforms (4 forward + 16 inverse
  full ``rfft2``/``irfft2`` of size n x n, rocket-fft low-level calls on preallocated
  arrays in numba), one loop per thread.

and prints kernel/numpy and kernel/bound. Each rate is the best of ``--repeats`` runs
(the machine is shared; the best run is the least disturbed one).

Wall-clock rates on a loaded machine mostly measure the load, so the same runs are also
timed in CPU seconds of this process (all its threads): member-steps per CPU-second.
On an idle machine the kernel's 2 threads run in parallel (wall rate = 2 x CPU rate)
while numpy keeps at most 2 cores busy (wall rate <= 2 x CPU rate), so the CPU-time
ratio kernel/numpy is a lower bound of the idle-machine wall-clock ratio; kernel/bound
per CPU-second estimates the idle-machine ratio directly (both run 2 busy threads).

Usage::

    python benchmarks/_ns_speed.py --sizes 32 64
"""

from __future__ import annotations

import argparse
import os
import time

import numba as nb
import numpy as np

from gfdt._runner import Integrator, run_tasks
from gfdt.systems._ns_reference import ns_reference_run
from gfdt.systems._spectral import irfft2_into, rfft2_into
from gfdt.systems.navier_stokes import NavierStokes2D

N_FWD, N_INV = 4, 16  # transforms of one RK4 step: 1 forward + 4 inverse per stage


@nb.njit(nogil=True, cache=True)
def _transforms(u, uh, n_fwd, n_inv, reps):  # pragma: no cover - numba
    for _ in range(reps):
        for _ in range(n_fwd):
            rfft2_into(u, uh)
        for _ in range(n_inv):
            irfft2_into(uh, u)


def _rates(fn, units: int) -> tuple[float, float]:
    """(units per wall second, units per CPU second of this process) of ``fn()``."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return units / (time.perf_counter() - w0), units / (time.process_time() - c0)


def _threaded_rate(fn, workers: int, steps: int) -> tuple[float, float]:
    return _rates(lambda: run_tasks(fn, range(workers), workers), workers * steps)


def fft_bound(n: int, workers: int, steps: int) -> tuple[float, float]:
    def task(_):
        u = np.random.default_rng(0).standard_normal((n, n))
        _transforms(u, np.empty((n, n // 2 + 1), complex), N_FWD, N_INV, steps)

    task(0)
    return _threaded_rate(task, workers, steps)


def kernel_rate(system: NavierStokes2D, workers: int, steps: int) -> tuple[float, float]:
    integ = Integrator(system)
    states = [system.initial_state(np.random.default_rng(k)) for k in range(workers)]
    integ(states[0][0].copy(), states[0][1].copy(), 2, np.random.default_rng(0))
    rngs = [np.random.default_rng(k) for k in range(workers)]

    def task(k):
        u, aux = states[k]
        integ(u, aux, steps, rngs[k])

    return _threaded_rate(task, workers, steps)


def numpy_rate(system: NavierStokes2D, members: int, steps: int) -> tuple[float, float]:
    rngs = [np.random.default_rng(k) for k in range(members)]
    states = [system.initial_state(r) for r in rngs]
    u0 = np.stack([s[0] for s in states])
    aux0 = np.stack([s[1] for s in states])
    ns_reference_run(system, u0, aux0, 2, rngs)
    return _rates(lambda: ns_reference_run(system, u0, aux0, steps, rngs), members * steps)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=1.0,
                   help="rough duration of each timed run")
    args = p.parse_args(argv)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    for n in args.sizes:
        system = NavierStokes2D(n=n)
        # size the runs from a short probe of the kernel
        probe = kernel_rate(system, 1, 50)[0]
        steps = max(100, int(args.seconds * probe))
        k = _best(kernel_rate(system, args.workers, steps) for _ in range(args.repeats))
        b = _best(fft_bound(n, args.workers, steps) for _ in range(args.repeats))
        best_np, best_m = (0.0, 0.0), 0
        for m in (2, 16, 64):
            np_steps = max(5, int(args.seconds * probe / (m * 4)))
            r = _best(numpy_rate(system, m, np_steps) for _ in range(args.repeats))
            print(f"  numpy n={n} members={m:3d}: {r[0]:9.0f} member-steps/s, "
                  f"{r[1]:9.0f} per CPU-s")
            if r[0] > best_np[0]:
                best_np, best_m = r, m
        for i, unit in enumerate(("member-steps/s (wall)", "member-steps per CPU-second")):
            print(f"n={n}: kernel {k[i]:9.0f}  numpy {best_np[i]:9.0f} (at {best_m} members)  "
                  f"FFT bound {b[i]:9.0f}  {unit}, {args.workers} threads")
            print(f"n={n}: kernel / numpy = {k[i] / best_np[i]:.2f}   "
                  f"kernel / FFT bound = {k[i] / b[i]:.2f}   ({unit})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def _best(runs) -> tuple[float, float]:
    """Element-wise best (largest) of (wall, cpu) rate pairs."""
    runs = list(runs)
    return max(r[0] for r in runs), max(r[1] for r in runs)


if __name__ == "__main__":
    main()
