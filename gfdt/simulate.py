"""Ensemble simulation of gfdt systems into CF-annotated xarray datasets.

(Slightly past the ~500-line guide: ``simulate``'s docstring is about 80 lines.)
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from pathlib import Path

import numpy as np
import xarray as xr

import gfdt.conventions as conventions
from gfdt._atomic import atomic_path, atomic_write_text
from gfdt._runner import (
    Integrator,
    Progress,
    SeedLike,
    as_member_fields,
    check_count,
    chunks,
    client_threads,
    member_generators,
    run_tasks,
    seed_sequence,
    token,
    warm_up,
    workers_for,
)
from gfdt.systems.base import System

__all__ = ["simulate"]

logger = logging.getLogger("gfdt")


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
    client=None,
) -> xr.Dataset:
    """Simulate an ensemble of independent members of ``system``.

    Member ``k`` draws all its noise from its own random stream, spawned as child
    ``k`` of ``numpy.random.SeedSequence(seed)``, so the result depends only on the
    arguments: not on ``n_workers``, thread counts, scheduling, streaming, resuming or
    on a Dask cluster (``client``) running the members.

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
        Threads running members in parallel (default: the CPU count). With ``client``:
        threads each Dask task uses (default 1).
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
        sample, as variable ``hidden_state`` with dims (member, time, hidden).
    client : dask.distributed.Client, optional
        Spread the members over a Dask cluster: contiguous member groups, one per
        worker thread, each run as one task (needs ``pip install gfdt[distributed]``).
        With ``output``, every task writes its group's segment files
        (``segment_NNNN_mAAAAA-BBBBB.nc``) and checkpoint itself, so the folder must be
        on a file system all workers share; :func:`gfdt.io.open_run` joins them. A
        resumed run keeps the member groups it started with, whatever runs it now.
        Without ``output`` the samples are sent back to the caller.

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
    n_members, burn_steps, save_every, n_saves = _check_run(system, n_members, burn_in,
                                                            duration, save_interval)
    ss = seed_sequence(seed)
    rngs = member_generators(ss, n_members)
    n_workers = workers_for(n_workers, n_members, client)
    fields, auxes = _start_states(system, initial, rngs)

    plan = _plan(burn_steps, n_saves, save_every)
    total_steps = burn_steps + (n_saves - 1) * save_every
    attrs = {
        **conventions.global_attrs(f"gfdt simulation of {type(system).__name__}"),
        **system.attrs(),
        "gfdt_seed_entropy": str(ss.entropy),
        "gfdt_seed_spawn_key": str(tuple(ss.spawn_key)),
        "gfdt_burn_in": float(burn_in),
        "gfdt_save_interval": float(save_interval),
    }
    groups = [(0, n_members)] if client is None else _split_members(n_members, client)
    path = None
    if output is None:
        segs = [plan]
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
        path = Path(output)
        groups = _prepare_directory(path, config, resume, groups)

    job = _Job(system=system, segs=segs, save_every=save_every, burn_in=float(burn_in),
               save_interval=float(save_interval), n_members=n_members, n_saves=n_saves,
               hidden=bool(save_hidden), attrs=json.loads(json.dumps(attrs, default=str)),
               path=path)
    bar = Progress(n_members * total_steps, f"simulate {type(system).__name__}", progress)
    try:
        if client is None:
            warm_up(system)
            parts = [_run_group(job, a, b, fields[a:b], auxes[a:b], rngs[a:b], n_workers, bar)
                     for a, b in groups]
        else:
            warm_up(system)  # compiled here once: threaded workers then load it in turn
            parts = _run_on_dask(client, job, groups, fields, auxes, rngs, n_workers, bar,
                                 total_steps)
    finally:
        bar.close()
    if path is not None:
        import gfdt.io as io

        return io.open_run(path)
    u = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    aux = None
    if save_hidden:
        aux = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return _dataset(system, u, aux, parts[0][2], attrs)


def _start_states(system: System, initial, rngs: list) -> tuple[np.ndarray, np.ndarray]:
    """Fields (member, y, x) and hidden states (member, n_aux) the members start from."""
    n_members = len(rngs)
    if initial is not None:
        fields = as_member_fields(initial, system, n_members, "initial")
        auxes = np.stack([system.initial_state(rngs[k])[1] for k in range(n_members)])
    else:
        states = [system.initial_state(rngs[k]) for k in range(n_members)]
        fields = np.stack([s[0] for s in states])
        auxes = np.stack([s[1] for s in states])
    return fields, auxes


def _check_run(system: System, n_members, burn_in, duration, save_interval
               ) -> tuple[int, int, int, int]:
    """Checked sizes of a run: members, burn-in steps, steps per save, saves."""
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
    return n_members, burn_steps, save_every, n_saves


@dataclasses.dataclass
class _Job:
    """What every member group of a run needs (sent to Dask workers as is)."""

    system: System
    segs: list[list[tuple[int, int]]]
    save_every: int
    burn_in: float
    save_interval: float
    n_members: int
    n_saves: int
    hidden: bool
    attrs: dict
    path: Path | None

    @property
    def total_steps(self) -> int:
        return sum(c[0] for g in self.segs for c in g)


def _run_group(job: _Job, start: int, stop: int, fields: np.ndarray, auxes: np.ndarray,
               rngs: list[np.random.Generator], n_threads: int,
               bar: Progress | None = None, stop_event: str | None = None):
    """Run members ``start..stop-1`` through every segment of ``job``.

    The kernel-call plan is the same for every member whichever group or process runs
    it, so the result is bit-identical to running all members together. Returns the
    samples ``(u, aux, times)`` when not streaming to a folder, else None. A Dask task
    also stops between segments once the Dask event named ``stop_event`` is set.
    """
    system = job.system
    n = stop - start
    fields = np.array(fields, dtype=float, order="C", copy=True)
    auxes = np.array(auxes, dtype=float, order="C", copy=True)
    if job.path is None:
        store: _MemoryStore | _DirectoryStore = _MemoryStore(system, n, job.n_saves, job.hidden)
        first = 0
    else:
        store = _DirectoryStore(job.path, job.attrs, system, job.hidden, start, stop,
                                job.n_members)
        first = store.restore(fields, auxes, rngs)
        if first > 0:
            logger.info("resuming members %d-%d of %s at segment %d of %d", start, stop - 1,
                        job.path, first, len(job.segs))
    segs = job.segs[first:]
    warm_up(system)
    integ = Integrator(system)
    save_every = job.save_every
    step = job.total_steps - sum(c[0] for g in segs for c in g)
    if bar is not None:
        bar.update(n * step)
    sample = sum(c[1] for g in job.segs[:first] for c in g)
    for i, seg in enumerate(segs):
        if i > 0 and _stop_requested(stop_event):
            logger.info("members %d-%d stopped after segment %d: another group failed",
                        start, stop - 1, first + i)
            return None
        seg_saves = sum(c[1] for c in seg)
        buf = np.empty((n, seg_saves, *system.state_shape))
        abuf = np.empty((n, seg_saves, system.n_aux))

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
                          member=start + k, step0=st)
                    st += n_steps
                    if bar is not None:
                        bar.update(n_steps)
                j += n_out

        run_tasks(run_member, range(n), n_threads)
        step += sum(c[0] for c in seg)
        times = job.burn_in + job.save_interval * np.arange(sample, sample + seg_saves)
        store.write(buf, abuf, times, fields, auxes, rngs)
        sample += seg_saves
    if isinstance(store, _MemoryStore):
        return store.u, store.aux, np.concatenate(store.times)
    return None


def _split_members(n_members: int, client) -> list[tuple[int, int]]:
    """Contiguous member groups, one per worker thread of ``client`` (sizes differ by <= 1)."""
    n_groups = min(n_members, client_threads(client))
    edges = [round(i * n_members / n_groups) for i in range(n_groups + 1)]
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _run_on_dask(client, job: _Job, groups, fields, auxes, rngs, n_threads: int,
                 bar: Progress, total_steps: int) -> list:
    """One Dask task per member group; results in member order.

    After the first failure the other groups stop at their next segment boundary (as
    a run without Dask does); then the error of the first failed group is re-raised.
    """
    from distributed import Event, as_completed

    tag = token()
    stop = Event(f"gfdt-simulate-stop-{tag}", client=client)
    futures = [client.submit(_run_group, job, a, b, fields[a:b], auxes[a:b], rngs[a:b],
                             n_threads, None, stop.name, pure=False,
                             key=f"gfdt-simulate-m{a}-{b}-{tag}")
               for a, b in groups]
    order = {f.key: i for i, f in enumerate(futures)}
    parts: list = [None] * len(futures)
    errors: dict[int, BaseException] = {}
    try:
        for fut in as_completed(futures):
            i = order[fut.key]
            if fut.status == "error":
                errors[i] = fut.exception()
                stop.set()
                continue
            parts[i] = fut.result()
            a, b = groups[i]
            bar.update((b - a) * total_steps)  # (resumed steps included)
            fut.release()
    finally:
        stop.set()  # a no-op unless interrupted: tasks still running stop early
        for fut in futures:
            if not fut.done():
                fut.cancel()
    if errors:
        raise errors[min(errors)]
    return parts


def _stop_requested(name: str | None) -> bool:
    """Whether the Dask run that started this task asked it to stop."""
    if name is None:
        return False
    from distributed import Event

    return Event(name).is_set()


def _prepare_directory(path: Path, config: dict, resume: bool,
                       groups: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Create ``path/run.json`` or check it against ``config`` when resuming.

    Returns the member groups to run: on resume those of the stored run (each group
    continues from its own checkpoint, whatever runs it now).
    """
    config = json.loads(json.dumps(config, default=str))
    cfg = path / "run.json"
    if cfg.exists():
        if not resume:
            raise ValueError(
                f"output: {path} already holds a run; pass resume=True to continue it "
                "or choose another folder"
            )
        stored = json.loads(cfg.read_text())
        stored_groups = stored.pop("member_groups", [[0, config["n_members"]]])
        if stored != config:
            raise ValueError(
                f"output: the run in {path} was started with other arguments; "
                "resume needs the same system, seed, sizes and initial state"
            )
        for stale in [*path.glob(".*.tmp"), *path.glob("*.tmp.npz")]:
            stale.unlink()  # writes that a kill interrupted
        return [(int(a), int(b)) for a, b in stored_groups]
    path.mkdir(parents=True, exist_ok=True)
    _atomic_text(cfg, json.dumps({**config, "member_groups": [list(g) for g in groups]},
                                 indent=1))
    return groups


def _digest(a: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def _dataset(system: System, u: np.ndarray, aux: np.ndarray | None, times: np.ndarray,
             attrs: dict, member0: int = 0) -> xr.Dataset:
    # the variable carries the system too, so a DataArray alone is self-describing
    sys_attrs = {k: v for k, v in attrs.items()
                 if k in ("gfdt_system", "gfdt_parameters", "gfdt_homogeneous")}
    data = {system.variable: (("member", "time", *system.state_dims), u,
                              {**conventions.attrs("state", long_name=system.long_name,
                                                   units=system.units),
                               **sys_attrs})}
    if aux is not None:
        data["hidden_state"] = (("member", "time", "hidden"), aux,
                                conventions.attrs("hidden_state"))
    return xr.Dataset(
        data,
        coords={
            "member": ("member", np.arange(member0, member0 + u.shape[0]),
                       conventions.attrs("member")),
            "time": ("time", times, conventions.attrs("model_time")),
            **system.coords(),
        },
        attrs={**attrs, "history": conventions.history("created by gfdt.simulate")},
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


class _DirectoryStore:
    """Streams one member group's segments to netCDF files and keeps its checkpoint.

    The whole ensemble as one group writes ``segment_NNNN.nc`` and ``checkpoint.npz``;
    a group of members ``a..b-1`` of a larger ensemble (a Dask run) writes
    ``segment_NNNN_maaaaa-bbbbb.nc`` and ``checkpoint_maaaaa-bbbbb.npz``.
    """

    def __init__(self, path: Path, attrs: dict, system: System, hidden: bool, start: int,
                 stop: int, n_members: int) -> None:
        self.path = path
        self.attrs = attrs
        self.system = system
        self.hidden = hidden
        self.start = start
        self.tag = "" if (start, stop) == (0, n_members) else f"_m{start:05d}-{stop:05d}"
        self.segment = 0

    def restore(self, fields, auxes, rngs) -> int:
        ck = self.path / f"checkpoint{self.tag}.npz"
        if not ck.exists():
            return 0
        try:
            with np.load(ck) as z:
                fields[...] = z["fields"]
                auxes[...] = z["aux"]
                states = json.loads(str(z["rng_states"]))
                self.segment = int(z["segment"])
        except Exception as exc:  # zipfile.BadZipFile, EOFError, KeyError, ValueError, ...
            raise ValueError(
                f"output: the checkpoint {ck} is truncated or not a gfdt checkpoint "
                f"({type(exc).__name__}: {exc}); delete it to run again from the start (the "
                "segments are rewritten), or write to a new output folder") from None
        for r, st in zip(rngs, states, strict=True):
            r.bit_generator.state = st
        return self.segment

    def write(self, buf, abuf, times, fields, auxes, rngs) -> None:
        import gfdt.io as io

        if buf.shape[1]:
            ds = _dataset(self.system, buf, abuf if self.hidden else None, times,
                          self.attrs, member0=self.start)
            io.save(ds, self.path / f"segment_{self.segment:04d}{self.tag}.nc")
        self.segment += 1
        with atomic_path(self.path / f"checkpoint{self.tag}.npz") as tmp, \
                open(tmp, "wb") as fh:
            np.savez(fh, fields=fields, aux=auxes, segment=self.segment,
                     rng_states=json.dumps([r.bit_generator.state for r in rngs]))


def _atomic_text(path: Path, text: str) -> None:
    atomic_write_text(path, text, "output")
