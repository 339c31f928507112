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
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gfdt.scores._torch_common import (
    TrainingRecord,
    check_max_time,
    check_network,
    check_positive_ints,
    ema_update,
    is_homogeneous,
    load_torch,
    resolve_device,
    save_torch,
    seeded,
    standardise,
    torch_threads,
    warmup_lr,
)
from gfdt.scores.base import ScoreEstimator, as_samples, register_score
from gfdt.scores.hsm import _gaussian_statistic, _PlainMLP
from gfdt.scores.networks import default_network

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


# ------------------------------------------------------------------ the process
def hold_coefficients(r: float = math.sqrt(3)) -> tuple[float, float, float]:
    """Critically damped coefficients ``(w, g, xi)`` with triple eigenvalue ``-r``.

    :math:`w = r/\\sqrt 3`, :math:`g = r\\sqrt{8/3}`, :math:`\\xi = 3r` make the
    characteristic polynomial :math:`\\lambda^3 + \\xi\\lambda^2 + (w^2 + g^2)\\lambda +
    \\xi w^2 = (\\lambda + r)^3`.
    """
    if not (r > 0 and math.isfinite(r)):
        raise ValueError(f"r must be a positive finite rate, got {r}")
    return r / math.sqrt(3), r * math.sqrt(8 / 3), 3 * r


def drift_matrix(r: float = math.sqrt(3)) -> np.ndarray:
    """The 3 x 3 matrix :math:`A` of the forward SDE (per coordinate, order x, v, a)."""
    w, g, xi = hold_coefficients(r)
    return np.array([[0.0, w, 0.0], [-w, 0.0, g], [0.0, -g, -xi]])


def propagator(t, *, beta: float = 1.0, r: float = math.sqrt(3)) -> np.ndarray:
    """:math:`E_t = e^{\\beta t A}`, shape ``(*t.shape, 3, 3)``.

    Critical damping makes :math:`N = A + rI` nilpotent (:math:`N^3 = 0`, Cayley-Hamilton
    with the characteristic polynomial :math:`(\\lambda + r)^3`), so
    :math:`e^{\\tau A} = e^{-r\\tau}(I + \\tau N + \\tau^2 N^2 / 2)` exactly.
    """
    t = np.asarray(t, dtype=float)
    if np.any(t < 0):
        raise ValueError("t must be >= 0")
    if not beta > 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    N = drift_matrix(r) + r * np.eye(3)
    tau = beta * t[..., None, None]
    return np.exp(-r * tau) * (np.eye(3) + tau * N + 0.5 * tau**2 * (N @ N))


def mean_cov(t, *, beta: float = 1.0, r: float = math.sqrt(3), s_v: float = 1.0,
             s_a: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form conditional mean map and covariance of the HOLD forward process.

    Given :math:`x_0`, with :math:`v_0 \\sim N(0, s_v^2)`, :math:`a_0 \\sim N(0, s_a^2)`:
    :math:`E[u_t] = m_t x_0`, :math:`\\mathrm{Cov}[u_t] = I + E_t(\\Sigma_0 - I)E_t^T`.

    Parameters
    ----------
    t : float or array_like
        Times (>= 0).
    beta, r : float
        Time scale and critical-damping rate.
    s_v, s_a : float
        Initial standard deviations of the auxiliary variables.

    Returns
    -------
    m : numpy.ndarray, shape ``(*t.shape, 3)``
        :math:`m_t = E_t e_x`.
    cov : numpy.ndarray, shape ``(*t.shape, 3, 3)``
        :math:`\\Sigma_t`.
    """
    E = propagator(t, beta=beta, r=r)
    S0 = np.diag([0.0, s_v**2, s_a**2]) - np.eye(3)
    cov = np.eye(3) + E @ S0 @ np.swapaxes(E, -1, -2)
    return E[..., :, 0], cov


def effective_noise(t, *, beta: float = 1.0, r: float = math.sqrt(3)) -> np.ndarray:
    """:math:`\\sigma_{\\rm eff}(t) = \\sqrt{(1 - |m_t|^2)/|m_t|^2}` (units of the data)."""
    m, _ = mean_cov(t, beta=beta, r=r)
    n2 = np.sum(m**2, axis=-1)
    return np.sqrt(np.maximum(1 - n2, 0) / n2)


def _coefs_torch(t: torch.Tensor, beta: float, r: float) -> dict[str, torch.Tensor]:
    """Per-time quantities (float64) for a batch of times ``t`` (s_v = s_a = 1)."""
    E = torch.as_tensor(propagator(t.detach().cpu().numpy(), beta=beta, r=r),
                        dtype=torch.float64, device=t.device)
    m = E[:, :, 0]
    n2 = (m**2).sum(1)
    one_m = torch.clamp(1 - n2, min=1e-300)
    # L[a, a]^2 = 1 / (Sigma^{-1})_aa, Sigma^{-1} = I + m m^T / (1 - |m|^2)
    laa = torch.rsqrt(1 + m[:, 2] ** 2 / one_m)
    c = laa * m[:, 2] / n2  # eps_a per unit of smoothed-data-score correction
    cb = c / torch.sqrt(1 + c**2)  # bounded as t grows (|m| -> 0)
    return {"m": m, "n2": n2, "one_m": one_m, "laa": laa, "sig": torch.sqrt(one_m / n2),
            "c": cb, "gain": 1 / (n2 * torch.sqrt(1 + c**2))}


def data_score_from_block(s_a: Callable, x, t: float, *, beta: float = 1.0,
                          r: float = math.sqrt(3), n_draws: int = 8,
                          seed: int = 0) -> np.ndarray:
    """Smoothed data score from an :math:`a`-block score (see the module notes).

    :math:`\\nabla\\log(p_0 * N_{\\sigma_{\\rm eff}(t)})(x) = |m|^2 (s_a + u_a)/m_a - m\\cdot u`
    averaged over ``n_draws`` points :math:`u` of the fibre :math:`m\\cdot u = |m|^2 x`.

    Parameters
    ----------
    s_a : callable
        ``s_a(u, t)`` with ``u`` of shape ``(batch, 3, *state)`` (channels x, v, a)
        returning :math:`\\nabla_a \\log p_t(u)`, shape ``(batch, *state)``.
    x : array_like, shape ``(batch, *state)``
        Points (units of the process, i.e. standardised data).
    t : float
        Time (> 0).
    beta, r : float
        Process parameters.
    n_draws : int
        Fibre points per ``x`` (the first is :math:`u = m x`).
    seed : int
        Seed of the fibre draws.

    Returns
    -------
    numpy.ndarray, shape of ``x``
    """
    x = np.asarray(x, dtype=float)
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise ValueError(f"n_draws must be a positive int, got {n_draws!r}")
    m, _ = mean_cov(float(t), beta=beta, r=r)
    n2 = float(m @ m)
    rng = np.random.default_rng(seed)
    out = np.zeros_like(x)
    for k in range(n_draws):
        zeta = np.zeros((len(x), 3, *x.shape[1:])) if k == 0 else \
            rng.standard_normal((len(x), 3, *x.shape[1:]))
        proj = np.tensordot(m, zeta, axes=([0], [1]))  # m . zeta, shape of x
        u = m.reshape(1, 3, *([1] * (x.ndim - 1))) * (x - proj / n2)[:, None] + zeta
        sa = np.asarray(s_a(u, float(t)), dtype=float)
        y = np.tensordot(m, u, axes=([0], [1]))
        out += n2 * (sa + u[:, 2]) / m[2] - y
    return out / n_draws


# ------------------------------------------------------------------ networks
class _GaussianBlock(nn.Module):
    """Exact :math:`\\varphi_t` of the Gaussian fit :math:`N(0, C)` (standardised units).

    Per eigen-/Fourier mode of variance :math:`\\lambda`:
    :math:`\\varphi = \\gamma y`, :math:`\\gamma = (\\lambda - 1)/(1 + (\\lambda - 1)|m|^2)`.
    """

    def __init__(self, stat: np.ndarray, homogeneous: bool) -> None:
        super().__init__()
        self.homogeneous = homogeneous
        if homogeneous:
            self.register_buffer("lam", torch.tensor(stat, dtype=torch.float64))
        else:
            lam, vec = np.linalg.eigh(stat)
            self.register_buffer("lam", torch.tensor(np.maximum(lam, 0), dtype=torch.float64))
            self.register_buffer("vec", torch.tensor(vec, dtype=torch.float64))

    def phi(self, y: torch.Tensor, n2: torch.Tensor) -> torch.Tensor:
        """:math:`\\varphi(y)` for ``y`` of shape ``(batch, *state)`` and ``|m|^2`` (batch,)."""
        b = len(y)
        if self.homogeneous:
            dims = tuple(range(1, y.ndim))
            n2r = n2.reshape(b, *([1] * (y.ndim - 1)))
            gam = (self.lam - 1) / (1 + (self.lam - 1) * n2r)
            yh = torch.fft.rfftn(y, dim=dims)
            return torch.fft.irfftn(yh * gam, s=y.shape[1:], dim=dims)
        yf = y.reshape(b, -1) @ self.vec
        gam = (self.lam - 1) / (1 + (self.lam - 1) * n2[:, None])
        return ((yf * gam) @ self.vec.T).reshape(y.shape)


class _AugmentedMLP(nn.Module):
    """``net(u, log sigma_eff)`` on the whole augmented state (vectors)."""

    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.mlp = _PlainMLP(3 * d + 1, d, hidden, depth)

    def forward(self, u: torch.Tensor, log_sig: torch.Tensor) -> torch.Tensor:
        h = torch.cat([u.reshape(len(u), -1), log_sig[:, None] / 5], dim=1)
        return self.mlp(h).reshape(u.shape[0], *u.shape[2:])


# ------------------------------------------------------------------ estimator
@register_score("hold")
class HOLDScoreModel(ScoreEstimator):
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
    n_iter : int
        Optimisation steps.
    batch_size : int
    lr : float
        Adam learning rate (linear warm-up over ``warmup`` steps).
    warmup : int
    ema : float
        EMA decay of the weights (the EMA gives the score).
    grad_clip : float
    max_time : float, optional
        Wall-clock budget in seconds.
    device : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    seed : int
    n_threads : int, optional
        torch CPU threads during training.
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    network_ : torch.nn.Module
        EMA weights.
    gauss_ : torch.nn.Module or None
        Gaussian part.
    mean_, std_ : numpy.ndarray
        Standardisation.
    sigma_eff_ : float
        :math:`\\sigma_{\\rm eff}(t_{\\min})` in standardised units.
    history_ : dict
        ``step`` and ``loss`` lists.
    train_time_ : float
    n_steps_ : int
    """

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
        n_iter: int = 3000,
        batch_size: int = 256,
        lr: float = 2e-3,
        warmup: int = 100,
        ema: float = 0.995,
        grad_clip: float = 1.0,
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
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.lr = lr
        self.warmup = warmup
        self.ema = ema
        self.grad_clip = grad_clip
        self.max_time = max_time
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.progress = progress

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_positive_ints(self, ("hidden", "depth", "n_iter", "batch_size", "n_draws"))
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, (int, np.integer)) \
                or self.warmup < 0:
            raise ValueError(f"warmup must be an int >= 0, got {self.warmup!r}")
        if self.inputs not in ("projected", "augmented"):
            raise ValueError(f"inputs must be 'projected' or 'augmented', got {self.inputs!r}")
        if not (0 < self.t_min < self.t_max) or not math.isfinite(self.t_max):
            raise ValueError(f"need 0 < t_min < t_max < inf, got t_min={self.t_min}, "
                             f"t_max={self.t_max}")
        if not (self.beta > 0 and self.r > 0):
            raise ValueError(f"beta and r must be > 0, got beta={self.beta}, r={self.r}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (0 <= self.ema < 1):
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        check_max_time(self.max_time)
        check_network(self.network)

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
            return _AugmentedMLP(state_shape[0], self.hidden, self.depth)
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
            out = out + self.gauss_.phi(y, co["n2"])
        return out

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> HOLDScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)``.

        Returns
        -------
        HOLDScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        state_shape = X.shape[1:]
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        mean, std, Xs = standardise(X, homogeneous)
        device = resolve_device(self.device)
        with seeded(self.seed):  # the caller's global RNG is untouched
            net = self._build(state_shape).to(device)
        self.gauss_ = (_GaussianBlock(_gaussian_statistic(Xs, homogeneous), homogeneous)
                       .to(device) if self.residual else None)
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.mean_, self.std_ = mean, std
        self.device_ = device
        self.sigma_eff_ = float(effective_noise(self.t_min, beta=self.beta, r=self.r))
        with torch_threads(self.n_threads):
            self._train(net, Xs, device)
        return self

    def _train(self, net: nn.Module, Xs: np.ndarray, device: torch.device) -> None:
        ema_net = copy.deepcopy(net).requires_grad_(False)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        Xt = torch.tensor(Xs, dtype=torch.float64, device=device)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator(device="cpu").manual_seed(self.seed + 1)
        lo, hi = math.log(self.t_min), math.log(self.t_max)
        rec = TrainingRecord("HOLD", self.n_iter, ("loss",), "loss", self.max_time,
                             self.progress)
        try:
            while rec.step < self.n_iter:
                warmup_lr(opt, self.lr, rec.step, self.warmup)
                idx = torch.as_tensor(rng.integers(0, len(Xt), self.batch_size), device=device)
                x0 = Xt[idx]
                t = torch.exp(lo + (hi - lo) * torch.rand(len(x0), generator=gen,
                                                          dtype=torch.float64)).to(device)
                eps = torch.randn((len(x0), 3, *x0.shape[1:]), generator=gen,
                                  dtype=torch.float64).to(device)
                co = _coefs_torch(t, self.beta, self.r)
                u = _forward_sample(x0, eps, co)
                # residual target: eps_a - eps_gauss = -c * net  (eps_hat = eps_g - c net)
                shape = (-1,) + (1,) * (x0.ndim - 1)
                c = co["c"].reshape(shape)
                eps_g = self._eps_gauss(u, co)
                target = ((eps_g - eps[:, 2]) / c).to(torch.float32)
                w2 = (c**2).to(torch.float32)
                out = self._net_out(net, u, co)
                loss = (w2 * (out - target) ** 2).reshape(len(x0), -1).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                opt.step()
                ema_update(ema_net, net, self.ema, rec.step)
                if rec.update(loss=float(loss.detach())):
                    break
        finally:
            rec.close()
        self.network_ = ema_net.eval()
        self.history_ = rec.history
        self.train_time_ = rec.train_time
        self.n_steps_ = rec.step
        rec.log_summary()

    def _eps_gauss(self, u: torch.Tensor, co: dict) -> torch.Tensor:
        """:math:`\\epsilon_a` predictor of the Gaussian part (zero network), float64."""
        shape = (-1,) + (1,) * (u.ndim - 2)
        phi = torch.zeros_like(u[:, 0])
        if self.gauss_ is not None:
            y = _project(u, co) * co["n2"].reshape(shape)
            phi = self.gauss_.phi(y, co["n2"])
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
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        tt = self.t_min if t is None else float(t)
        xs = (arr - self.mean_) / self.std_
        draws = 1 if self.inputs == "projected" else self.n_draws
        out = data_score_from_block(
            lambda u, s: self.augmented_score(u, s, batch_size), xs, tt, beta=self.beta,
            r=self.r, n_draws=draws, seed=self.seed)
        out = out / self.std_
        return out[0] if single else out

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model (parameters, networks, standardisation) to ``path``."""
        save_torch(self, path, ("network_", "gauss_"))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> HOLDScoreModel:
        """Read a model written by :meth:`save` onto ``device``."""
        return load_torch(cls, path, device, ("network_", "gauss_"),
                          eval_modules=("network_",))


def _project(u: torch.Tensor, co: dict) -> torch.Tensor:
    """:math:`z = m\\cdot u / |m|^2` per coordinate, ``u`` of shape ``(batch, 3, *state)``."""
    shape = (-1, 3) + (1,) * (u.ndim - 2)
    y = (co["m"].reshape(shape) * u).sum(1)
    return y / co["n2"].reshape((-1,) + (1,) * (u.ndim - 2))


def _forward_sample(x0: torch.Tensor, eps: torch.Tensor, co: dict) -> torch.Tensor:
    """:math:`u_t = m x_0 + L \\epsilon`, :math:`L = \\mathrm{chol}(I - m m^T)` (float64)."""
    m = co["m"]
    eye = torch.eye(3, dtype=m.dtype, device=m.device)
    S = eye - m[:, :, None] * m[:, None, :]
    L = torch.linalg.cholesky(S)
    shape = (-1, 3, 3) + (1,) * (x0.ndim - 1)
    Le = (L.reshape(shape) * eps[:, None]).sum(2)
    return m.reshape((-1, 3) + (1,) * (x0.ndim - 1)) * x0[:, None] + Le
