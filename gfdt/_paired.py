"""The paired-ensemble driver behind :mod:`gfdt.truth`.

:func:`_drive` runs every member with its perturbed twin(s) on threads or a Dask cluster
and reduces the results in member order; :func:`gfdt.perturbation_response` (impulses)
and :func:`gfdt.forced_response` (forcings) differ only in what a member's twin receives
(:func:`_paired_member`, :func:`_forced_member`).
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import xarray as xr

import gfdt.conventions as conventions
from gfdt._runner import (
    Integrator,
    Progress,
    SeedLike,
    client_threads,
    clone_generator,
    member_generators,
    run_tasks,
    seed_sequence,
    token,
    warm_up,
)
from gfdt.response.conjugate import Observable, Perturbation
from gfdt.systems.base import System

_BATCH = 64  # members reduced together; fixed so sums do not depend on thread count


@dataclasses.dataclass
class _PairedJob:
    """Configuration of the paired runs of one member (sent to Dask workers as is)."""

    system: System
    pixels: list[tuple[int, int]]
    delta: float
    n_windows: int
    steps: int
    save_every: int
    shape: tuple[int, ...]
    observable: Observable | None = None
    perturbation: Perturbation | None = None
    result_shape: tuple[int, ...] | None = None
    kicks: np.ndarray | None = None  # forcing: the kick at every save time
    kick_shape: np.ndarray | None = None  # impulse shape at the origin (None: one pixel)

    @property
    def member_steps(self) -> int:
        """Time steps one member integrates (all its copies)."""
        if self.kicks is not None:
            return 2 * (self.kicks.shape[0] - 1) * self.save_every
        return (1 + len(self.pixels)) * self.n_windows * self.steps


def _paired_member(job: _PairedJob, integ: Integrator, u0: np.ndarray, aux0: np.ndarray,
                   rng: np.random.Generator, k: int, bar: Progress | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Member ``k``'s mean impulse response over its windows and pixels, final state.

    With ``job.kicks``: its forced-minus-unforced difference instead (see
    :func:`_forced_member`).
    """
    if job.kicks is not None:
        return _forced_member(job, integ, u0, aux0, rng, k, bar)
    pixels, delta, steps, save_every = job.pixels, job.delta, job.steps, job.save_every
    u = u0.copy()
    aux = aux0.copy()
    total = np.zeros(job.result_shape or job.shape)
    out_u = np.empty(job.shape)
    out_p = np.empty(job.shape)
    step = 0
    for _ in range(job.n_windows):
        # every perturbed copy replays the unperturbed member's noise exactly
        twins = [clone_generator(rng) for _ in pixels]
        start_u, start_aux = u.copy(), aux.copy()
        out_u[0] = u
        integ(u, aux, steps, rng, save_every=save_every, out=out_u[1:],
              member=k, step0=step)
        for (py, px), rng_p in zip(pixels, twins, strict=True):
            up = start_u.copy()
            aux_p = start_aux.copy()
            if job.perturbation is not None:
                up += delta * job.perturbation.field(start_u[None])[0]
            elif job.kick_shape is not None:
                up += delta * np.roll(job.kick_shape, (py, px), axis=(0, 1))
            else:
                up[py, px] += delta
            out_p[0] = up
            integ(up, aux_p, steps, rng_p, save_every=save_every, out=out_p[1:],
                  member=k, step0=step)
            if job.observable is not None:
                total += (job.observable(out_p) - job.observable(out_u)) / delta
            elif job.perturbation is not None:
                total += (out_p - out_u) / delta
            else:
                total += np.roll((out_p - out_u) / delta, (-py, -px), axis=(1, 2))
        step += steps
        if bar is not None:
            bar.update((1 + len(pixels)) * steps)
    return total / (job.n_windows * len(pixels)), u, aux


def _forced_member(job: _PairedJob, integ: Integrator, u0: np.ndarray, aux0: np.ndarray,
                   rng: np.random.Generator, k: int, bar: Progress | None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Member ``k`` and its forced copy: the difference at every save time, final state."""
    kicks, save_every, pert = job.kicks, job.save_every, job.perturbation
    n_times = kicks.shape[0]
    u, aux = u0.copy(), aux0.copy()
    uf, aux_f = u.copy(), aux.copy()
    twin = clone_generator(rng)  # the forced copy replays the member's noise
    out_u = np.empty(job.shape)
    out_f = np.empty(job.shape)
    for j in range(n_times):
        if pert is None:
            uf += kicks[j]
        else:
            uf += kicks[j] * pert.field(uf[None])[0]
        out_u[j] = u
        out_f[j] = uf
        if j + 1 < n_times:
            integ(u, aux, save_every, rng, member=k, step0=j * save_every)
            integ(uf, aux_f, save_every, twin, member=k, step0=j * save_every)
            if bar is not None:
                bar.update(2 * save_every)
    if job.observable is None:
        return out_f - out_u, u, aux
    return job.observable(out_f) - job.observable(out_u), u, aux


def _drive(job: _PairedJob, fields: np.ndarray, auxes: np.ndarray, rngs: list,
           n_workers: int, client, progress: bool | None, desc: str, keep_members: bool):
    """Run every member's paired copies (threads or Dask) and reduce in member order.

    Returns the mean over members, its standard error (NaN with one member), the
    unperturbed members' final fields and hidden states, and (``keep_members``) every
    member's result. Members are reduced in batches of a fixed size with Welford's
    update, so the result does not depend on threads, tasks or the cluster.
    """
    n_members = fields.shape[0]
    res_shape = job.result_shape or job.shape
    warm_up(job.system)
    integ = Integrator(job.system)
    bar = Progress(n_members * job.member_steps, desc, progress)

    def run_member(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _paired_member(job, integ, fields[k], auxes[k], rngs[k], k, bar)

    mean = np.zeros(res_shape)  # Welford's running mean and sum of squared deviations
    m2 = np.zeros(res_shape)
    final_u, final_aux = np.empty_like(fields), np.empty_like(auxes)
    per_member = np.empty((n_members, *res_shape)) if keep_members else None
    try:
        batches = [range(a, min(a + _BATCH, n_members)) for a in range(0, n_members, _BATCH)]
        if client is None:
            results = (run_tasks(run_member, b, n_workers) for b in batches)
        else:
            results = _dask_batches(client, job, batches, fields, auxes, rngs, n_workers, bar)
        for batch, parts in zip(batches, results, strict=True):
            for k, (m, u_end, aux_end) in enumerate(parts, batch.start):  # member order
                d = m - mean
                mean += d / (k + 1)
                m2 += d * (m - mean)
                final_u[k], final_aux[k] = u_end, aux_end
                if per_member is not None:
                    per_member[k] = m
    finally:
        bar.close()
    # members are independent; impulses within a member (windows, pixels) need not be
    se = (np.sqrt(m2 / (n_members - 1) / n_members) if n_members > 1
          else np.full(res_shape, np.nan))
    return mean, se, final_u, final_aux, per_member


def _dataset(system: System, obs: Observable | None, mean: np.ndarray, se: np.ndarray,
             first: tuple, units: tuple[str, str], names: tuple[dict, dict], title: str,
             extra: dict, ss: np.random.SeedSequence) -> xr.Dataset:
    """The result of a paired driver: ``response`` and ``stderr`` with CF metadata.

    ``first`` is the leading coordinate (``lag`` or ``time``); ``units`` the units of
    a field and of an observable result.
    """
    dim0 = first[0]
    if obs is None:
        dims, crd, unit = (dim0, *system.state_dims), system.coords(), units[0]
    else:
        dims = (dim0, "observable")
        crd = {"observable": ["mean"] if obs.label == "mean" else np.arange(mean.shape[1])}
        unit = units[1]
        extra = {**extra, "observable": obs.label}
    return xr.Dataset(
        {"response": (dims, mean, {"units": unit, **names[0]}),
         "stderr": (dims, se, {"units": unit, **names[1]})},
        coords={dim0: first, **crd},
        attrs={**conventions.global_attrs(title), **system.attrs(), "method": "dynamical",
               **extra, "gfdt_seed_entropy": str(ss.entropy)},
    )


def _paired_group(job: _PairedJob, start: int, fields: np.ndarray, auxes: np.ndarray,
                  rngs: list[np.random.Generator], n_threads: int) -> list:
    """Dask task: :func:`_paired_member` for members ``start, start + 1, ...``."""
    warm_up(job.system)
    integ = Integrator(job.system)
    return run_tasks(lambda i: _paired_member(job, integ, fields[i], auxes[i], rngs[i],
                                              start + i, None),
                     range(len(fields)), n_threads)


def _dask_batches(client, job: _PairedJob, batches: list[range], fields, auxes, rngs,
                  n_threads: int, bar: Progress):
    """Yield each batch's per-member results in order; members split over the cluster.

    Every batch is split into one task per worker thread; at most two batches are in
    flight, so the caller's memory stays bounded.
    """
    n_tasks = client_threads(client)

    def submit(batch: range) -> list:
        edges = np.linspace(batch.start, batch.stop, min(n_tasks, len(batch)) + 1).round()
        pieces = [(int(a), int(b)) for a, b in itertools.pairwise(edges) if b > a]
        return [client.submit(_paired_group, job, a, fields[a:b], auxes[a:b], rngs[a:b],
                              n_threads, pure=False, key=f"gfdt-paired-m{a}-{b}-{token()}")
                for a, b in pieces]

    pending = [submit(b) for b in batches[:2]]
    try:
        for i, batch in enumerate(batches):
            futures = pending.pop(0)
            if i + 2 < len(batches):
                pending.append(submit(batches[i + 2]))
            parts = [r for f in futures for r in f.result()]
            for f in futures:
                f.release()
            bar.update(len(batch) * job.member_steps)
            yield parts
    finally:
        for futures in pending:
            for f in futures:
                f.cancel()


def _streams_and_hidden(system: System, seed: SeedLike, n_members: int, initial_aux):
    """Root seed sequence, one generator per member, and the members' hidden states."""
    ss = seed_sequence(seed)
    rngs = member_generators(ss, n_members)
    if initial_aux is None:
        auxes = np.stack([system.initial_state(r)[1] for r in rngs]) if system.n_aux else \
            np.zeros((n_members, 0))
    else:
        auxes = np.asarray(initial_aux, dtype=float)
        if auxes.shape != (n_members, system.n_aux):
            raise ValueError(
                f"initial_aux must have shape ({n_members}, {system.n_aux}), got {auxes.shape}"
            )
    return ss, rngs, auxes
