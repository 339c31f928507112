"""Ensemble simulation of gfdt systems into CF-annotated xarray datasets."""

from __future__ import annotations

import datetime as _dt
import logging

import numpy as np
import xarray as xr

from gfdt._runner import (
    Integrator,
    Progress,
    SeedLike,
    check_count,
    chunks,
    member_generators,
    resolve_workers,
    run_tasks,
    seed_sequence,
    warm_up,
)
from gfdt.systems.base import System

__all__ = ["simulate"]

logger = logging.getLogger("gfdt")


def _version() -> str:
    from gfdt import __version__

    return __version__


def as_member_fields(initial, system: System, n_members: int | None, name: str) -> np.ndarray:
    """Validate initial fields given as (member, y, x) (DataArray or array)."""
    if isinstance(initial, xr.Dataset):
        if system.variable not in initial:
            raise ValueError(f"{name} has no variable {system.variable!r}")
        initial = initial[system.variable]
    if isinstance(initial, xr.DataArray):
        if "time" in initial.dims:
            raise ValueError(
                f"{name} has a 'time' dimension; pick one time, e.g. {name}.isel(time=-1)"
            )
        if "member" in initial.dims:
            initial = initial.transpose("member", ...)
        initial = initial.values
    arr = np.asarray(initial, dtype=float)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1:] != system.state_shape:
        raise ValueError(
            f"{name} must have shape (member, {system.n}, {system.n}), got {np.shape(initial)}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if n_members is not None and arr.shape[0] != n_members:
        raise ValueError(f"{name} has {arr.shape[0]} members but n_members = {n_members}")
    return np.ascontiguousarray(arr)


def simulate(
    system: System,
    *,
    n_members: int = 1,
    burn_in: float = 0.0,
    duration: float,
    save_interval: float,
    seed: SeedLike = None,
    initial=None,
    n_workers: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Simulate an ensemble of independent members of ``system``.

    Member ``k`` draws all its noise from its own random stream, spawned as child
    ``k`` of ``numpy.random.SeedSequence(seed)``, so the result depends only on the
    arguments: not on ``n_workers``, thread counts or scheduling.

    Parameters
    ----------
    system : gfdt.systems.System
        What to simulate (parameters, grid and time step).
    n_members : int
        Number of independent members.
    burn_in : float
        Spin-up time discarded before recording (time units, multiple of dt).
    duration : float
        Recorded time span (time units): ``duration / save_interval`` samples.
    save_interval : float
        Time between saved samples (multiple of dt).
    seed : int, numpy.random.SeedSequence or None
        Root seed. None draws fresh entropy, recorded in the output's attributes.
    initial : array_like or xarray.DataArray, shape (member, y, x), optional
        Starting fields (default: the system's initial state, zero for OU).
    n_workers : int, optional
        Threads running members in parallel (default: the CPU count).
    progress : bool, optional
        Show a progress bar (default: only on a terminal).

    Returns
    -------
    xarray.Dataset
        Variable ``u`` with dims ``("member", "time", "y", "x")``; ``time`` starts at
        ``burn_in``. Attributes carry the system's parameters and the seed.

    Raises
    ------
    gfdt.SimulationDiverged
        If a member's state becomes non-finite or explodes.

    Examples
    --------
    >>> import gfdt
    >>> ds = gfdt.simulate(gfdt.systems.OrnsteinUhlenbeck(n=8), n_members=2,
    ...                    burn_in=1.0, duration=4.0, save_interval=1.0, seed=0)
    >>> ds.u.dims, ds.u.shape
    (('member', 'time', 'y', 'x'), (2, 4, 8, 8))
    """
    if not isinstance(system, System):
        raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
    n_members = check_count(n_members, "n_members")
    burn_steps = system._steps(burn_in, "burn_in")
    save_every = system._steps(save_interval, "save_interval")
    if save_every == 0:
        raise ValueError("save_interval must be > 0")
    n_saves = round(float(duration) / float(save_interval)) if np.isfinite(duration) else -1
    if n_saves < 1 or abs(n_saves * save_interval - duration) > 1e-9 * max(1.0, duration):
        raise ValueError(
            f"duration = {duration} must be a positive multiple of save_interval = {save_interval}"
        )
    if system.dt > system.stable_dt():
        logger.warning(
            "dt = %g exceeds the stability estimate %g of %s; the run may diverge",
            system.dt, system.stable_dt(), type(system).__name__,
        )
    ss = seed_sequence(seed)
    rngs = member_generators(ss, n_members)
    n_workers = resolve_workers(n_workers, n_members)

    if initial is not None:
        fields = as_member_fields(initial, system, n_members, "initial")
        auxes = [system.initial_state(rngs[k])[1] for k in range(n_members)]
    else:
        states = [system.initial_state(rngs[k]) for k in range(n_members)]
        fields = np.stack([s[0] for s in states])
        auxes = [s[1] for s in states]

    out = np.empty((n_members, n_saves, *system.state_shape))
    warm_up(system)
    integ = Integrator(system)
    record_steps = (n_saves - 1) * save_every
    bar = Progress(n_members * (burn_steps + record_steps), f"simulate {type(system).__name__}",
                   progress)
    # chunk lengths: whole save intervals, about 1% of the run each
    chunk_saves = max(1, (n_saves - 1) // 100)
    burn_chunk = max(save_every, burn_steps // 100)

    def run_member(k: int) -> None:
        u = fields[k].copy()
        aux = auxes[k].copy()
        step = 0
        for c in chunks(burn_steps, burn_chunk):
            integ(u, aux, c, rngs[k], member=k, step0=step)
            step += c
            bar.update(c)
        out[k, 0] = u
        j = 1
        for c in chunks(n_saves - 1, chunk_saves):
            integ(u, aux, c * save_every, rngs[k], save_every=save_every,
                  out=out[k, j:j + c], member=k, step0=step)
            step += c * save_every
            j += c
            bar.update(c * save_every)

    try:
        run_tasks(run_member, range(n_members), n_workers)
    finally:
        bar.close()

    times = float(burn_in) + float(save_interval) * np.arange(n_saves)
    coords = system.coords()
    ds = xr.Dataset(
        {
            system.variable: (
                ("member", "time", "y", "x"),
                out,
                {"long_name": system.long_name, "units": system.units},
            )
        },
        coords={
            "member": ("member", np.arange(n_members), {"long_name": "ensemble member"}),
            "time": ("time", times, {"units": "1", "long_name": "model time", "axis": "T"}),
            **coords,
        },
        attrs={
            "Conventions": "CF-1.10",
            "title": f"gfdt simulation of {type(system).__name__}",
            "source": f"gfdt {_version()}",
            "history": f"{_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}"
                       " created by gfdt.simulate",
            **system.attrs(),
            "gfdt_seed_entropy": str(ss.entropy),
            "gfdt_seed_spawn_key": str(tuple(ss.spawn_key)),
            "gfdt_burn_in": float(burn_in),
            "gfdt_save_interval": float(save_interval),
        },
    )
    return ds
