"""DSM's training task (noise levels and the loss for the trainer) and small helpers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch

__all__ = ["DSMTask", "read_rows", "strided"]


def strided(start: int, stop: int, n: int) -> np.ndarray:
    """At most ``n`` indices spread evenly over ``start <= i < stop``."""
    return np.unique(np.linspace(start, stop - 1, min(n, stop - start)).astype(np.int64))


def read_rows(data, idx: np.ndarray, chunk: int) -> np.ndarray:
    """Snapshots ``idx`` of a :class:`~gfdt.scores.data.SnapshotDataset`, read at most
    ``chunk`` at a time (lazy data are never read whole)."""
    return np.concatenate([data.read(idx[a:a + chunk]) for a in range(0, len(idx), chunk)])


class DSMTask:
    """DSM for the trainer: noise levels log-uniform in ``[sigma_min, sigma_max]``, the
    sigma^2-weighted denoising loss (through the estimator's ``_loss``)."""

    def __init__(self, est, state_shape: tuple[int, ...]) -> None:
        self.est, self.state_shape = est, tuple(state_shape)
        self.lo, self.hi = math.log(est.sigma_min_), math.log(est.sigma_max_)

    def noise(self, gen: torch.Generator, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        sigma = torch.exp(self.lo + (self.hi - self.lo) * torch.rand(n, generator=gen))
        return sigma, torch.randn((n, *self.state_shape), generator=gen)

    def loss(self, net, x, sigma, z) -> torch.Tensor:
        return self.est._loss(net, x, sigma, z)

    def validation_by_level(self, net, x, sigma, z, n_bins: int = 4) -> dict:
        """Validation loss in ``n_bins`` log-spaced bins of the noise level."""
        edges = np.geomspace(self.est.sigma_min_, self.est.sigma_max_, n_bins + 1)
        out = {}
        for lo, hi in itertools.pairwise(edges):
            sel = (sigma >= lo) & (sigma <= hi)
            if int(sel.sum()) == 0:
                continue
            out[f"{lo:.3g}-{hi:.3g}"] = float(self.est._loss(net, x[sel], sigma[sel], z[sel]))
        return out
