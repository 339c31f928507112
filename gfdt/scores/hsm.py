r"""Hamiltonian score matching (Holderrieth, Xu and Jaakkola, NeurIPS 2024).

A force field :math:`F_\theta(x)` is a score :math:`\nabla \log p` exactly when the
Hamiltonian flow

.. math:: \dot x = v, \qquad \dot v = F_\theta(x), \qquad (x_0, v_0) \sim p \otimes N(0, I)

keeps the velocity independent of the position: :math:`p(x) N(v; 0, I)` is then invariant
(it is :math:`e^{-H}` for :math:`H = -\log p(x) + |v|^2/2`), so the *velocity predictor*
:math:`V^*(x, t) = E[v_t \mid x_t = x]` vanishes. The Hamiltonian score discrepancy

.. math:: \mathrm{HSD}(\theta) = E_t\, E \|V^*_\theta(x_t, t)\|^2,
          \qquad \mathrm{HSD}_t = t^2 E\|F_\theta - \nabla\log p\|^2 + O(t^3),

is zero only at the score. It is learned as a min-max problem:
:math:`\min_\theta \max_\phi E[2 V_\phi(x_t, t)\cdot v_t - \|V_\phi(x_t, t)\|^2]`, whose
inner maximum (reached at :math:`V_\phi = V^*`) is the HSD. Trajectories come from
leapfrog steps that are differentiable in :math:`\theta`; at the inner optimum the
:math:`\theta`-gradient is taken with :math:`\phi` frozen (Danskin's theorem).

This module holds the estimator :class:`HamiltonianScoreModel`, the leapfrog
integrator and Monte Carlo and closed-form (Gaussian data, linear force) HSDs. (The
gradient signal-to-noise claim of the paper is experiment code: ``benchmarks/_claims.py``.)
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import torch
from torch import nn

from gfdt.scores._hamiltonian import (
    gaussian_hamiltonian_discrepancy,
    hamiltonian_score_discrepancy,
    leapfrog,
    leapfrog_matrix,
)
from gfdt.scores._torch import (
    TorchScoreEstimator,
    gaussian_statistics,
    is_homogeneous,
    resolve_device,
    seeded,
    stream_seed,
    torch_threads,
    training_config,
    training_split,
)
from gfdt.scores.base import ScoreEstimator, as_samples, check_number, register_score
from gfdt.scores.networks import (
    FixedNoise,
    GaussianModes,
    PeriodicCNN,
    TimeScaled,
    VectorField,
    zero_last_layer,
)
from gfdt.scores.quality import QualityMixin
from gfdt.scores.training import Trainer

__all__ = [
    "HamiltonianScoreModel",
    "gaussian_hamiltonian_discrepancy",
    "hamiltonian_score_discrepancy",
    "leapfrog",
    "leapfrog_matrix",
]

logger = logging.getLogger("gfdt")


# ------------------------------------------------------------------ model pieces
class _Force(nn.Module):
    """The model force: Gaussian score of the data plus a network (``residual``)."""

    def __init__(self, net: nn.Module, prior: GaussianModes | None) -> None:
        super().__init__()
        self.net = net
        self.prior = prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.prior is not None:
            out = out + self.prior(x)
        return out


class _HSMTask:
    r"""HSM for the trainer: velocities and times of a batch; the min-max objective.

    :meth:`loss` first fits the velocity predictor (``inner_steps`` Adam steps on the
    trajectories of the current force), then returns the force objective with the
    predictor frozen.
    """

    def __init__(self, est: HamiltonianScoreModel, vel: nn.Module,
                 state_shape: tuple[int, ...]) -> None:
        self.est, self.vel, self.state_shape = est, vel, tuple(state_shape)
        self.v_params = list(vel.parameters())
        self.opt_v = torch.optim.Adam(self.v_params, lr=est.lr_velocity)

    def noise(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        v0 = torch.randn((n, *self.state_shape), generator=gen)
        t = self.est.T * (1e-3 + (1 - 1e-3) * torch.rand(n, generator=gen))
        return v0, t

    def loss(self, force: nn.Module, x0: torch.Tensor, v0: torch.Tensor,
             t: torch.Tensor) -> torch.Tensor:
        est, vel = self.est, self.vel
        with torch.no_grad():
            xt, vt = leapfrog(force, x0, v0, t, est.n_leapfrog)
        for _ in range(est.inner_steps):
            vl = ((vel(xt, t) - vt) ** 2).reshape(len(xt), -1).sum(1).mean()
            self.opt_v.zero_grad(set_to_none=True)
            vl.backward()
            nn.utils.clip_grad_norm_(self.v_params, est.grad_clip)
            self.opt_v.step()
        vel.requires_grad_(False)
        xt, vt = leapfrog(force, x0, v0, t, est.n_leapfrog)
        V = vel(xt, t)
        vel.requires_grad_(True)
        obj = (2 * V * vt - V**2).reshape(len(xt), -1).sum(1)
        if est.weighting == "fisher":
            obj = obj / t**2
        return obj.mean()

    def extra_state(self) -> dict:
        return {"vel": self.vel.state_dict(), "opt_v": self.opt_v.state_dict()}

    def load_extra_state(self, state: dict) -> None:
        self.vel.load_state_dict(state["vel"])
        self.opt_v.load_state_dict(state["opt_v"])


# ------------------------------------------------------------------ estimator
@register_score("hsm")
class HamiltonianScoreModel(QualityMixin, TorchScoreEstimator, ScoreEstimator):
    r"""Score of stationary data by Hamiltonian score matching (HSM).

    The score is a force field :math:`F_\theta` trained on *clean* data (no noise
    level, no :math:`\sigma \to 0` limit) by the min-max objective (module docstring)
    through ``n_leapfrog`` differentiable leapfrog steps: per step, a batch
    :math:`x_0` of data, velocities :math:`v_0 \sim N(0, I)` and times
    :math:`t \sim U(0, T)`; ``inner_steps`` Adam steps fit the velocity predictor
    :math:`V_\phi(x, t) = t\,\mathrm{net}_\phi(x, t)` to :math:`v_t` by least squares,
    then one Adam step on :math:`\theta` lowers
    :math:`E[w(t)(2 V_\phi\cdot v_t - \|V_\phi\|^2)]` with :math:`\phi` frozen.
    With ``weighting="fisher"``, :math:`w(t) = 1/t^2`, which makes the objective tend
    to the Fisher divergence :math:`E\|F_\theta - \nabla\log p\|^2` as
    :math:`t \to 0`; ``"none"``: :math:`w = 1`.

    With ``residual=True`` the force is the score of the Gaussian fit of the data plus
    a network whose last layer starts at zero, :math:`F_\theta = -C^{-1}\tilde x +
    \mathrm{net}_\theta(\tilde x)`: training starts from the Gaussian score (spectral
    for homogeneous fields) and the network learns the non-Gaussian part. Data are
    standardised inside (``T`` is in units of the standardised data) and scores are
    returned in data units. The training loop is :class:`~gfdt.scores.training.Trainer`
    (batches in epochs, step-keyed seed streams, EMA, clipping, checkpoints). The last
    ``validation`` fraction of the samples is held out for the quality report
    (:attr:`quality_`); the min-max objective is not a loss to stop early on.

    Parameters
    ----------
    network : {"auto", "mlp", "cnn"} or torch.nn.Module
        Force network. ``"auto"``: MLP (``depth`` x ``hidden``, SiLU) for vectors,
        :class:`~gfdt.scores.networks.PeriodicCNN` for 2-D fields. A module must map
        ``x`` of shape ``(batch, *state)`` to that shape.
    velocity_network : {"auto"} or torch.nn.Module
        Velocity predictor; a module maps ``(x, t)`` to the shape of ``x`` (it should
        vanish at ``t = 0``).
    hidden, depth : int
        MLP sizes (force and velocity networks, vectors).
    residual : bool
        Learn the residual over the Gaussian score.
    homogeneous : bool, optional
        Periodic translation-invariant fields (scalar standardisation, spectral
        Gaussian part). Default: True for 2-D states.
    max_steps : int
        Outer (force) steps.
    batch_size : int
    lr : float
        Adam learning rate of the force.
    lr_velocity : float
        Adam learning rate of the velocity predictor.
    inner_steps : int
        Velocity steps per force step (on the same trajectories).
    n_leapfrog : int
        Leapfrog steps per trajectory.
    T : float
        Largest time, in standardised units (0.5: about a third of the quarter period
        :math:`\pi/2` of a unit-variance oscillation, where :math:`\mathrm{HSD}_t
        \approx t^2 E\|F - \nabla\log p\|^2` still holds well).
    weighting : {"fisher", "none"}
        Time weighting of the force objective (see above).
    ema : float
        Exponential moving average decay of the force weights (the EMA gives the
        score); 0 disables it.
    grad_clip : float
        Maximum gradient norm of both networks.
    validation : float
        Fraction of samples (the last ones) held out for the quality report.
    eval_every : int
        Steps between records of the history (and checkpoints).
    checkpoint : path, optional
        File to checkpoint to; if it exists, :meth:`fit` resumes from it.
    max_time : float, optional
        Wall-clock budget of the training in seconds.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    seed : int
        Seed of initialisation, batches, velocities and times.
    n_threads : int, optional
        torch CPU threads during training (default:
        :func:`~gfdt.scores._torch.default_threads`).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    force_ : torch.nn.Module
        The trained force (EMA weights), standardised units.
    velocity_ : torch.nn.Module
        The trained velocity predictor.
    mean_, std_ : numpy.ndarray
        Standardisation.
    history_ : dict
        ``step`` and ``train_loss`` (force objective, averaged between records) lists.
    train_time_ : float
        Seconds spent training.
    n_steps_ : int
        Outer steps taken.
    quality_ : ScoreQuality
        Held-out quality report (see :meth:`summary`).

    Notes
    -----
    The standardisation and the Gaussian part use every sample (held-out ones too), so
    that the untrained model is exactly the Gaussian score of the data; the network
    trains on the training samples only.
    """

    _modules = ("force_", "velocity_")
    _eval_modules = ("force_", "velocity_")

    def __init__(
        self,
        network: str | nn.Module = "auto",
        velocity_network: str | nn.Module = "auto",
        hidden: int = 128,
        depth: int = 2,
        residual: bool = True,
        homogeneous: bool | None = None,
        max_steps: int = 3000,
        batch_size: int = 512,
        lr: float = 1e-3,
        lr_velocity: float = 1e-3,
        inner_steps: int = 5,
        n_leapfrog: int = 6,
        T: float = 0.5,
        weighting: str = "fisher",
        ema: float = 0.99,
        grad_clip: float = 10.0,
        validation: float = 0.2,
        eval_every: int = 250,
        checkpoint: str | None = None,
        max_time: float | None = None,
        device: str = "auto",
        seed: int = 0,
        n_threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.network = network
        self.velocity_network = velocity_network
        self.hidden = hidden
        self.depth = depth
        self.residual = residual
        self.homogeneous = homogeneous
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.lr_velocity = lr_velocity
        self.inner_steps = inner_steps
        self.n_leapfrog = n_leapfrog
        self.T = T
        self.weighting = weighting
        self.ema = ema
        self.grad_clip = grad_clip
        self.validation = validation
        self.eval_every = eval_every
        self.checkpoint = checkpoint
        self.max_time = max_time
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.progress = progress

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        self._check_common()
        for name in ("hidden", "depth", "inner_steps", "n_leapfrog"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.lr_velocity, "lr_velocity", low=0, high=1, low_open=True,
                     high_open=True)
        check_number(self.T, "T", low=0, low_open=True)
        if self.weighting not in ("fisher", "none"):
            raise ValueError(f"weighting must be 'fisher' or 'none', got {self.weighting!r}")
        if not isinstance(self.network, (str, nn.Module)):
            raise TypeError(f"network must be a name or a torch Module, got "
                            f"{type(self.network).__name__}")
        if not isinstance(self.velocity_network, (str, nn.Module)):
            raise TypeError(f"velocity_network must be 'auto' or a torch Module, got "
                            f"{type(self.velocity_network).__name__}")

    def _build(self, state_shape: tuple[int, ...], stat: np.ndarray,
               homogeneous: bool) -> tuple[nn.Module, nn.Module]:
        d = int(np.prod(state_shape))
        kind = self.network
        if isinstance(kind, nn.Module):
            net = copy.deepcopy(kind)
        else:
            if kind == "auto":
                kind = "cnn" if len(state_shape) == 2 else "mlp"
            if kind == "mlp":
                net = VectorField(d, self.hidden, self.depth)
            elif kind == "cnn":
                if len(state_shape) != 2:
                    raise ValueError(f"network='cnn' needs 2-D fields, got state shape "
                                     f"{state_shape}")
                net = FixedNoise(PeriodicCNN(size=state_shape))
            else:
                raise ValueError(f"unknown network {kind!r}; choose 'auto', 'mlp' or 'cnn'")
            if self.residual:
                zero_last_layer(net)
        prior = GaussianModes(stat, homogeneous, floor=1e-6) if self.residual else None
        force = _Force(net, prior)
        if isinstance(self.velocity_network, nn.Module):
            vel = copy.deepcopy(self.velocity_network)
        elif self.velocity_network == "auto":
            vel = (TimeScaled(PeriodicCNN(size=state_shape), self.T) if len(state_shape) == 2
                   else TimeScaled(None, self.T, d, self.hidden, self.depth))
        else:
            raise ValueError(f"velocity_network must be 'auto' or a Module, got "
                             f"{self.velocity_network!r}")
        return force, vel

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> HamiltonianScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)`` (time-ordered: the last
        ``validation`` fraction is held out).

        Returns
        -------
        HamiltonianScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        n_train, state_shape = training_split(len(X), self.validation), X.shape[1:]
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        mean, std, stat = gaussian_statistics(X, len(X), homogeneous)  # (see Notes)
        Xs = (X - mean) / std
        trainer = Trainer(
            max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
            ema=self.ema, grad_clip=self.grad_clip, eval_every=self.eval_every,
            max_time=self.max_time, checkpoint=self.checkpoint,
            config=training_config(self, state_shape, len(X)), progress=self.progress, name="HSM",
            device=resolve_device(self.device))
        device = trainer.device
        with torch_threads(self.n_threads):
            with seeded(stream_seed(self.seed, 0)):
                force, vel = self._build(state_shape, stat, homogeneous)
            force, vel = force.to(device), vel.to(device)
            Xt = torch.tensor(Xs[:n_train], dtype=torch.float32, device=device)
            task = _HSMTask(self, vel, state_shape)
            res = trainer.fit(task, force, lambda idx: Xt[torch.as_tensor(idx, device=device)],
                              n_train, stats=(mean, std, stat), blob=trainer.resume_blob())
        self.state_shape_ = state_shape
        self.mean_, self.std_ = mean, std
        self.device_ = device
        self.force_ = res.net
        self.velocity_ = vel.eval().requires_grad_(False)
        self.history_ = res.history
        self.train_time_ = res.train_time
        self.n_steps_ = res.n_steps
        if n_train < len(X):  # (validation=0: no held-out samples, no report)
            self._assess(X[n_train:], stat, 0.01, homogeneous)
        return self

    # ------------------------------------------------------------------ score
    def score(self, x, batch_size: int = 1024) -> np.ndarray:
        """:math:`\\nabla \\log p` at ``x`` (data units): the trained force.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        batch_size : int
            States per network evaluation.

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        xs, single = self._standardised(x)
        out = self._score_std(xs, batch_size) / self.std_
        return out[0] if single else out

    def _score_std(self, xs: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        return self._batched(self.force_, xs, batch_size)

    def velocity(self, x, t: float, batch_size: int = 1024) -> np.ndarray:
        """The learned velocity predictor :math:`V_\\phi(x, t)` (standardised units).

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)``
            Positions in data units.
        t : float
            Time in standardised units.

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        def vel(xt: torch.Tensor) -> torch.Tensor:
            tt = torch.full((len(xt),), float(t), dtype=torch.float32, device=self.device_)
            return self.velocity_(xt, tt)

        xs, single = self._standardised(x)
        out = self._batched(vel, xs, batch_size)
        return out[0] if single else out

