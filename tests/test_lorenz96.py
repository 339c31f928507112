"""Two-scale Lorenz-96: drift and its parameter derivatives, RK4 order, closed forms,
reproducibility and the vector-state data path."""

from __future__ import annotations

import numpy as np
import pytest

import gfdt
from gfdt._runner import Integrator
from gfdt.systems import Lorenz96TwoScale
from gfdt.systems.base import system_from_attrs
from gfdt.systems.lorenz96 import _drift


def states(system: Lorenz96TwoScale, m: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((m, *system.state_shape))
    u[:, :system.K] = 3.0 * u[:, :system.K] + 2.0
    return u


def loop_drift(s: Lorenz96TwoScale, u: np.ndarray) -> np.ndarray:
    """The drift written index by index from the equations (independent of the code)."""
    K, J = s.K, s.J
    X, Y = u[:K], u[K:]
    n = K * J
    out = np.empty_like(u)
    for k in range(K):
        coup = s.h * s.c / J * sum(Y[j + J * k] for j in range(J))
        out[k] = X[k - 1] * (X[(k + 1) % K] - X[k - 2]) - X[k] + s.F - coup
    for ell in range(n):
        out[K + ell] = (s.c * s.b * Y[(ell + 1) % n] * (Y[ell - 1] - Y[(ell + 2) % n])
                        - s.c * Y[ell] + s.h * s.c / J * X[ell // J])
    return out


def test_numpy_and_numba_drift_match_the_equations():
    s = Lorenz96TwoScale(K=6, J=3, F=8.0, h=0.7, c=4.0, b=3.0)
    u = states(s, 4)
    d = s.drift(u)
    for i in range(4):
        ref = loop_drift(s, u[i])
        np.testing.assert_allclose(d[i], ref, rtol=1e-13, atol=1e-12)
        du = np.empty_like(ref)
        _drift(u[i].copy(), du, *s._kernel_args()[:6])
        np.testing.assert_allclose(du, ref, rtol=1e-12, atol=1e-11)


@pytest.mark.parametrize("name", ["F", "h", "c", "b"])
def test_drift_derivative_is_the_parameter_difference(name):
    # the drift is affine in each parameter: the central difference is exact up to rounding
    s = Lorenz96TwoScale(K=6, J=4)
    u = states(s, 3, seed=1)
    d = 0.1
    theta = getattr(s, name)
    fd = (s.with_parameters(**{name: theta + d}).drift(u)
          - s.with_parameters(**{name: theta - d}).drift(u)) / (2 * d)
    np.testing.assert_allclose(s.drift_derivative(u, name), fd, rtol=1e-9, atol=1e-9)
    assert s.diffusion_derivative(name) is None
    # divergence against central differences of the derivative along every coordinate
    e = 1e-3
    div = np.zeros(len(u))
    for i in range(u.shape[1]):
        up, um = u.copy(), u.copy()
        up[:, i] += e
        um[:, i] -= e
        div += (s.drift_derivative(up, name)[:, i] - s.drift_derivative(um, name)[:, i]) / (2 * e)
    np.testing.assert_allclose(s.drift_derivative_divergence(u, name), div, atol=1e-8)


def test_bad_parameter_names():
    s = Lorenz96TwoScale(K=4, J=2)
    with pytest.raises(ValueError, match="parameter"):
        s.drift_derivative(states(s, 1), "noise")
    with pytest.raises(ValueError, match="not a parameter"):
        s.with_parameters(G=1.0)
    with pytest.raises(ValueError, match="K"):
        Lorenz96TwoScale(K=3)
    with pytest.raises(ValueError, match="noise"):
        Lorenz96TwoScale(noise=-1.0)
    with pytest.raises(ValueError, match="u must have shape"):
        s.drift(np.zeros((2, 5)))


def test_rk4_is_fourth_order_without_noise():
    s0 = Lorenz96TwoScale(K=8, J=4, c=4.0, b=4.0, noise=0.0)
    u0 = states(s0, 1, seed=2)[0] * 0.5
    T = 0.2

    def run(dt):
        s = s0.with_parameters(dt=dt)
        u = u0.copy()
        Integrator(s)(u, np.zeros(0), round(T / dt), np.random.default_rng(0))
        return u

    ref = run(T / 1024)
    errs = [np.abs(run(T / m) - ref).max() for m in (16, 32, 64)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    assert np.all(np.abs(orders - 4.0) < 0.3), (errs, orders)


def test_single_step_is_rk4_of_the_numpy_drift_plus_noise():
    s = Lorenz96TwoScale(K=6, J=3)
    u0 = states(s, 1, seed=3)[0]
    dt = s.dt
    k1 = s.drift(u0)
    k2 = s.drift(u0 + dt / 2 * k1)
    k3 = s.drift(u0 + dt / 2 * k2)
    k4 = s.drift(u0 + dt * k3)
    expect = u0 + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    expect[s.K:] += s.noise * np.sqrt(dt) * np.random.default_rng(5).standard_normal(s.K * s.J)
    u = u0.copy()
    Integrator(s)(u, np.zeros(0), 1, np.random.default_rng(5))
    np.testing.assert_allclose(u, expect, rtol=0, atol=1e-12)


def test_uncoupled_fixed_point_is_stationary():
    # h = 0 decouples X; X = F is the single-scale fixed point, Y = 0 is a fixed point
    s = Lorenz96TwoScale(K=10, J=4, h=0.0, noise=0.0)
    u = np.zeros(s.state_shape)
    u[:s.K] = s.F
    Integrator(s)(u, np.zeros(0), 500, np.random.default_rng(0))
    np.testing.assert_array_equal(u[:s.K], s.F)
    np.testing.assert_array_equal(u[s.K:], 0.0)


def rk4_factor(z: float) -> float:
    return 1 - z + z**2 / 2 - z**3 / 6 + z**4 / 24


def test_fast_energy_budget_closed_form():
    # F = h = 0 keeps X = 0; the advection conserves sum Y^2 on the ring, so the fast
    # variables have E[Y^2] = sigma^2 dt / (1 - g^2), g the RK4 factor of -c dt (the
    # discrete chain of dY = -c Y dt + sigma dW), whatever b is.
    s = Lorenz96TwoScale(K=4, J=5, F=0.0, h=0.0, c=1.0, b=0.5, noise=1.0, dt=0.02)
    u0 = np.zeros((4, *s.state_shape))
    ds = gfdt.simulate(s, n_members=4, burn_in=10.0, duration=2000.0, save_interval=1.0,
                       seed=11, n_workers=1, initial=u0)
    u = ds.u.values
    assert np.all(u[..., :s.K] == 0.0)
    y2 = (u[..., s.K:] ** 2).mean(-1)  # (member, time), samples 1 time unit apart
    g = rk4_factor(s.c * s.dt)
    expect = s.noise**2 * s.dt / (1 - g**2)
    # samples are decorrelated after ~1/(2c) = 0.5: member means are independent
    means = y2.mean(1)
    se = means.std(ddof=1) / np.sqrt(len(means))
    assert abs(means.mean() - expect) < 4 * max(se, 1e-3 * expect), (means, expect)
    assert abs(means.mean() / expect - 1) < 0.03


def test_simulate_reproducible_and_independent_of_workers():
    s = Lorenz96TwoScale(K=8, J=4)
    kw = dict(n_members=3, burn_in=1.0, duration=2.0, save_interval=0.1, seed=42)
    a = gfdt.simulate(s, n_workers=1, **kw)
    b = gfdt.simulate(s, n_workers=2, **kw)
    c = gfdt.simulate(s, n_workers=1, **{**kw, "seed": 43})
    assert a.u.dims == ("member", "time", "state")
    assert a.u.shape == (3, 20, 40)
    np.testing.assert_array_equal(a.u.values, b.u.values)
    assert not np.array_equal(a.u.values, c.u.values)
    assert list(a.sector.values[:8]) == list(range(8))
    assert list(a.fast.values[8:12]) == [0, 1, 2, 3]
    assert system_from_attrs(a.attrs) == s


def test_io_round_trip_and_trajectories(tmp_path):
    s = Lorenz96TwoScale(K=4, J=2)
    ds = gfdt.simulate(s, n_members=2, duration=1.0, save_interval=0.1, seed=1, n_workers=1)
    path = gfdt.io.save(ds, tmp_path / "l96.nc")
    back = gfdt.io.load(path)
    np.testing.assert_array_equal(back.u.values, ds.u.values)
    tr = gfdt.data.as_trajectories(ds.u)
    assert tr.state_shape == s.state_shape


def test_observables_closed_forms():
    s = Lorenz96TwoScale(K=4, J=2)
    X = np.array([1.0, 2.0, 3.0, 4.0])
    Y = np.array([[1.0, 3.0], [0.0, 0.0], [2.0, -2.0], [1.0, 1.0]])  # (K, J)
    u = np.concatenate([X, Y.ravel()])[None]
    o = {k: f(u)[0] for k, f in s.observables().items()}
    assert o["X"] == pytest.approx(2.5)
    assert o["X2"] == pytest.approx(7.5)
    assert o["XYbar"] == pytest.approx((1 * 2 + 0 + 0 + 4 * 1) / 4)
    assert o["Y2"] == pytest.approx((1 + 9 + 0 + 0 + 4 + 4 + 1 + 1) / 8)
    assert o["XXm1"] == pytest.approx((1 * 4 + 2 * 1 + 3 * 2 + 4 * 3) / 4)


def test_parameter_differences_exact_on_the_uncoupled_fixed_point():
    # h = 0, noise = 0, uniform X: the advection vanishes and X_n - F' = g^n (F - F') with
    # g the RK4 factor of -dt, so d<X>/dF after n steps is exactly 1 - g^n
    from gfdt._parameter_truth import parameter_differences

    s = Lorenz96TwoScale(K=5, J=2, h=0.0, noise=0.0, dt=0.01)
    u0 = np.zeros((2, *s.state_shape))
    u0[:, :s.K] = s.F
    obs = {"X": s.observables()["X"]}
    r = parameter_differences(s, {"F": [0.5, 1.0]}, obs, u0, n_saves=4, save_every=10,
                              seeds=[1, 2], n_workers=2)
    assert r.shape == (2, 1, 2, 5, 1)
    n = np.arange(5) * 10
    expect = 1 - rk4_factor(s.dt) ** n
    np.testing.assert_allclose(r[:, 0, :, :, 0], np.broadcast_to(expect, (2, 2, 5)),
                               atol=1e-12)


def test_benchmark_metric_is_the_plain_rmse_over_lags_observables_parameters():
    import sys
    from pathlib import Path

    import xarray as xr

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from _lorenz96 import SlowScore, curve_rmse

    lag = np.arange(81) * 0.1  # 0..8: only 0..6 (61 lags) count
    rng = np.random.default_rng(0)
    truth = xr.DataArray(rng.standard_normal((81, 5, 4)), dims=("lag", "observable", "parameter"),
                         coords={"lag": lag, "parameter": ["F", "h", "c", "b"]})
    err = np.zeros((81, 5, 4))
    err[:, :, 1] = 2.0  # only h is off, by 2 everywhere
    err[61:] = 100.0    # beyond t = 6: ignored
    r = curve_rmse(truth + err, truth)
    assert r["overall"] == pytest.approx(np.sqrt(4.0 / 4))
    assert r["per_param"] == pytest.approx({"F": 0.0, "h": 2.0, "c": 0.0, "b": 0.0})
    # the lifted slow score: the slow block from the model, zero fast block
    s = SlowScore(lambda x: -x, K=3, d=9)
    u = rng.standard_normal((2, 9))
    out = s(u)
    np.testing.assert_array_equal(out[:, :3], -u[:, :3])
    np.testing.assert_array_equal(out[:, 3:], 0.0)
