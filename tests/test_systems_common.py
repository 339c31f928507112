"""Properties every system shares: thread-count independence, stationarity."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

import gfdt
from gfdt.systems import AllenCahn, NavierStokes2D, OrnsteinUhlenbeck

SYSTEMS = {
    "ou": "gfdt.OrnsteinUhlenbeck(n=8)",
    "ac": "gfdt.AllenCahn(n=8)",
    "ns": "gfdt.NavierStokes2D(n=16)",
}

_SCRIPT = """
import hashlib, numpy as np, gfdt
for expr in {exprs!r}:
    system = eval(expr)
    ds = gfdt.simulate(system, n_members=3, burn_in=8 * system.dt, duration=32 * system.dt,
                       save_interval=4 * system.dt, seed=3, n_workers={workers},
                       progress=False)
    print(hashlib.sha256(np.ascontiguousarray(ds.u.values).tobytes()).hexdigest())
"""


def test_all_systems_independent_of_thread_counts():
    """Same bits with NUMBA_NUM_THREADS = 1 or 2 and with 1 or 2 worker threads."""
    outs = []
    for threads, workers in (("1", 1), ("2", 2), ("2", 1)):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        code = _SCRIPT.format(exprs=list(SYSTEMS.values()), workers=workers)
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                           text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout.split())
    assert len(outs[0]) == 3
    assert outs[0] == outs[1] == outs[2]
    # and the in-process run agrees
    for digest, expr in zip(outs[0], SYSTEMS.values(), strict=True):
        system = eval(expr, {"gfdt": gfdt})
        ds = gfdt.simulate(system, n_members=3, burn_in=8 * system.dt,
                           duration=32 * system.dt, save_interval=4 * system.dt, seed=3,
                           progress=False)
        assert hashlib.sha256(np.ascontiguousarray(ds.u.values).tobytes()).hexdigest() == digest


def _halves_agree(u: np.ndarray, stat) -> tuple[float, float, float]:
    """Statistic in the two halves of each member's record; difference and its se."""
    T = u.shape[1]
    a = np.array([stat(m[: T // 2]) for m in u])
    b = np.array([stat(m[T // 2:]) for m in u])
    d = b - a
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))), float(a.mean())


@pytest.mark.slow
@pytest.mark.parametrize("system,burn_in,duration", [
    (OrnsteinUhlenbeck(n=16), 1000.0, 1000.0),
    # n = 32: at n = 16 the Allen-Cahn spatial mean takes > 8000 time units to relax,
    # and the default Navier-Stokes forcing band reaches the n = 16 cutoff
    (AllenCahn(), 3000.0, 1000.0),
    (NavierStokes2D(), 1000.0, 200.0),
])
def test_statistics_are_stationary(system, burn_in, duration):
    """After the spin-up, variance and kurtosis do not drift between the two halves."""
    ds = gfdt.simulate(system, n_members=6, burn_in=burn_in, duration=duration,
                       save_interval=duration / 400, seed=9, progress=False)
    u = ds.u.values
    for stat in (np.var, lambda v: np.mean((v - v.mean()) ** 4) / np.var(v) ** 2):
        diff, se, level = _halves_agree(u, stat)
        assert abs(diff) < 4 * se + 1e-12 * abs(level), (diff, se, level)
