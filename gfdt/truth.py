"""Ground-truth ("dynamical") responses from paired perturbation ensembles.

One driver (:func:`_drive`) runs every member with its perturbed twin(s) on threads or a
Dask cluster and reduces the results in member order; :func:`perturbation_response`
(impulses) and :func:`forced_response` (forcings) differ only in what a member's twin
receives (:func:`_paired_member`, :func:`_forced_member`). The module runs past the
~500-line guide by its two public docstrings (about 150 lines).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging

import numpy as np
import xarray as xr

import gfdt.conventions as conventions
from gfdt._runner import (
    Integrator,
    Progress,
    SeedLike,
    as_member_fields,
    check_count,
    client_threads,
    clone_generator,
    member_generators,
    run_tasks,
    seed_sequence,
    token,
    warm_up,
    workers_for,
)
from gfdt.response.conjugate import Observable, Perturbation
from gfdt.systems._spectral import resolved_impulse
from gfdt.systems.base import System

__all__ = ["forced_response", "perturbation_response"]

logger = logging.getLogger("gfdt")

_BATCH = 64  # members reduced together; fixed so sums do not depend on thread count


def perturbation_response(
    system: System,
    initial,
    *,
    max_lag: int,
    save_interval: float,
    delta: float,
    seed: SeedLike = None,
    n_windows: int = 1,
    pixel: tuple[int, int] | list[tuple[int, int]] = (0, 0),
    initial_aux: np.ndarray | None = None,
    n_workers: int | None = None,
    progress: bool | None = None,
    return_state: bool = False,
    client=None,
    observable=None,
    perturbation=None,
    keep_members: bool = False,
    kick: str = "pixel",
) -> xr.Dataset | tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """Response to an impulse at one pixel, from paired ("common random numbers") runs.

    For every member and window, the state is copied, ``delta`` is added to the field
    at ``pixel``, and both copies are integrated over ``max_lag * save_interval``
    time units with identical noise (and identical hidden state). The response is the
    mean of ``(perturbed - unperturbed) / delta`` over all impulses; its standard
    error is the standard deviation of the member means over the square root of the
    number of members (members are independent; impulses within a member need not be),
    so it needs at least two members. With several pixels, each window runs one
    unperturbed copy and one perturbed copy per pixel, all with the same noise:
    ``1 + K`` runs give ``K`` impulses instead of 2 runs per impulse. After each window
    the unperturbed member continues, and the next window is kicked from where it ended
    (the paper's re-perturbation procedure).

    For a linear system with additive noise the paired difference is deterministic and
    equals the discrete propagator exactly.

    Parameters
    ----------
    system : gfdt.systems.System
    initial : array_like or xarray.DataArray, shape (member, y, x)
        Stationary starting fields, one per member.
    max_lag : int
        Number of saved lags after the impulse (lags ``0..max_lag``).
    save_interval : float
        Time between saved lags (time units, multiple of dt).
    delta : float
        Size of the impulse (field units). Small enough for linear response, large
        enough to stay clear of round-off.
    seed : int, numpy.random.SeedSequence or None
        Root seed; member k uses child stream k.
    n_windows : int
        Successive impulses per member.
    pixel : (int, int) or sequence of (int, int)
        Grid indices ``(iy, ix)`` of the impulse, or several pixels each kicked in its
        own copy. The output is indexed by the offset from the kicked pixel.
    initial_aux : numpy.ndarray, shape (member, n_aux), optional
        Hidden state at the start (systems with hidden state only); default: the
        system's initial hidden state.
    n_workers : int, optional
        Threads (default: CPU count).
    progress : bool, optional
        Progress bar (default: only on a terminal).
    return_state : bool
        Also return the unperturbed members' final fields and hidden states, e.g. to
        continue with another batch of impulses.
    client : dask.distributed.Client, optional
        Spread the members over a Dask cluster (``pip install gfdt[distributed]``):
        each task runs a contiguous group of members and sends back their mean
        responses, reduced here in member order, so the result is bit-identical to a
        run without ``client``. ``n_workers`` then means threads per task (default 1).
    observable : callable or str, optional
        Report the response of an observable :math:`A` instead of the field: the mean
        of :math:`(A(x'(t)) - A(x(t)))/\\delta` over impulses, dims ``("lag",
        "observable")``. A callable maps ``(batch, y, x)`` to ``(batch, n_obs)`` or
        ``(batch,)``; ``"mean"`` is the spatial mean; ``"identity"`` (or None) the field.
        With pixel kicks the observable is not shifted by the pixel.
    perturbation : callable or array_like, optional
        Kick :math:`x \\to x + \\delta\\, u(x)` instead of a pixel: ``u`` maps
        ``(batch, y, x)`` to fields of the same shape (state dependent), or is an
        ``(n, n)`` array (a constant direction). Excludes ``pixel``. Without an
        observable the output is the mean field change per unit :math:`\\delta`, dims
        ``("lag", "y", "x")`` (absolute positions, not offsets). For a nonlinear
        ``u`` or ``A`` the result carries an :math:`O(\\delta)` bias besides its
        sampling error.
    keep_members : bool
        Also return each member's mean response, variable ``member_response`` with a
        leading ``member`` dim (memory: members times the response size). Needed to
        pool runs that continue the same members (e.g. successive batches) with an
        honest standard error: the member, not the batch, is the independent unit.
    kick : {"pixel", "resolved"}
        Shape of the impulse at ``pixel``. ``"pixel"``: ``delta`` at one grid point.
        ``"resolved"``: the same impulse with the Nyquist lines removed
        (:func:`gfdt.systems._spectral.resolved_impulse`, rolled to the pixel), the
        kick that an operator with a zeroed Nyquist wavenumber implies; compare with
        ``ResponseEstimator(kick="resolved")``. See the theory page, "Kick conventions".

    Returns
    -------
    xarray.Dataset
        ``response`` and ``stderr``, dims ``("lag", "y", "x")``; ``lag`` in time units;
        attributes ``n_impulses``, ``delta`` and the system's parameters. With
        ``return_state``: also the final fields, shape (member, n, n), and hidden
        states, shape (member, n_aux).
    """
    if not isinstance(system, System):
        raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
    fields = as_member_fields(initial, system, None, "initial")
    n_members = fields.shape[0]
    max_lag = check_count(max_lag, "max_lag")
    n_windows = check_count(n_windows, "n_windows")
    save_every = system._steps(save_interval, "save_interval")
    if save_every == 0:
        raise ValueError("save_interval must be > 0")
    if isinstance(delta, bool) or not isinstance(delta, (int, float, np.number)):
        raise TypeError(f"delta must be a number, got {type(delta).__name__}")
    if not np.isfinite(delta) or delta == 0:
        raise ValueError(f"delta must be finite and non-zero, got {delta}")
    pixels = _check_pixels(pixel, system.n)
    kick_shape = _kick_shape(kick, system)
    obs = _observable(observable, system)
    pert = None
    if perturbation is not None:
        if pixels != [(0, 0)]:
            raise ValueError("pass either pixel or perturbation, not both")
        if kick_shape is not None:
            raise ValueError("pass either kick='resolved' or perturbation, not both")
        pert = _perturbation(perturbation, system, fields)
    ss, rngs, auxes = _streams_and_hidden(system, seed, n_members, initial_aux)
    n_workers = workers_for(n_workers, n_members, client)
    steps = max_lag * save_every
    shape = (max_lag + 1, *system.state_shape)
    job = _PairedJob(system=system, pixels=pixels, delta=float(delta), n_windows=n_windows,
                     steps=steps, save_every=save_every, shape=shape, observable=obs,
                     perturbation=pert, kick_shape=kick_shape,
                     result_shape=shape if obs is None else (max_lag + 1,
                                                             obs(fields[:1]).shape[1]))
    mean, se, final_u, final_aux, per_member = _drive(
        job, fields, auxes, rngs, n_workers, client, progress,
        f"paired {type(system).__name__}", keep_members)
    what = "a unit impulse" if pert is None else f"x -> x + delta u(x), u = {pert.label}"
    if kick_shape is not None:
        what = "a unit impulse restricted to the resolved modes (Nyquist lines removed)"
    extra: dict = {"pixels": np.asarray(pixels, dtype=np.int64).ravel(), "kick": kick} \
        if pert is None else {"perturbation": pert.label}
    ds = _dataset(system, obs, mean, se, conventions.lag_coord(max_lag + 1, float(save_interval),
                                                               "1"),
                  ("1", "observable units per unit delta"),
                  (conventions.attrs("truth_response", what=what),
                   conventions.attrs("truth_stderr")),
                  f"paired perturbation response of {type(system).__name__}",
                  {"n_impulses": n_members * n_windows * len(pixels), "delta": float(delta),
                   **extra}, ss)
    if per_member is not None:
        ds["member_response"] = (("member", *ds.response.dims), per_member,
                                 {"units": ds.response.attrs["units"],
                                  **conventions.attrs("truth_member_mean")})
    if return_state:
        return ds, final_u, final_aux
    return ds


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


def _perturbation(perturbation, system: System, fields: np.ndarray) -> Perturbation:
    """The perturbation field ``u`` for ``system``, its shape checked on one state."""
    if isinstance(perturbation, Perturbation):
        pert = perturbation.bind(system.state_shape, np.random.default_rng(0))
    else:
        pert = Perturbation(perturbation, system.state_shape)
    pert.field(fields[:1])  # check the shape now, not inside a worker
    return pert


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


def _observable(observable, system: System) -> Observable | None:
    """None for the field itself (None or "identity"), else the batched observable."""
    if observable is None or (isinstance(observable, str)
                              and observable.lower() == "identity"):
        return None
    return Observable(observable, system.state_shape)


def forced_response(
    system: System,
    initial,
    forcing,
    *,
    save_interval: float,
    seed: SeedLike = None,
    observable=None,
    perturbation=None,
    initial_aux: np.ndarray | None = None,
    n_workers: int | None = None,
    progress: bool | None = None,
    client=None,
) -> xr.Dataset:
    """Mean change under a time-dependent forcing, from paired ("common random numbers") runs.

    Every member is copied; the forced copy receives the kick :math:`f(t_j)\\,\\Delta t`
    at each save time :math:`t_j = j\\,\\Delta t` (:math:`\\Delta t` = ``save_interval``),
    applied to the state between kernel calls and recorded right after it, then both
    copies are integrated to :math:`t_{j+1}` with identical noise (and hidden state).
    The result is the mean over members of forced minus unforced (of the field, or of
    an observable), with the standard error across members. This is the discrete
    forcing that :meth:`gfdt.ResponseEstimator.predict` and
    :func:`gfdt.response.response_to_forcing` convolve with a response:
    :math:`\\delta\\langle A\\rangle(t_n) \\approx \\sum_{j\\le n} R(t_n - t_j)
    f(t_j)\\Delta t`, exactly so for a linear system with additive noise (the OU
    field), where the paired difference is deterministic.

    Parameters
    ----------
    system : gfdt.systems.System
    initial : array_like or xarray.DataArray, shape (member, y, x)
        Stationary starting fields, one per member.
    forcing : numpy.ndarray or xarray.DataArray
        Forcing per unit time (field units per time unit), one value per save time:
        shape ``(time, y, x)``; with ``perturbation``, the amplitude :math:`f(t)` of
        the forcing :math:`f(t)\\,u(x)`, shape ``(time,)``. A DataArray needs a
        ``time`` dim (its numeric coordinate, if any, must be spaced by
        ``save_interval``).
    save_interval : float
        Time between kicks and saved states (time units, multiple of dt).
    seed : int, numpy.random.SeedSequence or None
        Root seed; member k uses child stream k.
    observable : callable or str, optional
        Report :math:`A(x_{forced}) - A(x)`, dims ``("time", "observable")``, instead
        of the field (see :func:`perturbation_response`).
    perturbation : callable or array_like, optional
        Direction field :math:`u(x)` of the forcing (state dependent), or an ``(n, n)``
        array; the kick at :math:`t_j` is :math:`f(t_j)\\,\\Delta t\\, u(x)` at the
        forced copy's current state.
    initial_aux : numpy.ndarray, shape (member, n_aux), optional
        Hidden state at the start (systems with hidden state only).
    n_workers : int, optional
        Threads (default: CPU count; with ``client``: threads per task, default 1).
    progress : bool, optional
        Progress bar (default: only on a terminal).
    client : dask.distributed.Client, optional
        Spread the members over a Dask cluster, as :func:`perturbation_response` does;
        the result is bit-identical to a run without ``client``.

    Returns
    -------
    xarray.Dataset
        ``response`` (forced minus unforced, mean over members) and ``stderr`` (NaN with
        one member), dims ``("time", "y", "x")`` or ``("time", "observable")``;
        ``time`` from 0 (the first kick) in time units.
    """
    if not isinstance(system, System):
        raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
    fields = as_member_fields(initial, system, None, "initial")
    n_members = fields.shape[0]
    save_every = system._steps(save_interval, "save_interval")
    if save_every == 0:
        raise ValueError("save_interval must be > 0")
    dt_save = float(save_interval)
    pert = None if perturbation is None else _perturbation(perturbation, system, fields)
    kicks, tcoord = _forcing_array(forcing, system, dt_save, pert is not None)
    obs = _observable(observable, system)
    n_times = kicks.shape[0]
    ss, rngs, auxes = _streams_and_hidden(system, seed, n_members, initial_aux)
    n_workers = workers_for(n_workers, n_members, client)
    shape = (n_times, *system.state_shape)
    job = _PairedJob(system=system, pixels=[], delta=1.0, n_windows=1, steps=0,
                     save_every=save_every, shape=shape, observable=obs, perturbation=pert,
                     result_shape=shape if obs is None else (n_times, obs(fields[:1]).shape[1]),
                     kicks=kicks * dt_save)
    mean, se, _, _, _ = _drive(job, fields, auxes, rngs, n_workers, client, progress,
                               f"forced {type(system).__name__}", False)
    if tcoord is None:
        tcoord = ("time", dt_save * np.arange(n_times),
                  {"units": "1", **conventions.attrs("forcing_time")})
    return _dataset(system, obs, mean, se, tcoord, ("1", "observable units"),
                    (conventions.attrs("forced_change"), conventions.attrs("forced_stderr")),
                    f"paired forced response of {type(system).__name__}",
                    {"n_members": n_members, "save_interval": dt_save,
                     **({} if pert is None else {"perturbation": pert.label})}, ss)


def _forcing_array(forcing, system: System, dt: float, amplitude: bool
                   ) -> tuple[np.ndarray, object]:
    """Forcing as (time, n, n) (or (time,) amplitudes) and its time coordinate."""
    tcoord = None
    want = ("time",) if amplitude else ("time", *system.state_dims)
    if isinstance(forcing, xr.DataArray):
        if set(forcing.dims) != set(want):
            raise ValueError(f"forcing must have dims {want}, got {forcing.dims}")
        forcing = forcing.transpose(*want)
        if "time" in forcing.coords:
            tv = forcing["time"].values
            if tv.size > 1 and np.issubdtype(tv.dtype, np.number):
                steps = np.diff(tv.astype(float))
                if np.any(np.abs(steps - dt) > 1e-6 * dt):
                    raise ValueError(f"forcing's time coordinate must be spaced by "
                                     f"save_interval = {dt:g}")
            tcoord = forcing["time"]
        forcing = forcing.values
    if np.iscomplexobj(forcing) or (isinstance(forcing, np.ndarray)
                                    and not np.issubdtype(forcing.dtype, np.number)
                                    and forcing.dtype != object):
        raise TypeError("forcing must be a real numeric array, got dtype "
                        f"{np.asarray(forcing).dtype} (pass the real part explicitly)")
    try:
        arr = np.asarray(forcing, dtype=float)
    except (TypeError, ValueError):
        raise TypeError("forcing must be a real numeric array") from None
    shape = "(time,)" if amplitude else f"(time, {', '.join(map(str, system.state_shape))})"
    if arr.ndim != len(want) or arr.shape[1:] != (() if amplitude else system.state_shape) \
            or arr.shape[0] < 1:
        raise ValueError(f"forcing must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("forcing contains NaN or inf")
    return arr, tcoord



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

def _kick_shape(kick, system: System) -> np.ndarray | None:
    """The impulse shape at the origin for ``kick`` (None: a single pixel)."""
    if not isinstance(kick, str) or kick not in ("pixel", "resolved"):
        raise ValueError(f"kick must be 'pixel' or 'resolved', got {kick!r}")
    if kick == "pixel":
        return None
    if not system.homogeneous:
        raise ValueError("kick='resolved' needs a periodic (homogeneous) field system, "
                         f"not {type(system).__name__}")
    return resolved_impulse(system.state_shape)


def _check_pixels(pixel, n: int) -> list[tuple[int, int]]:
    """One (iy, ix) pair or a sequence of them, inside the grid."""
    arr = np.asarray(pixel, dtype=object)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
        raise TypeError(f"pixel must be a pair of ints or a sequence of pairs, got {pixel!r}")
    out = []
    for py, px in arr:
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool)
                   for v in (py, px)):
            raise TypeError(f"pixel must hold ints, got {pixel!r}")
        if not (0 <= py < n and 0 <= px < n):
            raise ValueError(f"pixel ({py}, {px}) lies outside the {n} x {n} grid")
        out.append((int(py), int(px)))
    if len(set(out)) != len(out):
        raise ValueError(f"pixel lists the same pixel twice: {pixel!r}")
    return out
