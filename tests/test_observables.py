"""Nonlinear observables and state-dependent perturbations: GFDT and paired truth.

Closed forms on the (linear, Gaussian) OU field, with G(t) the discrete propagator
(``exact_response``) and C the stationary covariance (``exact_covariance``), both as
circulant d x d matrices:

* scaling u(x) = x, A = x_i x_j: x -> (1 + delta) x at time 0 gives
  x_delta(t) = x(t) + delta G x(0), so E[A] changes by delta * 2 [G C G^T]_ij + O(delta^2);
  the GFDT side: B = -div u - u . s = x^T C^{-1} x - d, and for Gaussian x(0) with
  a = G^T e_i, b = G^T e_j: E[(a.x)(b.x)(x^T C^{-1} x - d)] = 2 a^T C b (Isserlis).
* constant kick e_p, A = x_i^3: x_delta(t) = x(t) + delta G e_p, so the change is
  3 delta G_ip E[x_i^2] = 3 delta C_ii G_ip; GFDT: E[x_i(t)^3 (C^{-1} x(0))_p] =
  3 Var(x_i) Cov(x_i(t), (C^{-1}x(0))_p) = 3 C_ii G_ip.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import gfdt
from gfdt import ResponseEstimator
from gfdt.response.conjugate import Perturbation

torch.set_num_threads(1)

L = 10
DT_SAVE = 0.5


def circulant(field: np.ndarray) -> np.ndarray:
    """M[a, b] = field[r_a - r_b] for a periodic field indexed by offsets."""
    n = field.shape[0]
    idx = list(itertools.product(range(n), range(n)))
    return np.array([[field[(ay - by) % n, (ax - bx) % n] for by, bx in idx]
                     for ay, ax in idx])


@pytest.fixture(scope="module")
def ou_closed(fast_ou):
    """Propagators G(t) (lags 0..L) and the covariance C as d x d matrices."""
    lags = DT_SAVE * np.arange(L + 1)
    G = np.stack([circulant(g) for g in fast_ou.exact_response(lags).values])
    C = circulant(fast_ou.exact_covariance(0.0))
    return G, C


def squares(x: np.ndarray) -> np.ndarray:
    """[x_00^2, spatial mean of x^2, x_00 x_01]."""
    f = x.reshape(len(x), -1)
    return np.stack([f[:, 0] ** 2, (f**2).mean(axis=1), f[:, 0] * f[:, 1]], axis=1)


def cubes(x: np.ndarray) -> np.ndarray:
    """[x_00^3, x_01^3, spatial mean of x^3]."""
    f = x.reshape(len(x), -1)
    return np.stack([f[:, 0] ** 3, f[:, 1] ** 3, (f**3).mean(axis=1)], axis=1)


def scaling_closed(G, C, delta=0.0):
    """E[(A(x + delta G x0) - A(x)) / delta] for the squares (exact in delta)."""
    out = []
    for g in G:
        m = g @ C @ g.T
        out.append([(2 + delta) * m[0, 0], (2 + delta) * np.trace(m) / len(m),
                    (2 + delta) * m[0, 1]])
    return np.array(out)


def kick_closed(G, C, delta=0.0):
    """E[(A(x + delta g) - A(x)) / delta] for the cubes, g = G e_0 (exact in delta)."""
    c = np.diag(C)
    out = []
    for g in G:
        gp = g[:, 0]
        full = 3 * c * gp + delta**2 * gp**3  # E[x_i] = 0 removes the delta^1 term
        out.append([full[0], full[1], full.mean()])
    return np.array(out)


def member_se(ou_run, make) -> tuple[np.ndarray, np.ndarray]:
    """Pooled estimate and its standard error from 32 independent single-member fits."""
    pooled = make().fit(ou_run).response_.values
    per = np.stack([make().fit(ou_run.isel(member=[k])).response_.values
                    for k in range(ou_run.sizes["member"])])
    return pooled, per.std(axis=0, ddof=1) / np.sqrt(per.shape[0])


# ------------------------------------------------------------------ GFDT on OU
@pytest.mark.parametrize("score", ["exact", "gaussian"])
def test_scaling_perturbation_squares(ou_run, ou_closed, score):
    """u(x) = x, A = x_00^2, mean x^2, x_00 x_01: R_A = 2 [G C G^T]_ij."""
    G, C = ou_closed
    expected = scaling_closed(G, C)

    def make():
        # Rademacher probes are exact for u(x) = x (diagonal Jacobian): cheap and exact
        return ResponseEstimator(score=score, max_lag=L, observable=squares,
                                 perturbation=lambda x: x, divergence="hutchinson",
                                 n_probes=1, bootstrap=False)

    est, se = member_se(ou_run, make)
    assert est.shape == (L + 1, 3)
    # |t_31| > 5 has probability 2e-5 per entry (see tests/test_response.py)
    z = np.abs(est - expected) / se
    assert np.all(z <= 5), z.max()
    # power: mean x^2 to 10% or better up to t = 2.5 (se ~0.0034, R_A from 0.16 to 0.05)
    assert np.all(se[:6, 1] < 0.1 * expected[:6, 1])


@pytest.mark.parametrize("score", ["exact", "gaussian"])
def test_constant_kick_cubes(ou_run, ou_closed, score):
    """Kick at pixel (0, 0), A = x_00^3, x_01^3, mean x^3: R_A = 3 C_ii G_ip."""
    G, C = ou_closed
    expected = kick_closed(G, C)
    kick = np.zeros((8, 8))
    kick[0, 0] = 1.0

    def make():
        return ResponseEstimator(score=score, max_lag=L, observable=cubes, perturbation=kick,
                                 bootstrap=False)

    est, se = member_se(ou_run, make)
    z = np.abs(est - expected) / se
    assert np.all(z <= 5), z.max()
    assert np.all(se[:6, 0] < 0.25 * expected[:6, 0])  # power on x_00^3, t <= 2.5


def test_stein_sum_rule_of_the_conjugate(ou_run, ou_closed):
    """R_A(0) = E[grad A . u]: the data estimate stein_expected_ vs its expectation
    2 C_ii and the GFDT lag-0 value within sampling error."""
    _G, C = ou_closed
    est = ResponseEstimator(score="exact", max_lag=1, observable=squares, seed=0,
                            perturbation=lambda x: x, divergence="hutchinson",
                            n_probes=1).fit(ou_run)
    assert est.response_.attrs["divergence"] == "hutchinson"
    auto = ResponseEstimator(score="exact", max_lag=1, observable=squares,
                             perturbation=lambda x: x).fit(ou_run.isel(member=0))
    assert auto.response_.attrs["divergence"] == "exact"  # "auto" with d = 64
    exp = est.stein_expected_.values
    # E[2 x_00^2], E[2 mean x^2], E[2 x_00 x_01] from 19200 correlated states: ~3%
    np.testing.assert_allclose(exp, 2 * np.array([C[0, 0], C[0, 0], C[0, 1]]), rtol=0.08)
    se = est.response_stderr_.values[0]
    assert np.all(np.abs(est.stein_.values - exp) <= 5 * se)
    assert est.stein_error_ == pytest.approx(np.linalg.norm(est.stein_.values - exp)
                                             / np.linalg.norm(exp))


# --------------------------------------------------------------- exactness
def test_constant_kick_identity_observable_is_a_column_of_the_matrix_response(ou_run):
    """A = the state, u = e_p: the matrix GFDT's column p (no translation average)."""
    data = ou_run.isel(member=[0, 1])
    kick = np.zeros((8, 8))
    kick[2, 5] = 1.0
    a = ResponseEstimator(score="exact", max_lag=3, perturbation=kick,
                          bootstrap=False).fit(data)
    b = ResponseEstimator(score="exact", max_lag=3, homogeneous=False,
                          bootstrap=False).fit(data)
    assert a.response_.dims == ("lag", "y", "x")
    assert a.response_kind_ == "perturbation"
    col = b.response_.values[:, :, 2 * 8 + 5].reshape(4, 8, 8)
    np.testing.assert_allclose(a.response_.values, col, rtol=0, atol=1e-12)
    # an observable without a perturbation: kicks on every coordinate (lag, obs, source)
    c = ResponseEstimator(score="exact", max_lag=3, bootstrap=False,
                          observable=lambda x: x.reshape(len(x), -1)).fit(data)
    assert c.response_.dims == ("lag", "observable", "source")
    assert c.response_kind_ == "observable"
    np.testing.assert_allclose(c.response_.values, b.response_.values, rtol=0, atol=1e-12)


def brute_conjugate(members, A, B, max_lag, stride=1):
    """R[tau] = mean over pairs (t on the stride grid, t + tau) of (A(t+tau) - <A>) B(t)."""
    a = [A(m) for m in members]
    mean = np.concatenate(a).mean(axis=0)
    out = np.zeros((max_lag + 1, a[0].shape[1]))
    for lag in range(max_lag + 1):
        tot, cnt = 0.0, 0
        for am, m in zip(a, members, strict=True):
            b = B(m)
            for t in range(0, len(m) - lag, stride):
                tot = tot + (am[t + lag] - mean) * b[t]
                cnt += 1
        out[lag] = tot / cnt
    return out


@pytest.mark.parametrize("stride", [1, 2])
def test_conjugate_path_brute_force(stride):
    """Unequal members, a nonlinear score, observable and perturbation: explicit loops."""
    rng = np.random.default_rng(0)
    members = [rng.standard_normal((T, 3)) for T in (17, 26)]

    def score(x):
        return -x + 0.2 * np.tanh(x[:, ::-1])

    def u(x):
        return x**3 + np.sin(np.roll(x, 1, axis=1))

    def div(x):
        return (3 * x**2).sum(axis=1)  # the roll has no diagonal part

    def A(x):
        return np.stack([x[:, 0] ** 2, x.sum(axis=1)], axis=1)

    def B(x):
        return -div(x) - (u(x) * score(x)).sum(axis=1)

    expected = brute_conjugate(members, A, B, 4, stride)
    for d in ("exact", div):
        est = ResponseEstimator(score=score, max_lag=4, observable=A, perturbation=u,
                                divergence=d, source_stride=stride, batch_size=5, seed=0,
                                block_length=6).fit(members)
        # central differences of x^3 are off by h^2 ~ (1e-4 sd)^2 per coordinate
        np.testing.assert_allclose(est.response_.values, expected, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(est.mean_, np.concatenate([A(m) for m in members])
                                   .mean(axis=0), rtol=1e-13)


def test_observable_and_perturbation_objects_carry_their_options():
    """Perturbation(u, divergence=..., n_probes=..., ...) and Observable(A) give the same
    response as the estimator's keywords, which are only a shorthand for them."""
    rng = np.random.default_rng(3)
    members = [rng.standard_normal((40, 4)) for _ in range(2)]

    def score(x):
        return -x

    def u(x):
        return np.tanh(x)

    kw = dict(score=score, max_lag=3, bootstrap=False, seed=5)
    by_keywords = ResponseEstimator(observable="mean", perturbation=u,
                                    divergence="hutchinson", n_probes=3, probe="gaussian",
                                    fd_step=1e-3, **kw).fit(members)
    pert = gfdt.Perturbation(u, divergence="hutchinson", n_probes=3, probe="gaussian",
                             fd_step=1e-3)
    by_object = ResponseEstimator(observable=gfdt.Observable("mean"), perturbation=pert,
                                  divergence="exact", n_probes=99, **kw).fit(members)
    np.testing.assert_array_equal(by_object.response_.values, by_keywords.response_.values)
    assert by_object.response_.attrs["n_probes"] == 3
    assert by_object.response_.attrs["probe"] == "gaussian"
    # an unbound object is bound to the data's state shape at fit, and checked there
    with pytest.raises(ValueError, match="perturbation array must have the state"):
        ResponseEstimator(perturbation=gfdt.Perturbation(np.ones(3)), **kw).fit(members)
    with pytest.raises(ValueError, match="n_probes"):
        gfdt.Perturbation(u, n_probes=0)


# ------------------------------------------------------------------ divergence
def u_nonlinear(x):
    """u_i = x_i^3 + sin(x_{i+1}) on a (2, 3) state: divergence 3 sum x_i^2."""
    return x**3 + np.sin(np.roll(x, -1, axis=2))


def u_nonlinear_torch(x):
    return x**3 + torch.sin(torch.roll(x, -1, dims=2))


def test_exact_divergence_fd_and_autograd():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((7, 2, 3))
    exact = (3 * x**2).sum(axis=(1, 2))
    fd = Perturbation(u_nonlinear, (2, 3), divergence="exact", fd_step=1e-4)
    u, div = fd.field_and_divergence(x)
    np.testing.assert_allclose(u, u_nonlinear(x), rtol=0, atol=0)
    np.testing.assert_allclose(div, exact, rtol=1e-7)  # central differences: O(h^2)
    ag = Perturbation(u_nonlinear_torch, (2, 3), divergence="exact", autograd=True)
    u2, div2 = ag.field_and_divergence(x)
    np.testing.assert_allclose(u2, u_nonlinear(x), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(div2, exact, rtol=1e-13)
    # Rademacher probes are exact for a diagonal Jacobian (u = x^3)
    hr = Perturbation(lambda z: z**3, (2, 3), divergence="hutchinson", n_probes=1,
                      fd_step=1e-4, rng=np.random.default_rng(0))
    np.testing.assert_allclose(hr.field_and_divergence(x)[1], exact, rtol=1e-7)
    # a constant direction has divergence 0
    assert np.all(Perturbation(np.ones((2, 3)), (2, 3)).field_and_divergence(x)[1] == 0)


@pytest.mark.parametrize("probe", ["rademacher", "gaussian"])
def test_hutchinson_mean_and_documented_variance(probe):
    """u = K x: one-probe estimates have mean tr K and variance
    2(||K_s||_F^2 - sum K_ii^2) (Rademacher) or 2 ||K_s||_F^2 (Gaussian)."""
    rng = np.random.default_rng(2)
    K = rng.standard_normal((6, 6))

    def u(x):
        return (x.reshape(len(x), 6) @ K.T).reshape(x.shape)

    n = 40000
    x = rng.standard_normal((n, 2, 3))
    h = Perturbation(u, (2, 3), divergence="hutchinson", n_probes=1, probe=probe,
                     fd_step=1e-3, rng=np.random.default_rng(3))
    est = h.field_and_divergence(x)[1]
    Ks = (K + K.T) / 2
    var = 2 * (np.sum(Ks**2) - (np.sum(np.diag(K) ** 2) if probe == "rademacher" else 0))
    # the sample mean has sd sqrt(var / n) ~ 0.03; the sample variance a relative sd of
    # sqrt((kurtosis - 1) / n) < 2% here: 5 sd tolerances
    assert est.mean() == pytest.approx(np.trace(K), abs=5 * np.sqrt(var / n))
    assert est.var() == pytest.approx(var, rel=0.1)
    # n_probes averages: variance / n_probes
    h8 = Perturbation(u, (2, 3), divergence="hutchinson", n_probes=8, probe=probe,
                      fd_step=1e-3, rng=np.random.default_rng(4))
    assert h8.field_and_divergence(x[:10000])[1].var() == pytest.approx(var / 8, rel=0.1)


def test_hutchinson_autograd_equals_finite_differences():
    """Same probes (same seed): autograd's v^T J v equals the central difference."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((9, 2, 3))
    kw = {"divergence": "hutchinson", "n_probes": 3}
    fd = Perturbation(u_nonlinear, (2, 3), fd_step=1e-4, rng=np.random.default_rng(6), **kw)
    ag = Perturbation(u_nonlinear_torch, (2, 3), autograd=True, rng=np.random.default_rng(6),
                      **kw)
    np.testing.assert_allclose(fd.field_and_divergence(x)[1], ag.field_and_divergence(x)[1],
                               rtol=1e-7)


def test_autograd_in_the_estimator():
    rng = np.random.default_rng(7)
    members = [rng.standard_normal((30, 2, 3))]
    kw = {"score": lambda x: -x, "max_lag": 2, "observable": "mean", "bootstrap": False}
    a = ResponseEstimator(perturbation=u_nonlinear, divergence="exact", **kw).fit(members)
    b = ResponseEstimator(perturbation=u_nonlinear_torch, autograd=True, divergence="exact",
                          **kw).fit(members)
    np.testing.assert_allclose(a.response_.values, b.response_.values, rtol=1e-7)
    assert list(a.response_["observable"].values) == ["mean"]


# ---------------------------------------------------------- paired truth on OU
def replay(fast_ou, initial, seed, max_lag):
    """The unperturbed trajectories perturbation_response integrates (same streams)."""
    run = gfdt.simulate(fast_ou, n_members=len(initial), duration=(max_lag + 1) * DT_SAVE,
                        save_interval=DT_SAVE, seed=seed, initial=initial, n_workers=1,
                        progress=False)
    return run.u.values  # (member, lag, y, x)


def propagate(fast_ou, fields, max_lag):
    """G(t) applied to fields (member, y, x): exact discrete propagator, (member, lag, y, x)."""
    g = fast_ou.amplification()
    steps = round(DT_SAVE / fast_ou.dt)
    fh = np.fft.rfft2(fields)
    return np.stack([np.fft.irfft2(fh * g ** (steps * k), s=fields.shape[1:])
                     for k in range(max_lag + 1)], axis=1)


@pytest.mark.parametrize("case", ["kick", "scaling"])
def test_truth_equals_the_replayed_difference(fast_ou, ou_run, case):
    """OU is linear with additive noise: the perturbed copy is x(t) + delta G x_pert(0)
    exactly, so (A(x') - A(x)) / delta averaged over members is known from the
    unperturbed trajectories alone: machine precision."""
    initial = ou_run.u.isel(time=-1, member=slice(0, 5)).values
    delta, ml = 0.05, 6
    if case == "kick":
        pert = np.zeros((8, 8))
        pert[0, 0] = 1.0
        obs, start = cubes, np.broadcast_to(pert, initial.shape)
    else:
        pert, obs, start = (lambda x: x), squares, initial
    tr = gfdt.perturbation_response(fast_ou, initial, max_lag=ml, save_interval=DT_SAVE,
                                    delta=delta, seed=3, observable=obs, perturbation=pert,
                                    progress=False)
    x = replay(fast_ou, initial, 3, ml)
    dx = delta * propagate(fast_ou, np.ascontiguousarray(start), ml)
    diff = np.stack([(obs(x[k] + dx[k]) - obs(x[k])) / delta for k in range(len(x))])
    assert tr["response"].dims == ("lag", "observable")
    np.testing.assert_allclose(tr["response"].values, diff.mean(axis=0), rtol=0, atol=1e-10)
    np.testing.assert_allclose(tr["stderr"].values, diff.std(axis=0, ddof=1) / np.sqrt(5),
                               rtol=1e-8, atol=1e-12)
    assert tr.attrs["n_impulses"] == 5
    assert "pixels" not in tr.attrs and tr.attrs["observable"] in ("cubes", "squares")


def test_truth_field_response_to_a_state_dependent_perturbation(fast_ou, ou_run):
    """No observable: the mean field change per unit delta, G(t) applied to mean u(x0)."""
    initial = ou_run.u.isel(time=-1, member=slice(0, 4)).values
    tr = gfdt.perturbation_response(fast_ou, initial, max_lag=4, save_interval=DT_SAVE,
                                    delta=0.1, seed=1, perturbation=np.tanh, progress=False)
    assert tr["response"].dims == ("lag", "y", "x")
    expected = propagate(fast_ou, np.tanh(initial), 4).mean(axis=0)
    np.testing.assert_allclose(tr["response"].values, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", ["kick", "scaling"])
def test_truth_matches_the_closed_form(fast_ou, ou_run, ou_closed, case):
    """Paired truth vs the closed forms at finite delta (exact in delta for these
    observables) within the truth's own standard error: the differences depend on the
    random initial states and (for nonlinear A) on the noise, so they are not exact.
    32 independent members x 3 windows; |t_31| <= 5 per entry."""
    G, C = ou_closed
    delta, ml = 0.05, 6
    if case == "kick":
        pert = np.zeros((8, 8))
        pert[0, 0] = 1.0
        obs, expected = cubes, kick_closed(G, C, delta)
    else:
        pert, obs, expected = (lambda x: x), squares, scaling_closed(G, C, delta)
    tr = gfdt.perturbation_response(fast_ou, ou_run.u.isel(time=-1), max_lag=ml,
                                    save_interval=DT_SAVE, delta=delta, seed=4, n_windows=3,
                                    observable=obs, perturbation=pert, progress=False)
    r, se = tr["response"].values, tr["stderr"].values
    assert np.all(np.abs(r - expected[: ml + 1]) <= 5 * se)
    col = 0 if case == "kick" else 1  # power on x_00^3 / mean x^2
    assert np.all(se[:, col] < 0.25 * np.abs(expected[: ml + 1, col]))


# ------------------------------------------------------------------ Allen-Cahn
@pytest.mark.slow
def test_allen_cahn_gfdt_matches_paired_truth(allen_cahn_small):
    """Non-Gaussian field: exact-score GFDT vs paired truth for nonlinear observables of
    a pixel kick, within 4 combined standard errors (GFDT: bootstrap; truth: across 16
    members x 20 windows; measured max |z| 0.94); the Gaussian approximation misses
    the cubic pixel observable at lag 0 (measured z = -5.9)."""
    ac, run = allen_cahn_small
    kick = np.zeros((8, 8))
    kick[0, 0] = 1.0

    def obs(x):
        f = x.reshape(len(x), -1)
        return np.stack([f[:, 0] ** 3, (f**3).mean(axis=1)], axis=1)

    ml = 8
    tr = gfdt.perturbation_response(ac, run.u.isel(time=-1), max_lag=ml,
                                    save_interval=DT_SAVE, delta=0.05, seed=5, n_windows=20,
                                    observable=obs, perturbation=kick, progress=False)
    exact = ResponseEstimator(score="exact", max_lag=ml, observable=obs, perturbation=kick,
                              seed=0).fit(run)
    gauss = ResponseEstimator(score="gaussian", max_lag=ml, observable=obs, perturbation=kick,
                              seed=0).fit(run)
    t, ts = tr["response"].values, tr["stderr"].values
    z = (exact.response_.values - t) / np.hypot(exact.response_stderr_.values, ts)
    assert np.all(np.abs(z) <= 4), np.abs(z).max()
    assert t[0, 0] > 10 * np.hypot(exact.response_stderr_.values[0, 0], ts[0, 0])  # power
    zg = (gauss.response_.values - t) / np.hypot(gauss.response_stderr_.values, ts)
    assert zg[0, 0] < -4  # the Gaussian gets R_A(0) = E[3 x_00^2] wrong


# ------------------------------------------------------------------ input
@pytest.mark.parametrize(("kwargs", "exc", "match"), [
    ({"observable": "median"}, ValueError, "unknown observable 'median'"),
    ({"observable": 3}, TypeError, "observable must be"),
    ({"observable": lambda x: x[:2]}, ValueError, "observable returned shape"),
    ({"observable": lambda x: x.sum(axis=1) * np.nan}, ValueError, "observable returned NaN"),
    ({"perturbation": np.ones(3)}, ValueError, "perturbation array must have the state"),
    ({"perturbation": lambda x: x[:, :1]}, ValueError, "perturbation returned shape"),
    ({"perturbation": "x"}, TypeError, "perturbation must be"),
    ({"perturbation": lambda x: x, "divergence": "trace"}, ValueError, "divergence must be"),
    ({"perturbation": lambda x: x, "n_probes": 0}, ValueError, "n_probes"),
    ({"perturbation": lambda x: x, "probe": "uniform"}, ValueError, "probe"),
    ({"perturbation": lambda x: x, "fd_step": -1.0}, ValueError, "fd_step"),
    ({"perturbation": lambda x: x, "autograd": "yes"}, TypeError, "autograd"),
    ({"perturbation": lambda x: x, "normalize": True}, ValueError, "normalize=True applies"),
])
def test_bad_input(kwargs, exc, match):
    x = np.random.default_rng(0).standard_normal((20, 2))
    with pytest.raises(exc, match=match):
        ResponseEstimator(score=lambda b: -b, max_lag=1, **kwargs).fit(x)


def test_truth_bad_input(fast_ou):
    kw = {"max_lag": 2, "save_interval": 0.5, "delta": 0.1, "progress": False}
    init = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="either pixel or perturbation"):
        gfdt.perturbation_response(fast_ou, init, pixel=(1, 1), perturbation=lambda x: x, **kw)
    with pytest.raises(ValueError, match="perturbation returned shape"):
        gfdt.perturbation_response(fast_ou, init, perturbation=lambda x: x[:, :2], **kw)
    with pytest.raises(ValueError, match="unknown observable"):
        gfdt.perturbation_response(fast_ou, init, observable="max", **kw)
