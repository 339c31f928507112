"""Atomic writes everywhere gfdt writes files, and resuming after a crash or SIGKILL.

A write is interrupted by making the underlying writer (to_netcdf, pickle.dump,
torch.save, numpy.savez, Path.write_text, Figure.savefig) write part of its output and
then raise: the target must keep its old contents and no temporary file may remain.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pickle
import pkgutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

import gfdt
from gfdt._atomic import atomic_path, atomic_write_text, remove_stale
from gfdt.scores import AnalyticScore, DenoisingScoreModel, ScoreEstimator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common


def _partial_then_fail(target):
    """A writer that gets half-way to ``target`` (a file or path) and dies."""
    if hasattr(target, "write"):
        target.write(b"partial")
    else:
        Path(target).write_bytes(b"partial")
    raise OSError("disk full")


def _only_target(folder: Path, name: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [name]


def test_atomic_path_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"), atomic_path(target) as tmp:
        _partial_then_fail(tmp)
    assert target.read_bytes() == b"old"
    _only_target(tmp_path, "a.bin")
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:  # not only Exception
        tmp.write_bytes(b"half")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    _only_target(tmp_path, "a.bin")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    _only_target(tmp_path, "a.bin")
    with pytest.raises(ValueError, match="path: directory"):
        atomic_write_text(tmp_path / "missing" / "x.txt", "x")
    (tmp_path / ".a.bin.123.tmp").write_bytes(b"left by a kill")
    assert remove_stale(tmp_path) == 1
    _only_target(tmp_path, "a.bin")


DSM_KW = dict(max_steps=40, batch_size=32, eval_every=10, patience=100, progress=False,
              n_threads=1, seed=4, network="mlp")


def _dsm_data(n=400, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 2)) * [1.0, 2.0]


def _estimators() -> list[type]:
    """Every score estimator defined in gfdt.scores (exported or not yet)."""
    for info in pkgutil.iter_modules(gfdt.scores.__path__):
        importlib.import_module(f"gfdt.scores.{info.name}")
    out, todo = set(), list(ScoreEstimator.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("gfdt.scores") and cls is not AnalyticScore:
            out.add(cls)
    return sorted(out, key=lambda c: c.__name__)


_QUICK = {"max_steps": 2, "n_iter": 2, "eval_every": 1, "warmup": 1, "progress": False,
          "n_threads": 1, "n_centers": 8, "hidden": 8, "batch_size": 8, "n_clusters": 8,
          "n_noise": 2}


@pytest.mark.parametrize("cls", _estimators(), ids=lambda c: c.__name__)
def test_every_estimator_save_is_atomic(cls, tmp_path, monkeypatch):
    """save() of every estimator (pickle or torch) keeps the old file when it dies."""
    X = _dsm_data()
    if getattr(cls, "fields_only", False):  # e.g. FeatureScore: 2-D periodic fields
        X = np.random.default_rng(0).standard_normal((200, 8, 8))
    params = inspect.signature(cls.__init__).parameters
    m = cls(**{k: v for k, v in _QUICK.items() if k in params}).fit(X)
    path = tmp_path / "model.bin"
    m.save(path)
    old = path.read_bytes()
    monkeypatch.setattr(pickle, "dump", lambda obj, fh, *a, **k: _partial_then_fail(fh))
    monkeypatch.setattr(torch, "save", lambda obj, f, *a, **k: _partial_then_fail(f))
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old
    _only_target(tmp_path, "model.bin")
    np.testing.assert_array_equal(cls.load(path)(X[:5]), m(X[:5]))


def test_dsm_checkpoint_write_is_atomic_and_resumable(tmp_path, monkeypatch):
    """A checkpoint write that dies keeps the previous checkpoint, which resumes to the
    uninterrupted result bit for bit."""
    X = _dsm_data()
    ref = DenoisingScoreModel(**DSM_KW).fit(X)
    ck = tmp_path / "ck.pt"
    real = torch.save
    calls = {"n": 0}

    def second_fails(obj, f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:  # the checkpoint of step 20
            _partial_then_fail(f)
        return real(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", second_fails)
    with pytest.raises(OSError, match="disk full"):
        DenoisingScoreModel(**DSM_KW, checkpoint=ck).fit(X)
    monkeypatch.undo()
    _only_target(tmp_path, "ck.pt")
    assert torch.load(ck, weights_only=False)["state"]["step"] == 10
    resumed = DenoisingScoreModel(**DSM_KW, checkpoint=ck).fit(X)
    assert resumed.history_ == ref.history_
    for k, w in ref.network_.state_dict().items():
        assert torch.equal(resumed.network_.state_dict()[k], w), k


def test_dsm_resumes_mid_epoch_bit_identically(tmp_path, monkeypatch):
    """Batches come from per-epoch permutations and per-step noise streams: a crash
    after a checkpoint taken in the middle of an epoch resumes exactly."""
    X = _dsm_data(500)
    kw = {**DSM_KW, "max_steps": 45, "eval_every": 7}  # 400 train / 32 = 12 steps/epoch
    ref = DenoisingScoreModel(**kw).fit(X)
    ck = tmp_path / "ck.pt"
    real = DenoisingScoreModel._loss
    calls = {"n": 0}

    def crashing(self, *a):
        calls["n"] += 1
        if calls["n"] == 33:  # in step 29 (each checkpoint adds one validation call)
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(DenoisingScoreModel, "_loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    monkeypatch.undo()
    step = torch.load(ck, weights_only=False)["state"]["step"]
    assert step == 28 and step % 12 != 0  # resumes inside epoch 2
    resumed = DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    assert resumed.n_steps_ == ref.n_steps_ == 45
    assert resumed.history_ == ref.history_
    for k, w in ref.network_.state_dict().items():
        assert torch.equal(resumed.network_.state_dict()[k], w), k


def test_simulation_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    kw = dict(n_members=2, burn_in=1.0, duration=6.0, save_interval=0.5, seed=2,
              progress=False, n_workers=1)
    ou = gfdt.OrnsteinUhlenbeck(n=8)
    ref = gfdt.simulate(ou, **kw)
    real = np.savez
    calls = {"n": 0}

    def second_fails(f, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            _partial_then_fail(f)
        return real(f, *a, **k)

    monkeypatch.setattr(np, "savez", second_fails)
    out = tmp_path / "run"
    with pytest.raises(OSError, match="disk full"):
        gfdt.simulate(ou, **kw, output=out, segment=2.0)
    monkeypatch.undo()
    assert not list(out.glob(".*.tmp"))
    with np.load(out / "checkpoint.npz") as z:  # the first checkpoint, intact
        assert int(z["segment"]) == 1
    resumed = gfdt.simulate(ou, **kw, output=out, segment=2.0, resume=True)
    np.testing.assert_array_equal(resumed.u.values, ref.u.values)


def test_run_json_write_is_atomic(tmp_path, monkeypatch):
    """A run whose run.json write dies leaves no run behind: the folder can be reused."""
    kw = dict(n_members=1, duration=1.0, save_interval=0.5, seed=2, progress=False)
    ou = gfdt.OrnsteinUhlenbeck(n=8)
    out = tmp_path / "run"
    real = Path.write_text

    def failing(self, text, *a, **k):
        real(self, text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        gfdt.simulate(ou, **kw, output=out)
    monkeypatch.undo()
    assert not list(out.iterdir())
    ds = gfdt.simulate(ou, **kw, output=out)  # not "already holds a run"
    assert json.loads((out / "run.json").read_text())["n_members"] == 1
    assert ds.sizes["time"] == 2


def test_benchmark_outputs_are_atomic(tmp_path, monkeypatch):
    path = _common.write_results(tmp_path, system="x", config={}, timings={}, reference="r",
                                 errors={})
    old = path.read_text()
    real = Path.write_text

    def failing(self, text, *a, **k):
        real(self, text[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", failing)
    with pytest.raises(OSError, match="disk full"):
        _common.write_results(tmp_path, system="y", config={}, timings={}, reference="r",
                              errors={})
    monkeypatch.undo()
    assert path.read_text() == old and json.loads(old)["system"] == "x"
    _only_target(tmp_path, "results.json")

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    png = _common.save_figure(fig, tmp_path / "f.png")
    old_png = png.read_bytes()
    assert old_png[:8] == b"\x89PNG\r\n\x1a\n"
    monkeypatch.setattr(type(fig), "savefig", lambda self, f, **k: _partial_then_fail(f))
    with pytest.raises(OSError, match="disk full"):
        _common.save_figure(fig, png)
    monkeypatch.undo()
    plt.close(fig)
    assert png.read_bytes() == old_png
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "results.json"]


# ------------------------------------------------------------------------ SIGKILL
_DSM_CHILD = """
import sys, time, numpy as np, torch
torch.set_num_threads(1)
from gfdt.scores import DenoisingScoreModel
real = DenoisingScoreModel._loss
def slow(self, *a):  # slow the child down so that the parent can kill it mid-run
    time.sleep(0.02)
    return real(self, *a)
DenoisingScoreModel._loss = slow
X = np.load(sys.argv[1])
DenoisingScoreModel(**{KW}, checkpoint=sys.argv[2]).fit(X)
"""


@pytest.mark.slow
def test_sigkilled_dsm_training_resumes_bit_identically(tmp_path):
    X = _dsm_data(500)
    np.save(tmp_path / "x.npy", X)
    # 400 training samples / 32 = 12 steps per epoch; checkpoints every 7 steps: none
    # of them (7, 14, ..., 77) falls on an epoch boundary, so the resume is mid-epoch
    kw = {**DSM_KW, "max_steps": 80, "eval_every": 7}
    ck = tmp_path / "ck.pt"
    child = _DSM_CHILD.replace("{KW}", repr(kw))
    proc = subprocess.Popen([sys.executable, "-c", child, str(tmp_path / "x.npy"), str(ck)])
    deadline = time.time() + 300
    while time.time() < deadline and not ck.exists() and proc.poll() is None:
        time.sleep(0.01)
    time.sleep(0.3)  # let it train on past the first checkpoint
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = torch.load(ck, weights_only=False)["state"]["step"]
    assert 0 < step < 80 and step % 12 != 0  # killed mid-run, resumed mid-epoch
    ref = DenoisingScoreModel(**kw).fit(X)
    resumed = DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    assert resumed.history_ == ref.history_
    for k, w in ref.network_.state_dict().items():
        assert torch.equal(resumed.network_.state_dict()[k], w), k
    assert not list(tmp_path.glob(".*.tmp"))
