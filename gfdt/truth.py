"""Ground-truth ("dynamical") responses from paired perturbation ensembles.

:func:`perturbation_response` (impulses) and :func:`forced_response` (forcings) check
their input and hand it to the one paired-ensemble driver, :mod:`gfdt._paired`, which
runs every member with its perturbed twin(s) on threads or a Dask cluster and reduces
the results in member order.
"""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

import gfdt.conventions as conventions
from gfdt._paired import _dataset, _drive, _PairedJob, _streams_and_hidden
from gfdt._runner import SeedLike, as_member_fields, check_count, workers_for
from gfdt.response.conjugate import Observable, Perturbation
from gfdt.systems._spectral import resolved_impulse
from gfdt.systems.base import System

__all__ = ["forced_response", "perturbation_response"]

logger = logging.getLogger("gfdt")


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


def _perturbation(perturbation, system: System, fields: np.ndarray) -> Perturbation:
    """The perturbation field ``u`` for ``system``, its shape checked on one state."""
    if isinstance(perturbation, Perturbation):
        pert = perturbation.bind(system.state_shape, np.random.default_rng(0))
    else:
        pert = Perturbation(perturbation, system.state_shape)
    pert.field(fields[:1])  # check the shape now, not inside a worker
    return pert


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
