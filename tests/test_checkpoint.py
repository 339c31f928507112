"""Streaming to netCDF segments, checkpoints, resume after a crash or SIGKILL, divergence."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import gfdt
from gfdt.simulate import _DirectoryStore
from gfdt.systems import AllenCahn, OrnsteinUhlenbeck

KW = dict(n_members=3, burn_in=4.0, duration=12.0, save_interval=0.5, seed=11,
          progress=False)


@pytest.mark.parametrize("system", [OrnsteinUhlenbeck(n=8), AllenCahn(n=8)])
def test_streamed_run_equals_in_memory_run(tmp_path, system):
    a = gfdt.simulate(system, **KW)
    b = gfdt.simulate(system, **KW, output=tmp_path / "run", segment=2.0)
    assert len(list((tmp_path / "run").glob("segment_*.nc"))) > 3
    np.testing.assert_array_equal(a.u.values, b.u.values)
    np.testing.assert_array_equal(a.time.values, b.time.values)
    assert b.attrs["gfdt_system"] == type(system).__name__


def test_resume_after_crash_is_bit_identical(tmp_path, monkeypatch):
    system = AllenCahn(n=8)
    ref = gfdt.simulate(system, **KW)
    real_write = _DirectoryStore.write
    calls = {"n": 0}

    def crashing_write(self, *args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated crash")
        real_write(self, *args)

    monkeypatch.setattr(_DirectoryStore, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        gfdt.simulate(system, **KW, output=tmp_path / "run", segment=2.0)
    monkeypatch.setattr(_DirectoryStore, "write", real_write)
    partial = gfdt.io.open_run(tmp_path / "run")  # what was written survives
    np.testing.assert_array_equal(partial.u.values, ref.u.values[:, : partial.sizes["time"]])
    with pytest.raises(ValueError, match="resume=True"):
        gfdt.simulate(system, **KW, output=tmp_path / "run", segment=2.0)
    resumed = gfdt.simulate(system, **KW, output=tmp_path / "run", segment=2.0, resume=True)
    np.testing.assert_array_equal(resumed.u.values, ref.u.values)


def test_resume_refuses_other_arguments(tmp_path):
    system = OrnsteinUhlenbeck(n=8)
    gfdt.simulate(system, **KW, output=tmp_path / "run", segment=2.0)
    kw = {**KW, "seed": 12}
    with pytest.raises(ValueError, match="other arguments"):
        gfdt.simulate(system, **kw, output=tmp_path / "run", segment=2.0, resume=True)


_CHILD = """
import sys, gfdt
from gfdt.systems import AllenCahn
gfdt.simulate(AllenCahn(n=16), n_members=2, burn_in=0.0, duration=400.0,
              save_interval=1.0, seed=3, progress=False, output=sys.argv[1],
              segment=4.0, n_workers=1)
"""


@pytest.mark.slow
def test_sigkilled_run_keeps_segments_and_resumes(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(out)])
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("segment_*.nc"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_files = len(list(out.glob("segment_*.nc")))
    assert n_files >= 3
    partial = gfdt.io.open_run(out)
    kw = dict(n_members=2, burn_in=0.0, duration=400.0, save_interval=1.0, seed=3,
              progress=False)
    ref = gfdt.simulate(AllenCahn(n=16), **kw)
    np.testing.assert_array_equal(partial.u.values, ref.u.values[:, : partial.sizes["time"]])
    resumed = gfdt.simulate(AllenCahn(n=16), **kw, output=out, segment=4.0, resume=True)
    np.testing.assert_array_equal(resumed.u.values, ref.u.values)
    assert not list(Path(out).glob("*.tmp*"))


class _Fragile(OrnsteinUhlenbeck):
    """OU whose divergence threshold the field crosses after a few time units."""

    divergence_threshold = 3.0


def test_divergence_keeps_written_segments(tmp_path):
    with pytest.raises(gfdt.SimulationDiverged) as info:
        gfdt.simulate(_Fragile(n=8), n_members=2, duration=400.0, save_interval=0.5,
                      seed=0, progress=False, output=tmp_path / "run", segment=1.0)
    err = info.value
    assert err.time == pytest.approx(err.step * _Fragile.dt)
    ds = gfdt.io.open_run(tmp_path / "run")  # finished segments are intact
    assert ds.sizes["time"] >= 2
    assert np.abs(ds.u.values).max() <= 3.0
    assert ds.time.values[-1] <= err.time
    # detected within one save interval of the first sample over the threshold
    ref = gfdt.simulate(OrnsteinUhlenbeck(n=8), n_members=2, duration=float(err.time) + 1.0,
                        save_interval=0.5, seed=0, progress=False)
    over = np.abs(ref.u.isel(member=err.member).values).max(axis=(1, 2)) > 3.0
    first = float(ref.time.values[np.argmax(over)])
    assert first - 0.5 <= err.time <= first


def test_save_hidden_records_the_hidden_state_at_every_sample():
    """The saved phases equal an independent step-by-step replay of member 0's draws."""
    from gfdt._runner import Integrator, member_generators
    from gfdt.systems import NavierStokes2D

    ns = NavierStokes2D(n=16)
    every = 2
    ds = gfdt.simulate(ns, n_members=2, duration=150 * every * ns.dt,
                       save_interval=every * ns.dt, seed=5, progress=False, save_hidden=True)
    assert ds["hidden_state"].dims == ("member", "time", "hidden")
    assert ds["hidden_state"].shape == (2, 150, ns.n_aux)
    rng = member_generators(np.random.SeedSequence(5), 2)[0]
    u, aux = ns.initial_state(rng)
    integ = Integrator(ns)
    expect = [aux.copy()]
    for _ in range(149):  # the phases depend only on the draws, not on chunking
        integ(u, aux, every, rng)
        expect.append(aux.copy())
    np.testing.assert_allclose(ds["hidden_state"].values[0], np.array(expect), rtol=0,
                               atol=1e-12)
