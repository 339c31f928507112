"""The user models of benchmarks/user_models.py, each a :class:`gfdt.systems.SDE` written
from its equations, with their observables and paired finite-difference truths.

* :func:`reduced_1d`: ParameterCalibration.jl's reduced 1-D model
  ``du = (F + a u + b u^2 - c u^3) dt + s dW``, observables ``(u, u^2, 1{u <= 2.5})``;
  its exact sensitivities follow by quadrature (``SDE.stationary_sensitivity``).
* :func:`triad`: the stochastic triad of the same repository, with state-dependent noise
  ``t6 (tanh(u1) + 1) dW3`` on the third mode; observables the six second moments.
* :func:`lorenz63`: stochastic Lorenz-63 (sigma 10, rho 28, beta 8/3) with additive noise
  ``NOISE_L63 dW`` on every coordinate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

import gfdt
from gfdt._parameter_truth import parameter_differences
from gfdt.systems import SDE

logger = logging.getLogger("gfdt.benchmarks")

THETA_1D = {"F": 0.6, "a": -0.0222, "b": -0.2, "c": 0.0494, "s": 0.7071}
#: The second parameter point of ParameterCalibration.jl's stored matrices.
SCALE_1D = {"F": 1.2, "a": 1.2, "b": 1.0, "c": 1.0, "s": 1.2}
THETA_TRIAD = {"t1": 0.2, "t2": 0.4, "t3": 2.0, "t4": 0.3, "t5": 0.3, "t6": 1.5}
THETA_L63 = {"sigma": 10.0, "rho": 28.0, "beta": 8.0 / 3.0}
#: Additive noise of stochastic Lorenz-63 (coefficient of dW on each coordinate, D = 18):
#: large enough that the stationary density is smooth at the scale a learned score
#: resolves (the noiseless attractor is fractal), small against the attractor (|x| ~
#: 10-40; the butterfly stays). At 3 the learned scores miss d<z>/d rho by 14-22%
#: (docs/user_models.md).
NOISE_L63 = 6.0
#: 1-D quadrature grid: the density is below 1e-10 of its maximum at both ends for both
#: parameter points.
GRID_1D = np.linspace(-12.0, 10.0, 22001)


def reduced_1d(dt: float = 0.01, **theta: float) -> SDE:
    """ParameterCalibration.jl's reduced 1-D model (additive noise: Heun scheme)."""
    return SDE(drift=lambda x, p: p["F"] + p["a"] * x + p["b"] * x**2 - p["c"] * x**3,
               noise=lambda x, p: p["s"], parameters={**THETA_1D, **theta}, dt=dt, dim=1,
               name="reduced 1-D model state")


def observables_1d() -> dict[str, Callable]:
    return {"u": lambda x: x[:, 0], "u2": lambda x: x[:, 0] ** 2,
            "ind_le_2.5": lambda x: (x[:, 0] <= 2.5).astype(float)}


def _triad_drift(x, p):
    u1, u2, u3 = x[:, 0], x[:, 1], x[:, 2]
    return np.stack((-p["t1"] * u1 - p["t2"] * u2 + u3, -p["t1"] * u2 + p["t2"] * u1,
                     -p["t3"] * u3), axis=1)


def _triad_noise(x, p):
    one = np.ones_like(x[:, 0])
    return np.stack((p["t4"] * one, p["t5"] * one, p["t6"] * (np.tanh(x[:, 0]) + 1.0)),
                    axis=1)


def triad(dt: float = 0.01, backend: str = "auto", **theta: float) -> SDE:
    """The stochastic triad (Euler-Maruyama: the noise on u3 depends on u1)."""
    return SDE(drift=_triad_drift, noise=_triad_noise, parameters={**THETA_TRIAD, **theta},
               dt=dt, backend=backend, name="triad state")


def observables_triad() -> dict[str, Callable]:
    pairs = {"u1u1": (0, 0), "u2u2": (1, 1), "u1u2": (0, 1), "u3u3": (2, 2),
             "u1u3": (0, 2), "u2u3": (1, 2)}
    return {k: (lambda x, i=i, j=j: x[:, i] * x[:, j]) for k, (i, j) in pairs.items()}


def _l63_drift(x, p):
    X, Y, Z = x[:, 0], x[:, 1], x[:, 2]
    return np.stack([p["sigma"] * (Y - X), X * (p["rho"] - Z) - Y, X * Y - p["beta"] * Z],
                    axis=1)


def lorenz63(dt: float = 0.005, noise: float = NOISE_L63, **theta: float) -> SDE:
    """Stochastic Lorenz-63 with additive noise (Heun scheme)."""
    return SDE(drift=_l63_drift, noise=float(noise), parameters={**THETA_L63, **theta},
               dt=dt, dim=3, initial=np.array([1.0, 1.0, 25.0]),
               name="stochastic Lorenz-63 state")


def observables_l63() -> dict[str, Callable]:
    return {"z": lambda x: x[:, 2]}


# ------------------------------------------------------------------------- truths
def stationary_states(system: SDE, n: int, seed: int, burn_in: float,
                      n_workers: int | None = None) -> np.ndarray:
    """``n`` independent stationary states: the ends of ``n`` members' spin-ups."""
    ds = gfdt.simulate(system, n_members=n, burn_in=burn_in, duration=system.dt,
                       save_interval=system.dt, seed=seed, n_workers=n_workers,
                       progress=False)
    return ds[system.variable].values[:, -1]


def paired_static(system: SDE, parameters: Sequence[str], observables: Mapping,
                  initial: np.ndarray, *, rel_step: float, t_start: float, t_end: float,
                  save_interval: float, seed: int, n_workers: int = 1,
                  chunk: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Static sensitivities by paired central differences, with standard errors.

    Every member starts from its own stationary state and runs at ``theta +- d`` with the
    same noise (:func:`gfdt._parameter_truth.parameter_differences`, ``d = rel_step
    |theta|``); its time mean of ``(A(+) - A(-)) / 2d`` over ``[t_start, t_end]`` (after
    the response has settled) estimates ``d<A>/d theta``. Members are independent: the
    mean over members and its standard error.

    Returns
    -------
    S, se : numpy.ndarray, shape (n_observables, n_parameters)
    """
    steps = {p: [rel_step * abs(getattr(system, p))] for p in parameters}
    save_every = system._steps(save_interval, "save_interval")
    n_saves = system._steps(t_end, "t_end") // save_every
    first = math.ceil(t_start / save_interval)
    seeds = np.random.SeedSequence(seed).generate_state(len(initial), dtype=np.uint64)
    per = []
    for a in range(0, len(initial), chunk):
        d = parameter_differences(system, steps, observables, initial[a:a + chunk],
                                  n_saves=n_saves, save_every=save_every,
                                  seeds=[int(s) for s in seeds[a:a + chunk]],
                                  n_workers=n_workers)
        per.append(d[:, :, 0, first:].mean(axis=2))  # (N, P, m)
    per = np.concatenate(per)
    S = per.mean(0).T
    se = per.std(0, ddof=1).T / math.sqrt(len(per))
    return S, se


def long_run_stats(system: SDE, observables: Mapping, *, n_members: int, duration: float,
                   burn_in: float, save_interval: float, seed: int,
                   n_workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Long-run means of the observables and their standard errors (member spread)."""
    ds = gfdt.simulate(system, n_members=n_members, burn_in=burn_in, duration=duration,
                       save_interval=save_interval, seed=seed, n_workers=n_workers,
                       progress=False)
    u = ds[system.variable].values
    per = np.stack([[np.mean(f(u[m])) for f in observables.values()]
                    for m in range(n_members)])
    return per.mean(0), per.std(0, ddof=1) / math.sqrt(n_members)


def relative_error(est: np.ndarray, truth: np.ndarray) -> float:
    """Relative Frobenius error ``||est - truth|| / ||truth||``."""
    return float(np.linalg.norm(np.asarray(est) - truth) / np.linalg.norm(truth))
