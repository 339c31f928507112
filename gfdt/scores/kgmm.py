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

import logging
import time

import numpy as np
import torch
from torch import nn

from gfdt.scores._calibration import apply_calibration, fit_calibration
from gfdt.scores._torch import (
    TorchScoreEstimator,
    gaussian_statistics,
    resolve_device,
    seeded,
    stream_seed,
    torch_threads,
    training_split,
)
from gfdt.scores.base import ScoreEstimator, as_samples, check_number, register_score
from gfdt.scores.networks import PlainMLP
from gfdt.scores.quality import QualityMixin
from gfdt.scores.training import Trainer

__all__ = ["CELL_POINTS", "MAX_CLUSTERS", "KGMMScoreModel", "bisecting_kmeans",
           "default_clusters"]

#: Noised training samples per cluster of the default cluster count.
CELL_POINTS = 300
#: Largest default cluster count.
MAX_CLUSTERS = 500


def default_clusters(n_points: int) -> int:
    """The default number of clusters for ``n_points`` noised training samples: one per
    :data:`CELL_POINTS`, at least 2, at most :data:`MAX_CLUSTERS` and half the points."""
    return int(max(2, min(MAX_CLUSTERS, n_points // CELL_POINTS, n_points // 2)))

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
class _CentroidFit:
    """The interpolating MLP's fit for the trainer: the "samples" are cluster indices;
    the loss is the cluster-size-weighted squared error to the centroid scores."""

    def __init__(self, C: torch.Tensor, S: torch.Tensor, W: torch.Tensor) -> None:
        self.C, self.S, self.W = C, S, W

    def noise(self, gen: torch.Generator, n: int) -> tuple:
        return ()

    def loss(self, net: nn.Module, idx: torch.Tensor) -> torch.Tensor:
        r = net(self.C[idx]) - self.S[idx]
        w = self.W[idx]
        return (w * (r * r).sum(1)).sum() / w.sum() / self.C.shape[1]


@register_score("kgmm")
class KGMMScoreModel(QualityMixin, TorchScoreEstimator, ScoreEstimator):
    """KGMM score: cluster-averaged Tweedie estimates of noised samples + an MLP.

    See the module docstring for the method. Data are standardised internally
    (per-coordinate mean, one overall scale); ``sigma`` is in these units; scores are
    returned in data units.

    Parameters
    ----------
    sigma : float
        Noise level, in units of the data's standard deviation. The score learned is
        that of the density smoothed by this noise (bias :math:`O(\\sigma^2)`).
    n_clusters : int, optional
        Number of k-means clusters of the noised samples. Default (None): one cluster
        per :data:`CELL_POINTS` noised training samples, at most :data:`MAX_CLUSTERS`
        (the cell's Tweedie average has noise :math:`1/(\\sigma\\sqrt{n_C})` in units of
        the data's scale: about 0.6 at 300 points and ``sigma`` = 0.1; with fewer points
        per cell the cluster scores are mostly noise and the interpolated score can lose
        to the Gaussian). On the double-well field of ``benchmarks/climate_grid.py``
        (2 EOFs of 750 samples, five seeds) 500 clusters of 15 points gave 0.27-0.99
        times the Gaussian's response error, the rule's 22 clusters 0.25-0.49
        (docs: estimators).
    n_noise : int
        Noised copies of each sample (more points per cluster, less noise).
    hidden, depth : int
        Width and number of hidden layers (SiLU) of the interpolating MLP.
    lr : float
        Adam learning rate of the MLP.
    max_steps : int
        Full-batch optimisation steps of the MLP.
    val_clusters : float
        Fraction of clusters held out to choose the MLP's best step (early stopping).
    max_dim : int
        Largest number of coordinates accepted (KGMM is for low dimension).
    calibrate : bool
        Apply the sum-rule calibration :math:`s_{cal} = M^{-T} s`,
        :math:`M = -E[x s^T]` on held-out samples (the last ``validation`` fraction).
    validation : float
        Fraction of samples (the last ones) held out for the quality report and the
        calibration.
    seed : int
        Seed of noise, cluster hold-out and MLP initialisation.
    device : str
        Device of the MLP fit: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``,
        ... (the small MLP is evaluated on the CPU afterwards).
    n_threads : int, optional
        torch CPU threads during training (default:
        :func:`~gfdt.scores._torch.default_threads`: one thread on machines with at most
        2 CPUs, where torch's default of one per core made a fit 20x slower).
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    centroids_ : numpy.ndarray, shape ``(n_clusters_, *state)``
        Cluster centroids of the noised samples, data units.
    cluster_scores_ : numpy.ndarray, shape ``(n_clusters_, *state)``
        :math:`-\\bar z_C/\\sigma` per cluster, data units.
    cluster_counts_ : numpy.ndarray of int, shape ``(n_clusters_,)``
    n_clusters_ : int
        The number of clusters used (``n_clusters`` or the default rule).
    network_ : torch.nn.Module
        The interpolating MLP (standardised units).
    mean_, std_ : numpy.ndarray
        Standardisation.
    calibration_ : numpy.ndarray or None
    history_ : dict
        ``step``, ``train_loss``, ``val_loss`` of the MLP fit.
    train_time_ : float
        Seconds spent (clustering and MLP).
    quality_ : ScoreQuality
        Held-out quality report (see :meth:`summary`).
    """

    _modules = ("network_",)
    _eval_modules = ("network_",)

    def __init__(
        self,
        sigma: float = 0.1,
        n_clusters: int | None = None,
        n_noise: int = 10,
        hidden: int = 64,
        depth: int = 2,
        lr: float = 3e-3,
        max_steps: int = 2000,
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
        self.max_steps = max_steps
        self.val_clusters = val_clusters
        self.max_dim = max_dim
        self.calibrate = calibrate
        self.validation = validation
        self.seed = seed
        self.device = device
        self.n_threads = n_threads
        self.progress = progress

    def _check_params(self) -> None:
        self._check_common()
        for name in ("n_noise", "hidden", "depth", "max_dim"):
            check_number(getattr(self, name), name, low=1, integer=True)
        check_number(self.n_clusters, "n_clusters", low=1, integer=True, optional=True)
        check_number(self.sigma, "sigma", low=0, low_open=True)
        check_number(self.val_clusters, "val_clusters", low=0, high=0.5, high_open=True)
        check_number(self.validation, "validation", low=0, high=0.9, low_open=True,
                     high_open=True)

    # -------------------------------------------------------------------- fit
    def fit(self, X) -> KGMMScoreModel:
        """Learn the score from samples ``X`` of shape ``(n_samples, *state)`` (the last
        ``validation`` fraction is held out).

        Returns
        -------
        KGMMScoreModel
            ``self``, fitted.
        """
        self._check_params()
        X = as_samples(X)
        n, state_shape = len(X), X.shape[1:]
        d = int(np.prod(state_shape))
        if d > self.max_dim:
            raise ValueError(
                f"X has {d} coordinates, more than max_dim={self.max_dim}: KGMM needs "
                "clusters small in every direction and is meant for low dimension; reduce "
                "the state first (e.g. leading PCA or Fourier modes) or raise max_dim")
        n_train = training_split(n, self.validation)
        n_points = n_train * int(self.n_noise)
        if self.n_clusters is not None and self.n_clusters > n_points // 2:
            raise ValueError(f"n_clusters ({self.n_clusters}) must be at most half the number "
                             f"of noised samples ({n_points})")
        if n_points < 4:
            raise ValueError(f"X has {n} samples: too few for KGMM ({n_train} for training "
                             f"x n_noise={self.n_noise} noised points, at least 4 needed)")
        t0 = time.perf_counter()
        mean, std, stat = gaussian_statistics(X.reshape(n, d), n_train, homogeneous=False)
        std = np.asarray(std.flat[0])  # one scale (a scalar)
        rng = np.random.default_rng(self.seed)
        Xs = (X[:n_train].reshape(n_train, d) - mean) / std
        Z = rng.standard_normal((n_points, d))
        Y = np.repeat(Xs, self.n_noise, axis=0) + self.sigma * Z
        K = int(self.n_clusters) if self.n_clusters is not None else default_clusters(n_points)
        labels = bisecting_kmeans(Y, K)
        counts = np.bincount(labels, minlength=K)
        centroids = np.stack([np.bincount(labels, Y[:, j], K) for j in range(d)], 1)
        zbar = np.stack([np.bincount(labels, Z[:, j], K) for j in range(d)], 1)
        centroids /= counts[:, None]
        s_c = -(zbar / counts[:, None]) / self.sigma
        logger.info("KGMM: %d noised samples in %d clusters (%d to %d points) in %.1f s",
                    n_points, K, counts.min(), counts.max(), time.perf_counter() - t0)
        net = self._fit_network(centroids, s_c, counts, rng)
        self.state_shape_ = state_shape
        self.homogeneous_ = False
        self.mean_, self.std_ = mean.reshape(state_shape), std
        self.centroids_ = (mean + std * centroids).reshape(K, *state_shape)
        self.cluster_scores_ = (s_c / std).reshape(K, *state_shape)
        self.cluster_counts_ = counts
        self.n_clusters_ = K
        self.network_ = net.cpu().eval()
        self.device_ = torch.device("cpu")
        self.train_time_ = time.perf_counter() - t0
        self.calibration_ = None
        Xval = X[n_train:]
        if self.calibrate:
            self.calibration_ = fit_calibration(Xval, self.score(Xval, calibrated=False),
                                                homogeneous=False)
        self._assess(Xval, stat, self.sigma, False)
        return self

    def _fit_network(self, centroids: np.ndarray, s_c: np.ndarray, counts: np.ndarray,
                     rng: np.random.Generator) -> nn.Module:
        """The interpolating MLP, fitted full-batch to the centroid scores by the trainer
        (best step on the held-out clusters)."""
        K, d = centroids.shape
        device = resolve_device(self.device)
        with seeded(stream_seed(self.seed, 0)):
            net = PlainMLP(d, d, self.hidden, self.depth).to(device)
        perm = rng.permutation(K)
        n_vc = round(self.val_clusters * K)
        vi, ti = perm[:n_vc], perm[n_vc:]
        f32 = dict(dtype=torch.float32, device=device)
        task = _CentroidFit(torch.tensor(centroids, **f32), torch.tensor(s_c, **f32),
                            torch.tensor(counts / counts.sum(), **f32))
        ti_t = torch.as_tensor(ti, device=device)
        trainer = Trainer(max_steps=self.max_steps, batch_size=len(ti), lr=self.lr,
                          seed=self.seed, eval_every=max(1, self.max_steps // 50),
                          progress=self.progress, name="KGMM interpolation", device=device,
                          val_batch=max(1, n_vc))
        with torch_threads(self.n_threads):
            res = trainer.fit(task, net, lambda idx: ti_t[torch.as_tensor(idx, device=device)],
                              len(ti), torch.as_tensor(vi, device=device) if n_vc else None)
        self.history_ = res.history
        self.n_steps_ = res.n_steps
        return res.net

    def _score_std(self, xs: np.ndarray) -> np.ndarray:
        """The (calibrated, when fitted so) score in standardised units."""
        return self.score(self.mean_ + self.std_ * xs) * self.std_

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
