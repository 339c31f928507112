"""What the torch score estimators share: :class:`TorchScoreEstimator` and its helpers.

Device choice, torch CPU threads, seed streams, standardisation and the Gaussian
statistics of the data (one helper for every estimator), batched evaluation in
standardised units, and torch save/load of estimators that hold modules.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gfdt._atomic import atomic_path
from gfdt.scores.base import check_flag, check_number, load_blob

__all__ = ["TorchScoreEstimator", "default_threads", "gaussian_statistics", "is_homogeneous",
           "resolve_device", "seeded", "stream_generator", "stream_seed", "torch_threads",
           "training_config", "training_split"]


# ------------------------------------------------------------------ device, threads
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"``: CUDA when available, else CPU; otherwise ``torch.device(device)``.

    Raises
    ------
    ValueError
        An unknown device, or a CUDA device on a machine without one (the message says
        so and suggests ``device="auto"`` or ``"cpu"``).
    """
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or a torch device, got "
                         f"{device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={device!r}: this machine has no usable CUDA GPU (or "
                             "torch was built without CUDA); use device='auto' or 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device={device!r}: only {torch.cuda.device_count()} CUDA "
                             "device(s) are visible")
    return dev


def default_threads() -> int:
    """torch CPU threads used when ``n_threads=None``.

    One thread on machines with at most 2 CPUs, else half the CPUs (at most torch's own
    setting): the training runs beside numpy, data reads and other processes, and torch's
    default of one thread per core oversubscribes small machines (KGMM: 90 s with the
    default against 4 s with one thread on 2 loaded cores).
    """
    n_cpu = os.cpu_count() or 1
    if n_cpu <= 2:
        return 1
    return max(1, min(torch.get_num_threads(), n_cpu // 2))


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` torch CPU threads (None: :func:`default_threads`);
    restore the caller's setting after."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(default_threads() if n_threads is None else int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)


# ------------------------------------------------------------------ seeds
def stream_seed(seed: int, *key: int) -> int:
    """A 64-bit seed of the stream ``SeedSequence(seed, spawn_key=key)``.

    Every random draw of a training is keyed by the seed and what it is for (``(0,)``:
    initialisation, ``(1, epoch)``: batch order, ``(2, step)``: the noise of a step,
    ``(3,)``: the validation noise), so a resumed training is bit-identical.
    """
    ss = np.random.SeedSequence(int(seed), spawn_key=tuple(int(k) for k in key))
    return int(ss.generate_state(1, np.uint64)[0])


def stream_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU torch generator seeded with :func:`stream_seed`."""
    return torch.Generator(device="cpu").manual_seed(stream_seed(seed, *key))


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for the block only: the caller's global RNG is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


# ------------------------------------------------------------------ statistics
def is_homogeneous(state_shape: tuple[int, ...], homogeneous: bool | None) -> bool:
    """The ``homogeneous`` parameter resolved: default True for 2-D states."""
    return (len(state_shape) == 2) if homogeneous is None else bool(homogeneous)


class _Serial:
    """A one-process stand-in for :class:`gfdt.scores.training.ProcessGroup`."""

    rank, world = 0, 1

    @staticmethod
    def allreduce(a: np.ndarray) -> np.ndarray:
        return np.asarray(a, dtype=float)


def gaussian_statistics(read: Callable[[int, int], np.ndarray] | np.ndarray, n: int,
                        homogeneous: bool, chunk: int = 512, group=None
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardisation and Gaussian statistics of the first ``n`` snapshots.

    The one place where every estimator gets its mean, scale, covariance or spectrum.
    Two passes over chunks of ``chunk`` snapshots; in a process group each rank sums its
    share of the chunks and the sums are all-reduced.

    Parameters
    ----------
    read : callable or numpy.ndarray
        ``read(start, stop)`` returns snapshots ``start <= i < stop``, shape
        ``(k, *state)``; or an array of shape ``(n_samples, *state)``.
    n : int
        Snapshots used (the first ``n``).
    homogeneous : bool
        Periodic translation-invariant fields: scalar mean, power spectrum.
    chunk : int
    group : ProcessGroup, optional

    Returns
    -------
    mean : numpy.ndarray
        Shape ``()`` (homogeneous) or the state shape.
    std : numpy.ndarray
        One scale for every coordinate, :math:`\\sqrt{E(x - \\bar x)^2}` about the grand
        mean: shape ``()`` (homogeneous) or the state shape (it keeps the geometry).
    stat : numpy.ndarray
        In standardised units: the power spectrum :math:`E|\\hat x_k|^2 / n_{cells}`
        (rfftn layout, homogeneous) or the covariance ``(d, d)`` (normalised by ``n - 1``).

    Raises
    ------
    ValueError
        NaN or inf in the data, or zero variance (constant data).
    """
    if isinstance(read, np.ndarray):
        arr = read
        read = lambda a, b: arr[a:b]  # noqa: E731
    group = group or _Serial()
    first = read(0, 1)
    shape = tuple(first.shape[1:])
    d = int(np.prod(shape))
    mine = list(range(0, n, chunk))[group.rank::group.world]
    s1 = np.zeros(shape)
    for a in mine:
        s1 += read(a, min(a + chunk, n)).sum(axis=0)
    comp_mean = group.allreduce(s1) / n
    if not np.all(np.isfinite(comp_mean)):  # NaN and inf survive the sums: every rank sees it
        raise ValueError("X contains NaN or inf")
    gmean = float(comp_mean.mean())
    axes = tuple(range(1, len(shape) + 1))
    acc = np.zeros(np.fft.rfftn(np.zeros(shape)).shape) if homogeneous else np.zeros((d, d))
    ss = 0.0
    for a in mine:
        x = read(a, min(a + chunk, n))
        ss += float(((x - gmean) ** 2).sum())
        if homogeneous:
            acc += (np.abs(np.fft.rfftn(x - gmean, axes=axes)) ** 2).sum(axis=0)
        else:
            xc = (x - comp_mean).reshape(len(x), d)
            acc += xc.T @ xc
    ss = float(group.allreduce(np.array([ss]))[0])
    acc = group.allreduce(acc)
    scale = math.sqrt(ss / (n * d))
    if not scale > 0:
        raise ValueError("X has zero variance (constant data): a score is not defined")
    if homogeneous:
        return np.asarray(gmean), np.asarray(scale), acc / (n * d) / scale**2
    return comp_mean, np.full(shape, scale), acc / (n - 1) / scale**2


def training_split(n: int, validation: float) -> int:
    """Training samples of ``n`` when the last ``validation`` fraction is held out (at
    least 2 held out when ``validation > 0``)."""
    n_val = max(2, round(validation * n)) if validation > 0 else 0
    if n - n_val < 2:
        raise ValueError(f"X has too few samples ({n}) for a validation split")
    return n - n_val


def training_config(est, state_shape: tuple[int, ...], n_samples: int) -> dict:
    """What a checkpoint must have been written with: the parameters that shape the
    training (modules by their class name), the data's state shape and size."""
    p = {k: v for k, v in est.get_params().items()
         if k not in ("checkpoint", "progress", "device", "n_threads", "max_time",
                      "distributed", "chunk_size")}
    for k, v in p.items():
        if isinstance(v, nn.Module):
            p[k] = type(v).__name__
    p["state_shape"] = tuple(state_shape)
    p["n_samples"] = int(n_samples)
    return p


# ------------------------------------------------------------------ the base class
class TorchScoreEstimator:
    """What the torch score estimators (DSM, HSM, HOLD, kernel, KGMM) share.

    A mixin placed before :class:`~gfdt.scores.base.ScoreEstimator` in the bases (it is
    not an estimator itself, so registries and checks that walk the subclasses of
    ``ScoreEstimator`` do not see it). Subclasses list the attributes that hold torch
    modules in ``_modules`` (saved with torch, moved to the device on load; those in
    ``_eval_modules`` are put in evaluation mode) and implement :meth:`score`.
    Parameters the subclasses share keep one name and meaning: ``max_steps``,
    ``batch_size``, ``lr``, ``seed``, ``device``, ``n_threads``, ``max_time``,
    ``progress``.

    ``n_threads=None`` uses :func:`default_threads` (1 thread on machines with at most
    2 CPUs, else half the CPUs).
    """

    _modules: tuple[str, ...] = ()
    _eval_modules: tuple[str, ...] = ()

    # ------------------------------------------------------------- checks
    def _check_common(self, min_steps: int = 1) -> None:
        """Checks of the shared parameters a subclass has (errors name them);
        ``max_steps`` must be at least ``min_steps``."""
        p = vars(self)
        optional = getattr(self, "_optional_params", ())
        for name in ("max_steps", "batch_size", "eval_every", "patience", "chunk_size"):
            if name in p:
                check_number(p[name], name, low=min_steps if name == "max_steps" else 1,
                             integer=True, optional=name in optional)
        if "validation" in p:
            check_number(self.validation, "validation", low=0, high=0.9, high_open=True)
        if "warmup" in p:
            check_number(self.warmup, "warmup", low=0, integer=True)
        if "lr" in p:
            check_number(self.lr, "lr", low=0, high=1, low_open=True, high_open=True)
        if "ema" in p:
            check_number(self.ema, "ema", low=0, high=1, high_open=True)
        if "grad_clip" in p:
            check_number(self.grad_clip, "grad_clip", low=0, low_open=True)
        if "seed" in p:
            check_number(self.seed, "seed", low=0, integer=True)
        if "n_threads" in p:
            check_number(self.n_threads, "n_threads", low=1, integer=True, optional=True)
        if "max_time" in p:
            check_number(self.max_time, "max_time", low=0, low_open=True, optional=True)
        if "progress" in p:
            check_flag(self.progress, "progress", optional=True)
        if "homogeneous" in p:
            check_flag(self.homogeneous, "homogeneous", optional=True)
        if "checkpoint" in p and self.checkpoint is not None and \
                not isinstance(self.checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a path or None, got "
                            f"{type(self.checkpoint).__name__}")
        if "device" in p:
            resolve_device(self.device)

    # ------------------------------------------------------------- evaluation
    def _standardised(self, x) -> tuple[np.ndarray, bool]:
        """``x`` checked and standardised, shape ``(batch, *state)``; one state or not."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        return (arr - self.mean_) / self.std_, single

    def _batched(self, fn: Callable[[torch.Tensor], torch.Tensor], xs: np.ndarray,
                 batch_size: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | None = None) -> np.ndarray:
        """``fn`` on ``xs`` in batches of ``batch_size`` states, without gradients;
        float64 numpy out."""
        batch_size = check_number(batch_size, "batch_size", low=1, integer=True)
        device = self.device_ if device is None else device
        out = np.empty_like(xs)
        with torch.no_grad():
            for a in range(0, len(xs), batch_size):
                xt = torch.tensor(xs[a:a + batch_size], dtype=dtype, device=device)
                out[a:a + batch_size] = fn(xt).cpu().numpy()
        return out

    # ------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted estimator to ``path`` (torch file; modules on the CPU)."""
        save_torch(self, path, self._modules)

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> TorchScoreEstimator:
        """Read an estimator written by :meth:`save` onto ``device``."""
        return load_torch(cls, path, device, cls._modules, cls._eval_modules)


def save_torch(est, path: str | Path, modules: Sequence[str]) -> None:
    """Write a fitted estimator with torch: its attributes, the ``modules`` on the CPU.

    The blob is ``{"class", "state", *modules}``; ``state`` holds every other attribute
    with ``device_ = "cpu"``. A module attribute may be None.
    """
    est._check_fitted()
    state = {k: v for k, v in vars(est).items() if k not in modules}
    state["device_"] = "cpu"
    blob = {"class": type(est).__name__, "state": state}
    for name in modules:
        m = getattr(est, name)
        blob[name] = None if m is None else copy.deepcopy(m).cpu()
    with atomic_path(Path(path)) as tmp:
        torch.save(blob, tmp)


def load_torch(cls, path: str | Path, device: str | torch.device, modules: Sequence[str],
               eval_modules: Sequence[str] = ()):
    """Read an estimator written by :func:`save_torch` onto ``device``; the modules of
    ``eval_modules`` are put in evaluation mode. A truncated or corrupt file raises a
    ValueError naming ``path``."""
    blob = load_blob(path, cls, lambda p: torch.load(p, map_location="cpu",
                                                     weights_only=False))
    obj = cls.__new__(cls)
    vars(obj).update(blob["state"])
    dev = resolve_device(device)
    for name in modules:
        m = blob.get(name)
        if isinstance(m, nn.Module):
            m = m.to(dev)
            if name in eval_modules:
                m = m.eval()
        setattr(obj, name, m)
    obj.device_ = dev
    return obj
