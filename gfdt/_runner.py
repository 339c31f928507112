"""Shared machinery of simulate and perturbation_response: seeds, threads, progress."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from gfdt._progress import tqdm
from gfdt.systems.base import SimulationDiverged, System

logger = logging.getLogger("gfdt")

SeedLike = int | np.random.SeedSequence | None


def seed_sequence(seed: SeedLike, name: str = "seed") -> np.random.SeedSequence:
    """Turn ``seed`` into a SeedSequence (fresh entropy when None)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(
            f"{name} must be an int, a numpy SeedSequence or None, got {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(f"{name} must be >= 0, got {seed}")
    return np.random.SeedSequence(int(seed))


def member_generators(ss: np.random.SeedSequence, n_members: int) -> list[np.random.Generator]:
    """One independent PCG64 stream per member, spawned from ``ss``.

    Member k's stream depends only on the seed and k, never on how members are
    distributed over threads or workers.
    """
    return [np.random.Generator(np.random.PCG64(c)) for c in ss.spawn(n_members)]


def clone_generator(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator in exactly the same state as ``rng``."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def check_count(value: Any, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def resolve_workers(n_workers: int | None, n_tasks: int) -> int:
    if n_workers is None:
        return max(1, min(os.cpu_count() or 1, n_tasks))
    return check_count(n_workers, "n_workers")


_WARM_UP_LOCK = threading.Lock()


def warm_up(system: System) -> None:
    """Compile (or load from cache) the system's kernel in the calling thread.

    Serialised by a process-wide lock: Dask workers that are threads of one process
    (``LocalCluster(processes=False)``) otherwise compile or load the same kernel
    concurrently, which crashed the process in about half of our CI runs.
    """
    with _WARM_UP_LOCK:
        u, aux = system.initial_state(np.random.default_rng(0))
        out = np.empty((0, *system.state_shape))
        system._kernel()(
            u, aux, 1, 0, out, np.empty((0, system.n_aux)), np.random.default_rng(0),
            system.divergence_threshold,
            *system._kernel_args()
        )


class Integrator:
    """Runs a system's kernel on one member's state, raising on divergence."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.kernel = system._kernel()
        self.args = system._kernel_args()
        self.threshold = float(system.divergence_threshold)
        self._empty = np.empty((0, *system.state_shape))
        self._empty_aux = np.empty((0, system.n_aux))

    def __call__(
        self,
        u: np.ndarray,
        aux: np.ndarray,
        n_steps: int,
        rng: np.random.Generator,
        *,
        save_every: int = 0,
        out: np.ndarray | None = None,
        aux_out: np.ndarray | None = None,
        member: int = 0,
        step0: int = 0,
    ) -> None:
        """Advance ``u``/``aux`` in place; every ``save_every`` steps store ``u`` in ``out``
        and ``aux`` in ``aux_out`` (scratch when not given)."""
        if n_steps <= 0:
            return
        if out is None:
            out = self._empty
            save_every = 0
        if aux_out is None:
            aux_out = (self._empty_aux if len(out) == 0
                       else np.empty((len(out), self.system.n_aux)))
        status = self.kernel(u, aux, n_steps, save_every, out, aux_out, rng, self.threshold,
                             *self.args)
        if status >= 0:
            step = step0 + int(status)
            raise SimulationDiverged(step, step * self.system.dt, member)


class Progress:
    """Thread-safe tqdm wrapper (a no-op when disabled)."""

    def __init__(self, total: int, desc: str, enabled: bool | None, unit: str = "step") -> None:
        disable = None if enabled is None else not enabled
        self.bar = tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=disable,
                        leave=False)
        self.lock = threading.Lock()

    def update(self, k: int) -> None:
        with self.lock:
            self.bar.update(k)

    def close(self) -> None:
        self.bar.close()


def run_tasks(fn: Callable[[int], Any], tasks: Sequence[int], n_workers: int) -> list[Any]:
    """Run ``fn`` over ``tasks`` in threads (numba kernels release the GIL).

    Results come back in task order; the first exception is re-raised after the
    others finish.
    """
    if n_workers == 1 or len(tasks) <= 1:
        return [fn(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        futures = [pool.submit(fn, t) for t in tasks]
        results, error = [], None
        for f in futures:
            try:
                results.append(f.result())
            except BaseException as exc:
                results.append(None)
                error = error or exc
    if error is not None:
        raise error
    return results


def chunks(total: int, size: int) -> list[int]:
    """Split ``total`` into consecutive chunk lengths of at most ``size``."""
    size = max(1, size)
    out = [size] * (total // size)
    if total % size:
        out.append(total % size)
    return out


def as_member_fields(initial, system: System, n_members: int | None, name: str) -> np.ndarray:
    """Validate initial fields given as (member, y, x) (DataArray or array).

    Returns a new C-contiguous float64 array: runs advance it in place, so it must
    never share memory with the caller's data.
    """
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
    try:
        raw = np.asarray(initial)
    except ValueError:  # ragged nested lists
        raise ValueError(f"{name} must be an array of shape (member, *state)") from None
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}")
    arr = raw.astype(float)
    nd = len(system.state_shape)
    if arr.ndim == nd:
        arr = arr[None]
    if arr.ndim != nd + 1 or arr.shape[1:] != system.state_shape:
        raise ValueError(
            f"{name} must have shape (member, {', '.join(map(str, system.state_shape))}), "
            f"got {np.shape(initial)}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no members (shape {arr.shape})")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    if n_members is not None and arr.shape[0] != n_members:
        raise ValueError(f"{name} has {arr.shape[0]} members but n_members = {n_members}")
    return np.array(arr, dtype=float, order="C", copy=True)


def client_threads(client) -> int:
    """Total worker threads of a running dask.distributed Client.

    Raises
    ------
    TypeError
        If ``client`` is not a Dask client.
    ValueError
        If it is closed, cannot reach its scheduler, or has no workers.
    """
    if not callable(getattr(type(client), "nthreads", None)):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if getattr(client, "status", None) in ("closed", "closing"):
        raise ValueError("client is closed; pass a running dask.distributed.Client "
                         "(e.g. Client(n_workers=...))")
    try:
        threads = client.nthreads()
    except (AttributeError, OSError) as exc:  # no scheduler connection
        raise ValueError(f"client cannot reach its scheduler ({exc}); pass a running "
                         "dask.distributed.Client") from None
    total = sum(threads.values())
    if total < 1:
        raise ValueError("client has no workers; start some or wait for them "
                         "(client.wait_for_workers(n))")
    return total


def workers_for(n_workers: int | None, n_members: int, client) -> int:
    """Threads per member group: all cores locally, 1 per Dask task by default.

    A closed or wrong ``client`` fails here, before any work.
    """
    if client is None:
        return resolve_workers(n_workers, n_members)
    client_threads(client)
    return 1 if n_workers is None else check_count(n_workers, "n_workers")


def token() -> str:
    return os.urandom(6).hex()
