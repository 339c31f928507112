"""Ensembles on Dask: simulate(client=...) and perturbation_response(client=...) give
bit-identical results to runs without Dask; per-group segment files, stop and resume."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import gfdt
import gfdt._paired
from gfdt.simulate import _DirectoryStore
from gfdt.systems import AllenCahn, NavierStokes2D, OrnsteinUhlenbeck

distributed = pytest.importorskip("distributed")

OU8 = OrnsteinUhlenbeck(n=8, dt=1 / 16, lam=0.5, kappa=0.02, A=0.3)
KW = dict(n_members=3, burn_in=1.0, duration=3.0, save_interval=0.25, seed=11,
          progress=False)


@pytest.fixture(scope="module")
def client():
    """Two single-threaded worker processes on loopback: members go to other processes."""
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None)
    c = distributed.Client(cluster)
    c.run(_import_gfdt)  # start-up cost (imports, numba cache) paid here, once
    try:
        yield c
    finally:
        c.close()
        cluster.close()


def _import_gfdt() -> None:
    from gfdt._runner import warm_up

    for system in (OU8, AllenCahn(n=8), NavierStokes2D(n=16)):
        warm_up(system)


def test_cluster_has_two_processes(client):
    pids = client.run(lambda: __import__("os").getpid())
    assert len(set(pids.values())) == 2


@pytest.mark.parametrize("system", [OU8, AllenCahn(n=8), NavierStokes2D(n=16)],
                         ids=["ou", "allen_cahn", "navier_stokes"])
def test_simulate_on_dask_is_bit_identical(client, system):
    kw = {**KW, "burn_in": 8 * system.dt, "duration": 12 * system.dt,
          "save_interval": 2 * system.dt, "save_hidden": system.n_aux > 0}
    ref = gfdt.simulate(system, **kw, n_workers=1)
    got = gfdt.simulate(system, **kw, client=client)
    np.testing.assert_array_equal(got.u.values, ref.u.values)
    np.testing.assert_array_equal(got.time.values, ref.time.values)
    np.testing.assert_array_equal(got.member.values, np.arange(3))
    if system.n_aux:
        np.testing.assert_array_equal(got.hidden_state.values, ref.hidden_state.values)
    assert got.attrs["gfdt_seed_entropy"] == ref.attrs["gfdt_seed_entropy"]
    # the members differ (independent streams), so equality is not trivial
    assert not np.array_equal(got.u.values[0], got.u.values[2])


def test_simulate_on_dask_writes_segments_per_group(client, tmp_path):
    ref = gfdt.simulate(OU8, **KW)
    got = gfdt.simulate(OU8, **KW, client=client, output=tmp_path / "run", segment=1.0)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["member_groups"] == [[0, 2], [2, 3]]  # one group per worker thread
    names = sorted(p.name for p in (tmp_path / "run").glob("segment_*.nc"))
    # segments of 16 steps: burn-in + 1st sample, then 4, 4 and 3 samples
    assert len(names) == 2 * 4
    assert {n[-16:] for n in names} == {"_m00000-00002.nc", "_m00002-00003.nc"}
    one = gfdt.io.load(tmp_path / "run" / names[1])
    np.testing.assert_array_equal(one.member.values, [2])  # global member numbers
    np.testing.assert_array_equal(got.u.values, ref.u.values)
    np.testing.assert_array_equal(got.time.values, ref.time.values)
    np.testing.assert_array_equal(gfdt.io.open_run(tmp_path / "run").u.values, ref.u.values)
    # lazily opened (dask arrays): the same numbers
    lazy = gfdt.io.open_run(tmp_path / "run", chunks={})
    assert lazy.u.chunks is not None
    np.testing.assert_array_equal(lazy.u.values, ref.u.values)


def test_failed_group_stops_the_run_and_it_resumes_bit_identical(client, tmp_path,
                                                                 monkeypatch):
    """A group that fails after two segments: the rest stops, open_run gives what every
    member finished, and resuming (on Dask or not) completes the run bit-identically."""
    ref = gfdt.simulate(OU8, **KW)
    real_write = _DirectoryStore.write
    calls = {"n": 0}

    def failing_write(self, *args):
        if self.tag == "_m00002-00003":
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("simulated crash")
        real_write(self, *args)

    monkeypatch.setattr(_DirectoryStore, "write", failing_write)
    # threads in this process see the patched class
    with distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=2,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as local:
        with pytest.raises(RuntimeError, match="simulated crash"):
            gfdt.simulate(OU8, **KW, client=local, output=tmp_path / "run", segment=1.0)
    monkeypatch.setattr(_DirectoryStore, "write", real_write)
    partial = gfdt.io.open_run(tmp_path / "run")
    # the failing group wrote segments 0 (1 sample) and 1 (4 samples)
    assert partial.sizes["time"] == 5
    np.testing.assert_array_equal(partial.u.values, ref.u.values[:, :5])
    shutil.copytree(tmp_path / "run", tmp_path / "copy")
    with pytest.raises(ValueError, match="resume=True"):
        gfdt.simulate(OU8, **KW, client=client, output=tmp_path / "run", segment=1.0)
    resumed = gfdt.simulate(OU8, **KW, client=client, output=tmp_path / "run", segment=1.0,
                            resume=True)
    np.testing.assert_array_equal(resumed.u.values, ref.u.values)
    # without Dask the stored member groups run one after the other
    serial = gfdt.simulate(OU8, **KW, output=tmp_path / "copy", segment=1.0, resume=True)
    np.testing.assert_array_equal(serial.u.values, ref.u.values)


def test_divergence_on_dask_names_the_same_member_and_step(client):
    u0 = np.zeros((3, 8, 8))
    u0[1, 3, 4] = 1e7  # above the divergence threshold
    kw = {**KW, "initial": u0}
    with pytest.raises(gfdt.SimulationDiverged) as serial:
        gfdt.simulate(OU8, **kw)
    with pytest.raises(gfdt.SimulationDiverged) as on_dask:
        gfdt.simulate(OU8, **kw, client=client)
    assert on_dask.value.member == serial.value.member == 1
    assert on_dask.value.step == serial.value.step
    assert on_dask.value.time == serial.value.time


def test_perturbation_response_on_dask_is_bit_identical(client, monkeypatch):
    ac = AllenCahn(n=8)
    start = gfdt.simulate(ac, n_members=5, burn_in=2.0, duration=0.5, save_interval=0.5,
                          seed=1, progress=False)
    kw = dict(max_lag=3, save_interval=0.5, delta=0.1, seed=4, n_windows=2,
              pixel=[(0, 0), (2, 3)], progress=False, return_state=True)
    monkeypatch.setattr(gfdt._paired, "_BATCH", 2)  # several batches in flight
    ref, ref_u, ref_aux = gfdt.perturbation_response(ac, start.u.isel(time=0), **kw,
                                                     n_workers=1)
    got, got_u, got_aux = gfdt.perturbation_response(ac, start.u.isel(time=0), **kw,
                                                     client=client)
    np.testing.assert_array_equal(got["response"].values, ref["response"].values)
    np.testing.assert_array_equal(got["stderr"].values, ref["stderr"].values)
    np.testing.assert_array_equal(got_u, ref_u)
    np.testing.assert_array_equal(got_aux, ref_aux)
    assert got.attrs["n_impulses"] == ref.attrs["n_impulses"] == 5 * 2 * 2
    # Allen-Cahn is nonlinear: the impulses differ, so the standard error is not zero
    assert np.nanmax(ref["stderr"].values) > 1e-6


def test_client_must_be_a_dask_client():
    with pytest.raises(TypeError, match="client"):
        gfdt.simulate(OU8, **KW, client="tcp://127.0.0.1:8786")
    with pytest.raises(TypeError, match="client"):
        gfdt.perturbation_response(OU8, np.zeros((2, 8, 8)), max_lag=2, save_interval=0.25,
                                   delta=0.1, seed=0, progress=False, client=object())


def test_forced_response_on_dask_is_bit_identical(client, monkeypatch):
    ac = AllenCahn(n=8)
    start = gfdt.simulate(ac, n_members=5, burn_in=2.0, duration=0.5, save_interval=0.5,
                          seed=2, progress=False)
    t = np.arange(4)[:, None, None]
    forcing = 0.2 * np.cos(t + np.zeros((1, 8, 8))) + 0.1 * (np.arange(8) % 2)
    monkeypatch.setattr(gfdt._paired, "_BATCH", 2)  # several batches in flight
    kw = dict(save_interval=0.5, seed=3, progress=False)
    ref = gfdt.forced_response(ac, start.u.isel(time=0), forcing, **kw, n_workers=1)
    got = gfdt.forced_response(ac, start.u.isel(time=0), forcing, **kw, client=client)
    np.testing.assert_array_equal(got["response"].values, ref["response"].values)
    np.testing.assert_array_equal(got["stderr"].values, ref["stderr"].values)
    assert np.nanmax(ref["stderr"].values) > 1e-6  # nonlinear: members differ


def test_closed_client_fails_clearly():
    cluster = distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                       dashboard_address=None)
    c = distributed.Client(cluster)
    c.close()
    cluster.close()
    with pytest.raises(ValueError, match="client is closed"):
        gfdt.forced_response(OU8, np.zeros((2, 8, 8)), np.ones((2, 8, 8)),
                             save_interval=0.25, progress=False, client=c)
    with pytest.raises(ValueError, match="client is closed"):
        gfdt.perturbation_response(OU8, np.zeros((2, 8, 8)), max_lag=2, save_interval=0.25,
                                   delta=0.1, seed=0, progress=False, client=c)


def test_user_sde_on_dask_is_bit_identical(client):
    """A gfdt.systems.SDE built from lambdas travels to the workers (cloudpickle of the
    user functions; the compiled kernel is rebuilt, or loaded from the disk cache)."""
    from gfdt.systems import SDE

    sde = SDE(drift=lambda x, p: -p["k"] * x + np.sin(x), noise=lambda x, p: p["s"] + 0 * x,
              parameters={"k": 1.5, "s": 0.4}, dt=0.01, dim=2)
    kw = {**KW, "burn_in": 0.5, "duration": 1.0, "save_interval": 0.1}
    ref = gfdt.simulate(sde, **kw, n_workers=1)
    got = gfdt.simulate(sde, **kw, client=client)
    np.testing.assert_array_equal(got.u.values, ref.u.values)
