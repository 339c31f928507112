"""Ensemble simulation of gfdt systems into CF-annotated xarray datasets."""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from pathlib import Path

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
    return np.array(arr, dtype=float, order="C", copy=True)


def _plan(burn_steps: int, n_saves: int, save_every: int) -> list[tuple[int, int]]:
    """Kernel calls of a run as (n_steps, n_saves) chunks, fixed by the configuration.

    Every run with the same configuration makes the same calls (streamed or not,
    resumed or not), which makes results bit-identical. Chunks are about 1% of the run.
    """
    plan = [(c, 0) for c in chunks(burn_steps, max(save_every, burn_steps // 100))]
    plan.append((0, 1))  # the state at the end of the burn-in is the first sample
    plan += [(c * save_every, c) for c in chunks(n_saves - 1, max(1, (n_saves - 1) // 100))]
    return plan


def _segments(plan: list[tuple[int, int]], seg_steps: int) -> list[list[tuple[int, int]]]:
    """Group consecutive chunks into segments of about ``seg_steps`` steps."""
    segs: list[list[tuple[int, int]]] = [[]]
    acc = 0
    for c in plan:
        if segs[-1] and acc + c[0] > seg_steps:
            segs.append([])
            acc = 0
        segs[-1].append(c)
        acc += c[0]
    return segs


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
    output: str | os.PathLike | None = None,
    segment: float | None = None,
    resume: bool = False,
    save_hidden: bool = False,
) -> xr.Dataset:
    """Simulate an ensemble of independent members of ``system``.

    Member ``k`` draws all its noise from its own random stream, spawned as child
    ``k`` of ``numpy.random.SeedSequence(seed)``, so the result depends only on the
    arguments: not on ``n_workers``, thread counts, scheduling, streaming or resuming.

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
    output : path, optional
        Folder to stream the run to: one netCDF file per segment
        (``segment_NNNN.nc``, written atomically) and a checkpoint after each segment
        (fields, hidden state, random-generator states, position). A run that is
        killed keeps every segment it finished.
    segment : float, optional
        Length of a segment in time units (burn-in included; default: a tenth of the
        run). Only used with ``output``.
    resume : bool
        With ``output``: continue the run found there from its last checkpoint (the
        arguments must match). The result is bit-identical to an uninterrupted run.
    save_hidden : bool
        Also write the hidden state (e.g. Navier-Stokes forcing phases) with each
        sample, as variable ``aux`` with dims (member, time, aux).

    Returns
    -------
    xarray.Dataset
        Variable ``u`` with dims ``("member", "time", "y", "x")``; ``time`` starts at
        ``burn_in``. Attributes carry the system's parameters and the seed.

    Raises
    ------
    gfdt.SimulationDiverged
        If a member's state becomes non-finite or explodes (checked at least every
        save interval). Segments already written are kept.

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
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.number)):
        raise TypeError(f"duration must be a number, got {type(duration).__name__}")
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
        auxes = np.stack([system.initial_state(rngs[k])[1] for k in range(n_members)])
    else:
        states = [system.initial_state(rngs[k]) for k in range(n_members)]
        fields = np.stack([s[0] for s in states])
        auxes = np.stack([s[1] for s in states])

    plan = _plan(burn_steps, n_saves, save_every)
    total_steps = burn_steps + (n_saves - 1) * save_every
    attrs = {
        "Conventions": "CF-1.10",
        "title": f"gfdt simulation of {type(system).__name__}",
        "source": f"gfdt {_version()}",
        **system.attrs(),
        "gfdt_seed_entropy": str(ss.entropy),
        "gfdt_seed_spawn_key": str(tuple(ss.spawn_key)),
        "gfdt_burn_in": float(burn_in),
        "gfdt_save_interval": float(save_interval),
    }
    if output is None:
        segs = [plan]
        store = _MemoryStore(system, n_members, n_saves, save_hidden)
    else:
        seg_steps = (system._steps(segment, "segment") if segment is not None
                     else max(1, total_steps // 10))
        if seg_steps < 1:
            raise ValueError("segment must be > 0")
        segs = _segments(plan, seg_steps)
        config = {"attrs": {k: v for k, v in attrs.items()}, "n_members": n_members,
                  "burn_in": float(burn_in), "duration": float(duration),
                  "save_interval": float(save_interval), "segments": [len(g) for g in segs],
                  "initial": _digest(fields), "save_hidden": bool(save_hidden)}
        store = _DirectoryStore(Path(output), config, resume, system)
        start = store.restore(fields, auxes, rngs)
        if start > 0:
            logger.info("resuming %s at segment %d of %d", output, start, len(segs))
        segs_done = start
        segs = segs[segs_done:]

    warm_up(system)
    integ = Integrator(system)
    done_steps = total_steps - sum(c[0] for g in segs for c in g)
    bar = Progress(n_members * total_steps, f"simulate {type(system).__name__}", progress)
    bar.update(n_members * done_steps)
    step = done_steps
    sample = sum(c[1] for c in plan) - sum(c[1] for g in segs for c in g)
    try:
        for seg in segs:
            seg_saves = sum(c[1] for c in seg)
            buf = np.empty((n_members, seg_saves, *system.state_shape))
            abuf = np.empty((n_members, seg_saves, system.n_aux))

            def run_member(k: int, seg=seg, buf=buf, abuf=abuf, step0=step) -> None:
                u, aux, st, j = fields[k], auxes[k], step0, 0
                for n_steps, n_out in seg:
                    if n_steps == 0:  # snapshot
                        buf[k, j] = u
                        abuf[k, j] = aux
                    else:
                        integ(u, aux, n_steps, rngs[k], save_every=save_every if n_out else 0,
                              out=buf[k, j:j + n_out] if n_out else None,
                              aux_out=abuf[k, j:j + n_out] if n_out else None,
                              member=k, step0=st)
                        st += n_steps
                        bar.update(n_steps)
                    j += n_out

            run_tasks(run_member, range(n_members), n_workers)
            step += sum(c[0] for c in seg)
            times = float(burn_in) + float(save_interval) * np.arange(sample, sample + seg_saves)
            store.write(buf, abuf, times, fields, auxes, rngs)
            sample += seg_saves
    finally:
        bar.close()
    return store.result(system, attrs)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _dataset(system: System, u: np.ndarray, aux: np.ndarray | None, times: np.ndarray,
             attrs: dict) -> xr.Dataset:
    # the variable carries the system too, so a DataArray alone is self-describing
    sys_attrs = {k: v for k, v in attrs.items()
                 if k in ("gfdt_system", "gfdt_parameters", "gfdt_homogeneous")}
    data = {system.variable: (("member", "time", "y", "x"), u,
                              {"long_name": system.long_name, "units": system.units,
                               **sys_attrs})}
    if aux is not None:
        data["hidden_state"] = (("member", "time", "hidden"), aux,
                       {"long_name": "hidden state (not observed)", "units": "1"})
    return xr.Dataset(
        data,
        coords={
            "member": ("member", np.arange(u.shape[0]), {"long_name": "ensemble member"}),
            "time": ("time", times, {"units": "1", "long_name": "model time", "axis": "T"}),
            **system.coords(),
        },
        attrs={**attrs, "history": f"{_now()} created by gfdt.simulate"},
    )


class _MemoryStore:
    """Collects every segment in memory (no output folder)."""

    def __init__(self, system: System, n_members: int, n_saves: int, hidden: bool) -> None:
        self.u = np.empty((n_members, n_saves, *system.state_shape))
        self.aux = np.empty((n_members, n_saves, system.n_aux)) if hidden else None
        self.times: list[np.ndarray] = []
        self.pos = 0

    def write(self, buf, abuf, times, fields, auxes, rngs) -> None:
        n = buf.shape[1]
        self.u[:, self.pos:self.pos + n] = buf
        if self.aux is not None:
            self.aux[:, self.pos:self.pos + n] = abuf
        self.times.append(times)
        self.pos += n

    def result(self, system: System, attrs: dict) -> xr.Dataset:
        return _dataset(system, self.u, self.aux, np.concatenate(self.times), attrs)


class _DirectoryStore:
    """Streams segments to netCDF files in a folder and keeps a checkpoint."""

    def __init__(self, path: Path, config: dict, resume: bool, system: System) -> None:
        self.path = path
        self.system = system
        self.config = json.loads(json.dumps(config, default=str))
        self.hidden = bool(config["save_hidden"])
        cfg = path / "run.json"
        if cfg.exists():
            if not resume:
                raise ValueError(
                    f"output: {path} already holds a run; pass resume=True to continue it "
                    "or choose another folder"
                )
            if json.loads(cfg.read_text()) != self.config:
                raise ValueError(
                    f"output: the run in {path} was started with other arguments; "
                    "resume needs the same system, seed, sizes and initial state"
                )
            for stale in [*path.glob(".*.tmp"), *path.glob("*.tmp.npz")]:
                stale.unlink()  # writes that a kill interrupted
        else:
            path.mkdir(parents=True, exist_ok=True)
            _atomic_text(cfg, json.dumps(self.config, indent=1))
        self.segment = 0

    def restore(self, fields, auxes, rngs) -> int:
        ck = self.path / "checkpoint.npz"
        if not ck.exists():
            return 0
        with np.load(ck) as z:
            fields[...] = z["fields"]
            auxes[...] = z["aux"]
            states = json.loads(str(z["rng_states"]))
            self.segment = int(z["segment"])
        for r, st in zip(rngs, states, strict=True):
            r.bit_generator.state = st
        return self.segment

    def write(self, buf, abuf, times, fields, auxes, rngs) -> None:
        from gfdt import io

        if buf.shape[1]:
            ds = _dataset(self.system, buf, abuf if self.hidden else None, times,
                          self.config["attrs"])
            io.save(ds, self.path / f"segment_{self.segment:04d}.nc")
        self.segment += 1
        tmp = self.path / "checkpoint.tmp.npz"
        np.savez(tmp, fields=fields, aux=auxes, segment=self.segment,
                 rng_states=json.dumps([r.bit_generator.state for r in rngs]))
        os.replace(tmp, self.path / "checkpoint.npz")

    def result(self, system: System, attrs: dict) -> xr.Dataset:
        from gfdt import io

        return io.open_run(self.path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
