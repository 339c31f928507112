"""Ground-truth ("dynamical") responses from paired perturbation ensembles."""

from __future__ import annotations

import logging

import numpy as np
import xarray as xr

from gfdt._runner import (
    Integrator,
    Progress,
    SeedLike,
    check_count,
    clone_generator,
    member_generators,
    resolve_workers,
    run_tasks,
    seed_sequence,
    warm_up,
)
from gfdt.simulate import as_member_fields
from gfdt.systems.base import System

__all__ = ["perturbation_response"]

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
    n_workers = resolve_workers(n_workers, n_members)
    warm_up(system)
    integ = Integrator(system)
    steps = max_lag * save_every
    shape = (max_lag + 1, *system.state_shape)
    bar = Progress((1 + len(pixels)) * n_members * n_windows * steps,
                   f"paired {type(system).__name__}", progress)

    def run_member(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = fields[k].copy()
        aux = auxes[k].copy()
        total = np.zeros(shape)
        out_u = np.empty(shape)
        out_p = np.empty(shape)
        step = 0
        for _ in range(n_windows):
            # every perturbed copy replays the unperturbed member's noise exactly
            twins = [clone_generator(rngs[k]) for _ in pixels]
            start_u, start_aux = u.copy(), aux.copy()
            out_u[0] = u
            integ(u, aux, steps, rngs[k], save_every=save_every, out=out_u[1:],
                  member=k, step0=step)
            for (py, px), rng_p in zip(pixels, twins, strict=True):
                up = start_u.copy()
                aux_p = start_aux.copy()
                up[py, px] += delta
                out_p[0] = up
                integ(up, aux_p, steps, rng_p, save_every=save_every, out=out_p[1:],
                      member=k, step0=step)
                total += np.roll((out_p - out_u) / delta, (-py, -px), axis=(1, 2))
            step += steps
            bar.update((1 + len(pixels)) * steps)
        return total / (n_windows * len(pixels)), u, aux

    mean = np.zeros(shape)  # Welford's running mean and sum of squared deviations
    m2 = np.zeros(shape)
    final_u = np.empty_like(fields)
    final_aux = np.empty_like(auxes)
    try:
        for start in range(0, n_members, _BATCH):
            parts = run_tasks(run_member, range(start, min(start + _BATCH, n_members)),
                              n_workers)
            for k, (m, u_end, aux_end) in enumerate(parts, start):  # member order
                d = m - mean
                mean += d / (k + 1)
                m2 += d * (m - mean)
                final_u[k] = u_end
                final_aux[k] = aux_end
    finally:
        bar.close()

    n_imp = n_members * n_windows * len(pixels)
    if n_members > 1:
        # members are independent; impulses within a member (windows, pixels) need not be
        se = np.sqrt(m2 / (n_members - 1) / n_members)
    else:
        se = np.full(shape, np.nan)
    coords = system.coords()
    lags = float(save_interval) * np.arange(max_lag + 1)
    attrs = {"units": "1"}
    ds = xr.Dataset(
        {
            "response": (("lag", "y", "x"), mean,
                         {**attrs, "long_name": "dynamical response to a unit impulse"}),
            "stderr": (("lag", "y", "x"), se,
                       {**attrs, "long_name": "standard error of the dynamical response"}),
        },
        coords={"lag": ("lag", lags, {"units": "1", "long_name": "time lag"}),
                "y": coords["y"], "x": coords["x"]},
        attrs={
            "Conventions": "CF-1.10",
            "title": f"paired perturbation response of {type(system).__name__}",
            **system.attrs(),
            "method": "dynamical",
            "n_impulses": n_imp,
            "delta": float(delta),
            "pixels": np.asarray(pixels, dtype=np.int64).ravel(),
            "gfdt_seed_entropy": str(ss.entropy),
        },
    )
    if return_state:
        return ds, final_u, final_aux
    return ds


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
