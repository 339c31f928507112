"""The one trainer: epochs, schedules, early stopping, and bit-identical resume of every
estimator that trains through it (DSM's resume is tested in test_dsm/test_durability)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from _score_helpers import (
    mixture_samples,
    one_torch_thread,  # noqa: F401 (autouse fixture)
)
from torch import nn

from gfdt.scores import HamiltonianScoreModel, HOLDScoreModel, ScoreQualityWarning
from gfdt.scores import hold as hold_module
from gfdt.scores import hsm as hsm_module
from gfdt.scores.training import Trainer


class _Fit2x:
    """Toy task: fit w in w x to the target 2|x| (no random inputs)."""

    def noise(self, gen, n):
        return ()

    def loss(self, net, x):
        return ((net(x) - 2 * x.abs()) ** 2).mean()


def _line() -> nn.Module:
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.zero_()
    return net


def test_epochs_visit_every_training_sample_once():
    X = torch.arange(1.0, 21.0)[:, None]
    seen = []

    def batch(idx):
        seen.append(np.asarray(idx).copy())
        return X[torch.as_tensor(idx)]

    res = Trainer(max_steps=8, batch_size=5, lr=0.01, seed=1, eval_every=4).fit(
        _Fit2x(), _line(), batch, 20)
    assert res.n_steps == 8 and res.epochs == 2.0
    for e in range(2):  # 4 steps per epoch
        assert sorted(np.concatenate(seen[4 * e:4 * e + 4]).tolist()) == list(range(20))
    assert not np.array_equal(np.concatenate(seen[:4]), np.concatenate(seen[4:]))
    assert math.isnan(res.best_val) and res.history["step"] == [4, 8]


def test_learning_rate_schedules():
    lin = Trainer(max_steps=100, batch_size=1, lr=1.0, seed=0, warmup=10)
    assert [lin._lr(k) for k in (0, 4, 9, 50)] == [0.1, 0.5, 1.0, 1.0]
    cos = Trainer(max_steps=100, batch_size=1, lr=1.0, seed=0, schedule="cosine")
    assert cos._lr(0) == pytest.approx(1.0)
    assert cos._lr(50) == pytest.approx(0.55)
    assert cos._lr(100) == pytest.approx(0.1)


def test_early_stopping_keeps_the_best_weights():
    """Training moves w from 0 towards 2; on negative validation samples the loss
    (w + 2)^2 E x^2 grows with w: the first validation is the best, and the run stops
    after ``patience`` worse ones, returning the weights of the first."""
    X = torch.linspace(0.1, 1.0, 40)[:, None]
    xv = -torch.linspace(0.1, 1.0, 10)[:, None]
    kw = dict(batch_size=8, lr=0.05, seed=2, eval_every=5)
    res = Trainer(max_steps=100, patience=2, **kw).fit(
        _Fit2x(), _line(), lambda i: X[torch.as_tensor(i)], 40, xv)
    assert res.n_steps == 15
    assert res.history["val_loss"][0] < res.history["val_loss"][1] < res.history["val_loss"][2]
    ref = Trainer(max_steps=5, **kw).fit(_Fit2x(), _line(), lambda i: X[torch.as_tensor(i)],
                                         40, xv)
    assert torch.equal(res.net.weight, ref.net.weight)
    assert res.best_val == ref.best_val


def test_no_steps_returns_the_initial_weights():
    X = torch.ones(10, 1)
    res = Trainer(max_steps=0, batch_size=4, lr=0.1, seed=0).fit(
        _Fit2x(), _line(), lambda i: X[torch.as_tensor(i)], 10)
    assert res.n_steps == 0 and float(res.net.weight) == 0.0


def _crash_at(monkeypatch, task_cls, n_call: int) -> None:
    real = task_cls.loss
    calls = {"n": 0}

    def crashing(self, *a):
        calls["n"] += 1
        if calls["n"] == n_call:
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(task_cls, "loss", crashing)


@pytest.mark.parametrize("cls, task, modules", [
    (HOLDScoreModel, hold_module._HOLDTask, ("network_",)),
    (HamiltonianScoreModel, hsm_module._HSMTask, ("force_", "velocity_")),
])
def test_resume_is_bit_identical(tmp_path, monkeypatch, cls, task, modules):
    """A crash between checkpoints, then a resume: the same history and weights as an
    uninterrupted run (HSM's velocity predictor and its optimiser are checkpointed too)."""
    X = mixture_samples(600, 0)
    kw = dict(max_steps=30, batch_size=32, eval_every=10, hidden=16, progress=False,
              n_threads=1, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        ref = cls(**kw).fit(X)
        ck = tmp_path / "ck.pt"
        _crash_at(monkeypatch, task, 17)
        with pytest.raises(KeyboardInterrupt):
            cls(**kw, checkpoint=ck).fit(X)
        monkeypatch.undo()
        assert torch.load(ck, weights_only=False)["state"]["step"] == 10  # crashed in step 16 or 17
        resumed = cls(**kw, checkpoint=ck).fit(X)
    assert resumed.history_ == ref.history_
    for name in modules:
        a, b = getattr(resumed, name).state_dict(), getattr(ref, name).state_dict()
        for k in b:
            assert torch.equal(a[k], b[k]), (name, k)
    x = mixture_samples(20, 1)
    np.testing.assert_array_equal(resumed(x), ref(x))
