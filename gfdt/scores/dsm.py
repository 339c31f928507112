"""Denoising score matching with noise-conditional networks (PyTorch).

Size: about 500 lines: the estimator, its training task, the shape-dependent defaults
hook and the closed-form 1-D path.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gfdt.scores._defaults import dsm_defaults
from gfdt.scores._dsm_task import DSMTask, read_rows, strided
from gfdt.scores._dsm_vector import choose_clean_score
from gfdt.scores._kde import BANDWIDTHS, fit_kde, kde_score
from gfdt.scores._torch import (
    TorchScoreEstimator,
    gaussian_statistics,
    is_homogeneous,
    resolve_device,
    seeded,
    stream_seed,
    torch_threads,
)
from gfdt.scores.base import ScoreEstimator, check_flag, check_number, register_score
from gfdt.scores.data import SnapshotDataset
from gfdt.scores.networks import GaussianModes, default_network
from gfdt.scores.quality import QualityMixin
from gfdt.scores.training import Trainer, setup_distributed

__all__ = ["DenoisingScoreModel", "dsm_defaults", "resolve_device"]

logger = logging.getLogger("gfdt")
_KDE_QUALITY_SAMPLES = 2000  # held-out samples of the quality report, closed-form path
#: Held-out samples of the quality report of vectors (strided over the held-out span:
#: consecutive samples of a time series are correlated, the standard errors assume not).
_VECTOR_QUALITY_SAMPLES = 4096


@register_score("dsm")
class DenoisingScoreModel(QualityMixin, TorchScoreEstimator, ScoreEstimator):
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
    ``sigma_min``). The GFDT uses the score at ``sigma_min`` (vectors: see Notes).

    **Defaults by the data's shape** (:func:`~gfdt.scores._defaults.dsm_defaults`, one
    rule for every system): fields (2-D states, convolutional network) train at
    ``sigma`` in ``[0.01, 0.2]`` with batch 64 for at most 4000 steps; vectors
    (:class:`~gfdt.scores.networks.CoordinateMLP`) at ``[0.05, 1]`` with batch 512, a
    cosine learning-rate decay and a number of steps set by the data and the dimension
    (:func:`~gfdt.scores._defaults.vector_steps`). Training length: at most
    ``max_steps``, early stopping on the held-out loss, and ``max_time`` if given.

    **One coordinate** (``network="auto"`` and at most ``closed_form_dim`` coordinates):
    no network is trained. The minimiser of the DSM loss over all functions, for the
    empirical measure of the training samples, is the score of their Gaussian kernel
    density estimate at the noise level; it is evaluated exactly on (at most 8000)
    training samples, the bandwidth chosen on the held-out samples by the implicit
    score-matching objective (:mod:`gfdt.scores._kde`). It is then ``sigma_min_``, and
    ``score(x, sigma)`` is the kernel score at bandwidth ``sigma``. On the 1-D cubic CAM
    model it gives response error 0.08-0.09 (exact score 0.085), where every network
    configuration tried gave 0.14-0.24.

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
    network : {"auto", "cnn", "local", "unet", "mlp", "coordinate"} or torch.nn.Module
        ``"auto"``: :class:`~gfdt.scores.networks.PeriodicCNN` for 2-D fields,
        :class:`~gfdt.scores.networks.CoordinateMLP` (``"coordinate"``: learned
        features of every coordinate, mixed, plus an MLP) for vectors; ``"mlp"`` the
        plain :class:`~gfdt.scores.networks.MLP`. ``"local"``: the periodic CNN with a
        generic pointwise MLP instead of the ``[x, x^2, x^3]`` features. A module must
        map ``(x, log_sigma)`` to the shape of ``x``.
    sigma_min, sigma_max : float, optional
        Noise range in units of the data's standard deviation (default: the rule
        above; the values used are ``sigma_min_``, ``sigma_max_``). On fields the GFDT
        needs only the small-noise score, and a narrow range puts the training there (on
        Allen-Cahn: relative Fisher error 0.07 with ``sigma_max=0.2`` against 0.21 with
        1.0 after 1500 steps); on vectors the wide range is needed to see the
        non-Gaussian structure at all (4-D double-well chain: response error 0.43 with
        ``[0.01, 0.2]``, batch 64; 0.10 with the default).
    residual : bool
        Learn the residual over the Gaussian score (see above).
    stein_projection : bool
        Vectors with ``residual=True``: remove from the learned correction its
        least-squares affine part over the training samples (at most 32768 of them,
        strided; :mod:`gfdt.scores._projection`: the exact correction has none, so
        this never increases its L2 error there, and :math:`-E[(x - \\bar x) s^T]` is
        the identity on those samples). Used by :meth:`score` without ``sigma``.
    homogeneous : bool, optional
        Periodic translation-invariant fields (scalar standardisation, spectral
        Gaussian part). Default: True for 2-D states.
    batch_size : int, optional
        Default: the rule above (used value ``batch_size_``).
    lr : float
        Peak learning rate of Adam.
    warmup : int
        Linear warm-up steps.
    max_steps : int, optional
        Optimisation steps at most. Default: the rule of
        :func:`~gfdt.scores._defaults.dsm_defaults` (fields 4000; vectors by the data and
        the dimension, :func:`~gfdt.scores._defaults.vector_steps`); used value
        ``max_steps_``.
    schedule : {"constant", "cosine"}, optional
        Learning rate after the warm-up: constant, or a cosine decay to a tenth at
        ``max_steps``. Default: cosine for vectors, constant for fields.
    max_time : float, optional
        Wall-clock budget of the training in seconds (makes the result depend on speed).
    closed_form_dim : int
        Vectors with at most this many coordinates (and ``network="auto"``) use the
        closed-form kernel-density optimum instead of a network; 0 never.
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
        torch CPU threads during training (default:
        :func:`~gfdt.scores._torch.default_threads`, one thread on machines with at most
        2 CPUs, else half the CPUs).
    progress : bool, optional
        Progress bar (default: only on a terminal; rank 0 only).
    distributed : bool or "auto"
        Train with DistributedDataParallel: ``"auto"`` when launched by ``torchrun``
        (or a process group is initialised), True to require it, False never.
    chunk_size : int
        Snapshots per read in the passes that compute the statistics.

    Attributes
    ----------
    network_ : torch.nn.Module or None
        EMA weights at the best validation loss (None on the closed-form path).
    sigma_min_, sigma_max_, batch_size_ : float, float, int
        The noise range and batch size used (closed form: ``sigma_min_`` is the
        bandwidth).
    kde_centres_ : numpy.ndarray or None
        Standardised kernel centres of the closed-form path, else None.
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
    validation_by_level_ : dict
        Validation loss of the final weights per band of noise levels (e.g. to choose
        the noise range or the capacity by held-out validation).
    quality_ : ScoreQuality
        Held-out quality report (see :meth:`summary`).
    sigma_eval_ : float
        Noise level of the network in the clean score (vectors with ``residual``;
        else ``sigma_min_``).
    projection_ : tuple or None
        ``(centre, mean, linear)`` of the Stein projection (standardised units), or None.
    correction_scale_ : float
        Scale of the learned correction in the clean score (1 unless chosen).
    eval_objective_ : dict
        ``{sigma: (scale, objective)}``: the best scale and the held-out implicit
        score-matching objective of each candidate ``sigma_eval_``.

    Notes
    -----
    For vectors with ``residual=True``, :meth:`score` without ``sigma`` (the clean
    score, :mod:`gfdt.scores._dsm_vector`) adds the network at ``sigma_eval_`` (the
    level among ``sigma_min * (1, 2, 4)`` with the least held-out implicit
    score-matching objective), less its affine part over the training samples (the
    Stein projection), times the scale ``correction_scale_`` with the least held-out
    objective, to the Gaussian part evaluated exactly at :math:`\\sigma = 0`
    (:math:`-C^{-1}x` rather than :math:`-(C + \\sigma_{\\min}^2)^{-1}x`): the Gaussian
    part's dependence on the noise is known in closed form, so only the learned
    correction carries the smoothing bias of the noise floor. On strongly correlated
    data (standardised eigenvalues near :math:`\\sigma_{\\min}^2`) this removes most of
    the bias (2-D Gaussian with correlation 0.99: relative Fisher error 0.037 ->
    0.0005). Fields keep the Gaussian part at ``sigma_min_``.
    """

    _modules = ("network_", "prior_")
    _optional_params = ("batch_size", "max_steps")
    _eval_modules = ("network_",)

    #: ResponseEstimator hands it its Trajectories: Dask-backed data stream batch by batch.
    accepts_trajectories = True

    def __init__(
        self,
        network: str | nn.Module = "auto",
        sigma_min: float | None = None,
        sigma_max: float | None = None,
        residual: bool = True,
        stein_projection: bool = True,
        homogeneous: bool | None = None,
        batch_size: int | None = None,
        lr: float = 2e-3,
        warmup: int = 200,
        max_steps: int | None = None,
        schedule: str | None = None,
        max_time: float | None = None,
        closed_form_dim: int = 1,
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
        self.stein_projection = stein_projection
        self.homogeneous = homogeneous
        self.batch_size = batch_size
        self.lr = lr
        self.warmup = warmup
        self.max_steps = max_steps
        self.schedule = schedule
        self.max_time = max_time
        self.closed_form_dim = closed_form_dim
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
            if self.network not in ("auto", "cnn", "local", "unet", "mlp", "coordinate"):
                raise ValueError(f"unknown network {self.network!r}; choose 'auto', 'cnn', "
                                 "'local', 'unet', 'mlp', 'coordinate' or pass a "
                                 "torch.nn.Module")
        elif not isinstance(self.network, nn.Module):
            raise TypeError(f"network must be a name or a torch.nn.Module, got "
                            f"{type(self.network).__name__}")
        check_number(self.sigma_min, "sigma_min", low=0, low_open=True, optional=True)
        check_number(self.sigma_max, "sigma_max", low=0, low_open=True, optional=True)
        check_number(self.batch_size, "batch_size", low=1, integer=True, optional=True)
        if self.sigma_min is not None and self.sigma_max is not None \
                and not self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min="
                             f"{self.sigma_min}, sigma_max={self.sigma_max}")
        if self.schedule not in (None, "constant", "cosine"):
            raise ValueError(f"schedule must be 'constant', 'cosine' or None, got "
                             f"{self.schedule!r}")
        check_flag(self.residual, "residual")
        check_flag(self.stein_projection, "stein_projection")
        check_number(self.closed_form_dim, "closed_form_dim", low=0, integer=True)
        self._check_common()
        check_number(self.validation, "validation", low=0, high=0.9, low_open=True,
                     high_open=True)
        if not (isinstance(self.distributed, (bool, np.bool_))
                or (isinstance(self.distributed, str) and self.distributed == "auto")):
            raise ValueError(f"distributed must be True, False or 'auto', got "
                             f"{self.distributed!r}")

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
        self._resolve_defaults(state_shape, n_train)
        if self.network == "auto" and len(state_shape) == 1 \
                and state_shape[0] <= self.closed_form_dim:
            return self._fit_closed_form(data, n_train, n - n_train)
        self.kde_centres_ = None
        group = setup_distributed(self.distributed, self.device)
        device = group.device
        trainer = Trainer(
            max_steps=self.max_steps_, batch_size=self.batch_size_, lr=self.lr, seed=self.seed,
            warmup=self.warmup, schedule=self.schedule_, ema=self.ema, grad_clip=self.grad_clip,
            eval_every=self.eval_every, patience=self.patience, max_time=self.max_time,
            checkpoint=self.checkpoint, config=self._config(state_shape, n),
            progress=False if group.rank else self.progress, name="DSM", group=group)
        blob = trainer.resume_blob()
        if blob is not None:  # the statistics the checkpointed training used
            mean, std, stat = blob["stats"]
        else:
            mean, std, stat = gaussian_statistics(data.read_range, n_train, homogeneous,
                                                  self.chunk_size, group)
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.mean_, self.std_ = mean, std
        self.prior_ = GaussianModes(stat, homogeneous).to(device)
        with seeded(stream_seed(self.seed, 0)):  # the caller's global RNG is left alone
            net = (default_network(state_shape, self._network_kind(state_shape))
                   if isinstance(self.network, str) else copy.deepcopy(self.network))
        net = net.to(device)
        Xt = None if data.lazy else torch.tensor(
            (data.read_range(0, n_train) - mean) / std, dtype=torch.float32, device=device)

        def batch(idx: np.ndarray) -> torch.Tensor:
            if Xt is not None:
                return Xt[torch.as_tensor(idx, device=device)]
            return torch.tensor((data.read(idx) - mean) / std, dtype=torch.float32,
                                device=device)

        # validation: at most 512 held-out samples, the same noise every time; the first
        # ones (fields), or strided over the held-out span for the clean-score criterion
        nv = min(n_val, 512)
        clean = self.residual and not homogeneous
        xv = read_rows(data, strided(n_train, n, nv), self.chunk_size) if clean else \
            np.concatenate([data.read_range(a, min(a + self.chunk_size, n_train + nv))
                            for a in range(n_train, n_train + nv, self.chunk_size)])
        if not np.all(np.isfinite(xv)):
            raise ValueError("X contains NaN or inf")
        Xv = torch.tensor((xv - mean) / std, dtype=torch.float32, device=device)
        with torch_threads(self.n_threads):
            res = trainer.fit(DSMTask(self, state_shape, clean), net, batch, n_train, Xv,
                              stats=(mean, std, stat), blob=blob)
        self.network_ = res.net
        self.history_ = res.history
        self.train_time_ = res.train_time
        self.n_steps_ = res.n_steps
        self.epochs_ = res.epochs
        self.world_size_ = res.world
        self.validation_by_level_ = res.val_by_level
        self.device_ = device
        self.sigma_eval_, self.projection_, self.eval_objective_ = self.sigma_min_, None, {}
        self.correction_scale_, self.prior_stat_ = 1.0, stat
        if not homogeneous:  # vectors: samples strided over the whole held-out span
            xv = read_rows(data, strided(n_train, n, _VECTOR_QUALITY_SAMPLES),
                           self.chunk_size)
            if self.residual:  # odd samples choose the clean score's noise level and scale
                self.eval_objective_ = choose_clean_score(
                    self, data, n_train, mean, std, ((xv - mean) / std)[1::2])
        self._assess(xv, stat, self.sigma_min_, homogeneous)
        return self

    def _network_std(self, xs: np.ndarray, sig: float, batch_size: int) -> np.ndarray:
        """The network alone at noise ``sig``, standardised units."""

        def fn(xt: torch.Tensor) -> torch.Tensor:
            st = torch.full((len(xt),), sig, dtype=torch.float32, device=self.device_)
            return self.network_(xt, torch.log(st))

        return self._batched(fn, xs, batch_size)

    def _fit_closed_form(self, data: SnapshotDataset, n_train: int,
                         n_val: int) -> DenoisingScoreModel:
        """Low dimension: the DSM optimum of the empirical measure, the kernel-density
        score (:mod:`gfdt.scores._kde`), bandwidth by held-out score matching."""
        import time

        t0 = time.perf_counter()
        mean, std, stat = gaussian_statistics(data.read_range, n_train, False,
                                              self.chunk_size)
        self.state_shape_, self.homogeneous_ = data.state_shape, False
        self.mean_, self.std_ = mean, std
        self.prior_, self.network_ = None, None
        fit = fit_kde(data.read_range, n_train, n_val, mean, std, self.seed)
        self.kde_centres_ = fit["centres"]
        self.sigma_min_ = fit["bandwidth"]
        self.sigma_max_ = max(self.sigma_max_, 2 * self.sigma_min_)
        self.history_ = {"bandwidth": [float(h) for h in BANDWIDTHS],
                         "val_loss": [float(v) for v in fit["objective"]]}
        self.n_steps_, self.epochs_, self.world_size_ = 0, 0.0, 1
        self.validation_by_level_ = dict(zip(self.history_["bandwidth"],
                                             self.history_["val_loss"], strict=True))
        self.device_ = torch.device("cpu")
        self.train_time_ = time.perf_counter() - t0
        logger.info("DSM: %d coordinates, closed-form optimum (kernel-density score, "
                    "%d centres, bandwidth %.3g by held-out score matching)",
                    data.state_shape[0], len(self.kde_centres_), self.sigma_min_)
        # held-out samples strided over the whole validation span: consecutive samples of
        # a time series are correlated, and the report's standard error assumes they are not
        xv = fit["x_val"]
        self._assess(xv[::max(1, len(xv) // _KDE_QUALITY_SAMPLES)][:_KDE_QUALITY_SAMPLES],
                     stat, self.sigma_min_, False)
        return self

    def summary(self) -> str:
        """The estimator, its training (or closed form) and its held-out quality report."""
        text = super().summary()
        if getattr(self, "kde_centres_", None) is None:
            return text
        head = (f"DenoisingScoreModel: closed-form kernel-density score (1-D DSM optimum), "
                f"{len(self.kde_centres_)} centres, bandwidth {self.sigma_min_:.3g}")
        return head + text[text.index("\n"):]

    def _noised_score_std(self, xs: np.ndarray, sigma: float) -> np.ndarray:
        """Score of the data smoothed at ``sigma``: for the kernel-density score the KDE of
        bandwidth :math:`\\sqrt{h^2 + \\sigma^2}`; else the clean score."""
        if getattr(self, "kde_centres_", None) is None:
            return self._score_std(xs)
        bw = float(np.hypot(self.sigma_min_, sigma))
        return kde_score(self.kde_centres_, bw, xs.reshape(len(xs), -1)).reshape(xs.shape)

    def _resolve_defaults(self, state_shape: tuple[int, ...], n_train: int) -> None:
        """``sigma_min_``, ``sigma_max_``, ``batch_size_``: the given values, or the rule of
        :func:`dsm_defaults` for the data's shape and size."""
        kind = self.network if isinstance(self.network, str) else "module"
        rule = dsm_defaults(state_shape, n_train, kind)
        self.sigma_min_ = rule["sigma_min"] if self.sigma_min is None else self.sigma_min
        self.sigma_max_ = rule["sigma_max"] if self.sigma_max is None else self.sigma_max
        if not self.sigma_min_ < self.sigma_max_:
            raise ValueError(f"need sigma_min < sigma_max, got sigma_min={self.sigma_min_}, "
                             f"sigma_max={self.sigma_max_} (one of them from the defaults "
                             f"{rule})")
        self.batch_size_ = rule["batch_size"] if self.batch_size is None else self.batch_size
        self.max_steps_ = rule["max_steps"] if self.max_steps is None else self.max_steps
        self.schedule_ = self.schedule or ("cosine" if rule["kind"] == "vector"
                                           else "constant")
        logger.info("DSM: %s data, sigma %.3g-%.3g, batch %d, at most %d steps (%s)",
                    rule["kind"], self.sigma_min_, self.sigma_max_, self.batch_size_,
                    self.max_steps_, self.schedule_)

    def _network_kind(self, state_shape: tuple[int, ...]) -> str:
        """The named network resolved: ``"auto"`` is the CNN for 2-D fields, the
        coordinate-feature MLP for everything else."""
        if self.network != "auto":
            return self.network
        return "cnn" if len(state_shape) == 2 else "coordinate"

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
        xs, single = self._standardised(x)
        out = self._score_std(xs, sigma, batch_size) / self.std_
        return out[0] if single else out

    def _score_std(self, xs: np.ndarray, sigma: float | None = None,
                   batch_size: int = 512) -> np.ndarray:
        """The score in standardised units at standardised points ``xs``."""
        sig = getattr(self, "sigma_eval_", self.sigma_min_) if sigma is None else \
            check_number(sigma, "sigma", low=0, low_open=True)
        if getattr(self, "kde_centres_", None) is not None:
            flat = xs.reshape(len(xs), -1)
            return kde_score(self.kde_centres_, sig, flat).reshape(xs.shape)

        clean = sigma is None and self.residual and not self.homogeneous_
        if clean:  # vectors: the Gaussian part exactly at sigma = 0 (see Notes)
            corr = self._network_std(xs, sig, batch_size)
            proj = getattr(self, "projection_", None)
            if proj is not None:  # the Stein projection of the correction
                centre, mu, lin = proj
                corr -= (mu + (xs.reshape(len(xs), -1) - centre) @ lin).reshape(xs.shape)
            return (self._batched(lambda xt: self.prior_(xt, None), xs, batch_size)
                    + getattr(self, "correction_scale_", 1.0) * corr)

        def fn(xt: torch.Tensor) -> torch.Tensor:
            st = torch.full((len(xt),), sig, dtype=torch.float32, device=self.device_)
            return self._model_score(self.network_, xt, st)

        return self._batched(fn, xs, batch_size)
