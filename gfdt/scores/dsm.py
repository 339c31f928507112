"""Denoising score matching with noise-conditional networks (PyTorch)."""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gfdt.scores.base import ScoreEstimator, as_samples
from gfdt.scores.networks import default_network

__all__ = ["DenoisingScoreModel", "resolve_device"]

logger = logging.getLogger("gfdt")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise ``torch.device(device)``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch device, got "
                         f"{device!r}") from None


class _GaussianPrior(nn.Module):
    """Score of the Gaussian fit convolved with noise: :math:`-(C + \\sigma^2)^{-1} x`.

    Works in standardised units. Homogeneous fields: ``C`` is diagonal in Fourier space
    (the power spectrum); vectors: full covariance via its eigendecomposition.
    """

    def __init__(self, Xs: np.ndarray, homogeneous: bool) -> None:
        super().__init__()
        self.homogeneous = homogeneous
        self.state_shape = Xs.shape[1:]
        if homogeneous:
            axes = tuple(range(1, Xs.ndim))
            spec = np.zeros(np.fft.rfftn(Xs[0]).shape)
            for a in range(0, len(Xs), 512):
                spec += (np.abs(np.fft.rfftn(Xs[a:a + 512], axes=axes)) ** 2).sum(axis=0)
            spec /= len(Xs) * np.prod(self.state_shape)
            self.register_buffer("spec", torch.tensor(spec, dtype=torch.float32))
        else:
            d = int(np.prod(self.state_shape))
            cov = np.atleast_2d(np.cov(Xs.reshape(len(Xs), d), rowvar=False))
            lam, vec = np.linalg.eigh(cov)
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
        Progress bar (default: only on a terminal).

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

    # ----------------------------------------------------------------- checks
    def _check_params(self) -> None:
        if not (0 < self.sigma_min < self.sigma_max) or not math.isfinite(self.sigma_max):
            raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min="
                             f"{self.sigma_min}, sigma_max={self.sigma_max}")
        for name in ("batch_size", "max_steps", "eval_every", "patience"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (0 <= self.ema < 1):
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")
        if not (0 < self.validation < 0.9):
            raise ValueError(f"validation must be in (0, 0.9), got {self.validation}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be > 0 or None, got {self.max_time}")

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
    def fit(self, X) -> DenoisingScoreModel:
        """Train on samples ``X`` of shape ``(n_samples, *state)`` (time-ordered).

        Returns
        -------
        DenoisingScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        n = len(X)
        n_val = max(1, round(self.validation * n))
        if n - n_val < 2:
            raise ValueError(f"X has too few samples ({n}) for a validation split")
        state_shape = X.shape[1:]
        homogeneous = (len(state_shape) == 2) if self.homogeneous is None else \
            bool(self.homogeneous)
        train = X[: n - n_val]
        if homogeneous:
            mean = np.asarray(train.mean())
            std = np.asarray(train.std())
        else:
            mean = train.mean(axis=0)
            std = np.full(state_shape, train.std())  # one scale keeps the geometry
        if np.any(std <= 0):
            raise ValueError("X has zero variance")
        device = resolve_device(self.device)
        torch.manual_seed(self.seed)
        net = (default_network(state_shape, self.network) if isinstance(self.network, str)
               else copy.deepcopy(self.network))
        self.state_shape_ = state_shape
        self.homogeneous_ = homogeneous
        self.mean_, self.std_ = mean, std
        Xs = (X - mean) / std
        self.prior_ = _GaussianPrior(Xs[: n - n_val], homogeneous).to(device)
        net = net.to(device)
        ema_net = copy.deepcopy(net).requires_grad_(False)
        best_net = copy.deepcopy(ema_net)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        Xt = torch.tensor(Xs[: n - n_val], dtype=torch.float32, device=device)
        Xv = torch.tensor(Xs[n - n_val:], dtype=torch.float32, device=device)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator(device="cpu").manual_seed(self.seed + 1)
        lo, hi = math.log(self.sigma_min), math.log(self.sigma_max)
        # fixed validation noise: the same draws at every evaluation
        vgen = torch.Generator(device="cpu").manual_seed(self.seed + 2)
        nv = min(len(Xv), 512)
        v_sigma = torch.exp(lo + (hi - lo) * torch.rand(nv, generator=vgen)).to(device)
        v_z = torch.randn((nv, *state_shape), generator=vgen).to(device)
        hist: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}
        state = {"step": 0, "best": math.inf, "bad": 0, "elapsed": 0.0}

        ck = Path(self.checkpoint) if self.checkpoint is not None else None
        if ck is not None and ck.exists():
            blob = torch.load(ck, map_location=device, weights_only=False)
            if blob["config"] != self._config(state_shape):
                raise ValueError(f"checkpoint: {ck} was written with other parameters")
            net.load_state_dict(blob["net"])
            ema_net.load_state_dict(blob["ema"])
            best_net.load_state_dict(blob["best_net"])
            opt.load_state_dict(blob["opt"])
            rng.bit_generator.state = blob["rng"]
            gen.set_state(blob["gen"])
            hist, state = blob["history"], blob["state"]
            logger.info("resuming training from %s at step %d", ck, state["step"])

        old_threads = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(int(self.n_threads))
        bar = tqdm(total=self.max_steps, initial=state["step"], desc="DSM training",
                   disable=None if self.progress is None else not self.progress, leave=False)
        t0 = time.perf_counter() - state["elapsed"]
        running = []
        try:
            while state["step"] < self.max_steps and state["bad"] < self.patience:
                step = state["step"]
                for g in opt.param_groups:
                    g["lr"] = self.lr * min(1.0, (step + 1) / max(1, self.warmup))
                idx = torch.as_tensor(rng.integers(0, len(Xt), self.batch_size), device=device)
                x = Xt[idx]
                sigma = torch.exp(lo + (hi - lo) * torch.rand(len(x), generator=gen)).to(device)
                z = torch.randn(x.shape, generator=gen).to(device)
                loss = self._loss(net, x, sigma, z)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), self.grad_clip)
                opt.step()
                with torch.no_grad():
                    decay = min(self.ema, (1 + step) / (10 + step))
                    for pe, p in zip(ema_net.parameters(), net.parameters(), strict=True):
                        pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
                    for be, b in zip(ema_net.buffers(), net.buffers(), strict=True):
                        be.copy_(b)
                running.append(float(loss.detach()))
                state["step"] = step + 1
                bar.update(1)
                out_of_time = (self.max_time is not None
                               and time.perf_counter() - t0 > self.max_time)
                if state["step"] % self.eval_every == 0 or out_of_time or \
                        state["step"] == self.max_steps:
                    with torch.no_grad():
                        vl = float(sum(
                            self._loss(ema_net, Xv[a:a + 128], v_sigma[a:a + 128],
                                       v_z[a:a + 128]) * len(Xv[a:a + 128])
                            for a in range(0, nv, 128)) / nv)
                    hist["step"].append(state["step"])
                    hist["train_loss"].append(float(np.mean(running)))
                    hist["val_loss"].append(vl)
                    running = []
                    if vl < state["best"]:
                        state["best"], state["bad"] = vl, 0
                        best_net.load_state_dict(ema_net.state_dict())
                    else:
                        state["bad"] += 1
                    bar.set_postfix(val=f"{vl:.4f}")
                    state["elapsed"] = time.perf_counter() - t0
                    if ck is not None:
                        self._save_checkpoint(ck, state_shape, net, ema_net, best_net, opt,
                                              rng, gen, hist, state)
                if out_of_time:
                    logger.info("DSM training stopped by max_time at step %d", state["step"])
                    break
        finally:
            bar.close()
            torch.set_num_threads(old_threads)
        self.network_ = best_net.eval()
        self.history_ = hist
        self.train_time_ = time.perf_counter() - t0
        self.n_steps_ = state["step"]
        self.device_ = device
        logger.info("DSM: %d steps in %.1f s, best validation loss %.4f",
                    state["step"], self.train_time_, state["best"])
        return self

    def _config(self, state_shape) -> dict[str, Any]:
        p = {k: v for k, v in self.get_params().items()
             if k not in ("checkpoint", "progress", "device", "n_threads", "max_time")}
        if not isinstance(p["network"], str):
            p["network"] = type(p["network"]).__name__
        p["state_shape"] = tuple(state_shape)
        return p

    def _save_checkpoint(self, ck, state_shape, net, ema_net, best_net, opt, rng, gen, hist,
                         state) -> None:
        blob = {"config": self._config(state_shape), "net": net.state_dict(),
                "ema": ema_net.state_dict(), "best_net": best_net.state_dict(),
                "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                "gen": gen.get_state(), "history": hist, "state": dict(state)}
        tmp = ck.with_name(ck.name + ".tmp")
        torch.save(blob, tmp)
        tmp.replace(ck)

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
        sig = self.sigma_min if sigma is None else float(sigma)
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
        self._check_fitted()
        path = Path(path)
        state = {k: v for k, v in vars(self).items() if k not in ("network_", "prior_")}
        state["device_"] = "cpu"
        blob = {"class": type(self).__name__, "state": state,
                "network_": copy.deepcopy(self.network_).cpu(),
                "prior_": copy.deepcopy(self.prior_).cpu()}
        tmp = path.with_name(path.name + ".tmp")
        torch.save(blob, tmp)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> DenoisingScoreModel:
        """Read a model written by :meth:`save` onto ``device``."""
        blob = torch.load(path, map_location="cpu", weights_only=False)
        if blob.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {blob.get('class')}, not a {cls.__name__}")
        obj = cls.__new__(cls)
        vars(obj).update(blob["state"])
        dev = resolve_device(device)
        obj.network_ = blob["network_"].to(dev).eval()
        obj.prior_ = blob["prior_"].to(dev)
        obj.device_ = dev
        return obj
