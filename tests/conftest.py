"""Shared fixtures: small, fast-mixing Ornstein-Uhlenbeck systems and simulations."""

from __future__ import annotations

import matplotlib
import pytest

import gfdt
from gfdt.systems import OrnsteinUhlenbeck

matplotlib.use("Agg")  # headless: no display needed (switches pyplot too if imported)

#: Fast-mixing OU on an 8 x 8 grid: slowest relaxation rate 0.18 (time 5.6), so a
#: burn-in of 40 time units leaves a relative variance deficit of exp(-2 * 0.18 * 40)
#: ~ 6e-7, far below the sampling error of the checks that use it.
FAST_OU = {"n": 8, "dt": 1.0 / 16.0, "lam": 0.5, "kappa": 0.02, "A": 0.3, "eps2": 0.004}
FAST_BURN_IN = 40.0
SAVE_INTERVAL = 0.5
N_MEMBERS = 32


@pytest.fixture(scope="session")
def fast_ou() -> OrnsteinUhlenbeck:
    return OrnsteinUhlenbeck(**FAST_OU)


@pytest.fixture(scope="session")
def ou_run(fast_ou):
    """32 independent stationary members, 600 samples each (every 0.5 time units)."""
    return gfdt.simulate(fast_ou, n_members=N_MEMBERS, burn_in=FAST_BURN_IN, duration=300.0,
                         save_interval=SAVE_INTERVAL, seed=20240201, n_workers=2,
                         progress=False)


@pytest.fixture(scope="session")
def tiny_run():
    """A very small simulation of the paper's OU parameters (n = 8), for I/O and metadata."""
    ou = OrnsteinUhlenbeck(n=8)
    return gfdt.simulate(ou, n_members=2, burn_in=1.0, duration=4.0, save_interval=0.5,
                         seed=7, n_workers=1, progress=False)


@pytest.fixture(scope="session")
def ou_truth(fast_ou, ou_run):
    """Paired perturbation response of the fast OU from 4 stationary states, 2 windows."""
    initial = ou_run.u.isel(time=-1, member=slice(0, 4))
    return gfdt.perturbation_response(fast_ou, initial, max_lag=8, save_interval=SAVE_INTERVAL,
                                      delta=0.1, seed=5, n_windows=2, n_workers=1,
                                      progress=False)


#: A small, fast-mixing, clearly non-Gaussian Allen-Cahn field (pointwise kurtosis ~2.1,
#: the mean wanders between the wells, autocorrelation time ~10 time units), without
#: advection (which breaks the exact score's invariance on the grid).
SMALL_ALLEN_CAHN = {"n": 8, "alpha": 1.0, "eps2": 0.02, "kappa": 0.02, "A": 0.0}


@pytest.fixture(scope="session")
def allen_cahn_small():
    """(system, run): 16 members, 800 samples each (every 0.5 time units); ~10 s."""
    from gfdt.systems import AllenCahn

    ac = AllenCahn(**SMALL_ALLEN_CAHN)
    run = gfdt.simulate(ac, n_members=16, burn_in=50.0, duration=400.0, save_interval=0.5,
                        seed=11, n_workers=2, progress=False)
    return ac, run
