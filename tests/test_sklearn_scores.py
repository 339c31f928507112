"""The scikit-learn contract of every score estimator: get_params/set_params (nested
too), sklearn.base.clone round trips, one NotFittedError before fit, clear errors for
corrupt files, constant data and a missing GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _score_helpers import one_torch_thread  # noqa: F401 (autouse fixture)
from sklearn.base import clone

from gfdt.scores import (
    AnalyticScore,
    DenoisingScoreModel,
    GaussianScore,
    KGMMScoreModel,
    NotFittedError,
    WhitenedScore,
    get_score_class,
    score_names,
)
from gfdt.scores._torch import default_threads, resolve_device, torch_threads


def every_estimator():
    """One instance of every registered estimator, plus the wrappers."""
    out = [get_score_class(name)(seed=3) if "seed" in get_score_class(name)().get_params()
           else get_score_class(name)() for name in score_names()]
    out.append(WhitenedScore(DenoisingScoreModel(max_steps=7, lr=1e-3), homogeneous=False,
                             floor=1e-9))
    out.append(AnalyticScore(np.negative, name="minus"))
    return out


@pytest.mark.parametrize("est", every_estimator(), ids=lambda e: type(e).__name__)
def test_clone_round_trips(est):
    twin = clone(est)
    assert type(twin) is type(est) and twin is not est
    p, q = est.get_params(deep=False), twin.get_params(deep=False)
    assert p.keys() == q.keys()
    for k, v in p.items():
        if hasattr(v, "get_params"):  # nested estimators are cloned, with their parameters
            assert q[k] is not v and q[k].get_params() == v.get_params()
        else:
            assert q[k] == v or q[k] is v, k


@pytest.mark.parametrize("est", every_estimator(), ids=lambda e: type(e).__name__)
def test_not_fitted_raises_not_fitted_error(est):
    with pytest.raises(NotFittedError, match="not fitted"):
        est.score(np.zeros((2, 2)))


def test_nested_parameters_of_the_whitening_wrapper():
    w = WhitenedScore(DenoisingScoreModel(max_steps=7))
    deep = w.get_params(deep=True)
    assert deep["estimator__max_steps"] == 7 and deep["floor"] == 1e-12
    w.set_params(estimator__max_steps=11, floor=1e-6)
    assert w.estimator.max_steps == 11 and w.floor == 1e-6
    assert clone(w).get_params(deep=True)["estimator__max_steps"] == 11
    with pytest.raises(ValueError, match="n_iter"):
        w.set_params(estimator__n_iter=3)
    with pytest.raises(ValueError, match="valid"):
        w.set_params(nonsense=1)


def test_set_params_then_fit_uses_the_new_values():
    X = np.random.default_rng(0).standard_normal((400, 2))
    m = KGMMScoreModel(n_clusters=10, n_noise=2, device="cpu", progress=False)
    m.set_params(max_steps=4, n_threads=1)
    with pytest.warns(UserWarning):
        m.fit(X)
    assert m.n_steps_ == 4


def test_constant_data_is_refused_with_a_clear_message():
    X = np.full((50, 3), 2.5)
    with pytest.raises(ValueError, match="zero variance"):
        WhitenedScore(GaussianScore(), homogeneous=False).fit(X)
    with pytest.raises(ValueError, match="zero variance"):
        WhitenedScore(homogeneous=True).fit(np.full((50, 4, 4), 1.0))
    with pytest.raises(ValueError, match="zero variance"):
        DenoisingScoreModel(max_steps=2, progress=False).fit(X)


def test_corrupt_or_truncated_files_name_the_path(tmp_path):
    X = np.random.default_rng(1).standard_normal((200, 2))
    kw = dict(max_steps=4, eval_every=2, progress=False, n_threads=1, network="mlp")
    ck = tmp_path / "ck.pt"
    with pytest.warns(UserWarning):
        m = DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    data = ck.read_bytes()
    ck.write_bytes(data[: len(data) // 2])  # truncated (zipfile.BadZipFile inside torch)
    with pytest.raises(ValueError, match=r"checkpoint: .* truncated or not a gfdt checkpoint"):
        DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    m.save(tmp_path / "m.pt")
    saved = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(saved[:100])
    with pytest.raises(ValueError, match=r"path: .* is not a saved gfdt estimator"):
        DenoisingScoreModel.load(tmp_path / "m.pt")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_value_error():
    with pytest.raises(ValueError, match="no usable CUDA GPU"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="device"):
        DenoisingScoreModel(device="cuda:0", max_steps=1).fit(np.eye(10))


def test_thread_default_does_not_oversubscribe(monkeypatch):
    """One thread on machines with <= 2 CPUs, half the CPUs (capped by torch's) above;
    the caller's thread setting is restored after a block."""
    import gfdt.scores._torch as tmod

    monkeypatch.setattr(tmod.os, "cpu_count", lambda: 2)
    assert default_threads() == 1
    monkeypatch.setattr(tmod.os, "cpu_count", lambda: 16)
    monkeypatch.setattr(tmod.torch, "get_num_threads", lambda: 16)
    assert default_threads() == 8
    monkeypatch.undo()
    before = torch.get_num_threads()
    with torch_threads(None):
        assert torch.get_num_threads() == default_threads()
    assert torch.get_num_threads() == before
