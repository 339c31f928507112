"""Denoising score matching with noise-conditional networks (PyTorch)."""

from __future__ import annotations

import copy
import inspect
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gfdt._atomic import atomic_path
from gfdt.scores._torch_common import (
    check_positive_ints,
    ema_update,
    is_homogeneous,
    load_torch,
    progress_bar,
    resolve_device,
    save_torch,
    seeded,
    torch_threads,
    warmup_lr,
)
from gfdt.scores.base import ScoreEstimator, check_flag, check_number, register_score
from gfdt.scores.data import SnapshotDataset
from gfdt.scores.networks import default_network

__all__ = ["DenoisingScoreModel", "resolve_device"]

logger = logging.getLogger("gfdt")


def _stream_seed(seed: int, *key: int) -> int:
    """A 64-bit seed of the stream ``SeedSequence(seed, spawn_key=key)``."""
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
    return int(ss.generate_state(1, np.uint64)[0])


class _Group:
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


def _setup_distributed(option: bool | str, device: str | torch.device) -> _Group:
    """Join (or start, from torchrun's environment) the process group of a training."""
    import torch.distributed as dist

    serial = _Group(resolve_device(device))
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
    return _Group(dev, dist.get_rank(), world, comm)


def _statistics(data: SnapshotDataset, n_train: int, homogeneous: bool, chunk: int,
                group: _Group) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardisation and Gaussian statistics of the first ``n_train`` snapshots.

    Two passes over chunks of ``chunk`` snapshots (each rank sums its share of the
    chunks; the sums are all-reduced). Returns ``mean``, ``std`` (a scalar for
    homogeneous fields, one scale for vectors too: it keeps the geometry) and, in
    standardised units, the power spectrum (homogeneous) or the covariance (vectors).
    """
    shape = data.state_shape
    d = int(np.prod(shape))
    mine = list(range(0, n_train, chunk))[group.rank::group.world]
    s1 = np.zeros(shape)
    for a in mine:
        s1 += data.read_range(a, min(a + chunk, n_train)).sum(axis=0)
    comp_mean = group.allreduce(s1) / n_train
    if not np.all(np.isfinite(comp_mean)):  # NaN and inf survive the sums: every rank sees it
        raise ValueError("X contains NaN or inf")
    gmean = float(comp_mean.mean())
    axes = tuple(range(1, len(shape) + 1))
    acc = np.zeros(np.fft.rfftn(np.zeros(shape)).shape) if homogeneous else np.zeros((d, d))
    ss = 0.0
    for a in mine:
        x = data.read_range(a, min(a + chunk, n_train))
        ss += float(((x - gmean) ** 2).sum())
        if homogeneous:
            acc += (np.abs(np.fft.rfftn(x - gmean, axes=axes)) ** 2).sum(axis=0)
        else:
            xc = (x - comp_mean).reshape(len(x), d)
            acc += xc.T @ xc
    ss = float(group.allreduce(np.array([ss]))[0])
    acc = group.allreduce(acc)
    scale = math.sqrt(ss / (n_train * d))
    if not scale > 0:
        raise ValueError("X has zero variance")
    if homogeneous:
        return np.asarray(gmean), np.asarray(scale), acc / (n_train * d) / scale**2
    return comp_mean, np.full(shape, scale), acc / (n_train - 1) / scale**2


class _GaussianPrior(nn.Module):
    """Score of the Gaussian fit convolved with noise: :math:`-(C + \\sigma^2)^{-1} x`.

    Works in standardised units. Homogeneous fields: ``C`` is diagonal in Fourier space
    (``stat`` is the power spectrum, shape of ``rfftn`` of a state); vectors: ``stat``
    is the full covariance, used through its eigendecomposition.
    """

    def __init__(self, stat: np.ndarray, homogeneous: bool, state_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.homogeneous = homogeneous
        self.state_shape = tuple(state_shape)
        if homogeneous:
            self.register_buffer("spec", torch.tensor(stat, dtype=torch.float32))
        else:
            lam, vec = np.linalg.eigh(np.atleast_2d(stat))
            self.register_buffer("lam", torch.tensor(np.maximum(lam, 0), dtype=torch.float32))
            self.register_buffer("vec", torch.tensor(vec, dtype=torch.float32))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.homogeneous:
            dims = tuple(range(1, x.ndim))
            xh = torch.fft.rfftn(x, dim=dims)
            s2 = (sigma**2).reshape(b, *([1] * (x.ndim - 1)))
            return -torch.fft.irfftn(xh / (self.spec + s2), s=x.shape[1:], dim=dims)
        xf = x.reshape(b, -1)
        c = xf @ self.vec
        c = c / (self.lam[None, :] + (sigma**2)[:, None])
        return -(c @ self.vec.T).reshape(x.shape)


@register_score("dsm")
class DenoisingScoreModel(ScoreEstimator):
    """Score of stationary data by denoising score matching (variance-exploding noise).

    A network :math:`F_\\theta(\\tilde x, \\log\\sigma)` is trained on standardised data
    :math:`\\tilde x` perturbed with Gaussian noise of level :math:`\\sigma` (log-uniform
    in ``[sigma_min, sigma_max]``) by minimising the :math:`\\sigma^2`-weighted DSM loss
    :math:`E\\,\\|\\sigma s_\\theta(\\tilde x + \\sigma z, \\sigma) + z\\|^2 / d`. With
    ``residual=True`` (default) the model is the score of the Gaussian fit of the data,
    convolved with the noise, plus the network:
    :math:`s_\\theta = -(C + \\sigma^2)^{-1}\\tilde x + F_\\theta`: the network learns
    only the non-Gaussian part, and the weakly varying high wavenumbers, which
    small-noise DSM smooths most, are carried exactly by the Gaussian part. Without it,
    the network output is the score itself, :math:`s_\\theta = F_\\theta` (not
    :math:`F_\\theta/\\sigma`, which amplifies the network's errors a hundredfold at
    ``sigma_min``). The GFDT uses the score at ``sigma_min``.

    Training: Adam with linear warm-up, gradient clipping, an exponential moving
    average (EMA) of the weights (the EMA weights give the score), a validation split
    (the last ``validation`` fraction of the samples, in order: pass time-ordered data)
    with early stopping on the validation loss, checkpoints and resume.

    Batches run through the training samples in epochs: epoch ``e`` is a permutation
    drawn from the stream ``SeedSequence(seed, spawn_key=(1, e))`` cut into batches of
    ``batch_size`` (an incomplete last batch is dropped), and the noise of step ``k`` comes
    from ``SeedSequence(seed, spawn_key=(2, k))``. The random numbers of a step depend
    only on ``seed`` and the step, so a resumed training (from any checkpoint, even
    mid-epoch) is bit-identical to an uninterrupted one, and the result does not depend
    on the number of processes.

    **Several processes** (``torchrun``, one per GPU): with ``distributed="auto"`` (the
    default) a process launched by ``torchrun`` (environment variables ``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) or holding an initialised
    ``torch.distributed`` process group trains with
    :class:`~torch.nn.parallel.DistributedDataParallel` (backend ``nccl`` on CUDA,
    ``gloo`` on CPU; GPU ``LOCAL_RANK`` with ``device="auto"``). ``batch_size`` is the
    *global* batch: every step, rank ``r`` of ``W`` takes the slice
    ``[r B/W, (r+1) B/W)`` of the global batch (the samples and their noise), a disjoint
    shard as with a ``DistributedSampler``. DDP averages the gradients of the ranks'
    batch means, which is the gradient of the global batch mean, so every rank makes the
    same update as a single process with the same ``batch_size`` (equal up to float
    round-off of the gradient sum). Rank 0 writes the checkpoints, logs and shows the
    progress bar; every rank returns the same model. Each rank computes the standardisation
    and Gaussian statistics from its share of the data (partial sums all-reduced).

    **Data larger than memory**: :meth:`fit` takes a netCDF path, a run folder of
    :func:`gfdt.simulate` or an xarray object opened from files or backed by Dask, and
    reads the snapshots of each batch by index (see
    :class:`~gfdt.scores.data.SnapshotDataset`); the statistics are accumulated over
    chunks of ``chunk_size`` snapshots. Only the validation samples used (at most 512)
    are held in memory.

    Parameters
    ----------
    network : {"auto", "cnn", "unet", "mlp"} or torch.nn.Module
        ``"auto"``: :class:`~gfdt.scores.networks.PeriodicCNN` for 2-D fields,
        :class:`~gfdt.scores.networks.MLP` for vectors. A module must map
        ``(x, log_sigma)`` to the shape of ``x``.
    sigma_min, sigma_max : float
        Noise range in units of the data's standard deviation. The GFDT needs only
        the small-noise score, and a narrow range puts the training there (on
        Allen-Cahn: relative Fisher error 0.07 with ``sigma_max=0.2`` against 0.21 with
        1.0 after 1500 steps); widen it for sampling.
    residual : bool
        Learn the residual over the Gaussian score (see above).
    homogeneous : bool, optional
        Periodic translation-invariant fields (scalar standardisation, spectral
        Gaussian part). Default: True for 2-D states.
    batch_size : int
    lr : float
        Peak learning rate of Adam.
    warmup : int
        Linear warm-up steps.
    max_steps : int
        Optimisation steps at most.
    max_time : float, optional
        Wall-clock budget of the training in seconds (makes the result depend on speed).
    ema : float
        EMA decay of the weights.
    grad_clip : float
        Maximum gradient norm.
    validation : float
        Fraction of samples held out for validation and early stopping.
    eval_every : int
        Steps between validations (and checkpoints).
    patience : int
        Validations without improvement before stopping.
    checkpoint : path, optional
        File to checkpoint to; if it exists, :meth:`fit` resumes from it.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    seed : int
        Seed of initialisation, batches and noise.
    n_threads : int, optional
        torch CPU threads during training (default: torch's setting).
    progress : bool, optional
        Progress bar (default: only on a terminal; rank 0 only).
    distributed : bool or "auto"
        Train with DistributedDataParallel: ``"auto"`` when launched by ``torchrun``
        (or a process group is initialised), True to require it, False never.
    chunk_size : int
        Snapshots per read in the passes that compute the statistics.

    Attributes
    ----------
    network_ : torch.nn.Module
        EMA weights at the best validation loss.
    mean_, std_ : numpy.ndarray
        Standardisation.
    history_ : dict
        ``step``, ``train_loss``, ``val_loss`` lists.
    train_time_ : float
        Seconds spent training.
    n_steps_ : int
        Optimisation steps done.
    epochs_ : float
        Passes over the training samples (``n_steps_ * batch_size / n_train``).
    world_size_ : int
        Number of processes that trained (1 without DDP).
    """

    def __init__(
        self,
        network: str | nn.Module = "auto",
        sigma_min: float = 0.01,
        sigma_max: float = 0.2,
        residual: bool = True,
        homogeneous: bool | None = None,
        batch_size: int = 64,
        lr: float = 2e-3,
        warmup: int = 200,
        max_steps: int = 4000,
        max_time: float | None = None,
        ema: float = 0.995,
        grad_clip: float = 1.0,
        validation: float = 0.2,
        eval_every: int = 250,
        patience: int = 6,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        seed: int = 0,
        n_threads: int | None = None,
        progress: bool | None = None,
        distributed: bool | str = "auto",
        chunk_size: int = 512,
    ) -> None:
        self.network = network
        self.sigma_min = sigma_min
        self.sigma_max = sigma_max
        self.residual = residual
        self.homogeneous = homogeneous
        self.batch_size = batch_size
        self.lr = lr
        self.warmup = warmup
        self.max_steps = max_steps
        self.max_time = max_time
        self.ema = ema
        self.grad_clip = grad_clip
        self.validation = validation
        self.eval_every = eval_every
        self.patience = patience
        self.checkpoint = checkpoint
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.progress = progress
        self.distributed = distributed
        self.chunk_size = chunk_size

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        if isinstance(self.network, str):
            if self.network not in ("auto", "cnn", "unet", "mlp"):
                raise ValueError(f"unknown network {self.network!r}; choose 'auto', 'cnn', "
                                 "'unet', 'mlp' or pass a torch.nn.Module")
        elif not isinstance(self.network, nn.Module):
            raise TypeError(f"network must be a name or a torch.nn.Module, got "
                            f"{type(self.network).__name__}")
        check_number(self.sigma_min, "sigma_min", low=0, low_open=True)
        check_number(self.sigma_max, "sigma_max", low=0, low_open=True)
        if not self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min="
                             f"{self.sigma_min}, sigma_max={self.sigma_max}")
        check_flag(self.residual, "residual")
        check_flag(self.homogeneous, "homogeneous", optional=True)
        check_flag(self.progress, "progress", optional=True)
        check_positive_ints(self, ("batch_size", "max_steps", "eval_every", "patience",
                                   "chunk_size"))
        check_number(self.warmup, "warmup", low=0, integer=True)
        check_number(self.n_threads, "n_threads", low=1, integer=True, optional=True)
        check_number(self.seed, "seed", low=0, integer=True)
        check_number(self.lr, "lr", low=0, high=1, low_open=True, high_open=True)
        check_number(self.ema, "ema", low=0, high=1, high_open=True)
        check_number(self.grad_clip, "grad_clip", low=0, low_open=True)
        check_number(self.validation, "validation", low=0, high=0.9, low_open=True,
                     high_open=True)
        check_number(self.max_time, "max_time", low=0, low_open=True, optional=True)
        if self.checkpoint is not None and not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path or None, got "
                            f"{type(self.checkpoint).__name__}")
        if not (isinstance(self.distributed, (bool, np.bool_))
                or (isinstance(self.distributed, str) and self.distributed == "auto")):
            raise ValueError(f"distributed must be True, False or 'auto', got "
                             f"{self.distributed!r}")
        resolve_device(self.device)

    # -------------------------------------------------------------- the model
    def _model_score(self, net: nn.Module, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        out = net(x, torch.log(sigma))
        if self.residual:
            return self.prior_(x, sigma) + out
        return out

    def _loss(self, net, x, sigma, z) -> torch.Tensor:
        xn = x + sigma.reshape(-1, *([1] * (x.ndim - 1))) * z
        s = self._model_score(net, xn, sigma)
        r = sigma.reshape(-1, *([1] * (x.ndim - 1))) * s + z
        return (r**2).reshape(len(x), -1).mean()

    # -------------------------------------------------------------------- fit
    def fit(self, X, variable: str | None = None) -> DenoisingScoreModel:
        """Train on time-ordered samples ``X``.

        Parameters
        ----------
        X : array_like, xarray.DataArray, xarray.Dataset, path or SnapshotDataset
            Samples of shape ``(n_samples, *state)``; a DataArray with dims
            ``(member?, time, *state)`` (flattened member-major); a Dataset (its
            variable ``variable``, default ``u``); a netCDF file or a run folder of
            :func:`gfdt.simulate`. Data backed by files or Dask are read batch by
            batch, never whole (see :class:`~gfdt.scores.data.SnapshotDataset`).
        variable : str, optional
            Variable of a Dataset or file.

        Returns
        -------
        DenoisingScoreModel
            ``self``, fitted.
        """
        self._check_params()
        data = X if isinstance(X, SnapshotDataset) else SnapshotDataset(X, variable, "X")
        try:
            return self._fit(data)
        finally:
            if data is not X:
                data.close()

    def _fit(self, data: SnapshotDataset) -> DenoisingScoreModel:
        n = len(data)
        n_val = max(1, round(self.validation * n))
        n_train = n - n_val
        if n_train < 2:
            raise ValueError(f"X has too few samples ({n}) for a validation split")
        state_shape = data.state_shape
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        ctx = _setup_distributed(self.distributed, self.device)
        device, rank, world = ctx.device, ctx.rank, ctx.world
        if self.batch_size % world:
            raise ValueError(f"batch_size = {self.batch_size} must be a multiple of the "
                             f"number of processes ({world}): it is the global batch")
        B = self.batch_size
        if B > n_train:
            B = (n_train // world) * world
            if B == 0:
                raise ValueError(f"X has {n_train} training samples, fewer than the "
                                 f"{world} processes")
            if rank == 0:
                logger.warning("batch_size = %d exceeds the %d training samples; using %d",
                               self.batch_size, n_train, B)
        local = B // world
        steps_per_epoch = n_train // B

        ck = Path(self.checkpoint) if self.checkpoint is not None else None
        config = self._config(state_shape, n)
        blob = None
        if ck is not None and ck.exists():
            blob = torch.load(ck, map_location=device, weights_only=False)
            if blob.get("config") != config:
                raise ValueError(f"checkpoint: {ck} was written with other parameters")
        if blob is not None:  # the statistics the checkpointed training used
            mean, std, stat = blob["stats"]
        else:
            mean, std, stat = _statistics(data, n_train, homogeneous, self.chunk_size, ctx)
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.mean_, self.std_ = mean, std
        self.prior_ = _GaussianPrior(stat, homogeneous, state_shape).to(device)
        with seeded(_stream_seed(self.seed, 0)):  # the caller's global RNG is left alone
            net = (default_network(state_shape, self.network) if isinstance(self.network, str)
                   else copy.deepcopy(self.network))
        net = net.to(device)
        ema_net = copy.deepcopy(net).requires_grad_(False)
        best_net = copy.deepcopy(ema_net)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        if data.lazy:
            Xt = None
        else:
            Xt = torch.tensor((data.read_range(0, n_train) - mean) / std, dtype=torch.float32,
                              device=device)

        def batch(idx: np.ndarray) -> torch.Tensor:
            if Xt is not None:
                return Xt[torch.as_tensor(idx, device=device)]
            return torch.tensor((data.read(idx) - mean) / std, dtype=torch.float32,
                                device=device)

        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        # validation: the first (at most 512) held-out samples, the same noise every time
        nv = min(n_val, 512)
        xv = np.concatenate([data.read_range(a, min(a + self.chunk_size, n_train + nv))
                             for a in range(n_train, n_train + nv, self.chunk_size)])
        if not np.all(np.isfinite(xv)):
            raise ValueError("X contains NaN or inf")
        Xv = torch.tensor((xv - mean) / std, dtype=torch.float32, device=device)
        vgen = torch.Generator(device="cpu").manual_seed(_stream_seed(self.seed, 3))
        v_sigma = torch.exp(lo + (hi - lo) * torch.rand(nv, generator=vgen)).to(device)
        v_z = torch.randn((nv, *state_shape), generator=vgen).to(device)
        hist: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}
        state = {"step": 0, "best": math.inf, "bad": 0, "elapsed": 0.0}
        if blob is not None:
            net.load_state_dict(blob["net"])
            ema_net.load_state_dict(blob["ema"])
            best_net.load_state_dict(blob["best_net"])
            opt.load_state_dict(blob["opt"])
            hist, state = blob["history"], blob["state"]
            if rank == 0:
                logger.info("resuming training from %s at step %d", ck, state["step"])
        # every rank has looked for the checkpoint before rank 0 may write one
        ctx.barrier()
        model = ctx.wrap(net)

        with torch_threads(self.n_threads):
            bar = progress_bar(self.max_steps, "DSM training",
                               False if rank else self.progress, initial=state["step"])
            t0 = time.perf_counter() - state["elapsed"]
            running, n_running = 0.0, 0
            perm_epoch, perm = -1, None
            try:
                while state["step"] < self.max_steps and state["bad"] < self.patience:
                    step = state["step"]
                    epoch, pos = divmod(step, steps_per_epoch)
                    if epoch != perm_epoch:
                        perm_rng = np.random.default_rng(np.random.SeedSequence(
                            self.seed, spawn_key=(1, epoch)))
                        perm, perm_epoch = perm_rng.permutation(n_train), epoch
                    warmup_lr(opt, self.lr, step, self.warmup)
                    # this rank's shard of the global batch, and the noise of those samples
                    start = pos * B + rank * local
                    x = batch(perm[start:start + local])
                    gen = torch.Generator(device="cpu").manual_seed(
                        _stream_seed(self.seed, 2, step))
                    sigma = torch.exp(lo + (hi - lo) * torch.rand(B, generator=gen))
                    z = torch.randn((B, *state_shape), generator=gen)
                    sl = slice(rank * local, (rank + 1) * local)
                    loss = self._loss(model, x, sigma[sl].to(device), z[sl].to(device))
                    opt.zero_grad(set_to_none=True)
                    loss.backward()  # DDP: gradients averaged over the ranks here
                    nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                    opt.step()
                    ema_update(ema_net, net, self.ema, step)
                    running += float(loss.detach())
                    n_running += 1
                    state["step"] = step + 1
                    bar.update(1)
                    out_of_time = (self.max_time is not None
                                   and time.perf_counter() - t0 > self.max_time)
                    if self.max_time is not None:  # every rank stops at the same step
                        out_of_time = bool(
                            ctx.allreduce(np.array([float(out_of_time)]))[0] > 0)
                    if state["step"] % self.eval_every == 0 or out_of_time or \
                            state["step"] == self.max_steps:
                        with torch.no_grad():
                            vl = float(sum(
                                self._loss(ema_net, Xv[a:a + 128], v_sigma[a:a + 128],
                                           v_z[a:a + 128]) * len(Xv[a:a + 128])
                                for a in range(0, nv, 128)) / nv)
                        # mean of the global-batch losses; rank 0's validation loss for all
                        tot = ctx.allreduce(np.array([running, vl if rank == 0 else 0.0]))
                        hist["step"].append(state["step"])
                        hist["train_loss"].append(float(tot[0]) / world / n_running)
                        hist["val_loss"].append(float(tot[1]))
                        vl = float(tot[1])
                        running, n_running = 0.0, 0
                        if vl < state["best"]:
                            state["best"], state["bad"] = vl, 0
                            best_net.load_state_dict(ema_net.state_dict())
                        else:
                            state["bad"] += 1
                        bar.set_postfix(val=f"{vl:.4f}")
                        state["elapsed"] = time.perf_counter() - t0
                        if ck is not None and rank == 0:
                            self._save_checkpoint(ck, config, (mean, std, stat), net, ema_net,
                                                  best_net, opt, hist, state)
                    if out_of_time:
                        if rank == 0:
                            logger.info("DSM training stopped by max_time at step %d",
                                        state["step"])
                        break
            finally:
                bar.close()
        self.network_ = best_net.eval()
        self.history_ = hist
        self.train_time_ = time.perf_counter() - t0
        self.n_steps_ = state["step"]
        self.epochs_ = state["step"] * B / n_train
        self.world_size_ = world
        self.device_ = device
        if rank == 0:
            logger.info("DSM: %d steps (%.2f epochs, %d process%s) in %.1f s, best "
                        "validation loss %.4f", state["step"], self.epochs_, world,
                        "es" if world > 1 else "", self.train_time_, state["best"])
        return self

    def _config(self, state_shape, n_samples: int) -> dict[str, Any]:
        p = {k: v for k, v in self.get_params().items()
             if k not in ("checkpoint", "progress", "device", "n_threads", "max_time",
                          "distributed", "chunk_size")}
        if not isinstance(p["network"], str):
            p["network"] = type(p["network"]).__name__
        p["state_shape"] = tuple(state_shape)
        p["n_samples"] = int(n_samples)
        p["sampling"] = "epochs/SeedSequence"  # refuses checkpoints of older versions
        return p

    def _save_checkpoint(self, ck, config, stats, net, ema_net, best_net, opt, hist,
                         state) -> None:
        blob = {"config": config, "stats": stats, "net": net.state_dict(),
                "ema": ema_net.state_dict(), "best_net": best_net.state_dict(),
                "opt": opt.state_dict(), "history": hist, "state": dict(state)}
        with atomic_path(ck, "checkpoint") as tmp:
            torch.save(blob, tmp)

    # ------------------------------------------------------------------ score
    def score(self, x, sigma: float | None = None, batch_size: int = 512) -> np.ndarray:
        """:math:`\\nabla \\log p` at ``x`` (data units), from the network at noise ``sigma``.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        sigma : float, optional
            Noise level in units of the data's standard deviation (default
            ``sigma_min``).
        batch_size : int
            States per network evaluation.

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        sig = self.sigma_min if sigma is None else check_number(sigma, "sigma", low=0,
                                                                 low_open=True)
        batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
        xs = (arr - self.mean_) / self.std_
        out = np.empty_like(xs)
        net = self.network_
        with torch.no_grad():
            for a in range(0, len(xs), batch_size):
                xt = torch.tensor(xs[a:a + batch_size], dtype=torch.float32, device=self.device_)
                st = torch.full((len(xt),), sig, dtype=torch.float32, device=self.device_)
                out[a:a + batch_size] = self._model_score(net, xt, st).cpu().numpy()
        out = out / self.std_
        return out[0] if single else out

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model (parameters, weights, standardisation) to ``path``."""
        save_torch(self, path, ("network_", "prior_"))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> DenoisingScoreModel:
        """Read a model written by :meth:`save` onto ``device``."""
        return load_torch(cls, path, device, ("network_", "prior_"),
                          eval_modules=("network_",))
