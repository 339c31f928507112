"""Finite-difference truth for parameter sensitivities: paired ensembles at theta +- d.

Every member starts from a given state and is run at ``theta + d`` and ``theta - d``
with the SAME noise stream (common random numbers); the observables are recorded every
``save_every`` steps. The per-member central difference ``(A(+) - A(-)) / (2 d)`` at
time ``t`` is the response of ``<A>`` to a parameter step at ``t = 0``; averaged over
members drawn from the stationary law it is the step response, and its long-time
plateau the static sensitivity. Members are independent, so the member spread gives
the standard error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gfdt._runner import Integrator

logger = logging.getLogger("gfdt")

__all__ = ["parameter_differences"]


def _observe(observables: Sequence[Callable], u: np.ndarray) -> np.ndarray:
    return np.stack([np.asarray(f(u), dtype=float) for f in observables], axis=-1)


def parameter_differences(system, steps: Mapping[str, Sequence[float]], observables,
                          initial: np.ndarray, *, n_saves: int, save_every: int,
                          seeds: Sequence[int], n_workers: int = 1) -> np.ndarray:
    """Per-member central differences of observables for parameter steps.

    Parameters
    ----------
    system : System
        Must implement ``with_parameters``.
    steps : mapping name -> sequence of float
        Half-widths ``d`` per parameter (several give a step-size check).
    observables : mapping name -> callable or sequence of callables
        Each maps states (m, *state_shape) to (m,).
    initial : numpy.ndarray, shape (N, *state_shape)
        Starting states, one per member (stationary samples of ``system``).
    n_saves : int
        Records after the start (the start itself is record 0).
    save_every : int
        Steps between records.
    seeds : sequence of int, length N
        Noise seed of each member (shared by its + and - runs and by every parameter).
    n_workers : int
        Threads (the kernels release the GIL).

    Returns
    -------
    numpy.ndarray, shape (N, P, S, n_saves + 1, m)
        ``(A(theta + d) - A(theta - d)) / (2 d)`` per member, parameter (order of
        ``steps``), step size, record and observable.

    Raises
    ------
    ValueError
        If the shapes or step sizes are inconsistent.
    """
    obs = list(observables.values()) if isinstance(observables, Mapping) else list(observables)
    initial = np.asarray(initial, dtype=float)
    if initial.ndim != 1 + len(system.state_shape) or initial.shape[1:] != system.state_shape:
        raise ValueError(f"initial must have shape (N, {system.state_shape}), got {initial.shape}")
    if len(seeds) != len(initial):
        raise ValueError(f"seeds has {len(seeds)} entries for {len(initial)} members")
    sizes = {len(v) for v in steps.values()}
    if len(sizes) != 1:
        raise ValueError("steps must give the same number of step sizes for every parameter")
    for name, ds in steps.items():
        if any(not (float(d) > 0) for d in ds):
            raise ValueError(f"steps[{name!r}] must be > 0, got {list(ds)}")
    n_sizes = sizes.pop()
    pairs = [(system.with_parameters(**{p: getattr(system, p) + d}),
              system.with_parameters(**{p: getattr(system, p) - d}), float(d))
             for p, ds in steps.items() for d in ds]
    integ = [(Integrator(a), Integrator(b), d) for a, b, d in pairs]
    N, P = len(initial), len(steps)
    out = np.empty((N, P, n_sizes, n_saves + 1, len(obs)))
    a0 = _observe(obs, initial)

    def one(i: int) -> None:
        buf_p = np.empty((n_saves, *system.state_shape))
        buf_m = np.empty_like(buf_p)
        for q, (ip, im, d) in enumerate(integ):
            for I, buf in ((ip, buf_p), (im, buf_m)):
                u = initial[i].copy()
                I(u, np.zeros(0), n_saves * save_every, np.random.default_rng(int(seeds[i])),
                  save_every=save_every, out=buf, member=i)
            diff = (_observe(obs, buf_p) - _observe(obs, buf_m)) / (2.0 * d)
            r = out[i, q // n_sizes, q % n_sizes]
            r[0] = 0.0 * a0[i]
            r[1:] = diff

    if n_workers <= 1:
        for i in range(N):
            one(i)
    else:
        with ThreadPoolExecutor(n_workers) as ex:
            list(ex.map(one, range(N)))
    return out
