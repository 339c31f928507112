"""Shared pieces of the score-estimator tests: a 2-D Gaussian mixture with a closed-form
score, and a fixture that runs torch on one thread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

# a 2-D Gaussian mixture with a closed-form score
MEANS = np.array([[-1.5, 0.0], [1.5, 0.5]])
STDS = np.array([0.5, 0.7])
WEIGHTS = np.array([0.4, 0.6])


def mixture_samples(n: int, seed) -> np.ndarray:
    """``n`` samples of the mixture; ``seed``: anything :func:`numpy.random.default_rng`
    takes."""
    rng = np.random.default_rng(seed)
    comp = rng.choice(2, size=n, p=WEIGHTS)
    return MEANS[comp] + STDS[comp, None] * rng.standard_normal((n, 2))


def mixture_score(x: np.ndarray) -> np.ndarray:
    """Exact score of the mixture at ``x`` of shape ``(n, 2)``."""
    d2 = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)  # (n, 2)
    logw = np.log(WEIGHTS) - 2 * np.log(STDS) - d2 / (2 * STDS**2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    comp_scores = -(x[:, None, :] - MEANS[None]) / STDS[None, :, None] ** 2
    return (w[..., None] * comp_scores).sum(axis=1)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Score evaluations on one thread (the machine is shared; 2 threads thrash).

    Autouse in every test module that imports it.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
