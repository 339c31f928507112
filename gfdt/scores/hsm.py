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
integrator, Monte Carlo and closed-form (Gaussian data, linear force) HSDs, and
:func:`gradient_snr`, the gradient signal-to-noise ratio of HSM and DSM in the
one-dimensional Gaussian test of the paper.
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
)
from gfdt.scores.base import ScoreEstimator, as_samples, register_score
from gfdt.scores.networks import PeriodicCNN

__all__ = [
    "HamiltonianScoreModel",
    "gaussian_hamiltonian_discrepancy",
    "gradient_snr",
    "hamiltonian_score_discrepancy",
    "leapfrog",
]

logger = logging.getLogger("gfdt")


# ------------------------------------------------------------------ integrators
def leapfrog(force: Callable, x, v, t, n_steps: int):
    """Leapfrog (velocity Verlet) integration of :math:`\\dot x = v,\\ \\dot v = F(x)`.

    Works on numpy arrays and on torch tensors alike (differentiable through ``force``).

    Parameters
    ----------
    force : callable
        Maps positions ``(batch, *state)`` to forces of the same shape.
    x, v : array or tensor, shape ``(batch, *state)``
        Initial positions and velocities.
    t : float or array of shape ``(batch,)``
        Integration time of each trajectory (step ``t / n_steps``).
    n_steps : int
        Leapfrog steps (``n_steps + 1`` force evaluations).

    Returns
    -------
    (x_t, v_t)
    """
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps must be a positive int, got {n_steps!r}")
    shape = (-1,) + (1,) * (x.ndim - 1)
    if isinstance(x, torch.Tensor):
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        h = (t.reshape(shape) if t.ndim else t) / n_steps
    else:
        t = np.asarray(t, dtype=float)
        h = (t.reshape(shape) if t.ndim else t) / n_steps
    f = force(x)
    for _ in range(n_steps):
        v = v + 0.5 * h * f
        x = x + h * v
        f = force(x)
        v = v + 0.5 * h * f
    return x, v


def _leapfrog_matrix(B: np.ndarray, t: float, n_steps: int) -> np.ndarray:
    """The linear map ``(x0, v0) -> (x_t, v_t)`` of leapfrog for the force ``-B x``."""
    d = B.shape[0]
    h = t / n_steps
    eye = np.eye(d)
    # v1/2 = v - h/2 B x; x' = x + h v1/2; v' = v1/2 - h/2 B x'
    kick = np.block([[eye, np.zeros((d, d))], [-0.5 * h * B, eye]])
    drift = np.block([[eye, h * eye], [np.zeros((d, d)), eye]])
    step = kick @ drift @ kick
    return np.linalg.matrix_power(step, n_steps)


def gaussian_hamiltonian_discrepancy(B, C, t: float, n_steps: int = 6):
    """Closed-form HSD for Gaussian data :math:`N(0, C)` and a linear force :math:`-Bx`.

    The leapfrog map is linear, so :math:`(x_t, v_t)` is jointly Gaussian and the
    velocity predictor is linear, :math:`V^*(x) = K x` with
    :math:`K = C_{vx} C_{xx}^{-1}`; then :math:`\\mathrm{HSD}_t = \\mathrm{tr}(K C_{xv})`.

    Parameters
    ----------
    B : array_like, shape (d, d)
        Force matrix (the score of :math:`N(0, C)` is :math:`B = C^{-1}`).
    C : array_like, shape (d, d)
        Data covariance.
    t : float
        Time (> 0).
    n_steps : int
        Leapfrog steps (the result is that of the integrator, not of the exact flow).

    Returns
    -------
    hsd : float
        :math:`E\\|V^*(x_t)\\|^2`.
    K : numpy.ndarray, shape (d, d)
        The velocity predictor's matrix.
    """
    B = np.atleast_2d(np.asarray(B, dtype=float))
    C = np.atleast_2d(np.asarray(C, dtype=float))
    d = C.shape[0]
    if B.shape != (d, d) or C.shape != (d, d):
        raise ValueError(f"B and C must be (d, d) matrices of the same size, got {B.shape} "
                         f"and {C.shape}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    M = _leapfrog_matrix(B, float(t), int(n_steps))
    S0 = np.zeros((2 * d, 2 * d))
    S0[:d, :d] = C
    S0[d:, d:] = np.eye(d)
    S = M @ S0 @ M.T
    cxx, cvx = S[:d, :d], S[d:, :d]
    K = np.linalg.solve(cxx, cvx.T).T
    return float(np.trace(K @ cvx.T)), K


def hamiltonian_score_discrepancy(force: Callable, X, t: float, *, n_steps: int = 6,
                                  velocity: str | Callable = "linear",
                                  seed: int = 0) -> float:
    """Monte Carlo Hamiltonian score discrepancy :math:`\\mathrm{HSD}_t` of a force field.

    Trajectories start at the samples ``X`` with velocities :math:`N(0, I)` and run
    ``n_steps`` leapfrog steps to time ``t``.

    Parameters
    ----------
    force : callable
        Maps positions ``(batch, d)`` (numpy) to forces of the same shape.
    X : array_like, shape ``(n_samples, d)``
        Samples of the data distribution.
    t : float
        Time (> 0).
    n_steps : int
        Leapfrog steps.
    velocity : "linear" or callable
        ``"linear"``: the velocity predictor is the least-squares regression of
        :math:`v_t` on :math:`(1, x_t)` (exact when :math:`(x_t, v_t)` is jointly
        Gaussian), cross-fitted on two halves, and the estimate is the held-out
        objective :math:`E[2 V\\cdot v_t - \\|V\\|^2]` (no overfitting bias).
        A callable ``V(x_t, t)`` returns the predictor; the estimate is then
        :math:`E\\|V(x_t, t)\\|^2`.
    seed : int
        Seed of the initial velocities.

    Returns
    -------
    float
        :math:`E\\|V^*(x_t, t)\\|^2` (summed over coordinates, averaged over samples).
    """
    X = as_samples(X)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_samples, d), got {X.shape}")
    if not t > 0:
        raise ValueError(f"t must be > 0, got {t}")
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal(X.shape)
    xt, vt = leapfrog(lambda x: np.asarray(force(x), dtype=float), X, v0, float(t), n_steps)
    if callable(velocity):
        V = np.asarray(velocity(xt, float(t)), dtype=float)
        return float(np.mean(np.sum(V**2, axis=1)))
    if velocity != "linear":
        raise ValueError(f"velocity must be 'linear' or a callable, got {velocity!r}")
    n = len(X)
    feats = np.concatenate([np.ones((n, 1)), xt], axis=1)
    half = n // 2
    folds = [(slice(0, half), slice(half, n)), (slice(half, n), slice(0, half))]
    vals = []
    for fit, ev in folds:
        coef, *_ = np.linalg.lstsq(feats[fit], vt[fit], rcond=None)
        V = feats[ev] @ coef
        vals.append(np.mean(np.sum(2 * V * vt[ev] - V**2, axis=1)))
    return float(np.mean(vals))


# ------------------------------------------------------------------ gradient SNR
def _quadratic_snr(Q: np.ndarray) -> float:
    """SNR of :math:`g = w^T Q w`, :math:`w \\sim N(0, I)`: mean tr Q, variance 2 tr Q^2."""
    Q = 0.5 * (Q + Q.T)
    return float(abs(np.trace(Q)) / np.sqrt(2 * np.trace(Q @ Q)))


def gradient_snr(method: str, scale: float, *, theta: float = 1.2, n_steps: int = 6,
                 n_samples: int | None = None, seed: int = 0) -> float:
    """Signal-to-noise ratio of one-sample parameter gradients, HSM or DSM (1-D test).

    Data :math:`p = N(0, 1)`; the model is :math:`-\\theta x` with a precision error
    (the exact score has :math:`\\theta = 1`): HSM's force :math:`F_\\theta(x) =
    -\\theta x`, DSM's noise-conditional score :math:`s_\\theta(\\tilde x) = -\\theta
    \\tilde x`. The ratio :math:`|E g| / \\mathrm{std}(g)` of the per-sample gradients
    :math:`g = \\partial_\\theta \\ell` measures how many samples a gradient step needs.

    * ``"hsm"``: :math:`\\ell = 2 V^*\\cdot v_t - |V^*|^2` at time ``scale`` (leapfrog,
      ``n_steps``), the velocity predictor frozen at its exact optimum
      :math:`V^*(x) = K x` (closed form, :func:`gaussian_hamiltonian_discrepancy`).
    * ``"dsm"``: :math:`\\ell = |s_\\theta(x + \\sigma z) + z / \\sigma|^2` at noise
      ``sigma = scale``.

    Both gradients are quadratic forms :math:`w^T Q w` of the standard normal inputs
    :math:`w = (x_0, v_0)` or :math:`(x, z)`, so the SNR is exact:
    :math:`\\mathrm{tr}\\, Q / \\sqrt{2\\, \\mathrm{tr}\\, Q^2}`. With ``n_samples``
    it is instead estimated by Monte Carlo with autograd (a cross-check).

    Parameters
    ----------
    method : {"hsm", "dsm"}
    scale : float
        HSM time ``t`` or DSM noise level ``sigma`` (> 0).
    theta : float
        Model precision (1.2: a 20 % error).
    n_steps : int
        Leapfrog steps (HSM).
    n_samples : int, optional
        Monte Carlo estimate from this many samples instead of the exact value.
    seed : int
        Seed of the Monte Carlo samples.

    Returns
    -------
    float
        :math:`|E g| / \\mathrm{std}(g)`.
    """
    if method not in ("hsm", "dsm"):
        raise ValueError(f"method must be 'hsm' or 'dsm', got {method!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    t = float(scale)
    if method == "hsm":
        _, K = gaussian_hamiltonian_discrepancy([[theta]], [[1.0]], t, n_steps)
        c = float(K[0, 0])
    if n_samples is None:
        if method == "dsm":
            e = np.array([1.0, t])  # x~ = x + sigma z = e . (x, z)
            ez = np.array([0.0, 1.0])
            Q = 2 * theta * np.outer(e, e) - (np.outer(ez, e) + np.outer(e, ez)) / t
            return _quadratic_snr(Q)
        # l = w^T M^T G M w with (x_t, v_t) = M(theta) w; g = w^T (M'^T G M + M^T G M') w
        G = np.array([[-c * c, c], [c, 0.0]])
        th = torch.tensor(float(theta), dtype=torch.float64)
        M = _leapfrog_matrix(np.array([[theta]]), t, n_steps)
        dM = torch.autograd.functional.jacobian(
            lambda a: _leapfrog_matrix_torch(a, t, n_steps), th).numpy()
        return _quadratic_snr(2 * dM.T @ G @ M)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n_samples, generator=g, dtype=torch.float64)
    z = torch.randn(n_samples, generator=g, dtype=torch.float64)
    th = torch.full((n_samples,), float(theta), dtype=torch.float64, requires_grad=True)
    if method == "hsm":
        xt, vt = leapfrog(lambda x: -th * x, x0, z, t, n_steps)
        V = c * xt
        loss = 2 * V * vt - V**2
    else:
        xn = x0 + t * z
        loss = (-th * xn + z / t) ** 2
    (grad,) = torch.autograd.grad(loss.sum(), th)
    grad = grad.numpy()
    return float(abs(grad.mean()) / grad.std())


def _leapfrog_matrix_torch(theta: torch.Tensor, t: float, n_steps: int) -> torch.Tensor:
    """2x2 leapfrog map of the 1-D force ``-theta x`` (torch, differentiable)."""
    h = t / n_steps
    one = torch.ones((), dtype=theta.dtype)
    zero = torch.zeros((), dtype=theta.dtype)
    kick = torch.stack([torch.stack([one, zero]), torch.stack([-0.5 * h * theta, one])])
    drift = torch.stack([torch.stack([one, h * one]), torch.stack([zero, one])])
    step = kick @ drift @ kick
    return torch.linalg.matrix_power(step, n_steps)


# ------------------------------------------------------------------ networks
class _PlainMLP(nn.Module):
    def __init__(self, d_in: int, d_out: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        w = d_in
        for _ in range(depth):
            layers += [nn.Linear(w, hidden), nn.SiLU()]
            w = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(w, d_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(h))


class _VectorForce(nn.Module):
    """:math:`F(x) = \\mathrm{MLP}(x)`, x flattened."""

    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.mlp = _PlainMLP(d, d, hidden, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.reshape(len(x), -1)).reshape(x.shape)


class _FieldForce(nn.Module):
    """:class:`PeriodicCNN` at a fixed conditioning value (it has no noise level here)."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.cnn = PeriodicCNN(size=size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x, torch.zeros(len(x), dtype=x.dtype, device=x.device))


class _VectorVelocity(nn.Module):
    """:math:`V(x, t) = t\\, \\mathrm{MLP}([x, t / T])`."""

    def __init__(self, d: int, hidden: int, depth: int, T: float) -> None:
        super().__init__()
        self.mlp = _PlainMLP(d + 1, d, hidden, depth)
        self.T = T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h = torch.cat([x.reshape(len(x), -1), (t / self.T)[:, None]], dim=1)
        return (t[:, None] * self.mlp(h)).reshape(x.shape)


class _FieldVelocity(nn.Module):
    """:math:`V(x, t) = t\\, \\mathrm{CNN}(x; t / T)` (periodic, translation-equivariant)."""

    def __init__(self, size: tuple[int, int], T: float) -> None:
        super().__init__()
        self.cnn = PeriodicCNN(size=size)
        self.T = T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return t[:, None, None] * self.cnn(x, t / self.T)


def _gaussian_statistic(Xs: np.ndarray, homogeneous: bool) -> np.ndarray:
    """Power spectrum :math:`E|\\hat x_k|^2 / n_{cells}` (rfftn layout) of homogeneous
    fields, else the covariance of the flattened states (``Xs`` centred, standardised)."""
    n = len(Xs)
    if homogeneous:
        axes = tuple(range(1, Xs.ndim))
        spec = np.zeros(np.fft.rfftn(Xs[0]).shape)
        for a in range(0, n, 512):
            spec += (np.abs(np.fft.rfftn(Xs[a:a + 512], axes=axes)) ** 2).sum(axis=0)
        return spec / (n * np.prod(Xs.shape[1:]))
    return np.atleast_2d(np.cov(Xs.reshape(n, -1), rowvar=False))


class _GaussianScore(nn.Module):
    """Score :math:`-C^{-1} x` of a centred Gaussian (standardised units), as a module.

    Vectors: full precision (eigenvalues floored at ``1e-6`` of the largest); homogeneous
    fields: Fourier-diagonal, ``1 / spectrum``.
    """

    def __init__(self, stat: np.ndarray, homogeneous: bool) -> None:
        super().__init__()
        self.homogeneous = homogeneous
        if homogeneous:
            inv = 1.0 / np.maximum(stat, 1e-6 * stat.max())
            self.register_buffer("inv_spec", torch.tensor(inv, dtype=torch.float32))
        else:
            lam, vec = np.linalg.eigh(stat)
            lam = np.maximum(lam, 1e-6 * lam.max())
            P = (vec / lam) @ vec.T
            self.register_buffer("precision", torch.tensor(P, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.homogeneous:
            dims = tuple(range(1, x.ndim))
            xh = torch.fft.rfftn(x, dim=dims)
            return -torch.fft.irfftn(xh * self.inv_spec, s=x.shape[1:], dim=dims)
        return -(x.reshape(len(x), -1) @ self.precision).reshape(x.shape)


class _Force(nn.Module):
    """The model force: Gaussian score of the data plus a network (``residual``)."""

    def __init__(self, net: nn.Module, prior: _GaussianScore | None) -> None:
        super().__init__()
        self.net = net
        self.prior = prior

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.prior is not None:
            out = out + self.prior(x)
        return out


def _zero_last_layer(net: nn.Module) -> None:
    last = None
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = m
    if last is not None:
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


# ------------------------------------------------------------------ estimator
@register_score("hsm")
class HamiltonianScoreModel(ScoreEstimator):
    """Score of stationary data by Hamiltonian score matching (HSM).

    The score is a force field :math:`F_\\theta` trained on *clean* data (no noise
    level, no :math:`\\sigma \\to 0` limit) by the min-max objective (module docstring)
    through ``n_leapfrog`` differentiable leapfrog steps: per iteration, a batch
    :math:`x_0` of data, velocities :math:`v_0 \\sim N(0, I)` and times
    :math:`t \\sim U(0, T)`; ``inner_steps`` Adam steps fit the velocity predictor
    :math:`V_\\phi(x, t) = t\\,\\mathrm{net}_\\phi(x, t)` to :math:`v_t` by least squares,
    then one Adam step on :math:`\\theta` lowers
    :math:`E[w(t)(2 V_\\phi\\cdot v_t - \\|V_\\phi\\|^2)]` with :math:`\\phi` frozen.
    With ``weighting="fisher"``, :math:`w(t) = 1/t^2`, which makes the objective tend
    to the Fisher divergence :math:`E\\|F_\\theta - \\nabla\\log p\\|^2` as
    :math:`t \\to 0`; ``"none"``: :math:`w = 1`.

    With ``residual=True`` the force is the score of the Gaussian fit of the data plus
    a network whose last layer starts at zero, :math:`F_\\theta = -C^{-1}\\tilde x +
    \\mathrm{net}_\\theta(\\tilde x)`: training starts from the Gaussian score (spectral
    for homogeneous fields) and the network learns the non-Gaussian part. Data are
    standardised inside (``T`` is in units of the standardised data) and scores are
    returned in data units.

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
    n_iter : int
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
        :math:`\\pi/2` of a unit-variance oscillation, where :math:`\\mathrm{HSD}_t
        \\approx t^2 E\\|F - \\nabla\\log p\\|^2` still holds well).
    weighting : {"fisher", "none"}
        Time weighting of the force objective (see above).
    ema : float
        Exponential moving average decay of the force weights (the EMA gives the
        score); 0 disables it.
    grad_clip : float
        Maximum gradient norm of both networks.
    max_time : float, optional
        Wall-clock budget of the training in seconds.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    seed : int
        Seed of initialisation, batches, velocities and times.
    n_threads : int, optional
        torch CPU threads during training.
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
        ``step``, ``objective`` (force objective, averaged between records) and
        ``velocity_loss`` lists.
    train_time_ : float
        Seconds spent training.
    n_steps_ : int
        Outer steps taken.
    """

    def __init__(
        self,
        network: str | nn.Module = "auto",
        velocity_network: str | nn.Module = "auto",
        hidden: int = 128,
        depth: int = 2,
        residual: bool = True,
        homogeneous: bool | None = None,
        n_iter: int = 3000,
        batch_size: int = 512,
        lr: float = 1e-3,
        lr_velocity: float = 1e-3,
        inner_steps: int = 5,
        n_leapfrog: int = 6,
        T: float = 0.5,
        weighting: str = "fisher",
        ema: float = 0.99,
        grad_clip: float = 10.0,
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
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.lr = lr
        self.lr_velocity = lr_velocity
        self.inner_steps = inner_steps
        self.n_leapfrog = n_leapfrog
        self.T = T
        self.weighting = weighting
        self.ema = ema
        self.grad_clip = grad_clip
        self.max_time = max_time
        self.device = device
        self.seed = seed
        self.n_threads = n_threads
        self.progress = progress

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_positive_ints(self, ("hidden", "depth", "n_iter", "batch_size", "inner_steps",
                                   "n_leapfrog"))
        for name in ("lr", "lr_velocity"):
            v = getattr(self, name)
            if not (0 < v < 1):
                raise ValueError(f"{name} must be in (0, 1), got {v}")
        if not (self.T > 0 and math.isfinite(self.T)):
            raise ValueError(f"T must be a positive finite time, got {self.T}")
        if self.weighting not in ("fisher", "none"):
            raise ValueError(f"weighting must be 'fisher' or 'none', got {self.weighting!r}")
        if not (0 <= self.ema < 1):
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")
        check_max_time(self.max_time)
        check_network(self.network)
        if not isinstance(self.velocity_network, (str, nn.Module)):
            raise TypeError(f"velocity_network must be 'auto' or a torch Module, got "
                            f"{type(self.velocity_network).__name__}")

    def _build(self, state_shape: tuple[int, ...], Xs: np.ndarray,
               homogeneous: bool) -> tuple[nn.Module, nn.Module]:
        d = int(np.prod(state_shape))
        kind = self.network
        if isinstance(kind, nn.Module):
            net = copy.deepcopy(kind)
        else:
            if kind == "auto":
                kind = "cnn" if len(state_shape) == 2 else "mlp"
            if kind == "mlp":
                net = _VectorForce(d, self.hidden, self.depth)
            elif kind == "cnn":
                if len(state_shape) != 2:
                    raise ValueError(f"network='cnn' needs 2-D fields, got state shape "
                                     f"{state_shape}")
                net = _FieldForce(state_shape)
            else:
                raise ValueError(f"unknown network {kind!r}; choose 'auto', 'mlp' or 'cnn'")
            if self.residual:
                _zero_last_layer(net)
        prior = (_GaussianScore(_gaussian_statistic(Xs, homogeneous), homogeneous)
                 if self.residual else None)
        force = _Force(net, prior)
        if isinstance(self.velocity_network, nn.Module):
            vel = copy.deepcopy(self.velocity_network)
        elif self.velocity_network == "auto":
            vel = (_FieldVelocity(state_shape, self.T) if len(state_shape) == 2
                   else _VectorVelocity(d, self.hidden, self.depth, self.T))
        else:
            raise ValueError(f"velocity_network must be 'auto' or a Module, got "
                             f"{self.velocity_network!r}")
        return force, vel

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> HamiltonianScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)``.

        Returns
        -------
        HamiltonianScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        state_shape = X.shape[1:]
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        mean, std, Xs = standardise(X, homogeneous)
        device = resolve_device(self.device)
        with torch_threads(self.n_threads):
            with seeded(self.seed):
                force, vel = self._build(state_shape, Xs, homogeneous)
            force, vel = force.to(device), vel.to(device)
            self._train(force, vel, Xs, device)
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.mean_, self.std_ = mean, std
        self.device_ = device
        return self

    def _train(self, force: nn.Module, vel: nn.Module, Xs: np.ndarray,
               device: torch.device) -> None:
        ema_force = copy.deepcopy(force).requires_grad_(False)
        f_params = [p for p in force.parameters() if p.requires_grad]
        v_params = list(vel.parameters())
        opt_f = torch.optim.Adam(f_params, lr=self.lr)
        opt_v = torch.optim.Adam(v_params, lr=self.lr_velocity)
        Xt = torch.tensor(Xs, dtype=torch.float32, device=device)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator(device="cpu").manual_seed(self.seed + 1)
        rec = TrainingRecord("HSM", self.n_iter, ("objective", "velocity_loss"), "obj",
                             self.max_time, self.progress)
        try:
            while rec.step < self.n_iter:
                idx = torch.as_tensor(rng.integers(0, len(Xt), self.batch_size), device=device)
                x0 = Xt[idx]
                v0 = torch.randn(x0.shape, generator=gen).to(device)
                t = (self.T * (1e-3 + (1 - 1e-3) * torch.rand(len(x0), generator=gen))
                     ).to(device)
                # inner: velocity predictor on trajectories of the current force
                with torch.no_grad():
                    xt, vt = leapfrog(force, x0, v0, t, self.n_leapfrog)
                for _ in range(self.inner_steps):
                    vl = ((vel(xt, t) - vt) ** 2).reshape(len(xt), -1).sum(1).mean()
                    opt_v.zero_grad(set_to_none=True)
                    vl.backward()
                    nn.utils.clip_grad_norm_(v_params, self.grad_clip)
                    opt_v.step()
                # outer: force step through the leapfrog, velocity predictor frozen
                vel.requires_grad_(False)
                xt, vt = leapfrog(force, x0, v0, t, self.n_leapfrog)
                V = vel(xt, t)
                obj = (2 * V * vt - V**2).reshape(len(xt), -1).sum(1)
                if self.weighting == "fisher":
                    obj = obj / t**2
                obj = obj.mean()
                opt_f.zero_grad(set_to_none=True)
                obj.backward()
                nn.utils.clip_grad_norm_(f_params, self.grad_clip)
                opt_f.step()
                vel.requires_grad_(True)
                ema_update(ema_force, force, self.ema, rec.step, buffers=False)
                if rec.update(objective=float(obj.detach()), velocity_loss=float(vl.detach())):
                    break
        finally:
            rec.close()
        self.force_ = ema_force.eval()
        self.velocity_ = vel.eval().requires_grad_(False)
        self.history_ = rec.history
        self.train_time_ = rec.train_time
        self.n_steps_ = rec.step
        rec.log_summary()

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
        out, single = self._batched(x, batch_size, self.force_)
        out = out / self.std_
        return out[0] if single else out

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

        out, single = self._batched(x, batch_size, vel)
        return out[0] if single else out

    def _batched(self, x, batch_size: int,
                 fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[np.ndarray, bool]:
        """``fn`` on the standardised ``x`` (float32, ``batch_size`` states at a time);
        returns the output (float64, standardised units) and whether ``x`` was one state."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        xs = (arr - self.mean_) / self.std_
        out = np.empty_like(xs)
        with torch.no_grad():
            for a in range(0, len(xs), batch_size):
                xt = torch.tensor(xs[a:a + batch_size], dtype=torch.float32,
                                  device=self.device_)
                out[a:a + batch_size] = fn(xt).cpu().numpy()
        return out, single

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model (parameters, networks, standardisation) to ``path``."""
        save_torch(self, path, ("force_", "velocity_"))

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> HamiltonianScoreModel:
        """Read a model written by :meth:`save` onto ``device``."""
        return load_torch(cls, path, device, ("force_", "velocity_"),
                          eval_modules=("force_", "velocity_"))
