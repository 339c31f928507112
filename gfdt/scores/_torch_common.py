"""Pieces shared by the torch score estimators (DSM, HSM, HOLD, kernel, KGMM).

Private: the device choice (public as :func:`gfdt.scores.dsm.resolve_device`), parameter
checks, standardisation, thread and RNG scoping, the progress bar,
the EMA update, the running-loss record of a training loop, and torch save/load of
estimators that hold modules.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from gfdt._atomic import atomic_path
from gfdt.scores.base import load_blob

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


# ------------------------------------------------------------------ checks
def check_positive_ints(obj, names: Sequence[str]) -> None:
    """Raise ValueError naming the first attribute of ``obj`` in ``names`` that is not an
    int >= 1 (bools are refused)."""
    for name in names:
        v = getattr(obj, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")


def check_max_time(max_time) -> None:
    """``max_time`` is None or > 0."""
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be > 0 or None, got {max_time}")


def check_network(network) -> None:
    """``network`` is a name or a torch module (TypeError otherwise)."""
    if not isinstance(network, (str, nn.Module)):
        raise TypeError(f"network must be a name or a torch Module, got "
                        f"{type(network).__name__}")


# ------------------------------------------------------------------ data
def is_homogeneous(state_shape: tuple[int, ...], homogeneous: bool | None) -> bool:
    """The ``homogeneous`` parameter resolved: default True for 2-D states."""
    return (len(state_shape) == 2) if homogeneous is None else bool(homogeneous)


def standardise(X: np.ndarray, homogeneous: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, std, Xs)``: one scale for every coordinate (it keeps the geometry);
    the mean is scalar for homogeneous fields, per coordinate otherwise.

    Parameters
    ----------
    X : numpy.ndarray, shape ``(n_samples, *state)``
    homogeneous : bool

    Returns
    -------
    mean : numpy.ndarray, shape ``()`` or the state shape
    std : numpy.ndarray, shape ``()`` or the state shape
    Xs : numpy.ndarray, shape of ``X``
        ``(X - mean) / std``.
    """
    if homogeneous:
        mean = np.asarray(X.mean())
        std = np.asarray(X.std())
    else:
        mean = X.mean(axis=0)
        std = np.full(X.shape[1:], X.std())
    if np.any(std <= 0):
        raise ValueError("X has zero variance")
    return mean, std, (X - mean) / std


# ------------------------------------------------------------------ torch state
@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch CPU threads (None: unchanged); restore after."""
    old_threads = torch.get_num_threads()
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for the block only: the caller's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seed_from(gen: torch.Generator) -> int:
    """A seed for :func:`seeded` drawn from ``gen`` (one draw)."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=gen))


def progress_bar(total: int, desc: str, progress: bool | None, **kwargs) -> tqdm:
    """tqdm bar that shows on a terminal by default; ``progress`` forces it on or off."""
    return tqdm(total=total, desc=desc, leave=False,
                disable=None if progress is None else not progress, **kwargs)


# ------------------------------------------------------------------ optimisation
def warmup_lr(opt: torch.optim.Optimizer, lr: float, step: int, warmup: int) -> None:
    """Linear warm-up: learning rate ``lr * min(1, (step + 1) / warmup)``."""
    for grp in opt.param_groups:
        grp["lr"] = lr * min(1.0, (step + 1) / max(1, warmup))


@torch.no_grad()
def ema_update(ema_net: nn.Module, net: nn.Module, ema: float, step: int, *,
               buffers: bool = True) -> None:
    """EMA of the weights with warm-up decay ``min(ema, (1 + step) / (10 + step))``;
    ``buffers``: copy the buffers too."""
    decay = min(ema, (1 + step) / (10 + step))
    for pe, p in zip(ema_net.parameters(), net.parameters(), strict=True):
        pe.mul_(decay).add_(p.detach(), alpha=1 - decay)
    if buffers:
        for be, b in zip(ema_net.buffers(), net.buffers(), strict=True):
            be.copy_(b)


class TrainingRecord:
    """Progress bar, wall clock and running means of a fixed-length training loop.

    ``history`` gets ``step`` and one list per name of ``keys``: the means of the values
    passed to :meth:`update` since the previous record, recorded every ``n_iter // 50``
    steps and at the last step.

    Parameters
    ----------
    name : str
        Method name for the bar and the log (``"HSM"``: bar "HSM training").
    n_iter : int
        Steps planned.
    keys : sequence of str
        Recorded quantities; the first is shown on the bar (as ``postfix``) and logged.
    postfix : str
        Label of the first quantity on the bar.
    max_time : float, optional
        Wall-clock budget in seconds.
    progress : bool, optional
    """

    def __init__(self, name: str, n_iter: int, keys: Sequence[str], postfix: str,
                 max_time: float | None, progress: bool | None) -> None:
        self.name, self.n_iter, self.keys = name, n_iter, tuple(keys)
        self.postfix, self.max_time = postfix, max_time
        self.history: dict[str, list] = {"step": [], **{k: [] for k in self.keys}}
        self._running: dict[str, list[float]] = {k: [] for k in self.keys}
        self._record = max(1, n_iter // 50)
        self.bar = progress_bar(n_iter, f"{name} training", progress)
        self.t0 = time.perf_counter()
        self.step = 0
        self.train_time = 0.0

    def update(self, **values: float) -> bool:
        """Count one step with its ``values``; True when ``max_time`` is spent."""
        for k in self.keys:
            self._running[k].append(values[k])
        self.step += 1
        self.bar.update(1)
        if self.step % self._record == 0 or self.step == self.n_iter:
            self.history["step"].append(self.step)
            for k in self.keys:
                self.history[k].append(float(np.mean(self._running[k])))
                self._running[k] = []
            self.bar.set_postfix(**{self.postfix: f"{self.history[self.keys[0]][-1]:.4f}"})
        if self.max_time is not None and time.perf_counter() - self.t0 > self.max_time:
            logger.info("%s training stopped by max_time at step %d", self.name, self.step)
            return True
        return False

    def close(self) -> None:
        """Close the bar and stop the clock (``train_time``)."""
        self.bar.close()
        self.train_time = time.perf_counter() - self.t0

    def log_summary(self) -> None:
        """Log steps, time and the last recorded value of the first quantity."""
        first = self.history[self.keys[0]]
        logger.info("%s: %d steps in %.1f s, final %s %.4f", self.name, self.step,
                    self.train_time, self.keys[0].replace("_", " "),
                    first[-1] if first else float("nan"))


# ------------------------------------------------------------------ persistence
def save_torch(est, path: str | Path, modules: Sequence[str]) -> None:
    """Write a fitted estimator with torch: its attributes, the ``modules`` on the CPU.

    The blob is ``{"class", "state", *modules}``; ``state`` holds every other attribute
    with ``device_ = "cpu"``. A module attribute may be None.
    """
    est._check_fitted()
    path = Path(path)
    state = {k: v for k, v in vars(est).items() if k not in modules}
    state["device_"] = "cpu"
    blob = {"class": type(est).__name__, "state": state}
    for name in modules:
        m = getattr(est, name)
        blob[name] = None if m is None else copy.deepcopy(m).cpu()
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def load_torch(cls, path: str | Path, device: str | torch.device, modules: Sequence[str],
               eval_modules: Sequence[str] = ()):
    """Read an estimator written by :func:`save_torch` onto ``device``; the modules of
    ``eval_modules`` are put in evaluation mode."""
    blob = load_blob(path, cls, lambda p: torch.load(p, map_location="cpu",
                                                     weights_only=False))
    obj = cls.__new__(cls)
    vars(obj).update(blob["state"])
    dev = resolve_device(device)
    for name in modules:
        m = blob[name]
        if m is not None:
            m = m.to(dev)
            if name in eval_modules:
                m = m.eval()
        setattr(obj, name, m)
    obj.device_ = dev
    return obj
