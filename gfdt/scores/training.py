"""The one training loop of gfdt's torch score estimators.

An estimator gives the :class:`Trainer` a network, a way to read a batch of training
samples and a :class:`TrainingTask`: how to draw the random inputs of a batch (noise
levels, noise, times, velocities) and the loss. The trainer does the rest: batches in
epochs, Adam with linear warm-up (or a cosine decay), gradient clipping, an exponential
moving average (EMA) of the weights, validation on held-out samples with fixed noise and
early stopping, checkpoints with bit-identical resume, step-keyed seed streams, several
processes (DistributedDataParallel), a wall-clock budget and a progress bar.

Random numbers come from streams keyed by the seed and their use only
(:func:`gfdt.scores._torch.stream_seed`): epoch ``e``'s batch order from ``(1, e)``, the
noise of step ``k`` from ``(2, k)``, the validation noise from ``(3,)``. A resumed
training is therefore bit-identical to an uninterrupted one, and the result does not
depend on the number of processes.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from gfdt._atomic import atomic_path
from gfdt._progress import tqdm
from gfdt.scores._torch import resolve_device, stream_generator

__all__ = ["ProcessGroup", "TrainResult", "Trainer", "TrainingTask", "ema_update",
           "progress_bar", "setup_distributed"]

logger = logging.getLogger("gfdt")


class TrainingTask(Protocol):
    """What an estimator supplies: the random inputs of a batch and the loss.

    Optional methods: ``extra_state() -> dict`` and ``load_extra_state(dict)`` (state
    outside the network to checkpoint, e.g. HSM's velocity predictor and its optimiser),
    ``validation_by_level(net, x, *noise) -> dict`` (validation losses per noise level,
    computed once at the end), ``validation_loss(net, x, *noise) -> float`` (the
    held-out criterion of early stopping and of the best weights, instead of the mean
    of ``loss``).
    """

    def noise(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, ...]:
        """Random inputs of ``n`` samples drawn from ``gen`` (CPU tensors, first axis n)."""

    def loss(self, net: nn.Module, x: torch.Tensor, *noise: torch.Tensor) -> torch.Tensor:
        """Mean loss of the batch ``x`` with its random inputs (a scalar tensor)."""


# ------------------------------------------------------------------ processes
class ProcessGroup:
    """The processes a training runs in: one (serial) or a torch.distributed group."""

    def __init__(self, device: torch.device, rank: int = 0, world: int = 1,
                 comm_device: torch.device | None = None) -> None:
        self.device, self.rank, self.world = device, rank, world
        self.comm_device = comm_device or torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world > 1

    def allreduce(self, a: np.ndarray) -> np.ndarray:
        """Sum of ``a`` over the ranks (float64), ``a`` itself when serial."""
        if not self.active:
            return np.asarray(a, dtype=float)
        import torch.distributed as dist

        t = torch.tensor(np.asarray(a, dtype=float), dtype=torch.float64,
                         device=self.comm_device)
        dist.all_reduce(t)
        return t.cpu().numpy()

    def barrier(self) -> None:
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def wrap(self, net: nn.Module) -> nn.Module:
        """``net`` in DistributedDataParallel (gradients averaged over the ranks)."""
        if not self.active:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        # the buffers (noise-embedding frequencies) are constant: no sync per forward
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
            return DistributedDataParallel(net, device_ids=ids, forward_sync_buffers=False)
        return DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)


_TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def setup_distributed(option: bool | str, device: str | torch.device) -> ProcessGroup:
    """Join (or start, from torchrun's environment) the process group of a training.

    ``option``: False: serial; ``"auto"``: join when launched by ``torchrun`` or when a
    process group is initialised; True: require it (ValueError otherwise).
    """
    import torch.distributed as dist

    serial = ProcessGroup(resolve_device(device))
    if option is False:
        return serial
    if not dist.is_available():
        if option is True:
            raise ValueError("distributed=True but this torch has no torch.distributed")
        return serial
    launched = all(k in os.environ for k in _TORCHRUN_ENV)
    if not dist.is_initialized():
        if not launched:
            if option is True:
                raise ValueError(
                    "distributed=True needs a process started by torchrun (environment "
                    f"variables {', '.join(_TORCHRUN_ENV)}) or an initialised "
                    "torch.distributed process group")
            return serial
        if int(os.environ["WORLD_SIZE"]) < 2:
            return serial
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if isinstance(device, str) and device == "auto" and torch.cuda.is_available():
        dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    else:
        dev = resolve_device(device)
    if dev.type == "cuda" and dev.index is not None:
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://")
        logger.info("joined a %s process group as rank %d of %d", backend, dist.get_rank(),
                    dist.get_world_size())
    world = dist.get_world_size()
    if world < 2:
        return serial
    comm = dev if dist.get_backend() == "nccl" else torch.device("cpu")
    return ProcessGroup(dev, dist.get_rank(), world, comm)


# ------------------------------------------------------------------ small pieces
def progress_bar(total: int, desc: str, progress: bool | None, **kwargs) -> tqdm:
    """tqdm bar that shows on a terminal by default; ``progress`` forces it on or off."""
    return tqdm(total=total, desc=desc, leave=False,
                disable=None if progress is None else not progress, **kwargs)


@torch.no_grad()
def ema_update(ema_net: nn.Module, net: nn.Module, ema: float, step: int) -> None:
    """EMA of the weights with warm-up decay ``min(ema, (1 + step) / (10 + step))``;
    buffers are copied. ``ema = 0`` makes the EMA the weights themselves."""
    decay = min(ema, (1 + step) / (10 + step))
    for pe, p in zip(ema_net.parameters(), net.parameters(), strict=True):
        pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
    for be, b in zip(ema_net.buffers(), net.buffers(), strict=True):
        be.copy_(b)


@dataclass
class TrainResult:
    """What a training gives back.

    Attributes
    ----------
    net : torch.nn.Module
        EMA weights at the best validation loss (the last EMA weights without
        validation), in evaluation mode.
    history : dict
        ``step``, ``train_loss`` and (with validation) ``val_loss`` lists, one entry per
        ``eval_every`` steps.
    n_steps : int
    train_time : float
        Seconds.
    epochs : float
        Passes over the training samples.
    world : int
        Processes that trained.
    best_val : float
        Best validation loss (NaN without validation).
    val_by_level : dict
        The task's ``validation_by_level`` of ``net`` (empty when it has none).
    """

    net: nn.Module
    history: dict
    n_steps: int
    train_time: float
    epochs: float
    world: int
    best_val: float
    val_by_level: dict = field(default_factory=dict)


@dataclass
class Trainer:
    """The training loop (see the module docstring).

    Parameters
    ----------
    max_steps : int
        Optimisation steps at most (0: no training).
    batch_size : int
        Global batch (split over the processes of a group).
    lr : float
        Peak learning rate of Adam.
    seed : int
        Seed of every stream.
    warmup : int
        Linear warm-up steps.
    schedule : {"constant", "cosine"}
        After warm-up: constant, or a cosine decay to a tenth of ``lr`` at ``max_steps``.
    ema : float
        EMA decay of the weights (0: none).
    grad_clip : float, optional
        Maximum gradient norm.
    eval_every : int
        Steps between validations (and checkpoints).
    patience : int, optional
        Validations without improvement before stopping (None: never stop early).
    max_time : float, optional
        Wall-clock budget in seconds.
    checkpoint : path, optional
        File to checkpoint to; when it exists the training resumes from it.
    config : dict
        What a checkpoint must have been written with (else ValueError).
    progress : bool, optional
        Progress bar (default: on a terminal; rank 0 only).
    name : str
        Name in the bar and the log.
    group : ProcessGroup, optional
        Processes (default: serial on ``device``).
    device : torch.device
    val_batch : int
        Validation samples per loss evaluation.
    validate_at_start : bool
        Validate the initial weights too (they may win).
    select_best : bool
        Keep the EMA weights of the best validation (and stop early with ``patience``);
        False: record the validation losses only and keep the last EMA weights (for
        losses that do not rank what the estimator needs, e.g. HOLD's).
    """

    max_steps: int
    batch_size: int
    lr: float
    seed: int
    warmup: int = 0
    schedule: str = "constant"
    ema: float = 0.0
    grad_clip: float | None = None
    eval_every: int = 250
    patience: int | None = None
    max_time: float | None = None
    checkpoint: str | Path | None = None
    config: dict = field(default_factory=dict)
    progress: bool | None = None
    name: str = "training"
    group: ProcessGroup | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    val_batch: int = 128
    validate_at_start: bool = False
    select_best: bool = True

    def __post_init__(self) -> None:
        if self.group is None:
            self.group = ProcessGroup(self.device)
        self.device = self.group.device

    # ------------------------------------------------------------- checkpoints
    def resume_blob(self) -> dict | None:
        """The checkpoint to resume from (None when there is none).

        Raises
        ------
        ValueError
            The file is truncated or not a checkpoint, or was written with other
            parameters (``config``).
        """
        if self.checkpoint is None or not Path(self.checkpoint).exists():
            return None
        ck = Path(self.checkpoint)
        try:
            blob = torch.load(ck, map_location=self.device, weights_only=False)
        except Exception as exc:  # zipfile.BadZipFile, RuntimeError, EOFError, ...
            raise ValueError(f"checkpoint: {ck} is truncated or not a gfdt checkpoint "
                             f"({type(exc).__name__}: {exc}); delete it to start afresh"
                             ) from None
        if not isinstance(blob, dict) or "state" not in blob:
            raise ValueError(f"checkpoint: {ck} is not a gfdt checkpoint")
        if blob.get("config") != self.config:
            raise ValueError(f"checkpoint: {ck} was written with other parameters")
        return blob

    def _save(self, blob: dict) -> None:
        with atomic_path(Path(self.checkpoint), "checkpoint") as tmp:
            torch.save(blob, tmp)

    # ------------------------------------------------------------- the loop
    def _lr(self, step: int) -> float:
        lr = self.lr * min(1.0, (step + 1) / max(1, self.warmup))
        if self.schedule == "cosine":
            lr *= 0.55 + 0.45 * math.cos(math.pi * step / max(1, self.max_steps))
        return lr

    def _validate(self, task, net, xv, vnoise) -> float:
        if hasattr(task, "validation_loss"):  # the task's own held-out criterion
            return float(task.validation_loss(net, xv, *vnoise))
        nv, vb = len(xv), self.val_batch
        with torch.no_grad():
            return float(sum(task.loss(net, xv[a:a + vb], *[t[a:a + vb] for t in vnoise])
                             * len(xv[a:a + vb]) for a in range(0, nv, vb)) / nv)

    def fit(self, task: TrainingTask, net: nn.Module, batch, n_train: int,
            xv: torch.Tensor | None = None, stats: Any = None,
            blob: dict | None = None) -> TrainResult:
        """Train ``net`` on samples ``0 .. n_train - 1``.

        Parameters
        ----------
        task : TrainingTask
        net : torch.nn.Module
            On the trainer's device; its parameters that require gradients are trained.
        batch : callable
            ``batch(indices)`` returns the samples at those indices (a tensor on the
            device, e.g. standardised).
        n_train : int
        xv : torch.Tensor, optional
            Validation samples (None: no validation, no early stopping).
        stats : object
            Saved in the checkpoint (e.g. the standardisation the training used).
        blob : dict, optional
            A checkpoint from :meth:`resume_blob` to resume from.
        """
        g = self.group
        rank, world = g.rank, g.world
        B = self.batch_size
        if B % world:
            raise ValueError(f"batch_size = {B} must be a multiple of the number of "
                             f"processes ({world}): it is the global batch")
        if B > n_train:
            B = (n_train // world) * world
            if B == 0:
                raise ValueError(f"X has {n_train} training samples, fewer than the "
                                 f"{world} processes")
            if rank == 0:
                logger.warning("batch_size = %d exceeds the %d training samples; using %d",
                               self.batch_size, n_train, B)
        params = [p for p in net.parameters() if p.requires_grad]
        ema_net = copy.deepcopy(net).requires_grad_(False)
        best_net = copy.deepcopy(ema_net)
        opt = torch.optim.Adam(params, lr=self.lr)
        vnoise: tuple = ()
        if xv is not None:
            vnoise = tuple(t.to(self.device)
                           for t in task.noise(stream_generator(self.seed, 3), len(xv)))
        hist: dict[str, list] = {"step": [], "train_loss": []}
        if xv is not None:
            hist["val_loss"] = []
        state = {"step": 0, "best": math.inf, "bad": 0, "elapsed": 0.0}
        if blob is not None:
            net.load_state_dict(blob["net"])
            ema_net.load_state_dict(blob["ema"])
            best_net.load_state_dict(blob["best_net"])
            opt.load_state_dict(blob["opt"])
            hist, state = blob["history"], blob["state"]
            if hasattr(task, "load_extra_state") and blob.get("extra") is not None:
                task.load_extra_state(blob["extra"])
            if rank == 0:
                logger.info("resuming %s from %s at step %d", self.name, self.checkpoint,
                            state["step"])
        elif xv is not None and self.validate_at_start:
            state["best"] = self._validate(task, ema_net, xv, vnoise)
            hist["step"].append(0)
            hist["train_loss"].append(math.nan)
            hist["val_loss"].append(state["best"])
        g.barrier()  # every rank has looked for the checkpoint before rank 0 may write one
        model = g.wrap(net)
        loop = _Loop(self, task, model, net, params, ema_net, best_net, opt, batch, n_train,
                     B, xv, vnoise, hist, state, stats)
        t0 = loop.run()
        final = best_net if xv is not None and self.select_best else ema_net
        by_level = {}
        if xv is not None and hasattr(task, "validation_by_level"):
            with torch.no_grad():
                by_level = task.validation_by_level(final, xv, *vnoise)
        return TrainResult(final.eval(), hist, state["step"], time.perf_counter() - t0,
                           state["step"] * B / n_train, world,
                           state["best"] if xv is not None else math.nan, by_level)


class _Loop:
    """One run of :meth:`Trainer.fit`'s loop (holds its state; see :meth:`run`)."""

    def __init__(self, tr: Trainer, task, model, net, params, ema_net, best_net, opt, batch,
                 n_train, B, xv, vnoise, hist, state, stats) -> None:
        self.tr, self.task, self.model, self.net, self.params = tr, task, model, net, params
        self.ema_net, self.best_net, self.opt, self.batch = ema_net, best_net, opt, batch
        self.n_train, self.B, self.xv, self.vnoise = n_train, B, xv, vnoise
        self.hist, self.state, self.stats = hist, state, stats
        self.local = B // tr.group.world
        self.steps_per_epoch = n_train // B

    def run(self) -> float:
        """Train until ``max_steps``, patience or ``max_time``; returns the start time."""
        tr, state, g = self.tr, self.state, self.tr.group
        patience = math.inf if tr.patience is None or self.xv is None or \
            not tr.select_best else tr.patience
        bar = progress_bar(tr.max_steps, f"{tr.name} training",
                           False if g.rank else tr.progress, initial=state["step"])
        t0 = time.perf_counter() - state["elapsed"]
        running, n_running = 0.0, 0
        perm_epoch, perm = -1, None
        try:
            while state["step"] < tr.max_steps and state["bad"] < patience:
                step = state["step"]
                epoch, pos = divmod(step, self.steps_per_epoch)
                if epoch != perm_epoch:
                    perm_rng = np.random.default_rng(np.random.SeedSequence(
                        tr.seed, spawn_key=(1, epoch)))
                    perm, perm_epoch = perm_rng.permutation(self.n_train), epoch
                for grp in self.opt.param_groups:
                    grp["lr"] = tr._lr(step)
                loss = self._step(perm, pos, step)
                running += float(loss.detach())
                n_running += 1
                state["step"] = step + 1
                bar.update(1)
                out_of_time = tr.max_time is not None and time.perf_counter() - t0 > tr.max_time
                if tr.max_time is not None:  # every rank stops at the same step
                    out_of_time = bool(g.allreduce(np.array([float(out_of_time)]))[0] > 0)
                if state["step"] % tr.eval_every == 0 or out_of_time or \
                        state["step"] == tr.max_steps:
                    self._record(running, n_running, bar, t0)
                    running, n_running = 0.0, 0
                if out_of_time:
                    if g.rank == 0:
                        logger.info("%s training stopped by max_time at step %d", tr.name,
                                    state["step"])
                    break
        finally:
            bar.close()
        if g.rank == 0:
            logger.info("%s: %d steps (%d process%s) in %.1f s, best validation loss %.4f",
                        tr.name, state["step"], g.world, "es" if g.world > 1 else "",
                        time.perf_counter() - t0, state["best"])
        return t0

    def _step(self, perm: np.ndarray, pos: int, step: int) -> torch.Tensor:
        """One optimisation step on this rank's shard of the global batch."""
        tr, g, local = self.tr, self.tr.group, self.local
        start = pos * self.B + g.rank * local
        x = self.batch(perm[start:start + local])
        noise = self.task.noise(stream_generator(tr.seed, 2, step), self.B)
        sl = slice(g.rank * local, (g.rank + 1) * local)
        loss = self.task.loss(self.model, x, *[t[sl].to(tr.device) for t in noise])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()  # DDP: gradients averaged over the ranks here
        if tr.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.params, tr.grad_clip)
        self.opt.step()
        ema_update(self.ema_net, self.net, tr.ema, step)
        return loss

    def _record(self, running: float, n_running: int, bar, t0: float) -> None:
        """Validate, record the history, keep the best weights, write the checkpoint."""
        tr, g, state = self.tr, self.tr.group, self.state
        vl = self.tr._validate(self.task, self.ema_net, self.xv, self.vnoise) \
            if self.xv is not None else math.nan
        # mean of the global-batch losses; rank 0's validation loss for all
        tot = g.allreduce(np.array([running, vl if g.rank == 0 else 0.0]))
        self.hist["step"].append(state["step"])
        self.hist["train_loss"].append(float(tot[0]) / g.world / n_running)
        vl = float(tot[1])
        if self.xv is not None:
            self.hist["val_loss"].append(vl)
            if vl < state["best"]:
                state["best"], state["bad"] = vl, 0
                self.best_net.load_state_dict(self.ema_net.state_dict())
            else:
                state["bad"] += 1
            bar.set_postfix(val=f"{vl:.4f}")
        else:
            bar.set_postfix(loss=f"{self.hist['train_loss'][-1]:.4f}")
        state["elapsed"] = time.perf_counter() - t0
        if tr.checkpoint is not None and g.rank == 0:
            extra = self.task.extra_state() if hasattr(self.task, "extra_state") else None
            tr._save({"config": tr.config, "stats": self.stats, "net": self.net.state_dict(),
                      "ema": self.ema_net.state_dict(),
                      "best_net": self.best_net.state_dict(), "opt": self.opt.state_dict(),
                      "history": self.hist, "state": dict(state), "extra": extra})
