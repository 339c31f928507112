"""Parameter sensitivities on the OU system against the Lyapunov equation."""

import warnings

import numpy as np
import pytest
import scipy.linalg as sl

import gfdt
from gfdt.response.parameters import ParameterPerturbation
from gfdt.response.sensitivity import step_response

OU = gfdt.OrnsteinUhlenbeck(n=8, dt=0.05, lam=0.5, kappa=0.05, A=0.2, eps2=0.04)
PARAMS = ("lam", "kappa", "eps2")


def var(u):
    """Spatial mean of u^2 (= C(0) by homogeneity)."""
    return (u**2).mean(axis=(1, 2))


def cov_x(u):
    """Spatial mean of u(x) u(x + dx)."""
    return (u * np.roll(u, -1, axis=2)).mean(axis=(1, 2))


OBS = {"var": var, "cov_x": cov_x}


def _matrix(apply, d=64, shape=(8, 8)):
    """The matrix of a linear map on flattened states (columns: images of the basis)."""
    return apply(np.eye(d).reshape(d, *shape)).reshape(d, d).T


def _obs_of_cov(c):
    """(var, cov_x) of a covariance matrix of the flattened 8 x 8 field."""
    idx = np.arange(64).reshape(8, 8)
    shifted = np.roll(idx, -1, axis=1).ravel()
    return np.array([np.trace(c) / 64, c[np.arange(64), shifted].mean()])


def lyapunov(system):
    """Stationary covariance C (L C + C L^T + 2 D = 0) and the drift matrix L."""
    L = _matrix(system.drift)
    D = system.diffusion_derivative("eps2") * system.eps2  # D is linear in eps2
    return sl.solve_continuous_lyapunov(L, -2 * D), L


def lyapunov_sensitivity(system, parameter, t=None):
    """dC/dtheta from the differentiated Lyapunov equation; at time t after a step:
    dC(t) = dC(inf) - e^{Lt} dC(inf) e^{L^T t}."""
    C, L = lyapunov(system)
    dL = _matrix(lambda u: system.drift_derivative(u, parameter))
    dD = system.diffusion_derivative(parameter)
    q = dL @ C + C @ dL.T + (0 if dD is None else 2 * dD)
    dC = sl.solve_continuous_lyapunov(L, -q)
    if t is None:
        return _obs_of_cov(dC)
    out = []
    for tt in np.atleast_1d(t):
        e = sl.expm(L * tt)
        out.append(_obs_of_cov(dC - e @ dC @ e.T))
    return np.array(out)


def truth():
    return np.stack([lyapunov_sensitivity(OU, p) for p in PARAMS], axis=1)


@pytest.fixture(scope="module")
def ou_data():
    return gfdt.simulate(OU, n_members=8, burn_in=20.0, duration=2500.0, save_interval=0.25,
                         seed=7)


# ------------------------------------------------------------------ system methods
def test_ou_system_methods_against_lyapunov_and_finite_differences():
    # the drift and D of the grid SDE reproduce the continuum stationary covariance
    C, _ = lyapunov(OU)
    c_exact = OU.exact_covariance(0.0, discrete=False)
    idx = np.arange(64)
    iy, ix = np.divmod(idx, 8)
    expect = c_exact[(iy[:, None] - iy[None, :]) % 8, (ix[:, None] - ix[None, :]) % 8]
    np.testing.assert_allclose(C, expect, rtol=1e-8, atol=1e-12)
    rng = np.random.default_rng(0)
    u = rng.standard_normal((3, 8, 8))
    for p in ("lam", "kappa", "A", "eps2"):
        h = 1e-3 * max(abs(getattr(OU, p)), 1e-3)
        fd = (OU.with_parameters(**{p: getattr(OU, p) + h}).drift(u)
              - OU.with_parameters(**{p: getattr(OU, p) - h}).drift(u)) / (2 * h)
        np.testing.assert_allclose(OU.drift_derivative(u, p), fd, atol=1e-8)
        m = _matrix(lambda v, p=p: OU.drift_derivative(v, p))
        np.testing.assert_allclose(OU.drift_derivative_divergence(u, p), np.trace(m),
                                   atol=1e-9)
        # the differentiated Lyapunov equation = finite differences of the closed form
        fdc = (_obs_of_cov(lyapunov(OU.with_parameters(**{p: getattr(OU, p) + h}))[0])
               - _obs_of_cov(lyapunov(OU.with_parameters(**{p: getattr(OU, p) - h}))[0])
               ) / (2 * h)
        np.testing.assert_allclose(lyapunov_sensitivity(OU, p), fdc, rtol=1e-5, atol=1e-9)
    assert OU.diffusion_derivative("lam") is None
    with pytest.raises(ValueError, match=r"sensitivity parameter.*known: lam"):
        OU.drift_derivative(u, "n")
    with pytest.raises(ValueError, match="'bogus' not a parameter"):
        OU.with_parameters(bogus=1.0)
    with pytest.raises(NotImplementedError, match=r"NavierStokes2D.*drift_derivative"):
        gfdt.NavierStokes2D(n=8).drift_derivative(np.zeros((1, 8, 8)), "nu")


def test_allen_cahn_system_methods():
    """Allen-Cahn: dF/dtheta = finite differences of the drift in the parameter (exact:
    the drift is linear in each parameter), divergence = trace of the Jacobian by
    central differences in the state, D' the same circulant as the OU system's."""
    ac = gfdt.AllenCahn(n=8, alpha=2.0, kappa=0.05, A=0.3, eps2=0.04)
    u = np.random.default_rng(1).standard_normal((2, 8, 8))
    h = 1e-6
    for p in ac.sensitivity_parameters:
        v = getattr(ac, p)
        fd = (ac.with_parameters(**{p: v + 1e-3}).drift(u)
              - ac.with_parameters(**{p: v - 1e-3}).drift(u)) / 2e-3
        np.testing.assert_allclose(ac.drift_derivative(u, p), fd, atol=1e-8)
        div = np.zeros(2)
        for j in range(64):
            e = np.zeros(64)
            e[j] = h
            e = e.reshape(8, 8)
            div += (ac.drift_derivative(u + e, p) - ac.drift_derivative(u - e, p)
                    ).reshape(2, 64)[:, j] / (2 * h)
        np.testing.assert_allclose(ac.drift_derivative_divergence(u, p), div, atol=1e-5,
                                   rtol=1e-6)
    np.testing.assert_allclose(ac.diffusion_derivative("eps2"),
                               gfdt.OrnsteinUhlenbeck(n=8).diffusion_derivative("eps2"))
    assert ac.diffusion_derivative("alpha") is None


# ------------------------------------------------------------ static sensitivities
@pytest.mark.parametrize("score", ["exact", "gaussian"])
def test_ou_static_sensitivity_within_two_stderr(ou_data, score):
    est = gfdt.SensitivityEstimator(score, OBS, list(PARAMS), max_lag=30.0, seed=0)
    est.fit(ou_data)
    s, se = est.sensitivity_matrix()
    t = truth()
    assert est.sensitivity_.dims == ("observable", "parameter")
    assert list(est.sensitivity_.parameter.values) == list(PARAMS)
    assert np.all(np.abs(s - t) <= 2 * se), ((s - t) / se)
    # the errors are small enough for the comparison to mean something (the noise
    # conjugate s^T D' s sums over all modes: larger relative errors)
    assert np.all(se[:, 0] < 0.1 * np.abs(t[:, 0]))
    assert np.all(se[:, 2] < 0.2 * np.abs(t[:, 2]))
    assert np.all(est.window_.values > 0) and np.all(est.window_.values <= 30.0)
    assert est.sensitivity_.attrs["integration"] == "trapezoid"
    assert est.sensitivity_.attrs["long_name"].startswith("static sensitivity")
    assert "window_rule" in est.sensitivity_.attrs


def test_ou_step_response_against_closed_form(ou_data):
    est = gfdt.SensitivityEstimator("exact", OBS, ["lam", "eps2"], max_lag=30.0, seed=0)
    est.fit(ou_data)
    times = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    for j, p in enumerate(("lam", "eps2")):
        expect = lyapunov_sensitivity(OU, p, times)  # (t, obs)
        got = est.response_.sel(lag=times).values[:, :, j]
        se = est.response_stderr_.sel(lag=times).values[:, :, j]
        assert np.all(np.abs(got - expect) <= 2.5 * se), ((got - expect) / se)
    assert np.all(est.response_.isel(lag=0).values == 0)


def test_stein_correction_repairs_a_mis_scaled_score(ou_data):
    """0.3 x the exact score. Uncorrected, the drift conjugate's score term and the
    diffusion conjugate scale by 0.3 and 0.3^2 (the constant parts do not correlate with
    A): the sensitivities are 0.3 and 0.09 times the truth. Corrected: the truth."""
    score = gfdt.scores.AnalyticScore(lambda u: 0.3 * OU.exact_score(u), affine=True)
    t = truth()[:, [0, 2]]
    out = {}
    for corrected in (False, True):
        est = gfdt.SensitivityEstimator(score.fit(), OBS, ["lam", "eps2"], max_lag=30.0,
                                        window=15.0, seed=0, stein_correction=corrected)
        out[corrected] = est.fit(ou_data).sensitivity_matrix()
        assert est.sensitivity_.attrs["stein_correction"] == int(corrected)
    s, se = out[True]
    assert np.all(np.abs(s - t) <= 2 * se), (s - t) / se
    s, se = out[False]
    wrong = t * np.array([0.3, 0.09])
    assert np.all(np.abs(s - wrong) <= 2 * se), (s - wrong) / se
    # the corrected estimate is precise enough to reject the uncorrected answer
    assert np.all(np.abs(wrong - t) > 4 * out[True][1])


def test_explicit_window_and_perturbation_objects(ou_data):
    """A user ParameterPerturbation (diagonal dD: white noise of variance 2 per point)
    and a given window."""
    dD = np.ones(64)
    pert = ParameterPerturbation(diffusion_derivative=dD, name="white")
    est = gfdt.SensitivityEstimator("exact", {"var": var}, [pert, "eps2"],
                                    max_lag=30.0, window=20.0, seed=0).fit(ou_data)
    assert np.all(est.window_.values == 20.0)
    assert est.sensitivity_.attrs["window"] == 20.0
    _, L = lyapunov(OU)
    dC = sl.solve_continuous_lyapunov(L, -2 * np.diag(dD))
    s, se = est.sensitivity_matrix()
    assert abs(s[0, 0] - np.trace(dC) / 64) <= 2 * se[0, 0]


def test_conjugates_closed_form():
    """B for a Gaussian score s = -P x: drift part with a nonlinear F' = x^3,
    B_F = -3 sum x^2 - x^3 . s; diffusion part B_D = -tr(D'P) + x^T P D' P x, with every
    trace method."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((3, 3))
    P = a @ a.T + 3 * np.eye(3)
    dD = np.array([[1.0, 0.3, 0.0], [0.3, 2.0, -0.5], [0.0, -0.5, 0.5]])
    x = rng.standard_normal((50, 3))

    def score(z):
        return -z @ P

    s = score(x)
    drift = ParameterPerturbation(lambda z: z**3, name="cubic").bind((3,), rng, 1e-4)
    expect_f = -3 * (x**2).sum(1) - ((x**3) * s).sum(1)
    # central differences with h = 1e-4: truncation error h^2 |d^3 F'| ~ 1e-7
    np.testing.assert_allclose(drift.conjugate(x, s, score), expect_f, rtol=1e-6, atol=1e-6)
    expect_d = -np.trace(dD @ P) + np.einsum("bi,ij,bj->b", x @ P, dD, x @ P)
    for method in ("constant", "exact", "auto"):
        pert = ParameterPerturbation(diffusion_derivative=dD, jacobian=method).bind(
            (3,), rng, 1e-3)
        np.testing.assert_allclose(pert.conjugate(x, s, score), expect_d, rtol=1e-7)
    hut = ParameterPerturbation(diffusion_derivative=dD, jacobian="hutchinson",
                                n_probes=4000).bind((3,), np.random.default_rng(2), 1e-3)
    err = hut.conjugate(x, s, score) - expect_d
    # probe noise: v^T (D' J) v has standard deviation below |D'J|_F * sqrt(2) per probe
    assert np.abs(err).max() < 5 * np.sqrt(2) * np.linalg.norm(dD @ P) / np.sqrt(4000)
    diag = ParameterPerturbation(diffusion_derivative=np.diag(dD), jacobian="exact").bind(
        (3,), rng, 1e-3)
    expect_diag = -np.trace(np.diag(np.diag(dD)) @ P) + np.einsum(
        "bi,i,bi->b", x @ P, np.diag(dD), x @ P)
    np.testing.assert_allclose(diag.conjugate(x, s, score), expect_diag, rtol=1e-7)


def test_step_response_is_trapezoid():
    k = np.exp(-np.arange(6.0))[:, None, None] * np.ones((1, 2, 3))
    r = step_response(k, 0.5)
    expect = 0.5 * (np.cumsum(np.exp(-np.arange(6.0))) - 0.5 - 0.5 * np.exp(-np.arange(6.0)))
    np.testing.assert_allclose(r[:, 1, 2], expect)


# ------------------------------------------------------------------- bad input
def test_errors_name_the_argument(ou_data):
    fit = ou_data.isel(time=slice(0, 400))
    with pytest.raises(ValueError, match="'nu' is not a sensitivity parameter"):
        gfdt.SensitivityEstimator("exact", OBS, ["nu"], max_lag=10).fit(fit)
    with pytest.raises(ValueError, match="window"):
        gfdt.SensitivityEstimator("exact", OBS, ["lam"], max_lag=10, window=20).fit(fit)
    with pytest.raises(ValueError, match="window=None"):
        gfdt.SensitivityEstimator("exact", OBS, ["lam"], max_lag=10, bootstrap=False).fit(fit)
    with pytest.raises(ValueError, match="observables"):
        gfdt.SensitivityEstimator("exact", None, ["lam"], max_lag=10).fit(fit)
    with pytest.raises(TypeError, match=r"observables\['a'\]"):
        gfdt.SensitivityEstimator("exact", {"a": 3}, ["lam"], max_lag=10).fit(fit)
    with pytest.raises(ValueError, match="max_lag"):
        gfdt.SensitivityEstimator("exact", OBS, ["lam"], max_lag=10**6).fit(fit)
    with pytest.raises(ValueError, match=r"diffusion_derivative.*size"):
        gfdt.SensitivityEstimator("exact", OBS, [ParameterPerturbation(
            diffusion_derivative=np.ones(3))], max_lag=10, window=5).fit(fit)
    with pytest.raises(ValueError, match="diffusion_derivative must have shape"):
        ParameterPerturbation(diffusion_derivative=np.ones((2, 3)))
    with pytest.raises(ValueError, match="give drift_derivative"):
        ParameterPerturbation()
    with pytest.raises(ValueError, match="jacobian"):
        ParameterPerturbation(diffusion_derivative=np.ones(3), jacobian="magic")
    bad = fit.u.values.copy()
    bad[0, 5, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        gfdt.SensitivityEstimator("exact", OBS, ["lam"], system=OU, max_lag=10).fit(
            list(bad))
    with pytest.raises(ValueError, match="needs a system"):
        gfdt.SensitivityEstimator("gaussian", OBS, ["lam"], max_lag=10).fit(
            list(fit.u.values))
    with pytest.raises(gfdt.scores.NotFittedError):
        gfdt.SensitivityEstimator().sensitivity_matrix()


def test_truncated_window_warns(ou_data):
    fit = ou_data.isel(time=slice(0, 2000))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", gfdt.response.BootstrapWarning)
        with pytest.warns(UserWarning, match="increase max_lag"):
            gfdt.SensitivityEstimator("exact", {"var": var}, ["eps2"], max_lag=2,
                                      seed=0).fit(fit)


def test_constant_part_of_a_conjugate_does_not_enter(ou_data):
    """A conjugate shifted by a constant (a state-independent divergence) gives the same
    kick response: the conjugates are centred (their exact mean is zero)."""
    def run(div):
        pert = ParameterPerturbation(lambda u: np.ones_like(u), name="shift",
                                     drift_divergence=div)
        return gfdt.SensitivityEstimator("gaussian", {"var": var}, [pert], max_lag=4.0,
                                         window=2.0, bootstrap=False).fit(ou_data)

    plain = run(lambda u: np.zeros(len(u)))
    shifted = run(lambda u: np.full(len(u), 360.0))
    np.testing.assert_allclose(shifted.kick_response_.values, plain.kick_response_.values,
                               rtol=0, atol=1e-9 * np.abs(plain.kick_response_.values).max())
