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

Size: about 500 lines: the estimator with its three precision structures and its
leave-one-out implicit score matching loss.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gfdt.scores._calibration import apply_calibration, fit_calibration
from gfdt.scores._mixture import (  # noqa: F401 (the formulas are reached from here too)
    _Basis,
    _diag_mixture,
    _full_mixture,
    _precision_terms,
    _PrecisionModule,
    _silverman_precision,
    _symmetrize,
)
from gfdt.scores._torch import (
    TorchScoreEstimator,
    gaussian_statistics,
    is_homogeneous,
    resolve_device,
    seeded,
    stream_seed,
    torch_threads,
    training_split,
)
from gfdt.scores.base import ScoreEstimator, as_samples, check_number, register_score
from gfdt.scores.quality import QualityMixin
from gfdt.scores.training import Trainer

__all__ = ["KernelScoreModel"]

logger = logging.getLogger("gfdt")

_PRECISIONS = ("auto", "full", "diagonal", "fourier")
_LOG2PI = math.log(2 * math.pi)
#: Elements of the largest (batch, centre, feature) intermediate while scoring.
_CHUNK_ELEMENTS = 2**22


class _ISMTask:
    """Leave-one-out implicit score matching for the trainer. The "samples" are indices
    into the standardised data ``Xs`` (training and validation): each training sample
    that is a centre leaves its own component out of the mixture."""

    def __init__(self, est: KernelScoreModel, Xs: torch.Tensor, centre_idx: np.ndarray,
                 n_train: int) -> None:
        self.est, self.Xs = est, Xs
        self.d = int(np.prod(Xs.shape[1:]))
        own = np.full(len(Xs), -1)
        own[centre_idx] = np.arange(len(centre_idx))
        self.own = torch.as_tensor(own, device=Xs.device)
        self.M = len(centre_idx)
        self.Zs32 = Xs[torch.as_tensor(centre_idx, device=Xs.device)].reshape(
            self.M, -1).to(torch.float32)

    def noise(self, gen: torch.Generator, n: int) -> tuple:
        return ()

    def loss(self, module: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        est = self.est
        m = self.own[idx]
        mask = torch.zeros(len(idx), self.M, dtype=torch.bool, device=idx.device)
        hit = m >= 0
        mask[torch.arange(len(idx), device=idx.device)[hit], m[hit]] = True
        basis = est._basis if est.precision_ != "full" else None
        terms = _precision_terms(est.precision_, module(self.Zs32), basis, reg=est.reg)
        _, _, lap, g2 = est._stats(self.Xs[idx], terms, mask)
        return ((2.0 * lap - g2) / self.d).mean()


# --------------------------------------------------------------- the estimator
@register_score("kernel")
class KernelScoreModel(QualityMixin, TorchScoreEstimator, ScoreEstimator):
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
    max_steps : int
        Optimisation steps (0: keep the initial Silverman-type precisions).
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
        torch CPU threads during training (default:
        :func:`~gfdt.scores._torch.default_threads`).
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
    quality_ : ScoreQuality
        Held-out quality report (see :meth:`summary`; needs ``validation > 0``).
    """

    _modules = ("network_",)
    _eval_modules = ("network_",)

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
        max_steps: int = 3000,
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
        self.max_steps = max_steps
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
        self._check_common(min_steps=0)
        for name in ("n_centers", "hidden", "depth"):
            check_number(getattr(self, name), name, low=1, integer=True)
        if self.precision not in _PRECISIONS:
            raise ValueError(f"precision must be one of {_PRECISIONS}, got {self.precision!r}")
        check_number(self.beta, "beta", low=0, low_open=True)
        check_number(self.reg, "reg", low=0, low_open=True)
        if self.calibrate and self.validation == 0:
            raise ValueError("calibrate=True needs held-out samples: set validation > 0")

    # ---------------------------------------------------------------- helpers
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
        if hasattr(self, "precisions_"):  # (not yet while training)
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
        n, state_shape = len(X), X.shape[1:]
        d = int(np.prod(state_shape))
        homogeneous = is_homogeneous(state_shape, self.homogeneous)
        kind = self.precision
        if kind == "auto":
            kind = "fourier" if homogeneous else ("full" if d <= 64 else "diagonal")
        n_train = training_split(n, self.validation)
        M = int(self.n_centers)
        if M >= n_train:
            raise ValueError(f"n_centers ({M}) must be smaller than the number of training "
                             f"samples ({n_train})")
        if n_train < 10 * M:
            logger.warning("kernel score: %d training samples for %d centres; implicit score "
                           "matching overfits with fewer than ~10 samples per centre",
                           n_train, M)
        mean, std, stat = gaussian_statistics(X, n_train, homogeneous)
        std = np.asarray(std.flat[0])  # one scale (a scalar)
        Xs = (X - mean) / std
        centre_idx = np.sort(np.random.default_rng(self.seed).choice(n_train, size=M,
                                                                     replace=False))
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.precision_ = kind
        self.mean_, self.std_ = mean, std
        self.centers_ = X[centre_idx].copy()
        self.center_indices_ = centre_idx
        device = resolve_device(self.device)
        self._setup_eval(device)
        with seeded(stream_seed(self.seed, 0)):
            module = _PrecisionModule(kind, d, _silverman_precision(stat, kind, M, d),
                                      state_shape, self.hidden, self.depth, self.reg,
                                      self.shared_spectrum).to(device)
        task = _ISMTask(self, torch.tensor(Xs, dtype=torch.float64, device=device),
                        centre_idx, n_train)
        trainer = Trainer(
            max_steps=self.max_steps, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
            schedule="cosine", eval_every=self.eval_every, max_time=self.max_time,
            progress=self.progress, name="kernel score", device=device, val_batch=512,
            validate_at_start=True)
        xv = torch.arange(n_train, min(n, n_train + 4096), device=device)
        with torch_threads(self.n_threads):
            res = trainer.fit(task, module, lambda idx: torch.as_tensor(idx, device=device),
                              n_train, xv if len(xv) else None)
        with torch.no_grad():
            self.precisions_ = res.net(task.Zs32).cpu().numpy()
        self.network_ = res.net.cpu()
        self.history_ = res.history
        self.n_steps_ = res.n_steps
        self.train_time_ = res.train_time
        self.calibration_ = None
        self._setup_eval(device)
        if self.calibrate:
            Xval = X[n_train:]
            self.calibration_ = fit_calibration(Xval, self.score(Xval, calibrated=False),
                                                homogeneous)
        if n_train < n:
            self._assess(X[n_train:], stat, 0.01, homogeneous)
        return self

    def _score_std(self, xs: np.ndarray) -> np.ndarray:
        """The (calibrated, when fitted so) data-time score in standardised units."""
        return self.score(self.mean_ + self.std_ * xs) * self.std_

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
        """Write the fitted model to ``path`` (torch file; evaluation caches dropped)."""
        self._check_fitted()
        keep = {k: v for k, v in vars(self).items()
                if k not in ("_eval_device", "_prec", "_Zf", "_Zu", "_basis")}
        clone = type(self).__new__(type(self))
        vars(clone).update(keep)
        TorchScoreEstimator.save(clone, path)
