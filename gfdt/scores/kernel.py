"""WPO-informed kernel score model (Zhang, Liu, Li, Katsoulakis, Osher, arXiv:2402.06162).

The density is a Gaussian mixture over ``M`` centres :math:`Z_i` drawn from the data,

.. math:: \\hat\\pi(x) = \\frac1M \\sum_i \\mathcal N(x;\\, Z_i,\\, \\Gamma_i^{-1}),

with local precisions :math:`\\Gamma_i = \\Gamma_\\theta(Z_i)` produced by a network of the
centre. Under the heat flow :math:`dX = \\beta\\, dW` each component stays Gaussian and its
precision evolves in closed form, :math:`\\Gamma_{i,t} = (\\Gamma_i^{-1} + \\beta^2 t I)^{-1}`,
so the score is analytic at every time. The network is trained at the data time only, by
implicit score matching (ISM),

.. math:: \\min_\\theta\\; E_x\\Big[2\\,\\frac{\\Delta\\hat\\pi}{\\hat\\pi}
          - \\|\\nabla\\log\\hat\\pi\\|^2\\Big],\\qquad
          \\frac{\\Delta\\hat\\pi}{\\hat\\pi} = \\sum_i r_i\\big(\\|\\Gamma_i(x - Z_i)\\|^2
          - \\operatorname{tr}\\Gamma_i\\big),\\quad
          \\nabla\\log\\hat\\pi = -\\sum_i r_i\\, \\Gamma_i (x - Z_i),

with :math:`r_i` the responsibilities. The objective equals the Fisher divergence
:math:`E\\|\\nabla\\log\\hat\\pi - \\nabla\\log p\\|^2` minus the constant
:math:`E\\|\\nabla\\log p\\|^2`.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gfdt.scores._calibration import apply_calibration, fit_calibration
from gfdt.scores._torch_common import (
    check_max_time,
    check_positive_ints,
    is_homogeneous,
    progress_bar,
    seed_from,
    seeded,
    torch_threads,
)
from gfdt.scores.base import ScoreEstimator, as_samples, register_score
from gfdt.scores.dsm import resolve_device

__all__ = ["KernelScoreModel"]

logger = logging.getLogger("gfdt")

_PRECISIONS = ("auto", "full", "diagonal", "fourier")
_LOG2PI = math.log(2 * math.pi)
#: Elements of the largest (batch, centre, feature) intermediate while scoring.
_CHUNK_ELEMENTS = 2**22


# ------------------------------------------------------------------ structures
def _rfft_weights(state_shape: tuple[int, ...]) -> np.ndarray:
    """Multiplicity of each rfftn mode in the full spectrum (1 or 2), rfftn layout.

    With ``norm="ortho"``, :math:`\\|x\\|^2 = \\sum_k w_k |\\hat x_k|^2` for real ``x``.
    """
    n_last = state_shape[-1]
    rshape = (*state_shape[:-1], n_last // 2 + 1)
    w = np.full(rshape, 2.0)
    w[..., 0] = 1.0
    if n_last % 2 == 0:
        w[..., -1] = 1.0
    return w


def _symmetrize(lam: torch.Tensor, state_shape: tuple[int, ...]) -> torch.Tensor:
    """Make a spectrum on the rfftn grid even, :math:`\\lambda(k) = \\lambda(-k)`.

    ``lam`` has shape ``(..., *rshape)``. Only the self-conjugate slices of the last axis
    (index 0, and ``n/2`` for even ``n``) hold both ``k`` and ``-k``; they are averaged
    with their reflection so that the operator :math:`x \\mapsto
    \\mathrm{irfftn}(\\lambda \\hat x)` is symmetric.
    """
    nd = len(state_shape)
    other = tuple(range(lam.ndim - nd, lam.ndim - 1))
    if other:
        refl = torch.roll(torch.flip(lam, dims=other), shifts=(1,) * len(other), dims=other)
    else:
        refl = lam
    special = torch.zeros(lam.shape[-1], dtype=torch.bool, device=lam.device)
    special[0] = True
    if state_shape[-1] % 2 == 0:
        special[-1] = True
    return torch.where(special, 0.5 * (lam + refl), lam)


class _Basis:
    """Real feature coordinates in which diagonal/Fourier precisions are diagonal.

    ``diagonal``: the pixels themselves. ``fourier``: real and imaginary parts of the
    orthonormal rfftn coefficients, each weighted by its multiplicity ``w`` so that
    Euclidean norms are preserved. A precision is a positive spectrum ``lam`` on ``K``
    modes; ``expand(lam)`` gives its value on the ``P`` features.
    """

    def __init__(self, kind: str, state_shape: tuple[int, ...]) -> None:
        self.kind = kind
        self.state_shape = tuple(state_shape)
        self.dims = tuple(range(1, len(state_shape) + 1))
        if kind == "fourier":
            w = _rfft_weights(self.state_shape)
            self.rshape = w.shape
            self.w = torch.tensor(w.reshape(-1), dtype=torch.float64)
            self.wP = torch.cat([self.w, self.w])
        else:
            d = int(np.prod(state_shape))
            self.rshape = (d,)
            self.w = torch.ones(d, dtype=torch.float64)
            self.wP = self.w
        self.K = int(np.prod(self.rshape))

    def to(self, device) -> _Basis:
        self.w = self.w.to(device)
        self.wP = self.wP.to(device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.kind != "fourier":
            return x.reshape(b, -1)
        xh = torch.fft.rfftn(x, dim=self.dims, norm="ortho").reshape(b, -1)
        return torch.cat([xh.real, xh.imag], dim=1)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        b = g.shape[0]
        if self.kind != "fourier":
            return g.reshape(b, *self.state_shape)
        gh = torch.complex(g[:, : self.K], g[:, self.K:]).reshape(b, *self.rshape)
        return torch.fft.irfftn(gh, s=self.state_shape, dim=self.dims, norm="ortho")

    def expand(self, lam: torch.Tensor) -> torch.Tensor:
        lam = lam.reshape(lam.shape[0], -1)
        return torch.cat([lam, lam], dim=1) if self.kind == "fourier" else lam


# ------------------------------------------------------------ mixture formulas
def _diag_mixture(u, c, lamP, wP, logdet, trace, mask=None):
    """Mixture statistics for precisions diagonal in feature space (float64 torch).

    Parameters
    ----------
    u : (B, P) features of the points; c : (M, P) features of the centres;
    lamP : (M, P) precisions on the features; wP : (P,) feature weights;
    logdet, trace : (M,) log-determinant and trace of each precision;
    mask : (B, M) bool, optional: components left out (True) for each point.

    Returns
    -------
    lse : (B,) ``logsumexp_i(-Q_i/2 + logdet_i/2)``;
    g : (B, P) features of :math:`\\nabla\\log\\hat\\pi`;
    lap : (B,) :math:`\\Delta\\hat\\pi/\\hat\\pi`;
    g2 : (B,) :math:`\\|\\nabla\\log\\hat\\pi\\|^2`.

    Notes
    -----
    Quadratic forms are expanded, :math:`\\sum_j w_j\\lambda_{ij}(u_j - c_{ij})^2 =
    u^2\\cdot(w\\lambda_i) - 2u\\cdot(w\\lambda_i c_i) + \\sum_j w_j\\lambda_{ij}c_{ij}^2`,
    so memory is O(B M + (B + M) P), not O(B M P).
    """
    wl = wP * lamP
    uu = u * u
    Q = uu @ wl.T - 2.0 * (u @ (wl * c).T) + (wl * c * c).sum(1)
    logits = -0.5 * Q + 0.5 * logdet
    if mask is not None:
        logits = logits.masked_fill(mask, -math.inf)
    lse = torch.logsumexp(logits, dim=1)
    r = torch.exp(logits - lse[:, None])
    g = -(u * (r @ lamP) - r @ (lamP * c))
    wl2 = wl * lamP
    G2 = uu @ wl2.T - 2.0 * (u @ (wl2 * c).T) + (wl2 * c * c).sum(1)
    lap = (r * (G2 - trace)).sum(1)
    g2 = (wP * g * g).sum(1)
    return lse, g, lap, g2


def _full_mixture(x, Z, G, logdet, trace, mask=None):
    r"""Mixture statistics for full precisions (float64 torch), cost O(B M d^2).

    ``x`` (B, d), ``Z`` (M, d), ``G`` (M, d, d) symmetric positive definite; other
    arguments and returns as in :func:`_diag_mixture` (``g`` has shape (B, d)). The
    quadratic forms are expanded as there, with :math:`x^T\Gamma_i x =
    (x\otimes x)\cdot\Gamma_i`, so everything is a matrix product and memory is
    O(B M + B d^2 + M d^2).
    """
    b, d = x.shape
    m = Z.shape[0]
    xx = (x[:, :, None] * x[:, None, :]).reshape(b, d * d)
    Gf = G.reshape(m, d * d)
    GZ = torch.einsum("mij,mj->mi", G, Z)
    Q = xx @ Gf.T - 2.0 * (x @ GZ.T) + (Z * GZ).sum(1)
    logits = -0.5 * Q + 0.5 * logdet
    if mask is not None:
        logits = logits.masked_fill(mask, -math.inf)
    lse = torch.logsumexp(logits, dim=1)
    r = torch.exp(logits - lse[:, None])
    Gbar = (r @ Gf).reshape(b, d, d)
    g = -(torch.einsum("bij,bj->bi", Gbar, x) - r @ GZ)
    G2 = G @ G
    G2Z = torch.einsum("mij,mj->mi", G2, Z)
    N2 = xx @ G2.reshape(m, d * d).T - 2.0 * (x @ G2Z.T) + (Z * G2Z).sum(1)
    lap = (r * (N2 - trace)).sum(1)
    return lse, g, lap, (g * g).sum(1)


# ---------------------------------------------------------------- the network
class _PrecisionModule(nn.Module):
    """Centre -> local precision: an MLP of the (standardised) centre.

    ``full``: :math:`\\Gamma = L L^T + \\epsilon I` with :math:`L = L_0 T`, ``T``
    lower-triangular with positive (exponentiated) diagonal from the MLP, :math:`L_0` the
    Cholesky factor of the initial precision. ``diagonal``: :math:`\\lambda =
    \\lambda_0 e^{a} + \\epsilon` per coordinate. ``fourier``: :math:`\\lambda_k =
    e^{\\phi_k + a_k} + \\epsilon`, with a learned shared log-spectrum :math:`\\phi` and
    the MLP's per-centre correction ``a`` (one number per mode, or one per centre with
    ``shared_spectrum``), made even in ``k``. The last layer starts at zero, so training
    starts from the initial precision for every centre.
    """

    def __init__(self, kind: str, d: int, init: np.ndarray, state_shape, hidden: int,
                 depth: int, reg: float, shared_spectrum: bool) -> None:
        super().__init__()
        self.kind = kind
        self.d = d
        self.reg = reg
        self.state_shape = tuple(state_shape)
        if kind == "full":
            n_out = d * (d + 1) // 2
            self.register_buffer("L0", torch.tensor(init, dtype=torch.float64))
            tri = torch.tril_indices(d, d)
            self.register_buffer("tri", tri)
        elif kind == "diagonal":
            n_out = d
            self.register_buffer("lam0", torch.tensor(init.reshape(-1), dtype=torch.float64))
        else:
            n_out = 1 if shared_spectrum else int(np.prod(init.shape))
            self.phi = nn.Parameter(torch.tensor(np.log(init), dtype=torch.float64))
        layers: list[nn.Module] = []
        width = d
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.GELU()]
            width = hidden
        last = nn.Linear(width, n_out)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.mlp = nn.Sequential(*layers, last)

    def forward(self, Zs: torch.Tensor) -> torch.Tensor:
        """Precisions of centres ``Zs`` (M, d) float32: (M, d, d) or (M, *rshape) float64."""
        a = self.mlp(Zs).double()
        m = a.shape[0]
        if self.kind == "full":
            d = self.d
            T = torch.zeros(m, d, d, dtype=torch.float64, device=a.device)
            T[:, self.tri[0], self.tri[1]] = a
            diag = torch.diagonal(T, dim1=1, dim2=2)
            T = T - torch.diag_embed(diag) + torch.diag_embed(torch.exp(diag))
            L = self.L0 @ T
            eye = torch.eye(d, dtype=torch.float64, device=a.device)
            return L @ L.transpose(1, 2) + self.reg * eye
        if self.kind == "diagonal":
            return self.lam0 * torch.exp(a) + self.reg
        shape = (m, *([1] * self.phi.ndim)) if a.shape[1] == 1 else (m, *self.phi.shape)
        lam = torch.exp(self.phi + a.reshape(shape)) + self.reg
        return _symmetrize(lam, self.state_shape)


def _precision_terms(kind: str, prec: torch.Tensor, basis: _Basis | None, c: float = 0.0,
                     reg: float = 0.0):
    """(precision at time ``c = beta^2 t``, logdet, trace) in float64 torch.

    ``reg`` (full only) is a lower bound of the eigenvalues, used against rounding.
    """
    if kind == "full":
        if c == 0.0:
            # eigenvalues, not a Cholesky factor: L L^T + reg I is positive definite in
            # exact arithmetic, but rounding can break a factorisation when L is large
            e = torch.linalg.eigvalsh(prec)
            logdet = torch.log(torch.clamp(e, min=reg)).sum(1)
            return prec, logdet, torch.diagonal(prec, dim1=1, dim2=2).sum(1)
        e, V = torch.linalg.eigh(prec)
        e = torch.clamp(e, min=reg)
        et = e / (1.0 + c * e)
        G = (V * et[:, None, :]) @ V.transpose(1, 2)
        return G, torch.log(et).sum(1), et.sum(1)
    lam = prec.reshape(prec.shape[0], -1)
    if c != 0.0:
        lam = lam / (1.0 + c * lam)
    return lam, (basis.w * torch.log(lam)).sum(1), (basis.w * lam).sum(1)


# --------------------------------------------------------------- the estimator
@register_score("kernel")
class KernelScoreModel(ScoreEstimator):
    """WPO-informed kernel score: Gaussian mixture with learned local precisions.

    ``M = n_centers`` centres :math:`Z_i` are drawn (without replacement) from the
    training samples; an MLP of the centre gives each component's precision
    :math:`\\Gamma_i` (see the module docstring and ``precision``). The MLP is trained by
    implicit score matching at the data time. The score is analytic at every time of
    the heat flow :math:`dX = \\beta\\, dW` (in standardised units):
    :math:`\\Gamma_{i,t} = (\\Gamma_i^{-1} + \\beta^2 t I)^{-1}`.

    **Leave-one-out.** A training sample that is itself a centre would let ISM shrink
    that component onto it without bound (the empirical-score collapse the WPO paper
    warns about). Each sample's own component is therefore left out of the mixture
    when its ISM term is computed: the objective is a leave-one-out (cross-validated)
    ISM, and every sample can serve both as centre and as data.

    Data are standardised internally (vectors: per-coordinate mean and one overall
    scale, which keeps the geometry; homogeneous fields: one mean and one scale);
    scores are returned in data units.

    Parameters
    ----------
    n_centers : int
        Number of centres ``M``; must be below the number of training samples.
    precision : {"auto", "full", "diagonal", "fourier"}
        Structure of the local precisions. ``"full"``: :math:`L L^T + \\epsilon I`, cost
        O(batch M d^2), for vectors up to ``d ~ 64``. ``"diagonal"``: one precision per
        coordinate. ``"fourier"``: translation-invariant, diagonal in the orthonormal
        rfftn basis of the (periodic) state: one positive spectrum per centre.
        ``"auto"``: ``"fourier"`` for homogeneous fields, ``"full"`` for ``d <= 64``,
        else ``"diagonal"``.
    shared_spectrum : bool
        ``"fourier"`` only: one learned spectrum shared by all centres, times a learned
        per-centre scale (fewer parameters) instead of one spectrum per centre.
    beta : float
        Diffusion coefficient of the heat flow that defines the time ``t`` of
        :meth:`score` (standardised units).
    reg : float
        :math:`\\epsilon`, added to every precision (standardised units).
    hidden, depth : int
        Width and number of hidden layers (GELU) of the MLP.
    lr : float
        Adam learning rate.
    batch_size : int
        Samples per ISM step (every step uses all ``M`` centres).
    n_iter : int
        Optimisation steps.
    max_time : float, optional
        Wall-clock budget of the training in seconds.
    validation : float
        Fraction of samples held out (the last ones, in order: pass time-ordered data):
        the held-out ISM selects the best weights, and calibration uses these samples.
        0: no hold-out (last weights are kept).
    eval_every : int
        Steps between validations.
    calibrate : bool
        Apply the sum-rule calibration :math:`s_{cal} = M^{-T} s`,
        :math:`M = -E[x s^T]` on the held-out samples, to the data-time score (a full
        matrix for vectors, one factor per Fourier mode for homogeneous fields). The
        kernel widens the density, so :math:`M \\ne I` without it.
    homogeneous : bool, optional
        Periodic translation-invariant fields (scalar standardisation, per-mode
        calibration). Default: True for 2-D states.
    seed : int
        Seed of centre choice, initialisation and batches.
    device : str
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ...
    n_threads : int, optional
        torch CPU threads during training (default: torch's setting).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Notes
    -----
    Training starts from a Silverman-type kernel, covariance :math:`h^2 C` with
    :math:`h = (4/(d+2))^{1/(d+4)} M^{-1/(d+4)}` and :math:`C` the data covariance (its
    power spectrum for ``"fourier"``), for every centre; Adam with a cosine decay of the
    learning rate to a tenth; the held-out ISM (initial state included) selects the
    weights kept.

    The empirical ISM is unbounded below (a component of precision :math:`\\lambda` at
    distance :math:`\\delta` from a sample contributes :math:`\\lambda^2\\delta^2 -
    2d\\lambda`, minimal at :math:`-d^2/\\delta^2`), so with few samples per centre
    (under ~10) it overfits by sharpening components; use ``n_samples >> n_centers``.
    Measured on a 2-D Gaussian mixture (40k samples, 1000 centres): relative Fisher
    error 0.04-0.08 after 600 steps, raw Stein error ~0.15, 0.03 calibrated. In high
    dimension a mixture of ``M`` kernels stays coarse: on an 8 x 8 Gaussian field
    (``"fourier"``, 500 centres) relative Fisher 0.28; there the calibration restores the
    sum rule (Stein error 0.40 -> 0.02) but raises the Fisher error (to 0.46), since it
    undoes the shrinkage that ISM chose.

    Attributes
    ----------
    centers_ : numpy.ndarray, shape ``(M, *state)``
        Centres, data units.
    precisions_ : numpy.ndarray
        Data-time precisions in standardised units (divide by ``std_**2`` for data
        units): ``(M, d, d)`` (full), ``(M, d)`` (diagonal) or ``(M, *rfft_shape)``
        (fourier, rfftn layout, ``norm="ortho"``).
    mean_, std_ : numpy.ndarray
        Standardisation.
    calibration_ : numpy.ndarray or None
        Calibration (see :func:`gfdt.scores._calibration.fit_calibration`).
    history_ : dict
        ``step``, ``train_loss``, ``val_loss`` (ISM per coordinate; lower is better).
        Step 0 is the initial precisions (no training loss: NaN).
    train_time_ : float
        Seconds spent training.
    """

    def __init__(
        self,
        n_centers: int = 1000,
        precision: str = "auto",
        shared_spectrum: bool = False,
        beta: float = 1.0,
        reg: float = 0.01,
        hidden: int = 64,
        depth: int = 3,
        lr: float = 2e-3,
        batch_size: int = 64,
        n_iter: int = 3000,
        max_time: float | None = None,
        validation: float = 0.2,
        eval_every: int = 250,
        calibrate: bool = False,
        homogeneous: bool | None = None,
        seed: int = 0,
        device: str = "auto",
        n_threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.n_centers = n_centers
        self.precision = precision
        self.shared_spectrum = shared_spectrum
        self.beta = beta
        self.reg = reg
        self.hidden = hidden
        self.depth = depth
        self.lr = lr
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.max_time = max_time
        self.validation = validation
        self.eval_every = eval_every
        self.calibrate = calibrate
        self.homogeneous = homogeneous
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.progress = progress

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        check_positive_ints(self, ("n_centers", "hidden", "depth", "batch_size", "eval_every"))
        if isinstance(self.n_iter, bool) or not isinstance(self.n_iter, (int, np.integer)) \
                or self.n_iter < 0:
            raise ValueError(f"n_iter must be a non-negative int, got {self.n_iter!r}")
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (self.beta > 0 and math.isfinite(self.beta)):
            raise ValueError(f"beta must be a positive number, got {self.beta}")
        if not (self.reg > 0 and math.isfinite(self.reg)):
            raise ValueError(f"reg must be a positive number, got {self.reg}")
        if not (0 <= self.validation < 0.9):
            raise ValueError(f"validation must be in [0, 0.9), got {self.validation}")
        if self.calibrate and self.validation == 0:
            raise ValueError("calibrate=True needs held-out samples: set validation > 0")
        check_max_time(self.max_time)

    # ---------------------------------------------------------------- helpers
    def _init_precision(self, Xs: np.ndarray, kind: str, M: int) -> np.ndarray:
        """Silverman-type start: kernel covariance :math:`h^2 C` (C: data covariance)."""
        n, d = len(Xs), int(np.prod(Xs.shape[1:]))
        h2 = ((4.0 / (d + 2)) ** (1.0 / (d + 4)) * M ** (-1.0 / (d + 4))) ** 2
        if kind == "full":
            C = np.atleast_2d(np.cov(Xs.reshape(n, d), rowvar=False))
            C = C + 1e-6 * np.trace(C) / d * np.eye(d)
            return np.linalg.cholesky(np.linalg.inv(h2 * C))
        if kind == "diagonal":
            var = Xs.reshape(n, d).var(axis=0)
            return 1.0 / (h2 * np.maximum(var, 1e-6 * var.mean()))
        axes = tuple(range(1, Xs.ndim))
        spec = np.zeros(np.fft.rfftn(Xs[0]).shape)
        xm = Xs.mean()
        for a in range(0, n, 512):
            spec += (np.abs(np.fft.rfftn(Xs[a:a + 512] - xm, axes=axes, norm="ortho")) ** 2
                     ).sum(axis=0)
        spec /= n
        return 1.0 / (h2 * np.maximum(spec, 1e-6 * spec.max()))

    def _stats(self, xs: torch.Tensor, prec_terms, mask=None):
        """(lse, score in state shape, lap, |score|^2) at standardised points ``xs``."""
        G, logdet, trace = prec_terms
        if self.precision_ == "full":
            lse, g, lap, g2 = _full_mixture(xs.reshape(len(xs), -1), self._Zf, G, logdet,
                                            trace, mask)
            return lse, g.reshape(xs.shape), lap, g2
        basis = self._basis
        lse, g, lap, g2 = _diag_mixture(basis.forward(xs), self._Zu, basis.expand(G),
                                        basis.wP, logdet, trace, mask)
        return lse, basis.adjoint(g), lap, g2

    def _setup_eval(self, device) -> None:
        """Tensors for evaluation (float64) on ``device``."""
        Zs = torch.tensor((self.centers_ - self.mean_) / self.std_, dtype=torch.float64,
                          device=device)
        self._eval_device = device
        self._prec = torch.tensor(self.precisions_, dtype=torch.float64, device=device)
        if self.precision_ == "full":
            self._Zf = Zs.reshape(len(Zs), -1)
        else:
            self._basis = _Basis(self.precision_, self.state_shape_).to(device)
            self._Zu = self._basis.forward(Zs)

    def _ensure_eval(self) -> torch.device:
        device = resolve_device(self.device)
        if getattr(self, "_eval_device", None) != device:
            self._setup_eval(device)
        return device

    def _chunk(self) -> int:
        M = len(self.centers_)
        d = int(np.prod(self.state_shape_))
        per_row = 4 * M + 4 * d * (d if self.precision_ == "full" else 1)
        return max(1, _CHUNK_ELEMENTS // per_row)

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> KernelScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)`` (time-ordered).

        Returns
        -------
        KernelScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        n = len(X)
        state_shape = X.shape[1:]
        d = int(np.prod(state_shape))
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        kind = self.precision
        if kind == "auto":
            kind = "fourier" if homogeneous else ("full" if d <= 64 else "diagonal")
        n_val = round(self.validation * n) if self.validation > 0 else 0
        if self.validation > 0 and n_val < 2:
            raise ValueError(f"X has too few samples ({n}) for a validation split")
        n_train = n - n_val
        M = int(self.n_centers)
        if M >= n_train:
            raise ValueError(f"n_centers ({M}) must be smaller than the number of training "
                             f"samples ({n_train})")
        if n_train < 10 * M:
            logger.warning("kernel score: %d training samples for %d centres; implicit score "
                           "matching overfits with fewer than ~10 samples per centre",
                           n_train, M)
        train = X[:n_train]
        if homogeneous:
            mean, std = np.asarray(train.mean()), np.asarray(train.std())
        else:
            mean = train.mean(axis=0)
            std = np.asarray(train.std())
        if not std > 0:
            raise ValueError("X has zero variance")
        Xs = (X - mean) / std
        rng = np.random.default_rng(self.seed)
        centre_idx = np.sort(rng.choice(n_train, size=M, replace=False))
        own = np.full(n_train, -1)
        own[centre_idx] = np.arange(M)

        device = resolve_device(self.device)
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.precision_ = kind
        self.mean_, self.std_ = mean, std
        self.centers_ = X[centre_idx].copy()
        self.center_indices_ = centre_idx

        init = self._init_precision(Xs[:n_train], kind, M)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        with seeded(seed_from(gen)):
            module = _PrecisionModule(kind, d, init, state_shape, self.hidden, self.depth,
                                      self.reg, self.shared_spectrum).to(device)
        Zs32 = torch.tensor(Xs[centre_idx].reshape(M, d), dtype=torch.float32, device=device)
        Zs64 = torch.tensor(Xs[centre_idx], dtype=torch.float64, device=device)
        self._eval_device = None
        if kind == "full":
            self._Zf = Zs64.reshape(M, d)
        else:
            self._basis = _Basis(kind, state_shape).to(device)
            self._Zu = self._basis.forward(Zs64)
        Xt = torch.tensor(Xs[:n_train], dtype=torch.float64, device=device)
        Xv = torch.tensor(Xs[n_train:][:4096], dtype=torch.float64, device=device)
        own_t = torch.as_tensor(own, device=device)
        opt = torch.optim.Adam(module.parameters(), lr=self.lr)
        hist: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}

        basis = self._basis if kind != "full" else None

        def ism(x, mask=None):
            terms = _precision_terms(kind, module(Zs32), basis, reg=self.reg)
            _, _, lap, g2 = self._stats(x, terms, mask)
            return (2.0 * lap - g2) / d

        def validate() -> float:
            with torch.no_grad():
                return float(torch.cat([ism(Xv[a:a + 512])
                                        for a in range(0, len(Xv), 512)]).mean())

        best, best_state = math.inf, copy.deepcopy(module.state_dict())
        if len(Xv):  # the initial (Silverman) precisions compete too
            best = validate()
            hist["step"].append(0)
            hist["train_loss"].append(math.nan)
            hist["val_loss"].append(best)
        with torch_threads(self.n_threads):
            bar = progress_bar(self.n_iter, "kernel score training", self.progress)
            t0 = time.perf_counter()
            running: list[float] = []
            step = 0
            arange_b = torch.arange(self.batch_size, device=device)
            try:
                while step < self.n_iter:
                    for grp in opt.param_groups:  # cosine decay to lr / 10
                        grp["lr"] = self.lr * (0.55 + 0.45 * math.cos(math.pi * step / self.n_iter))
                    idx = torch.randint(0, n_train, (self.batch_size,), generator=gen).to(device)
                    m = own_t[idx]
                    mask = torch.zeros(self.batch_size, M, dtype=torch.bool, device=device)
                    hit = m >= 0
                    mask[arange_b[hit], m[hit]] = True
                    loss = ism(Xt[idx], mask).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    running.append(float(loss.detach()))
                    step += 1
                    bar.update(1)
                    out_of_time = (self.max_time is not None
                                   and time.perf_counter() - t0 > self.max_time)
                    if step % self.eval_every == 0 or step == self.n_iter or out_of_time:
                        if len(Xv):
                            vl = validate()
                        else:
                            vl = float(np.mean(running))
                        hist["step"].append(step)
                        hist["train_loss"].append(float(np.mean(running)))
                        hist["val_loss"].append(vl)
                        running = []
                        bar.set_postfix(val=f"{vl:.4f}")
                        if vl < best or not len(Xv):
                            best, best_state = vl, copy.deepcopy(module.state_dict())
                    if out_of_time:
                        logger.info("kernel score training stopped by max_time at step %d", step)
                        break
            finally:
                bar.close()
        module.load_state_dict(best_state)
        with torch.no_grad():
            prec = module(Zs32)
        self.precisions_ = prec.cpu().numpy()
        self.network_ = module.cpu().eval()
        self.history_ = hist
        self.n_steps_ = step
        self.train_time_ = time.perf_counter() - t0
        self.calibration_ = None
        self._setup_eval(device)
        if self.calibrate:
            Xval = X[n_train:]
            S = self.score(Xval, calibrated=False)
            self.calibration_ = fit_calibration(Xval, S, homogeneous)
        logger.info("kernel score: %d steps in %.1f s, held-out ISM %.4f", step,
                    self.train_time_, best)
        return self

    # ------------------------------------------------------------------ score
    def score(self, x, t: float | None = None, calibrated: bool | None = None) -> np.ndarray:
        """:math:`\\nabla\\log\\hat\\pi_t(x)` in data units.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
            Points, data units.
        t : float, optional
            Time of the heat flow :math:`dX = \\beta dW` (standardised units: the
            mixture's covariances grow by :math:`\\beta^2 t\\, \\mathrm{std}^2` in data
            units). ``None`` or 0: the data time, the score the GFDT uses.
        calibrated : bool, optional
            Apply the sum-rule calibration (default: when fitted with ``calibrate=True``
            and ``t`` is the data time). Only defined at the data time.

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        c = self._time(t)
        if calibrated is None:
            calibrated = self.calibration_ is not None and c == 0.0
        if calibrated:
            if self.calibration_ is None:
                raise ValueError("calibrated=True: the model was fitted without calibrate")
            if c != 0.0:
                raise ValueError("calibrated=True: the calibration is defined at t=0 only")
        device = self._ensure_eval()
        terms = _precision_terms(self.precision_, self._prec,
                                 getattr(self, "_basis", None), c, self.reg)
        xs = (arr - self.mean_) / self.std_
        out = np.empty_like(xs)
        step = self._chunk()
        with torch.no_grad():
            for a in range(0, len(xs), step):
                xt = torch.tensor(xs[a:a + step], dtype=torch.float64, device=device)
                out[a:a + step] = self._stats(xt, terms)[1].cpu().numpy()
        out /= self.std_
        if calibrated:
            out = apply_calibration(out, self.calibration_, self.homogeneous_)
        return out[0] if single else out

    def log_density(self, x, t: float | None = None) -> np.ndarray:
        """:math:`\\log\\hat\\pi_t(x)` in data units (per unit data volume).

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        t : float, optional
            As in :meth:`score`.

        Returns
        -------
        numpy.ndarray, shape ``(batch,)`` (or a float for one state)
        """
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        c = self._time(t)
        device = self._ensure_eval()
        terms = _precision_terms(self.precision_, self._prec,
                                 getattr(self, "_basis", None), c, self.reg)
        xs = (arr - self.mean_) / self.std_
        d = int(np.prod(self.state_shape_))
        out = np.empty(len(xs))
        step = self._chunk()
        with torch.no_grad():
            for a in range(0, len(xs), step):
                xt = torch.tensor(xs[a:a + step], dtype=torch.float64, device=device)
                out[a:a + step] = self._stats(xt, terms)[0].cpu().numpy()
        out += -math.log(len(self.centers_)) - 0.5 * d * _LOG2PI - d * math.log(float(self.std_))
        return float(out[0]) if single else out

    def sample(self, n_samples: int, t: float | None = None, seed: int = 0) -> np.ndarray:
        """Exact draws from the mixture :math:`\\hat\\pi_t` (data units).

        Parameters
        ----------
        n_samples : int
        t : float, optional
            As in :meth:`score` (default: the data time).
        seed : int

        Returns
        -------
        numpy.ndarray, shape ``(n_samples, *state)``
        """
        self._check_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) \
                or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        c = self._time(t)
        rng = np.random.default_rng(seed)
        M = len(self.centers_)
        comp = rng.integers(0, M, n_samples)
        xi = rng.standard_normal((n_samples, *self.state_shape_))
        Zs = (self.centers_ - self.mean_) / self.std_
        P = self.precisions_
        if self.precision_ == "full":
            d = P.shape[1]
            cov = np.linalg.inv(P) + c * np.eye(d)
            chol = np.linalg.cholesky(cov)
            dx = np.einsum("nij,nj->ni", chol[comp], xi.reshape(n_samples, d))
            xs = Zs[comp] + dx.reshape(xi.shape)
        elif self.precision_ == "diagonal":
            var = 1.0 / P + c
            xs = Zs[comp] + xi * np.sqrt(var[comp]).reshape(xi.shape)
        else:
            axes = tuple(range(1, xi.ndim))
            var = 1.0 / P + c
            xh = np.fft.rfftn(xi, axes=axes, norm="ortho") * np.sqrt(var[comp])
            xs = Zs[comp] + np.fft.irfftn(xh, s=self.state_shape_, axes=axes, norm="ortho")
        return self.mean_ + self.std_ * xs

    def _time(self, t) -> float:
        if t is None:
            return 0.0
        t = float(t)
        if not (t >= 0 and math.isfinite(t)):
            raise ValueError(f"t must be a finite number >= 0, got {t}")
        return self.beta**2 * t

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted model to ``path`` (pickle; evaluation caches dropped)."""
        self._check_fitted()
        keep = {k: v for k, v in vars(self).items()
                if k not in ("_eval_device", "_prec", "_Zf", "_Zu", "_basis")}
        clone = type(self).__new__(type(self))
        vars(clone).update(keep)
        ScoreEstimator.save(clone, path)


# ------------------------------------------------------- memorisation (claim)
def _memorization_fraction(samples: np.ndarray, train: np.ndarray,
                           ratio: float = 1.0 / 3.0) -> float:
    """Fraction of ``samples`` closer than ``ratio`` of the nearest-neighbour gap to the
    training set: :math:`\\|y - x_{(1)}\\| < \\text{ratio}\\, \\|y - x_{(2)}\\|`, with
    :math:`x_{(1)}, x_{(2)}` the nearest and second-nearest training points.

    For samples from a locally uniform density in 2-D, :math:`(d_1/d_2)^2` is uniform, so
    the fraction is :math:`\\text{ratio}^2 = 1/9 \\approx 0.11` for fresh samples; it
    tends to 1 for samples that copy training points.
    """
    from scipy.spatial import cKDTree

    tr = np.asarray(train, dtype=float).reshape(len(train), -1)
    sm = np.asarray(samples, dtype=float).reshape(len(samples), -1)
    dist, _ = cKDTree(tr).query(sm, k=2)
    return float(np.mean(dist[:, 0] < ratio * dist[:, 1]))


def _empirical_score(train: np.ndarray) -> Callable[[np.ndarray, float], np.ndarray]:
    """Score of the empirical measure of ``train`` (n, d) convolved with N(0, v I).

    Returns ``f(x, v)`` for ``x`` of shape (batch, d); the exact score of the training
    set at noise variance ``v``, which tends to the memorising empirical score as
    ``v -> 0``.
    """
    tr = np.asarray(train, dtype=float)
    tn = (tr**2).sum(1)

    def f(x: np.ndarray, v: float) -> np.ndarray:
        logits = -(((x**2).sum(1)[:, None] - 2 * x @ tr.T + tn[None]) / (2 * v))
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(axis=1, keepdims=True)
        return -(x - r @ tr) / v

    return f


def _reverse_sde(score_fn: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray,
                 times: np.ndarray, g: float, rng: np.random.Generator) -> np.ndarray:
    """Euler-Maruyama for the reverse of :math:`dX = g\\, dW` from ``times[0]`` down.

    ``x`` are samples at ``times[0]`` (the largest); ``score_fn(x, t)`` is the score of
    the forward marginal at time ``t``. Steps
    :math:`x \\leftarrow x + g^2 h\\, s(x, t_k) + g\\sqrt h\\, \\xi` with
    :math:`h = t_k - t_{k+1}`; returns the samples at ``times[-1]``.
    """
    x = np.array(x, dtype=float)
    for t_now, t_next in itertools.pairwise(times):
        h = t_now - t_next
        x = x + g**2 * h * score_fn(x, t_now) + g * math.sqrt(h) * rng.standard_normal(x.shape)
    return x


def _memorization_claim(sample_fn: Callable[[int, np.ndarray], np.ndarray], *,
                        n_train: int = 4000, n_centers: int = 200, n_generate: int = 4000,
                        noise_min: float = 1e-2, n_steps: int = 400, seed: int = 0,
                        model_options: dict | None = None) -> dict:
    """Memorisation fractions of the kernel model, fresh samples and the empirical score.

    The reference set is the ``n_centers`` centres: the points the kernel model keeps
    and could copy. The kernel model is fitted on ``n_train`` samples (its centres are
    drawn from them; ISM needs many samples per centre); the empirical-score sampler
    uses the score of the empirical measure of the same centres, convolved with a
    Gaussian of shrinking variance.

    Parameters
    ----------
    sample_fn : callable
        ``sample_fn(n, rng)`` draws ``n`` samples (n, d) of the data distribution.
    n_train, n_centers : int
        Training samples and kernel centres (drawn from them).
    n_generate : int
        Samples generated by each method.
    noise_min : float
        Final noise level of the empirical-score sampler, in units of the data's
        standard deviation (the sampler stops at variance ``(noise_min std)^2``).
    n_steps : int
        Euler-Maruyama steps of each reverse-time sampler (geometric in time, from
        noise ``3 std``).
    seed : int
    model_options : dict, optional
        Further :class:`KernelScoreModel` parameters.

    Returns
    -------
    dict
        Fractions (:func:`_memorization_fraction` relative to the centres) of ``fresh``
        true samples, ``kernel_exact`` (exact draws from the fitted mixture),
        ``kernel_sde`` (reverse-time sampling with the closed-form :math:`\\Gamma_t`
        scores, run to the data time) and ``empirical_sde`` (run to ``noise_min``);
        ``fresh_vs_train`` and ``kernel_exact_vs_train`` relative to all training
        samples; the fitted ``model``.
    """
    rng = np.random.default_rng(seed)
    train = np.asarray(sample_fn(n_train, rng), dtype=float)
    fresh = np.asarray(sample_fn(n_generate, rng), dtype=float)
    opts = {"n_centers": n_centers, "seed": seed, "progress": False, **(model_options or {})}
    model = KernelScoreModel(**opts).fit(train)
    centers = model.centers_
    std = float(model.std_)
    g = model.beta * std  # reverse SDE in data units: dX = g dW in standardised time
    t_max = (3.0 * std) ** 2 / g**2
    t_min = (noise_min * std) ** 2 / g**2
    times = np.geomspace(t_max, t_min, n_steps)
    # kernel: exact start at t_max, closed-form scores down to the data time t = 0
    x0 = model.sample(n_generate, t=t_max, seed=seed + 1)
    kernel_sde = _reverse_sde(lambda x, t: model.score(x, t=t, calibrated=False), x0,
                              np.append(times, 0.0), g, np.random.default_rng(seed + 2))
    # empirical score of the centres: exact start, run to noise_min
    emp = _empirical_score(centers)
    start = centers[rng.integers(0, len(centers), n_generate)]
    x0 = start + g * math.sqrt(t_max) * rng.standard_normal(start.shape)
    emp_sde = _reverse_sde(lambda x, t: emp(x, g**2 * t), x0, times, g,
                           np.random.default_rng(seed + 3))
    kernel_exact = model.sample(n_generate, seed=seed + 4)
    samples = {"fresh": fresh, "kernel_exact": kernel_exact, "kernel_sde": kernel_sde,
               "empirical_sde": emp_sde}
    out: dict = {k: _memorization_fraction(v, centers) for k, v in samples.items()}
    out["fresh_vs_train"] = _memorization_fraction(fresh, train)
    out["kernel_exact_vs_train"] = _memorization_fraction(kernel_exact, train)
    out["model"] = model
    return out
