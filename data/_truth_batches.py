"""Shared driver of the high-precision paired-truth scripts in data/.

A truth file is built in batches that continue each other: the final unperturbed
states (fields and hidden state) of batch ``b`` start batch ``b + 1``, seeds are
spawned per batch, every batch (with each member's mean response) is written to a
work folder, and the batches are combined into the output file after every batch,
with the member as the independent unit of the standard error. An interrupted run
resumes where it stopped; a run with another configuration in the same work folder is
refused.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

import gfdt
from gfdt.systems.base import System

logger = logging.getLogger("gfdt.data")


def combine(batches: list[xr.Dataset], script: str) -> xr.Dataset:
    """Pooled mean and standard error of batches that continue the same members.

    Successive batches continue the same members, so the member, not the batch, is
    the independent unit: each member's responses are averaged over the batches and
    the standard error is the spread of these member averages over the square root of
    the number of members. Batches written without per-member responses (older work
    folders) are pooled as if independent (Chan et al.), which underestimates the
    error when a member's batches are correlated; ``stderr_method`` says which.
    """
    if all("member_response" in b for b in batches):
        per_member = sum(b["member_response"].values for b in batches) / len(batches)
        m = per_member.shape[0]
        mean = per_member.mean(axis=0)
        se = per_member.std(axis=0, ddof=1) / np.sqrt(m)
        n, method = m, "spread of the member means over all batches (members independent)"
    else:
        logger.warning("batches without per-member responses: pooled as independent")
        n = 0
        mean = m2 = None
        for b in batches:
            nb_ = int(b.attrs["n_members"])
            mb = b["response"].values
            m2b = b["stderr"].values ** 2 * nb_ * (nb_ - 1)
            if mean is None:
                n, mean, m2 = nb_, mb.copy(), m2b.copy()
                continue
            d = mb - mean
            tot = n + nb_
            mean = mean + d * nb_ / tot
            m2 = m2 + m2b + d**2 * n * nb_ / tot
            n = tot
        se = np.sqrt(m2 / (n - 1) / n)
        method = "batches pooled as independent member sets (Chan et al.)"
    first = batches[0]
    out = first.drop_vars("member_response", errors="ignore").copy(deep=True)
    out["response"].values = mean
    out["stderr"].values = se
    out["l2_stderr"] = ("lag", np.sqrt((se**2).sum(axis=(1, 2))),
                        {"long_name": "L2 norm over the field of the standard error",
                         "units": "1"})
    name = first.attrs.get("gfdt_system", "system")
    out.attrs.update(
        n_members=n,
        n_impulses=int(sum(int(b.attrs["n_impulses"]) for b in batches)),
        n_batches=len(batches),
        stderr_method=method,
        title=f"paired perturbation response of {name} (high precision)",
        history=f"made by data/{script} with gfdt {gfdt.__version__}",
    )
    out.attrs.pop("gfdt_seed_entropy", None)
    return out


def run_batches(
    system: System,
    *,
    out: Path,
    work: Path,
    script: str,
    members: int,
    windows: int,
    pixels: list[tuple[int, int]],
    max_lag: int,
    save_interval: float,
    delta: float,
    spin_up: float,
    target_se: float,
    target_lags: int,
    min_batches: int,
    max_batches: int,
    seed: int,
    workers: int | None,
    kick: str = "pixel",
) -> xr.Dataset | None:
    """Add batches of paired impulses until the L2 standard error meets the target.

    The target applies to the largest L2 standard error over lags ``0..target_lags``;
    at least ``min_batches`` batches are made (and at most ``max_batches`` more in this
    call). Spin-up (batch 0's initial state, ``spin_up`` time units from the system's
    initial state, one independent stream per member) runs only once.
    """
    work.mkdir(parents=True, exist_ok=True)
    config = {"system": system.parameters(), "members": members, "windows": windows,
              "pixels": pixels, "max_lag": max_lag, "seed": seed, "delta": delta,
              "save_interval": save_interval, "spin_up": spin_up}
    if kick != "pixel":  # older work folders (pixel kicks) keep their configuration
        config["kick"] = kick
    cfg_path = work / "config.json"
    if cfg_path.exists():
        if json.loads(cfg_path.read_text()) != json.loads(json.dumps(config)):
            raise SystemExit(f"{work} holds a run with another configuration; "
                             "use another --work folder")
    else:
        cfg_path.write_text(json.dumps(config))

    files = sorted(work.glob("batch_*.nc"))

    def state_path(b: int) -> Path:  # initial fields (and hidden state) of batch b
        return work / f"state_{b:04d}.npz"

    if state_path(len(files)).exists():
        with np.load(state_path(len(files))) as f:
            state, aux = f["u"], f["aux"]
    else:
        files = []
        t0 = time.perf_counter()
        spin = gfdt.simulate(system, n_members=members, burn_in=spin_up,
                             duration=system.dt, save_interval=system.dt,
                             seed=np.random.SeedSequence([seed, 10**6]),
                             n_workers=workers, save_hidden=bool(system.n_aux))
        state = spin.u.isel(time=-1).values
        aux = (spin.hidden_state.isel(time=-1).values if system.n_aux
               else np.zeros((members, 0)))
        np.savez(state_path(0), u=state, aux=aux)
        logger.info("spin-up of %d members over %g time units: %.0f s", members, spin_up,
                    time.perf_counter() - t0)

    batches = [gfdt.io.load(f) for f in files]
    made = 0
    while True:
        if batches:
            pooled = combine(batches, script)
            worst = float(pooled["l2_stderr"].isel(lag=slice(0, target_lags + 1)).max())
            logger.info("%d impulses: L2 standard error max %.4f over lags 0..%d "
                        "(target %.3f)", pooled.attrs["n_impulses"], worst, target_lags,
                        target_se)
            if worst <= target_se and len(batches) >= min_batches:
                break
        if made >= max_batches:
            break
        b = len(batches)
        t0 = time.perf_counter()
        ds, state, aux = gfdt.perturbation_response(
            system, state, max_lag=max_lag, save_interval=save_interval, delta=delta,
            seed=np.random.SeedSequence([seed, b]), n_windows=windows, pixel=pixels,
            initial_aux=aux if system.n_aux else None, n_workers=workers,
            return_state=True, keep_members=True, kick=kick)
        ds.attrs["n_members"] = members
        np.savez(state_path(b + 1), u=state, aux=aux)  # before the batch: a kill redoes b
        gfdt.io.save(ds, work / f"batch_{b:04d}.nc")
        batches.append(ds)
        gfdt.io.save(combine(batches, script), out)
        made += 1
        logger.info("batch %d: %.0f s", b, time.perf_counter() - t0)
    if not batches:
        return None
    pooled = combine(batches, script)
    gfdt.io.save(pooled, out)
    logger.info("wrote %s", out)
    return pooled
