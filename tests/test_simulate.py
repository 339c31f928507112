"""simulate(): layout and metadata, reproducibility, input checks, divergence."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import gfdt
from gfdt.systems import OrnsteinUhlenbeck, SimulationDiverged, system_from_attrs

OU8 = OrnsteinUhlenbeck(n=8, dt=1 / 16, lam=0.5, kappa=0.02, A=0.3)


def run(**kwargs) -> xr.Dataset:
    opts = {"n_members": 2, "burn_in": 0.5, "duration": 2.0, "save_interval": 0.25, "seed": 3,
            "n_workers": 1, "progress": False}
    opts.update(kwargs)
    system = opts.pop("system", OU8)
    return gfdt.simulate(system, **opts)


def test_layout_coords_and_attrs():
    ds = run(n_members=3, burn_in=1.0, duration=2.0, save_interval=0.25)
    u = ds["u"]
    assert u.dims == ("member", "time", "y", "x")
    assert u.shape == (3, 8, 8, 8)
    assert u.dtype == np.float64
    np.testing.assert_array_equal(ds["member"], np.arange(3))
    np.testing.assert_allclose(ds["time"], 1.0 + 0.25 * np.arange(8), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ds["x"], 2 * np.pi * np.arange(8) / 8, rtol=0, atol=1e-15)
    np.testing.assert_allclose(ds["y"], 2 * np.pi * np.arange(8) / 8, rtol=0, atol=1e-15)
    assert ds["time"].attrs["axis"] == "T"
    assert ds["x"].attrs["axis"] == "X" and ds["y"].attrs["axis"] == "Y"
    assert u.attrs["long_name"] == OU8.long_name
    assert ds.attrs["gfdt_system"] == "OrnsteinUhlenbeck"
    assert json.loads(ds.attrs["gfdt_parameters"]) == OU8.parameters()
    assert system_from_attrs(ds.attrs) == OU8
    assert ds.attrs["gfdt_seed_entropy"] == "3"
    assert ds.attrs["gfdt_burn_in"] == 1.0
    assert ds.attrs["gfdt_save_interval"] == 0.25
    assert ds.attrs["Conventions"].startswith("CF")


def test_no_burn_in_starts_at_initial():
    u0 = np.random.default_rng(0).standard_normal((2, 8, 8))
    ds = run(burn_in=0.0, initial=u0)
    np.testing.assert_array_equal(ds.u.isel(time=0).values, u0)
    assert ds.time.values[0] == 0.0


def test_initial_is_not_modified():
    u0 = np.random.default_rng(2).standard_normal((2, 8, 8))
    keep = u0.copy()
    da = xr.DataArray(u0.copy(), dims=("member", "y", "x"))
    keep_da = da.copy(deep=True)
    run(initial=u0, burn_in=1.0)
    run(initial=da, burn_in=1.0)
    np.testing.assert_array_equal(u0, keep)
    xr.testing.assert_identical(da, keep_da)


def test_seed_reproducibility():
    a = run(seed=11)
    b = run(seed=11)
    c = run(seed=12)
    xr.testing.assert_equal(a.u, b.u)
    assert not np.allclose(a.u.values, c.u.values)
    # seeded from a SeedSequence too
    d = run(seed=np.random.SeedSequence(11))
    xr.testing.assert_equal(a.u, d.u)


def test_independent_of_worker_count():
    a = run(n_members=3, n_workers=1)
    b = run(n_members=3, n_workers=2)
    np.testing.assert_array_equal(a.u.values, b.u.values)


def test_member_independent_of_ensemble_size():
    a = run(n_members=2)
    b = run(n_members=3)
    np.testing.assert_array_equal(a.u.values, b.u.isel(member=slice(0, 2)).values)
    # and the members differ from each other
    assert not np.allclose(b.u.values[0], b.u.values[2])


def test_streamed_run_equals_in_memory_run(tmp_path):
    a = run(n_members=2, burn_in=1.0, duration=3.0)
    b = run(n_members=2, burn_in=1.0, duration=3.0, output=tmp_path / "run", segment=0.5)
    assert len(list((tmp_path / "run").glob("segment_*.nc"))) > 1
    np.testing.assert_array_equal(b.u.values, a.u.values)
    np.testing.assert_array_equal(b.time.values, a.time.values)
    with pytest.raises(ValueError, match="output"):
        run(n_members=2, burn_in=1.0, duration=3.0, output=tmp_path / "run")


_SCRIPT = """
import hashlib, numpy as np, gfdt
ou = gfdt.OrnsteinUhlenbeck(n=8, dt=1/16, lam=0.5, kappa=0.02, A=0.3)
ds = gfdt.simulate(ou, n_members=3, burn_in=0.5, duration=2.0, save_interval=0.25, seed=3,
                   n_workers=2, progress=False)
print(hashlib.sha256(np.ascontiguousarray(ds.u.values).tobytes()).hexdigest())
"""


def test_independent_of_numba_threads():
    procs = []
    for threads in ("1", "2"):
        env = {**os.environ, "NUMBA_NUM_THREADS": threads}
        procs.append(subprocess.Popen([sys.executable, "-c", _SCRIPT], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    here = run(n_members=3, n_workers=2)
    digest = hashlib.sha256(np.ascontiguousarray(here.u.values).tobytes()).hexdigest()
    assert outs[0] == outs[1] == digest


def test_initial_as_dataarray_with_member_dim():
    u0 = np.random.default_rng(1).standard_normal((2, 8, 8))
    da = xr.DataArray(u0.transpose(1, 2, 0), dims=("y", "x", "member"))
    a = run(initial=da)
    b = run(initial=u0)
    xr.testing.assert_equal(a.u, b.u)
    with pytest.raises(ValueError, match="initial has a 'time' dimension"):
        run(initial=a.u)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"duration": 1.1}, ValueError, "duration"),
        ({"duration": 0.0}, ValueError, "duration"),
        ({"duration": float("nan")}, ValueError, "duration"),
        ({"save_interval": 0.1}, ValueError, "save_interval"),
        ({"save_interval": 0.0}, ValueError, "save_interval"),
        ({"burn_in": 0.3}, ValueError, "burn_in"),
        ({"burn_in": -1.0}, ValueError, "burn_in"),
        ({"n_members": 0}, ValueError, "n_members"),
        ({"n_members": 1.5}, TypeError, "n_members"),
        ({"n_workers": 0}, ValueError, "n_workers"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": "abc"}, TypeError, "seed"),
        ({"initial": np.zeros((2, 4, 4))}, ValueError, "initial must have shape"),
        ({"initial": np.zeros((3, 8, 8))}, ValueError, "initial has 3 members"),
        ({"initial": np.full((2, 8, 8), np.nan)}, ValueError, "initial contains NaN"),
        ({"system": "ou"}, TypeError, "system"),
    ],
)
def test_bad_input(kwargs, exc, name):
    with pytest.raises(exc, match=name):
        run(**kwargs)


def test_diverged_from_exploding_initial_state():
    u0 = np.zeros((2, 8, 8))
    u0[1, 3, 4] = 1e7  # above the divergence threshold of 1e6
    assert OU8.divergence_threshold == 1e6
    with pytest.raises(SimulationDiverged, match="member 1") as info:
        run(initial=u0, burn_in=1.0)
    err = info.value
    assert err.member == 1
    assert 1 <= err.step <= round(1.0 / OU8.dt)  # found during the burn-in
    assert err.time == pytest.approx(err.step * OU8.dt)
    assert f"step {err.step}" in str(err)


def test_diverged_when_dt_is_unstable(caplog):
    ou = OrnsteinUhlenbeck(n=8, dt=4.0, lam=0.5, kappa=0.05)
    growth = np.abs(ou.amplification()).max()
    assert growth > 10  # RK4 well outside its stability region for the stiffest mode
    assert ou.dt > ou.stable_dt()
    with caplog.at_level(logging.WARNING, logger="gfdt"):
        with pytest.raises(SimulationDiverged, match="member 0") as info:
            gfdt.simulate(ou, n_members=1, duration=400.0, save_interval=4.0, seed=0,
                          progress=False)
    assert "stability" in caplog.text
    # starting from 0, the noise is O(1e-1); the fastest mode then grows by `growth` per
    # step, so the state must be past 1e6 within log(1e8) / log(growth) steps (+ checks)
    assert info.value.step <= int(np.ceil(np.log(1e8) / np.log(growth))) + 1
