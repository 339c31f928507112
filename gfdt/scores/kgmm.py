"""KGMM: score from k-means clustering of noised samples, interpolated by a small MLP.

Noise the standardised samples, :math:`y = x + \\sigma z` with :math:`z \\sim N(0, I)`.
By Tweedie's formula the score of the noised density :math:`p_\\sigma = p * N(0,
\\sigma^2 I)` is :math:`s_\\sigma(y) = -E[z \\mid y]/\\sigma`. Averaged over a cell
:math:`C` of a partition of the noised samples, :math:`-E[z \\mid y \\in C]/\\sigma =
E[s_\\sigma(y) \\mid y \\in C]`, which the cell's mean of ``z`` estimates without bias;
for a score linear across the cell it is the score at the cell's centroid. The cells come
from bisecting k-means; a small MLP, fitted to the centroid scores weighted by the cell
sizes, interpolates them to every point. The result is :math:`s_\\sigma`, the score of
the slightly smoothed density: its bias is :math:`O(\\sigma^2)`, its noise per cell
:math:`O(1/(\\sigma\\sqrt{n_C}))`, so small ``sigma`` needs many samples per cell.

KGMM is a method for low dimension: the cells must be small in every direction, which
needs a number of clusters exponential in the dimension. :class:`KGMMScoreModel` refuses
data above ``max_dim`` coordinates (reduce the state first, e.g. to leading PCA or
Fourier modes, and learn the score of the reduced variables).
"""

from __future__ import annotations

import copy
import logging
import math
import time

import numpy as np
import torch
from torch import nn

from gfdt.scores._calibration import apply_calibration, fit_calibration
from gfdt.scores._torch_common import (
    check_positive_ints,
    progress_bar,
    seed_from,
    seeded,
    torch_threads,
)
from gfdt.scores.base import ScoreEstimator, as_samples, register_score
from gfdt.scores.dsm import resolve_device

__all__ = ["KGMMScoreModel", "bisecting_kmeans"]

logger = logging.getLogger("gfdt")


# ------------------------------------------------------------ clustering
def _two_means(Y: np.ndarray, n_iter: int) -> np.ndarray:
    """Split ``Y`` (n, d) in two by Lloyd's algorithm; True marks the second part.

    Starts from the split of the projections on the leading principal axis at the
    mean (deterministic). With two centroids the assignment is a half-space test,
    :math:`y\\cdot(c_1 - c_0) > (|c_1|^2 - |c_0|^2)/2`.
    """
    mean = Y.mean(axis=0)
    Yc = Y - mean
    cov = Yc.T @ Yc
    _, vec = np.linalg.eigh(cov)
    proj = Yc @ vec[:, -1]
    side = proj > 0
    if side.all() or not side.any():
        side = proj > np.median(proj)
    for _ in range(n_iter):
        if side.all() or not side.any():
            break
        c1, c0 = Y[side].mean(axis=0), Y[~side].mean(axis=0)
        new = Y @ (c1 - c0) > 0.5 * (c1 @ c1 - c0 @ c0)
        if np.array_equal(new, side):
            break
        side = new
    if side.all() or not side.any():  # identical points: split in halves
        side = np.zeros(len(Y), dtype=bool)
        side[len(Y) // 2:] = True
    return side


def _sse(Y: np.ndarray) -> float:
    return float(((Y - Y.mean(axis=0)) ** 2).sum())


def bisecting_kmeans(Y, n_clusters: int, n_iter: int = 20) -> np.ndarray:
    """Bisecting k-means: split the cluster of largest squared error until there are
    ``n_clusters``.

    Parameters
    ----------
    Y : array_like, shape ``(n_points, d)``
    n_clusters : int
        Number of clusters (at most the number of points).
    n_iter : int
        Lloyd iterations per split.

    Returns
    -------
    numpy.ndarray of int, shape ``(n_points,)``
        Cluster label of each point, ``0 .. n_clusters - 1`` (every cluster non-empty).
    """
    Y = np.asarray(Y, dtype=float)
    if Y.ndim != 2:
        raise ValueError(f"Y must have shape (n_points, d), got {Y.shape}")
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, (int, np.integer)) \
            or not 1 <= n_clusters <= len(Y):
        raise ValueError(f"n_clusters must be an int in [1, {len(Y)}], got {n_clusters!r}")
    members = [np.arange(len(Y))]
    sse = [_sse(Y)]
    while len(members) < n_clusters:
        c = int(np.argmax([s if len(m) > 1 else -1.0 for s, m in zip(sse, members,
                                                                        strict=True)]))
        idx = members[c]
        side = _two_means(Y[idx], n_iter)
        members[c], new = idx[~side], idx[side]
        members.append(new)
        sse[c] = _sse(Y[members[c]])
        sse.append(_sse(Y[new]))
    labels = np.empty(len(Y), dtype=np.int64)
    for k, m in enumerate(members):
        labels[m] = k
    return labels


# ------------------------------------------------------------------ model
class _MLP(nn.Module):
    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = d
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, d))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_score("kgmm")
class KGMMScoreModel(ScoreEstimator):
    """KGMM score: cluster-averaged Tweedie estimates of noised samples + an MLP.

    See the module docstring for the method. Data are standardised internally
    (per-coordinate mean, one overall scale); ``sigma`` is in these units; scores are
    returned in data units.

    Parameters
    ----------
    sigma : float
        Noise level, in units of the data's standard deviation. The score learned is
        that of the density smoothed by this noise (bias :math:`O(\\sigma^2)`).
    n_clusters : int
        Number of k-means clusters of the noised samples.
    n_noise : int
        Noised copies of each sample (more points per cluster, less noise).
    hidden, depth : int
        Width and number of hidden layers (SiLU) of the interpolating MLP.
    lr : float
        Adam learning rate of the MLP.
    n_iter : int
        Full-batch optimisation steps of the MLP.
    val_clusters : float
        Fraction of clusters held out to choose the MLP's best step (early stopping).
    max_dim : int
        Largest number of coordinates accepted (KGMM is for low dimension).
    calibrate : bool
        Apply the sum-rule calibration :math:`s_{cal} = M^{-T} s`,
        :math:`M = -E[x s^T]` on held-out samples (the last ``validation`` fraction).
    validation : float
        Fraction of samples held out for the calibration (used only with
        ``calibrate``).
    seed : int
        Seed of noise, cluster hold-out and MLP initialisation.
    device : str
        Device of the MLP fit: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``,
        ... (the small MLP is evaluated on the CPU afterwards).
    n_threads : int, optional
        torch CPU threads during training (default: torch's setting).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    centroids_ : numpy.ndarray, shape ``(n_clusters, *state)``
        Cluster centroids of the noised samples, data units.
    cluster_scores_ : numpy.ndarray, shape ``(n_clusters, *state)``
        :math:`-\\bar z_C/\\sigma` per cluster, data units.
    cluster_counts_ : numpy.ndarray of int, shape ``(n_clusters,)``
    network_ : torch.nn.Module
        The interpolating MLP (standardised units).
    mean_, std_ : numpy.ndarray
        Standardisation.
    calibration_ : numpy.ndarray or None
    history_ : dict
        ``step``, ``train_loss``, ``val_loss`` of the MLP fit.
    train_time_ : float
        Seconds spent (clustering and MLP).
    """

    def __init__(
        self,
        sigma: float = 0.1,
        n_clusters: int = 500,
        n_noise: int = 10,
        hidden: int = 64,
        depth: int = 2,
        lr: float = 3e-3,
        n_iter: int = 2000,
        val_clusters: float = 0.1,
        max_dim: int = 16,
        calibrate: bool = False,
        validation: float = 0.2,
        seed: int = 0,
        device: str = "auto",
        n_threads: int | None = None,
        progress: bool | None = None,
    ) -> None:
        self.sigma = sigma
        self.n_clusters = n_clusters
        self.n_noise = n_noise
        self.hidden = hidden
        self.depth = depth
        self.lr = lr
        self.n_iter = n_iter
        self.val_clusters = val_clusters
        self.max_dim = max_dim
        self.calibrate = calibrate
        self.validation = validation
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> None:
        check_positive_ints(self, ("n_clusters", "n_noise", "hidden", "depth", "n_iter",
                                   "max_dim"))
        if not (self.sigma > 0 and math.isfinite(self.sigma)):
            raise ValueError(f"sigma must be a positive number, got {self.sigma}")
        if not (0 < self.lr < 1):
            raise ValueError(f"lr must be in (0, 1), got {self.lr}")
        if not (0 <= self.val_clusters < 0.5):
            raise ValueError(f"val_clusters must be in [0, 0.5), got {self.val_clusters}")
        if not (0 < self.validation < 0.9):
            raise ValueError(f"validation must be in (0, 0.9), got {self.validation}")

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> KGMMScoreModel:
        """Learn the score from samples ``X`` of shape ``(n_samples, *state)``.

        Returns
        -------
        KGMMScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        n = len(X)
        state_shape = X.shape[1:]
        d = int(np.prod(state_shape))
        if d > self.max_dim:
            raise ValueError(
                f"X has {d} coordinates, more than max_dim={self.max_dim}: KGMM needs "
                "clusters small in every direction and is meant for low dimension; reduce "
                "the state first (e.g. leading PCA or Fourier modes) or raise max_dim")
        n_val = round(self.validation * n) if self.calibrate else 0
        if self.calibrate and n_val < 2:
            raise ValueError(f"X has too few samples ({n}) for a calibration split")
        n_train = n - n_val
        n_points = n_train * int(self.n_noise)
        if self.n_clusters > n_points // 2:
            raise ValueError(f"n_clusters ({self.n_clusters}) must be at most half the number "
                             f"of noised samples ({n_points})")
        t0 = time.perf_counter()
        train = X[:n_train].reshape(n_train, d)
        mean = train.mean(axis=0)
        std = np.asarray(train.std())
        if not std > 0:
            raise ValueError("X has zero variance")
        rng = np.random.default_rng(self.seed)
        Xs = (train - mean) / std
        Z = rng.standard_normal((n_points, d))
        Y = np.repeat(Xs, self.n_noise, axis=0) + self.sigma * Z
        labels = bisecting_kmeans(Y, int(self.n_clusters))
        K = int(self.n_clusters)
        counts = np.bincount(labels, minlength=K)
        centroids = np.stack([np.bincount(labels, Y[:, j], K) for j in range(d)], 1)
        zbar = np.stack([np.bincount(labels, Z[:, j], K) for j in range(d)], 1)
        centroids /= counts[:, None]
        s_c = -(zbar / counts[:, None]) / self.sigma
        logger.info("KGMM: %d noised samples in %d clusters (%d to %d points) in %.1f s",
                    n_points, K, counts.min(), counts.max(), time.perf_counter() - t0)

        device = resolve_device(self.device)
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        with seeded(seed_from(gen)):
            net = _MLP(d, self.hidden, self.depth).to(device)
        perm = rng.permutation(K)
        n_vc = round(self.val_clusters * K)
        vi, ti = perm[:n_vc], perm[n_vc:]
        f32 = dict(dtype=torch.float32, device=device)
        Ct, St = torch.tensor(centroids, **f32), torch.tensor(s_c, **f32)
        Wt = torch.tensor(counts / counts.sum(), **f32)

        def loss(idx) -> torch.Tensor:
            r = net(Ct[idx]) - St[idx]
            return (Wt[idx] * (r * r).sum(1)).sum() / Wt[idx].sum() / d

        ti_t, vi_t = torch.as_tensor(ti, device=device), torch.as_tensor(vi, device=device)
        opt = torch.optim.Adam(net.parameters(), lr=self.lr)
        hist: dict[str, list] = {"step": [], "train_loss": [], "val_loss": []}
        best, best_state = math.inf, copy.deepcopy(net.state_dict())
        every = max(1, self.n_iter // 50)
        with torch_threads(self.n_threads):
            bar = progress_bar(self.n_iter, "KGMM interpolation", self.progress)
            try:
                for step in range(1, self.n_iter + 1):
                    lt = loss(ti_t)
                    opt.zero_grad(set_to_none=True)
                    lt.backward()
                    opt.step()
                    bar.update(1)
                    if step % every == 0 or step == self.n_iter:
                        with torch.no_grad():
                            lv = float(loss(vi_t)) if n_vc else float(lt)
                        hist["step"].append(step)
                        hist["train_loss"].append(float(lt.detach()))
                        hist["val_loss"].append(lv)
                        if lv < best:
                            best, best_state = lv, copy.deepcopy(net.state_dict())
            finally:
                bar.close()
        net.load_state_dict(best_state)
        self.state_shape_ = state_shape
        self.mean_, self.std_ = mean.reshape(state_shape), std
        self.centroids_ = (mean + std * centroids).reshape(K, *state_shape)
        self.cluster_scores_ = (s_c / std).reshape(K, *state_shape)
        self.cluster_counts_ = counts
        self.network_ = net.cpu().eval()
        self.history_ = hist
        self.train_time_ = time.perf_counter() - t0
        self.calibration_ = None
        if self.calibrate:
            Xval = X[n_train:]
            self.calibration_ = fit_calibration(Xval, self.score(Xval, calibrated=False),
                                                homogeneous=False)
        return self

    # ------------------------------------------------------------------ score
    def score(self, x, calibrated: bool | None = None) -> np.ndarray:
        """:math:`\\nabla\\log p_\\sigma(x)` in data units from the interpolating MLP.

        Parameters
        ----------
        x : array_like, shape ``(batch, *state)`` or the state shape
        calibrated : bool, optional
            Apply the sum-rule calibration (default: when fitted with ``calibrate``).

        Returns
        -------
        numpy.ndarray, same shape as ``x``
        """
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        if calibrated is None:
            calibrated = self.calibration_ is not None
        if calibrated and self.calibration_ is None:
            raise ValueError("calibrated=True: the model was fitted without calibrate")
        b = len(arr)
        xs = ((arr - self.mean_) / self.std_).reshape(b, -1)
        out = np.empty_like(xs)
        with torch.no_grad():
            for a in range(0, b, 8192):
                xt = torch.tensor(xs[a:a + 8192], dtype=torch.float32)
                out[a:a + 8192] = self.network_(xt).numpy()
        out = (out / self.std_).reshape(arr.shape)
        if calibrated:
            out = apply_calibration(out, self.calibration_, homogeneous=False)
        return out[0] if single else out
