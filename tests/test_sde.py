"""gfdt.systems.SDE: simulation against closed forms of the discrete schemes, back ends,
resume, truths, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import gfdt
from gfdt.simulate import _DirectoryStore
from gfdt.systems import SDE, SimulationDiverged

K = np.array([0.5, 2.0])  # relaxation rates of the two OU coordinates
SIG = np.array([0.7, 0.4])


def ou(scheme="auto", backend="auto", dt=0.05):
    # tuples in np.stack: what numba (the "jit" back end) accepts
    return SDE(drift=lambda x, p: -np.stack((p["k1"] * x[:, 0], p["k2"] * x[:, 1]), axis=1),
               noise=lambda x, p: np.stack((p["s1"] + 0 * x[:, 0], p["s2"] + 0 * x[:, 1]),
                                           axis=1),
               parameters={"k1": K[0], "k2": K[1], "s1": SIG[0], "s2": SIG[1]}, dt=dt,
               scheme=scheme, backend=backend)


def ou_discrete(scheme: str, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """AR(1) coefficient and stationary variance of the scheme on dx = -k x dt + s dW."""
    kd = K * dt
    if scheme == "euler":
        a, q = 1 - kd, SIG**2 * dt
    else:  # Heun: x + dt/2 (-k x - k (x - k x dt + w)) + w
        a, q = 1 - kd + kd**2 / 2, SIG**2 * dt * (1 - kd / 2) ** 2
    return a, q / (1 - a**2)


@pytest.mark.parametrize("scheme", ["euler", "heun"])
def test_ou_variance_and_autocorrelation_match_the_discrete_scheme(scheme):
    sde = ou(scheme)
    assert sde.scheme == scheme and sde.backend_ == "traced"
    dt = sde.dt
    ds = gfdt.simulate(sde, n_members=16, burn_in=20.0, duration=400.0, save_interval=dt,
                       seed=3, progress=False, n_workers=2)
    x = ds.u.values  # (member, time, 2)
    a, var = ou_discrete(scheme, dt)
    # member-level estimates: independent members give the standard errors
    v = (x**2).mean(axis=1)
    assert np.all(np.abs(v.mean(0) - var) < 4 * v.std(0, ddof=1) / 4 + 1e-12), (v.mean(0), var)
    for lag in (1, 10):
        c = (x[:, lag:] * x[:, :-lag]).mean(axis=1) / v
        exact = a**lag
        se = c.std(0, ddof=1) / 4
        assert np.all(np.abs(c.mean(0) - exact) < 4 * se), (lag, c.mean(0), exact, se)


def _run(backend: str) -> np.ndarray:
    sde = ou("euler", backend=backend)
    ds = gfdt.simulate(sde, n_members=2, duration=5.0, save_interval=0.25, seed=9,
                       initial=np.ones((2, 2)), progress=False, n_workers=1)
    assert sde.backend_ == backend
    return ds.u.values


@pytest.mark.parametrize("backend", ["python", pytest.param("jit", marks=pytest.mark.slow)])
def test_backends_give_the_same_trajectories(backend):
    """Every back end integrates the same scheme with the same draws (the jit one
    compiles the user functions with numba: ~10 s, slow)."""
    np.testing.assert_allclose(_run(backend), _run("traced"), rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_untraceable_drift_falls_back_to_numba():
    def drift(x, p):
        out = np.zeros((x.shape[0], 1))  # float array filled with states: not traceable
        out[:, 0] = -p["k"] * x[:, 0]
        return out

    sde = SDE(drift=drift, noise=0.5, parameters={"k": 1.0}, dt=0.01, dim=1)
    assert sde.backend_ == "jit" and sde.scheme == "heun"  # constant noise: additive
    assert sde.derivative_method() == "central differences"
    np.testing.assert_allclose(sde.drift_derivative(np.array([[2.0], [-1.0]]), "k"),
                               [[-2.0], [1.0]], rtol=1e-8)
    assert sde.derivative_steps()["k"] == pytest.approx(6.06e-6, rel=1e-2)


def test_untraceable_functions_run_in_python_with_numerical_derivatives():
    def drift(x, p):
        return np.where(x > 0, -p["k"] * x, -2 * p["k"] * x)  # branches: not traceable

    sde = SDE(drift=drift, noise=lambda x, p: p["s"] * (1 + 0.1 * np.tanh(x)),
              parameters={"k": 1.0, "s": 0.5}, dt=0.01, dim=1, backend="python")
    assert sde.backend_ == "python" and sde.scheme == "euler"
    x = np.array([[2.0], [-1.0]])
    np.testing.assert_allclose(sde.drift_derivative(x, "k"), [[-2.0], [2.0]], rtol=1e-8)
    assert sde.drift_derivative_divergence(x, "k") is None  # left to the estimator
    field = sde.diffusion_derivative_field("s")  # D = s^2 (1 + 0.1 tanh x)^2 / 2
    g = 1 + 0.1 * np.tanh(x[:, 0])
    np.testing.assert_allclose(field(x)[:, 0], 0.5 * g**2, rtol=1e-8)
    fd = field.bind_step(1e-3)
    dg = 0.1 / np.cosh(x[:, 0]) ** 2
    np.testing.assert_allclose(fd.divergence(x)[:, 0], 0.5 * 2 * g * dg, rtol=1e-5)
    ds = gfdt.simulate(sde, n_members=1, duration=1.0, save_interval=0.5, seed=0,
                       progress=False)
    assert np.all(np.isfinite(ds.u.values))


def test_resume_after_crash_is_bit_identical(tmp_path, monkeypatch):
    sde = ou()
    kw = dict(n_members=3, burn_in=2.0, duration=6.0, save_interval=0.5, seed=11,
              progress=False)
    ref = gfdt.simulate(sde, **kw)
    real_write = _DirectoryStore.write
    calls = {"n": 0}

    def crashing_write(self, *args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        real_write(self, *args)

    monkeypatch.setattr(_DirectoryStore, "write", crashing_write)
    with pytest.raises(KeyboardInterrupt):
        gfdt.simulate(sde, **kw, output=tmp_path / "run", segment=1.0)
    monkeypatch.setattr(_DirectoryStore, "write", real_write)
    resumed = gfdt.simulate(sde, **kw, output=tmp_path / "run", segment=1.0, resume=True)
    np.testing.assert_array_equal(resumed.u.values, ref.u.values)
    assert resumed.attrs["gfdt_system"] == "SDE"


def test_paired_kick_of_a_linear_sde_is_the_discrete_propagator():
    sde = ou("euler")
    init = np.random.default_rng(0).standard_normal((3, 2))
    tr = gfdt.perturbation_response(sde, init, max_lag=4, save_interval=0.1, delta=0.3,
                                    perturbation=np.array([1.0, 0.0]), seed=1,
                                    progress=False, n_workers=1)
    steps = np.arange(5) * 2  # save_interval / dt = 2 steps
    np.testing.assert_allclose(tr.response.values[:, 0], (1 - K[0] * sde.dt) ** steps,
                               rtol=1e-10)
    np.testing.assert_allclose(tr.response.values[:, 1], 0.0, atol=1e-12)


def test_forced_response_of_a_constant_forcing_on_a_linear_sde():
    sde = ou("euler")
    init = np.zeros((2, 2))
    forcing = np.zeros((6, 2))
    forcing[:, 0] = 0.1  # a rate: a kick of 0.1 * save_interval on x1 at every save time
    fr = gfdt.forced_response(sde, init, forcing, save_interval=0.05, seed=2,
                              progress=False, n_workers=1)
    a = 1 - K[0] * sde.dt
    expect = 0.1 * 0.05 * np.array([sum(a**k for k in range(j + 1)) for j in range(6)])
    np.testing.assert_allclose(fr.response.values[:, 0], expect, rtol=1e-10)


def test_parameter_truth_uses_with_parameters_and_common_noise():
    """Paired central differences in a noise amplitude of the linear SDE are exact: with
    common noise x(s) = s Y for the same Y, so ((s+h)^2 - (s-h)^2) Y^2 / 2h = 2 x(s)^2 / s
    member by member."""
    from gfdt._parameter_truth import parameter_differences
    from gfdt._runner import Integrator

    sde = ou("euler", dt=0.05)
    init = np.zeros((3, 2))
    d = parameter_differences(sde, {"s1": [0.01]}, [lambda x: x[:, 0] ** 2], init,
                              n_saves=10, save_every=4, seeds=[5, 6, 7])
    for i, seed in enumerate([5, 6, 7]):
        out = np.empty((10, 2))
        Integrator(sde)(np.zeros(2), np.zeros(0), 40, np.random.default_rng(seed),
                        save_every=4, out=out)
        np.testing.assert_allclose(d[i, 0, 0, 1:, 0], 2 * out[:, 0] ** 2 / SIG[0],
                                   rtol=1e-9)
    assert sde.with_parameters(s1=1.0).s1 == 1.0 and sde.s1 == SIG[0]


def test_divergence_and_bounds_raise_with_the_step():
    blow = SDE(drift=lambda x, p: p["r"] * x**3, noise=0.1, parameters={"r": 1.0}, dt=0.01,
               dim=1, initial=np.array([2.0]), divergence_threshold=1e3)
    with pytest.raises(SimulationDiverged, match="member 0"):
        gfdt.simulate(blow, duration=5.0, save_interval=0.1, seed=0, progress=False)
    boxed = SDE(drift=lambda x, p: -x, noise=1.0, parameters={}, dt=0.01, dim=1,
                bounds=(-0.5, 0.5))
    with pytest.raises(SimulationDiverged) as err:
        gfdt.simulate(boxed, duration=20.0, save_interval=0.1, seed=0, progress=False)
    assert err.value.step > 0


def test_full_noise_matrix_and_constant_noise():
    """Correlated noise x = g dW (one Wiener process driving both coordinates)."""
    sde = SDE(drift=lambda x, p: -p["k"] * x, noise=lambda x, p: np.ones((len(x), 2, 1)),
              parameters={"k": 1.0}, dt=0.01, dim=2)
    assert sde.normals_per_step == 1
    ds = gfdt.simulate(sde, n_members=2, burn_in=5.0, duration=50.0, save_interval=0.5,
                       seed=4, progress=False)
    np.testing.assert_allclose(ds.u.values[..., 0], ds.u.values[..., 1], atol=1e-12)
    const = SDE(drift=lambda x, p: -x, noise=np.array([[1.0], [1.0]]), dt=0.01, dim=2)
    assert const.scheme == "heun" and const.normals_per_step == 1


def test_pickle_and_with_parameters_share_the_compiled_model():
    sde = ou()
    other = sde.with_parameters(k1=0.9)
    assert other._model is sde._model and other.k1 == 0.9 and other != sde
    back = pickle.loads(pickle.dumps(ou_module_level()))
    assert back.parameters() == ou_module_level().parameters()
    assert back.backend_ == "traced"


def _drift_ml(x, p):
    return -p["k"] * x


def ou_module_level():
    return SDE(drift=_drift_ml, noise=0.3, parameters={"k": 2.0}, dt=0.01, dim=3)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="reserved"):
        SDE(drift=_drift_ml, noise=1.0, parameters={"dt": 1.0}, dt=0.1, dim=1)
    with pytest.raises(TypeError, match="parameters\\['k'\\]"):
        SDE(drift=_drift_ml, noise=1.0, parameters={"k": "1"}, dt=0.1, dim=1)
    with pytest.raises(ValueError, match="dim="):
        SDE(drift=_drift_ml, noise=lambda x, p: 1.0, parameters={"k": 1.0}, dt=0.1)
    with pytest.raises(ValueError, match="heun"):
        SDE(drift=_drift_ml, noise=lambda x, p: x, parameters={"k": 1.0}, dt=0.1, dim=1,
            scheme="heun")
    with pytest.raises(ValueError, match="dt"):
        SDE(drift=_drift_ml, noise=1.0, parameters={"k": 1.0}, dt=0.0, dim=1)
    with pytest.raises(ValueError, match="not a parameter"):
        ou_module_level().with_parameters(q=1.0)
    sde = ou_module_level()
    with pytest.raises(ValueError, match="cannot be rebuilt"):
        gfdt.systems.system_from_attrs(sde.attrs())
    with pytest.raises(AttributeError, match="immutable"):
        sde.k = 3.0


def test_a_function_that_acts_differently_on_symbols_is_not_traced():
    def drift(x, p):
        scale = 1.0 if x.dtype == object else 2.0  # misbehaves under tracing
        return -scale * p["k"] * x

    sde = SDE(drift=drift, noise=0.5, parameters={"k": 1.0}, dt=0.01, dim=1)
    assert sde._model.trace() is None
    assert "differs from the function" in sde._model.trace_error
