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
    pixel: tuple[int, int] = (0, 0),
    initial_aux: np.ndarray | None = None,
    n_workers: int | None = None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Response to an impulse at one pixel, from paired ("common random numbers") runs.

    For every member and window, the state is copied, ``delta`` is added to the field
    at ``pixel``, and both copies are integrated over ``max_lag * save_interval``
    time units with identical noise (and identical hidden state). The response is the
    mean of ``(perturbed - unperturbed) / delta`` over all impulses; its standard
    error is the standard deviation across impulses over the square root of their
    number. After each window the unperturbed member continues, and the next window is
    kicked from where it ended (the paper's re-perturbation procedure).

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
    pixel : (int, int)
        Grid indices ``(iy, ix)`` of the impulse. The output is indexed by the offset
        from this pixel.
    initial_aux : numpy.ndarray, shape (member, n_aux), optional
        Hidden state at the start (systems with hidden state only); default: the
        system's initial hidden state.
    n_workers : int, optional
        Threads (default: CPU count).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Returns
    -------
    xarray.Dataset
        ``response`` and ``stderr``, dims ``("lag", "y", "x")``; ``lag`` in time units;
        attributes ``n_impulses``, ``delta`` and the system's parameters.
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
    try:
        py, px = (int(p) for p in pixel)
    except (TypeError, ValueError):
        raise TypeError(f"pixel must be a pair of ints, got {pixel!r}") from None
    if not (0 <= py < system.n and 0 <= px < system.n):
        raise ValueError(f"pixel {pixel} lies outside the {system.n} x {system.n} grid")
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
    bar = Progress(2 * n_members * n_windows * steps, f"paired {type(system).__name__}",
                   progress)

    def run_member(k: int) -> tuple[np.ndarray, np.ndarray]:
        u = fields[k].copy()
        aux = auxes[k].copy()
        s1 = np.zeros(shape)
        s2 = np.zeros(shape)
        out_u = np.empty(shape)
        out_p = np.empty(shape)
        step = 0
        for _ in range(n_windows):
            rng_p = clone_generator(rngs[k])
            up = u.copy()
            aux_p = aux.copy()
            up[py, px] += delta
            out_u[0] = u
            out_p[0] = up
            integ(u, aux, steps, rngs[k], save_every=save_every, out=out_u[1:],
                  member=k, step0=step)
            integ(up, aux_p, steps, rng_p, save_every=save_every, out=out_p[1:],
                  member=k, step0=step)
            step += steps
            d = (out_p - out_u) / delta
            s1 += d
            s2 += d * d
            bar.update(2 * steps)
        return s1, s2

    total1 = np.zeros(shape)
    total2 = np.zeros(shape)
    try:
        for start in range(0, n_members, _BATCH):
            parts = run_tasks(run_member, range(start, min(start + _BATCH, n_members)),
                              n_workers)
            for s1, s2 in parts:  # member order: deterministic sums
                total1 += s1
                total2 += s2
    finally:
        bar.close()

    n_imp = n_members * n_windows
    mean = total1 / n_imp
    if n_imp > 1:
        var = np.maximum(total2 - n_imp * mean**2, 0.0) / (n_imp - 1)
        se = np.sqrt(var / n_imp)
    else:
        se = np.full(shape, np.nan)
    mean = np.roll(mean, (-py, -px), axis=(1, 2))
    se = np.roll(se, (-py, -px), axis=(1, 2))
    coords = system.coords()
    lags = float(save_interval) * np.arange(max_lag + 1)
    attrs = {"units": "1"}
    return xr.Dataset(
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
            "pixel": [py, px],
            "gfdt_seed_entropy": str(ss.entropy),
        },
    )
