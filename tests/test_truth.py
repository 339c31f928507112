"""perturbation_response(): exact on the linear OU, layout, windows, input checks."""

from __future__ import annotations

import numpy as np
import pytest

import gfdt


def test_paired_response_is_the_exact_propagator(fast_ou, ou_truth):
    lags = ou_truth["lag"].values
    np.testing.assert_allclose(lags, 0.5 * np.arange(9), rtol=0, atol=1e-15)
    exact = fast_ou.exact_response(lags)
    assert ou_truth["response"].dims == ("lag", "y", "x")
    np.testing.assert_allclose(ou_truth["response"].values, exact.values, rtol=0, atol=1e-8)
    # linear dynamics + additive noise: every impulse gives the same difference
    assert np.nanmax(ou_truth["stderr"].values) < 1e-8
    assert ou_truth.attrs["n_impulses"] == 4 * 2
    assert ou_truth.attrs["delta"] == 0.1
    assert ou_truth.attrs["gfdt_system"] == "OrnsteinUhlenbeck"
    np.testing.assert_array_equal(ou_truth["x"], exact["x"])


def test_pixel_offset_indexing(fast_ou, ou_run):
    initial = ou_run.u.isel(time=-1, member=slice(0, 3))
    kw = {"max_lag": 4, "save_interval": 0.5, "delta": 0.05, "seed": 1, "progress": False}
    a = gfdt.perturbation_response(fast_ou, initial, pixel=(0, 0), **kw)
    b = gfdt.perturbation_response(fast_ou, initial, pixel=(3, 5), **kw)
    exact = fast_ou.exact_response(a["lag"].values).values
    np.testing.assert_allclose(a["response"].values, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(b["response"].values, exact, rtol=0, atol=1e-8)
    assert list(b.attrs["pixels"]) == [3, 5]
    # several pixels, each kicked in its own copy sharing the noise
    c = gfdt.perturbation_response(fast_ou, initial, pixel=[(0, 0), (3, 5), (7, 1)], **kw)
    np.testing.assert_allclose(c["response"].values, exact, rtol=0, atol=1e-8)
    assert c.attrs["n_impulses"] == 3 * 3
    assert list(c.attrs["pixels"]) == [0, 0, 3, 5, 7, 1]


def test_windows_and_members(fast_ou, ou_run):
    """n_impulses = members x windows; the standard error is across members, so a single
    member has none (NaN)."""
    kw = {"max_lag": 3, "save_interval": 0.5, "delta": 0.1, "seed": 2, "progress": False}
    one = gfdt.perturbation_response(fast_ou, ou_run.u.isel(time=-1, member=[0]), n_windows=3,
                                     **kw)
    assert one.attrs["n_impulses"] == 3
    assert np.all(np.isnan(one["stderr"].values))
    two = gfdt.perturbation_response(fast_ou, ou_run.u.isel(time=-1, member=[0, 1]),
                                     n_windows=3, **kw)
    assert two.attrs["n_impulses"] == 6
    exact = fast_ou.exact_response(two["lag"].values).values
    np.testing.assert_allclose(one["response"].values, exact, rtol=0, atol=1e-8)
    np.testing.assert_allclose(two["response"].values, exact, rtol=0, atol=1e-8)
    assert np.max(two["stderr"].values) < 1e-8


def test_unperturbed_members_continue_as_in_simulate(fast_ou, ou_run):
    """Windows re-kick the unperturbed run, which must evolve exactly as simulate() would
    evolve the same member with the same seed (the kicked copies replay its noise)."""
    initial = ou_run.u.isel(time=-1, member=slice(0, 2)).values
    n_windows, max_lag, dt_save = 3, 2, 0.5
    _, final_u, final_aux = gfdt.perturbation_response(
        fast_ou, initial, max_lag=max_lag, save_interval=dt_save, delta=0.1, seed=9,
        n_windows=n_windows, progress=False, return_state=True)
    free = gfdt.simulate(fast_ou, n_members=2, burn_in=n_windows * max_lag * dt_save,
                         duration=dt_save, save_interval=dt_save, seed=9, initial=initial,
                         n_workers=1, progress=False)
    np.testing.assert_allclose(final_u, free.u.isel(time=0).values, rtol=0, atol=1e-12)
    assert final_aux.shape == (2, 0)


def test_large_kick_gives_the_same_response(fast_ou, ou_run):
    """For OU the paired difference is linear in delta: a large kick gives the same R."""
    initial = ou_run.u.isel(time=-1, member=slice(0, 2))
    r = gfdt.perturbation_response(fast_ou, initial, max_lag=2, save_interval=0.5, delta=-3.0,
                                   seed=0, progress=False)
    np.testing.assert_allclose(r["response"].values,
                               fast_ou.exact_response(r["lag"].values).values, rtol=0, atol=1e-8)


def test_independent_of_worker_count(fast_ou, ou_run):
    initial = ou_run.u.isel(time=-1, member=slice(0, 3))
    kw = {"max_lag": 2, "save_interval": 0.5, "delta": 0.1, "seed": 4, "progress": False}
    a = gfdt.perturbation_response(fast_ou, initial, n_workers=1, **kw)
    b = gfdt.perturbation_response(fast_ou, initial, n_workers=2, **kw)
    np.testing.assert_array_equal(a["response"].values, b["response"].values)
    np.testing.assert_array_equal(a["stderr"].values, b["stderr"].values)


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"delta": 0.0}, ValueError, "delta"),
        ({"delta": float("nan")}, ValueError, "delta"),
        ({"delta": "0.1"}, TypeError, "delta"),
        ({"pixel": (8, 0)}, ValueError, "pixel"),
        ({"pixel": (0, -1)}, ValueError, "pixel"),
        ({"pixel": "ab"}, TypeError, "pixel"),
        ({"pixel": (1.5, 0)}, TypeError, "pixel"),
        ({"pixel": [(1, 1), (1, 1)]}, ValueError, "pixel"),
        ({"max_lag": 0}, ValueError, "max_lag"),
        ({"n_windows": 0}, ValueError, "n_windows"),
        ({"save_interval": 0.3}, ValueError, "save_interval"),
        ({"save_interval": 0.0}, ValueError, "save_interval"),
        ({"initial": np.zeros((2, 4, 4))}, ValueError, "initial must have shape"),
        ({"initial": np.full((1, 8, 8), np.inf)}, ValueError, "initial contains NaN"),
        ({"initial_aux": np.zeros((1, 3))}, ValueError, "initial_aux"),
    ],
)
def test_bad_input(fast_ou, kwargs, exc, name):
    opts = {"initial": np.zeros((2, 8, 8)), "max_lag": 2, "save_interval": 0.5, "delta": 0.1,
            "seed": 0, "progress": False}
    opts.update(kwargs)
    initial = opts.pop("initial")
    with pytest.raises(exc, match=name):
        gfdt.perturbation_response(fast_ou, initial, **opts)
