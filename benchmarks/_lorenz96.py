"""Pieces of benchmarks/lorenz96.py: the reference metric, slow-variable scores, a sector
convolution network, and the calibration statistics."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import numpy as np
import xarray as xr

import gfdt

logger = logging.getLogger("gfdt.benchmarks")

#: The ScoreUNet1D.jl 5x4 table compares step responses at t = 0, 0.1, ..., 6.
METRIC_TMAX = 6.0


def curve_rmse(estimate: xr.DataArray, truth: xr.DataArray) -> dict:
    """The reference metric: plain RMSE of the step responses R(t) over the
    (61 lags t = 0..6) x 5 observables x 4 parameters, and per parameter.

    ``estimate`` and ``truth`` have dims (lag, observable, parameter) on the same lags.
    """
    e = estimate.sel(lag=slice(0, METRIC_TMAX + 1e-9)).transpose("lag", "observable",
                                                                  "parameter")
    t = truth.sel(lag=slice(0, METRIC_TMAX + 1e-9)).transpose("lag", "observable",
                                                               "parameter")
    if e.shape != t.shape or not np.allclose(e.lag.values, t.lag.values):
        raise ValueError(f"estimate {e.shape} and truth {t.shape} lags differ")
    d2 = (e.values - t.values) ** 2
    return {"overall": float(np.sqrt(d2.mean())),
            "per_param": {p: float(np.sqrt(d2[..., j].mean()))
                          for j, p in enumerate(t.parameter.values)}}


def static_rmse(estimate: xr.DataArray, truth: xr.DataArray) -> dict:
    """Plain RMSE over the 5 x 4 static sensitivities, and per parameter."""
    e = estimate.transpose("observable", "parameter").values
    t = truth.transpose("observable", "parameter").values
    d2 = (e - t) ** 2
    return {"overall": float(np.sqrt(d2.mean())),
            "per_param": {p: float(np.sqrt(d2[:, j].mean()))
                          for j, p in enumerate(truth.parameter.values)}}


def perturbations(system) -> list:
    """The four parameters as :class:`gfdt.ParameterPerturbation`, with the constant
    divergence of dF/dc (``-K J``) left out: a constant in the conjugate has zero
    correlation with a centred observable, but its sampling noise (the estimator centres
    the observable, not the conjugate) is ``K J = 360`` times the fluctuation of the
    observable's mean, which swamps the c column and its bootstrap errors."""
    out = []
    for p in system.sensitivity_parameters:
        if p == "c":
            out.append(gfdt.ParameterPerturbation.from_system(
                system, p, drift_divergence=lambda u: np.zeros(np.shape(u)[0])))
        else:
            out.append(gfdt.ParameterPerturbation.from_system(system, p))
    return out


class SlowScore:
    """A score of the slow marginal lifted to the full state: ``(s_X(X), 0)``.

    The GFDT conjugate ``-div dF/dtheta - dF/dtheta . s`` then keeps the slow block of the
    drift derivative (evaluated at the full state, so ``Ybar`` still enters) and drops
    the fast block: a GFDT for perturbations of the slow equations with the marginal
    score of the slow variables.
    """

    def __init__(self, model: Callable, K: int, d: int) -> None:
        self.model, self.K, self.d = model, int(K), int(d)

    def __call__(self, u: np.ndarray) -> np.ndarray:
        u = np.asarray(u, dtype=float).reshape(-1, self.d)
        out = np.zeros_like(u)
        out[:, :self.K] = np.asarray(self.model(u[:, :self.K])).reshape(-1, self.K)
        return out


def sector_cnn(K: int, channels: int, hidden: int = 48, depth: int = 4, kernel: int = 5):
    """A noise-conditional periodic 1-D convolution network over the K sectors.

    Maps ``(x, log_sigma)``, ``x`` of shape (batch, K * channels) in the state order of
    Lorenz96TwoScale (X_k first, then Y at K + j + J k; ``channels = J + 1``) or
    (batch, K) for the slow variables alone (``channels = 1``), to the shape of ``x``.
    Translation-equivariant in k (the statistics of the model are).
    """
    import torch
    from torch import nn

    from gfdt.scores.networks import GaussianFourierEmbedding

    class SectorCNN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.K, self.C = K, channels
            emb = 32
            self.embed = GaussianFourierEmbedding(emb)
            pad = kernel // 2
            conv = [nn.Conv1d(channels, hidden, kernel, padding=pad, padding_mode="circular")]
            conv += [nn.Conv1d(hidden, hidden, kernel, padding=pad, padding_mode="circular")
                     for _ in range(depth - 1)]
            self.convs = nn.ModuleList(conv)
            self.films = nn.ModuleList(nn.Linear(emb, 2 * hidden) for _ in range(depth))
            self.out = nn.Conv1d(hidden, channels, 1)
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)
            self.act = nn.SiLU()

        def to_channels(self, x):
            b = x.shape[0]
            x = x.reshape(b, -1)
            if self.C == 1:
                return x[:, None, :]
            X = x[:, :self.K]
            Y = x[:, self.K:].reshape(b, self.K, self.C - 1).transpose(1, 2)
            return torch.cat([X[:, None, :], Y], dim=1)

        def from_channels(self, h, shape):
            b = h.shape[0]
            if self.C == 1:
                return h[:, 0].reshape(shape)
            X = h[:, 0]
            Y = h[:, 1:].transpose(1, 2).reshape(b, -1)
            return torch.cat([X, Y], dim=1).reshape(shape)

        def forward(self, x, log_sigma):
            e = self.embed(log_sigma)
            h = self.to_channels(x)
            for conv, film in zip(self.convs, self.films, strict=True):
                scale, shift = film(e).chunk(2, dim=1)
                h = self.act(conv(h) * (1 + scale[..., None]) + shift[..., None])
            return self.from_channels(self.out(h), x.shape)

    return SectorCNN()


def long_run_stats(system, theta: dict, *, n_members: int, duration: float, seed: int,
                   burn_in: float = 20.0, n_workers: int | None = None
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Long-run means of the five observables at parameters ``theta`` and their standard
    errors (spread of the member means: members are independent runs)."""
    s = system.with_parameters(**theta)
    ds = gfdt.simulate(s, n_members=n_members, burn_in=burn_in, duration=duration,
                       save_interval=0.1, seed=seed, n_workers=n_workers, progress=False)
    u = ds.u.values
    obs = s.observables()
    per_member = np.stack([np.stack([f(u[m]).mean() for f in obs.values()])
                           for m in range(n_members)])
    mean = per_member.mean(0)
    se = per_member.std(0, ddof=1) / math.sqrt(n_members)
    return mean, se
