"""Score functions may return torch tensors (even ones that require grad): the GFDT and
the samplers take their values; non-numeric output is a TypeError naming the score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import gfdt
from gfdt.sampling import langevin
from gfdt.scores.base import score_output


def test_tensor_requiring_grad_gives_the_same_response():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 400, 2))
    w = torch.ones(1, requires_grad=True)

    def torch_score(batch):
        return -w * torch.as_tensor(batch)  # requires grad

    kw = dict(max_lag=3, bootstrap=False, homogeneous=False)
    a = gfdt.ResponseEstimator(score=torch_score, **kw).fit(list(x))
    b = gfdt.ResponseEstimator(score=lambda batch: -batch, **kw).fit(list(x))
    np.testing.assert_array_equal(a.response_raw_.values, b.response_raw_.values)


def test_langevin_accepts_a_tensor_score():
    w = torch.ones(1, requires_grad=True)
    out_t = langevin(lambda x: -w * torch.as_tensor(x), np.zeros((4, 1)), 0.1, 5, seed=3)
    out_n = langevin(lambda x: -x, np.zeros((4, 1)), 0.1, 5, seed=3)
    np.testing.assert_array_equal(out_t, out_n)


def test_non_numeric_output_names_the_score():
    with pytest.raises(TypeError, match="score"):
        score_output("abc")
    with pytest.raises(TypeError, match="score"):
        score_output(np.ones(3) + 1j)
