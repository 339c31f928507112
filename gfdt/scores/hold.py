r"""High-order Langevin dynamics (HOLD; Shi and Liu, arXiv:2404.12814) as a score estimator.

Forward process
---------------
Each coordinate of the data gets two auxiliary variables, :math:`u = (x, v, a)`, driven
by the third-order Langevin SDE ("one Ornstein-Uhlenbeck process and two Hamiltonians")

.. math:: du = \beta A u\, dt + \sqrt{2 \xi \beta}\, e_a\, dW, \qquad
          A = \begin{pmatrix} 0 & w & 0 \\ -w & 0 & g \\ 0 & -g & -\xi \end{pmatrix},

critically damped (triple eigenvalue :math:`-r`): :math:`w = r/\sqrt 3`,
:math:`g = r\sqrt{8/3}`, :math:`\xi = 3r`. Since :math:`A + A^T = -2\xi e_a e_a^T`, the
stationary law is :math:`N(0, I)`. With :math:`E_t = e^{\beta t A}` and an initial
:math:`u_0 = (x_0, v_0, a_0)`, :math:`v_0 \sim N(0, s_v^2)`, :math:`a_0 \sim N(0, s_a^2)`:

.. math:: E[u_t \mid x_0] = m_t x_0, \quad m_t = E_t e_x, \qquad
          \Sigma_t = I + E_t (\Sigma_0 - I) E_t^T, \quad \Sigma_0 = \mathrm{diag}(0, s_v^2, s_a^2)

(:func:`mean_cov`). gfdt uses :math:`s_v = s_a = 1`, where :math:`\Sigma_t = I - m_t m_t^T`.

Structure of the score (derived here)
-------------------------------------
With :math:`\Sigma_t = I - m m^T` the transition density factorises as
:math:`N(u; m x_0, I - m m^T) \propto N(u; 0, I)\, \exp(f(m\cdot u, x_0))`, so every
marginal is :math:`p_t(u) = N(u; 0, I)\, g_t(y)` with the scalar (per coordinate)
:math:`y = m \cdot u`, and

.. math:: \nabla_u \log p_t(u) = -u + m\, \varphi_t(y).

Only the :math:`a`-block is learned (block coordinate score matching: the noise enters
only :math:`a`): :math:`s_a = -u_a + m_a \varphi`. The statistic :math:`z = y / |m|^2`
is the data plus Gaussian noise, :math:`z = x_0 + \sigma_{\rm eff} \epsilon` with

.. math:: \sigma_{\rm eff}^2(t) = (1 - |m_t|^2) / |m_t|^2

(:func:`effective_noise`; :math:`\sim t^{5/2}` for small :math:`t`: the combination
:math:`m\cdot u` cancels the velocity noise that :math:`x_t` carries), and the law of
:math:`y` is :math:`N(0, |m|^2)\, g_t`. Hence the *data score smoothed at*
:math:`\sigma_{\rm eff}` follows from the :math:`a`-block alone, exactly:

.. math:: \nabla \log (p_0 * N_{\sigma_{\rm eff}})(z) = |m|^2 \varphi - y
          = |m|^2\, \frac{s_a + u_a}{m_a} - m\cdot u ,

and the Tweedie denoiser of the augmented Gaussian kernel is
:math:`D(u, t) = E[x_0 \mid u_t = u] = y + (1 - |m|^2)\, \varphi`
(from :math:`\nabla \log p_t = \Sigma_t^{-1}(m D - u)`). The right-hand side is the same
on the whole fibre :math:`\{u : m\cdot u = |m|^2 z\}`; :meth:`HOLDScoreModel.score`
evaluates it at ``t_min`` on ``n_draws`` points of the fibre over :math:`x`,
:math:`u = m x + P_\perp \zeta`, :math:`\zeta \sim N(0, I)`,
:math:`P_\perp = I - m m^T/|m|^2` (the exact conditional law of :math:`u_t` given
:math:`y`), and averages. Dividing the network's error by :math:`m_a` costs what DSM's
division by :math:`\sigma` costs at the same :math:`\sigma_{\rm eff}`: HOLD's data score is
no better than DSM's at the matching effective noise. (The alternative of the seed
notes, the :math:`x`-block :math:`-u_x + m_x \varphi` averaged over
:math:`(v, a) \sim N(0, I)`, smooths :math:`\varphi` over :math:`m_v v + m_a a`, an extra
noise of order :math:`t`, much more than :math:`\sigma_{\rm eff} \sim t^{5/2}`.)

Model
-----
:math:`\hat\epsilon(u_t, t)` predicts :math:`\epsilon_a` in :math:`u_t = m_t x_0 +
L_t \epsilon`, :math:`L_t = \mathrm{chol}(\Sigma_t)`, loss
:math:`E\|\hat\epsilon - \epsilon_a\|^2`, :math:`s_a = -\hat\epsilon / L_t[a, a]`. It is
parametrised as the Gaussian fit of the data (exact :math:`s_a` of :math:`N(\mu, C)`,
per eigen- or Fourier mode) plus a scaled network,
:math:`\hat\epsilon = \hat\epsilon_{\rm Gauss} - \tilde c_t\, \mathrm{net}`,
:math:`\tilde c_t = c_t / \sqrt{1 + c_t^2}`, :math:`c_t = L_t[a,a]\, m_a / |m|^2`: at
small :math:`t` (:math:`c_t \approx \sigma_{\rm eff}`) the network's output is directly
the correction to the smoothed data score (like DSM's :math:`\sigma`-scaled output); at
large :math:`t` it is an :math:`\epsilon_a` correction of bounded size. The projected
network sees :math:`z / \sqrt{1 + \sigma_{\rm eff}^2} = y / |m|`, of unit scale at every
:math:`t`, and :math:`\log \sigma_{\rm eff}(t)`.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np
import torch
from torch import nn

from gfdt.scores._hold_process import (
    _coefs_torch,
    _forward_sample,
    _project,
    data_score_from_block,
    drift_matrix,
    effective_noise,
    hold_coefficients,
    mean_cov,
    propagator,
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
from gfdt.scores.networks import AugmentedMLP, GaussianModes, default_network
from gfdt.scores.quality import QualityMixin
from gfdt.scores.training import Trainer

__all__ = [
    "HOLDScoreModel",
    "data_score_from_block",
    "drift_matrix",
    "effective_noise",
    "hold_coefficients",
    "mean_cov",
    "propagator",
]

logger = logging.getLogger("gfdt")


# ------------------------------------------------------------------ model pieces
def _gaussian_phi(gauss: GaussianModes, y: torch.Tensor, n2: torch.Tensor) -> torch.Tensor:
    """Exact :math:`\\varphi_t(y)` of the Gaussian fit :math:`N(0, C)` (standardised units).

    Per eigen-/Fourier mode of variance :math:`\\lambda`: :math:`\\varphi = \\gamma y`,
    :math:`\\gamma = (\\lambda - 1)/(1 + (\\lambda - 1)|m|^2)`; ``y`` of shape
    ``(batch, *state)``, ``|m|^2`` of shape ``(batch,)``.
    """
    n2r = n2.reshape(len(y), *([1] * (y.ndim - 1))) if gauss.homogeneous else n2[:, None]
    return gauss.apply(y, lambda lam: (lam - 1) / (1 + (lam - 1) * n2r))


class _HOLDTask:
    """HOLD for the trainer: log-uniform times and the noise of the augmented state;
    the residual :math:`\\epsilon_a` loss."""

    def __init__(self, est: HOLDScoreModel, state_shape: tuple[int, ...]) -> None:
        self.est, self.state_shape = est, tuple(state_shape)
        self.lo, self.hi = math.log(est.t_min), math.log(est.t_max)

    def noise(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.exp(self.lo + (self.hi - self.lo) * torch.rand(n, generator=gen,
                                                                 dtype=torch.float64))
        return t, torch.randn((n, 3, *self.state_shape), generator=gen, dtype=torch.float64)

    def loss(self, net: nn.Module, x0: torch.Tensor, t: torch.Tensor,
             eps: torch.Tensor) -> torch.Tensor:
        est = self.est
        co = _coefs_torch(t, est.beta, est.r)
        u = _forward_sample(x0, eps, co)
        # residual target: eps_a - eps_gauss = -c * net  (eps_hat = eps_g - c net)
        c = co["c"].reshape((-1,) + (1,) * (x0.ndim - 1))
        target = ((est._eps_gauss(u, co) - eps[:, 2]) / c).to(torch.float32)
        out = est._net_out(net, u, co)
        return ((c**2).to(torch.float32) * (out - target) ** 2).reshape(len(x0), -1).mean()


# ------------------------------------------------------------------ estimator
@register_score("hold")
class HOLDScoreModel(QualityMixin, TorchScoreEstimator, ScoreEstimator):
    """Score of stationary data by HOLD block coordinate score matching.

    See the module notes for the process, the :math:`a`-block objective, the
    parametrisation and the exact recovery of the data score, which is the score of
    the data smoothed at :math:`\\sigma_{\\rm eff}(t_{\\min})` (with the defaults
    ``t_min = 0.1``: :math:`\\sigma_{\\rm eff} = 0.0056` standard deviations, like
    DSM's ``sigma_min = 0.01``).

    Parameters
    ----------
    network : {"auto", "mlp", "cnn", "unet"} or torch.nn.Module
        The correction network. With ``inputs="projected"`` it maps
        ``(z, log sigma_eff)`` to the shape of ``z`` (``"auto"``: the noise-conditional
        :class:`~gfdt.scores.networks.MLP` for vectors,
        :class:`~gfdt.scores.networks.PeriodicCNN` for 2-D fields). With
        ``inputs="augmented"`` (vectors only) an MLP of the whole state ``u``.
    inputs : {"projected", "augmented"}
        ``"projected"``: the network sees :math:`z = m\\cdot u / |m|^2`, on which the
        exact :math:`\\epsilon_a`-predictor depends alone (module notes);
        ``"augmented"``: it sees :math:`u = (x, v, a)` and must learn that structure.
    hidden, depth : int
        Sizes of the augmented MLP.
    beta, r : float
        Forward process time scale and critical-damping rate (defaults: :math:`w = 1`).
    t_min : float
        Time at which the data score is taken.
    t_max : float
        Largest training time; training times are log-uniform in ``[t_min, t_max]``.
        For sampling (:func:`gfdt.sampling.hold_lie_trotter`) train up to the
        sampler's ``T``.
    n_draws : int
        Fibre points averaged by :meth:`score` (``inputs="augmented"``; the projected
        network gives the same value on every fibre point).
    residual : bool
        Gaussian fit plus network (else the network alone, zero-initialised output
        layer off).
    homogeneous : bool, optional
        Periodic translation-invariant fields. Default: True for 2-D states.
    max_steps : int
        Optimisation steps at most.
    batch_size : int
    lr : float
        Adam learning rate (linear warm-up over ``warmup`` steps).
    warmup : int
    ema : float
        EMA decay of the weights (the EMA gives the score).
    grad_clip : float
    validation : float
        Fraction of samples (the last ones: pass time-ordered data) held out for the
        validation loss (the same loss with fixed noise, recorded in ``history_``) and the
        quality report. The last EMA weights are kept: the :math:`\\epsilon_a` loss is
        dominated by large times and does not rank the small-time score (selecting the
        best validation step doubled the relative Fisher error on a 2-D mixture).
    eval_every : int
        Steps between validations (and checkpoints).
    checkpoint : path, optional
        File to checkpoint to; if it exists, :meth:`fit` resumes from it.
    max_time : float, optional
        Wall-clock budget in seconds.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    seed : int
    n_threads : int, optional
        torch CPU threads during training (default:
        :func:`~gfdt.scores._torch.default_threads`).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    network_ : torch.nn.Module
        The last EMA weights.
    gauss_ : torch.nn.Module or None
        Gaussian part.
    mean_, std_ : numpy.ndarray
        Standardisation.
    sigma_eff_ : float
        :math:`\\sigma_{\\rm eff}(t_{\\min})` in standardised units.
    history_ : dict
        ``step``, ``train_loss`` and ``val_loss`` lists.
    train_time_ : float
    n_steps_ : int
    quality_ : ScoreQuality
        Held-out quality report (see :meth:`summary`).

    Notes
    -----
    The standardisation and the Gaussian part use every sample (held-out ones too), so
    that the untrained model is exactly the Gaussian score of the data; the network
    trains on the training samples only.
    """

    _modules = ("network_", "gauss_")
    _eval_modules = ("network_",)

    def __init__(
        self,
        network: str | nn.Module = "auto",
        inputs: str = "projected",
        hidden: int = 128,
        depth: int = 3,
        beta: float = 1.0,
        r: float = math.sqrt(3),
        t_min: float = 0.1,
        t_max: float = 0.5,
        n_draws: int = 8,
        residual: bool = True,
        homogeneous: bool | None = None,
        max_steps: int = 3000,
        batch_size: int = 256,
        lr: float = 2e-3,
        warmup: int = 100,
        ema: float = 0.995,
        grad_clip: float = 1.0,
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
        self.inputs = inputs
        self.hidden = hidden
        self.depth = depth
        self.beta = beta
        self.r = r
        self.t_min = t_min
        self.t_max = t_max
        self.n_draws = n_draws
        self.residual = residual
        self.homogeneous = homogeneous
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.lr = lr
        self.warmup = warmup
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
        for name in ("hidden", "depth", "n_draws"):
            check_number(getattr(self, name), name, low=1, integer=True)
        if self.inputs not in ("projected", "augmented"):
            raise ValueError(f"inputs must be 'projected' or 'augmented', got {self.inputs!r}")
        if not (0 < self.t_min < self.t_max) or not math.isfinite(self.t_max):
            raise ValueError(f"need 0 < t_min < t_max < inf, got t_min={self.t_min}, "
                             f"t_max={self.t_max}")
        if not (self.beta > 0 and self.r > 0):
            raise ValueError(f"beta and r must be > 0, got beta={self.beta}, r={self.r}")
        if not isinstance(self.network, (str, nn.Module)):
            raise TypeError(f"network must be a name or a torch Module, got "
                            f"{type(self.network).__name__}")

    def _build(self, state_shape: tuple[int, ...]) -> nn.Module:
        if isinstance(self.network, nn.Module):
            return copy.deepcopy(self.network)
        if self.inputs == "augmented":
            if len(state_shape) != 1:
                raise ValueError("inputs='augmented' supports vector states (n_samples, d) "
                                 f"only, got state shape {state_shape}")
            if self.network not in ("auto", "mlp"):
                raise ValueError(f"inputs='augmented' uses an MLP; network="
                                 f"{self.network!r} is not available")
            return AugmentedMLP(state_shape[0], self.hidden, self.depth)
        net = default_network(state_shape, self.network)
        if self.residual and hasattr(net, "out"):
            nn.init.zeros_(net.out.weight)
            nn.init.zeros_(net.out.bias)
        return net

    # ------------------------------------------------------------- the model
    def _net_out(self, net: nn.Module, u: torch.Tensor, co: dict) -> torch.Tensor:
        """The network's correction to the smoothed data score, float32 inputs."""
        log_sig = torch.log(co["sig"]).to(torch.float32)
        if self.inputs == "augmented":
            return net(u.to(torch.float32), log_sig)
        shape = (-1,) + (1,) * (u.ndim - 2)
        z = _project(u, co) * torch.sqrt(co["n2"]).reshape(shape)  # z / sqrt(1 + sig^2)
        return net(z.to(torch.float32), log_sig)

    def _phi(self, net: nn.Module, u: torch.Tensor, co: dict) -> torch.Tensor:
        """:math:`\\varphi_t(u)` (float64): Gaussian part plus the scaled network."""
        shape = (-1,) + (1,) * (u.ndim - 2)
        out = self._net_out(net, u, co).to(torch.float64) * co["gain"].reshape(shape)
        if self.gauss_ is not None:
            y = _project(u, co) * co["n2"].reshape(shape)
            out = out + _gaussian_phi(self.gauss_, y, co["n2"])
        return out

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> HOLDScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)`` (time-ordered: the last
        ``validation`` fraction is held out).

        Returns
        -------
        HOLDScoreModel
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
            warmup=self.warmup, ema=self.ema, grad_clip=self.grad_clip,
            eval_every=self.eval_every, max_time=self.max_time, checkpoint=self.checkpoint,
            config=training_config(self, state_shape, len(X)), progress=self.progress,
            name="HOLD", device=resolve_device(self.device), select_best=False)
        device = trainer.device
        with seeded(stream_seed(self.seed, 0)):  # the caller's global RNG is untouched
            net = self._build(state_shape).to(device)
        self.gauss_ = (GaussianModes(stat, homogeneous, dtype=torch.float64).to(device)
                       if self.residual else None)
        self.state_shape_ = state_shape
        self.mean_, self.std_ = mean, std
        self.device_ = device
        self.sigma_eff_ = float(effective_noise(self.t_min, beta=self.beta, r=self.r))
        Xt = torch.tensor(Xs[:n_train], dtype=torch.float64, device=device)
        Xv = torch.tensor(Xs[n_train:][:512], dtype=torch.float64, device=device)
        with torch_threads(self.n_threads):
            res = trainer.fit(_HOLDTask(self, state_shape), net,
                              lambda idx: Xt[torch.as_tensor(idx, device=device)], n_train,
                              Xv if len(Xv) else None, stats=(mean, std, stat),
                              blob=trainer.resume_blob())
        self.network_ = res.net
        self.history_ = res.history
        self.train_time_ = res.train_time
        self.n_steps_ = res.n_steps
        if n_train < len(X):  # (validation=0: no held-out samples, no report)
            self._assess(X[n_train:], stat, self.sigma_eff_, homogeneous)
        return self

    def _eps_gauss(self, u: torch.Tensor, co: dict) -> torch.Tensor:
        """:math:`\\epsilon_a` predictor of the Gaussian part (zero network), float64."""
        shape = (-1,) + (1,) * (u.ndim - 2)
        phi = torch.zeros_like(u[:, 0])
        if self.gauss_ is not None:
            y = _project(u, co) * co["n2"].reshape(shape)
            phi = _gaussian_phi(self.gauss_, y, co["n2"])
        m_a = co["m"][:, 2].reshape(shape)
        return co["laa"].reshape(shape) * (u[:, 2] - m_a * phi)

    # ------------------------------------------------------------------ scores
    def augmented_score(self, u, t: float, batch_size: int = 1024) -> np.ndarray:
        """The learned :math:`a`-block score :math:`s_a(u, t)` (standardised units).

        Parameters
        ----------
        u : array_like, shape ``(batch, 3, *state)``
            Augmented states (channels x, v, a) in standardised units.
        t : float
            Time.

        Returns
        -------
        numpy.ndarray, shape ``(batch, *state)``
        """
        self._check_fitted()
        u = np.asarray(u, dtype=float)
        if u.shape[1:] != (3, *self.state_shape_):
            dims = ", ".join(map(str, self.state_shape_))
            raise ValueError(f"u must have shape (batch, 3, {dims}), got {u.shape}")
        out = np.empty((len(u), *self.state_shape_))
        with torch.no_grad():
            for a in range(0, len(u), batch_size):
                ut = torch.tensor(u[a:a + batch_size], dtype=torch.float64, device=self.device_)
                tt = torch.full((len(ut),), float(t), dtype=torch.float64, device=self.device_)
                co = _coefs_torch(tt, self.beta, self.r)
                phi = self._phi(self.network_, ut, co)
                shape = (-1,) + (1,) * (ut.ndim - 2)
                out[a:a + batch_size] = (-ut[:, 2] + co["m"][:, 2].reshape(shape) * phi
                                         ).cpu().numpy()
        return out

    def denoiser(self, u, t: float) -> np.ndarray:
        """Tweedie denoiser :math:`D(u, t) = E[x_0 \\mid u_t = u] = y + (1 - |m|^2)\\varphi`.

        Parameters
        ----------
        u : array_like, shape ``(batch, 3, *state)``
            Standardised units.
        t : float

        Returns
        -------
        numpy.ndarray, shape ``(batch, *state)``, standardised units
        """
        u = np.asarray(u, dtype=float)
        s_a = self.augmented_score(u, t)
        m, _ = mean_cov(float(t), beta=self.beta, r=self.r)
        y = np.tensordot(m, u, axes=([0], [1]))
        phi = (s_a + u[:, 2]) / m[2]
        return y + (1 - m @ m) * phi

    def score(self, x, t: float | None = None, batch_size: int = 1024) -> np.ndarray:
        """:math:`\\nabla \\log p` at ``x`` (data units): the data score smoothed at
        :math:`\\sigma_{\\rm eff}(t)` recovered from the :math:`a`-block.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        t : float, optional
            Time (default ``t_min``).
        batch_size : int

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        xs, single = self._standardised(x)
        out = self._score_std(xs, t, batch_size) / self.std_
        return out[0] if single else out

    def _score_std(self, xs: np.ndarray, t: float | None = None,
                   batch_size: int = 1024) -> np.ndarray:
        tt = self.t_min if t is None else float(t)
        draws = 1 if self.inputs == "projected" else self.n_draws
        return data_score_from_block(
            lambda u, s: self.augmented_score(u, s, batch_size), xs, tt, beta=self.beta,
            r=self.r, n_draws=draws, seed=self.seed)
