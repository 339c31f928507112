"""ResponseEstimator: known answers (VAR(1), OU), brute-force lag averages, input handling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.linalg
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from gfdt import ResponseEstimator
from gfdt.scores import GaussianScore

# ---------------------------------------------------------------- brute force


def brute_matrix(members: list[np.ndarray], score, max_lag: int) -> np.ndarray:
    """R[tau] = -mean over all (t, t + tau) pairs of (x(t + tau) - mean) s(x(t))^T."""
    flat = [m.reshape(m.shape[0], -1) for m in members]
    mean = np.concatenate(flat).mean(axis=0)
    d = flat[0].shape[1]
    out = np.zeros((max_lag + 1, d, d))
    for lag in range(max_lag + 1):
        total = np.zeros((d, d))
        count = 0
        for x, raw in zip(flat, members, strict=True):
            T = x.shape[0]
            s = np.asarray(score(raw)).reshape(T, d)
            for t in range(T - lag):  # a plain double loop: no FFT, no wrap
                total += np.outer(x[t + lag] - mean, s[t])
            count += T - lag
        out[lag] = -total / count
    return out


def brute_homogeneous(members: list[np.ndarray], score, max_lag: int) -> np.ndarray:
    """R[tau, r] = -mean over pairs and positions x of (u(x + r, t + tau) - mean) s(x, t)."""
    state = members[0].shape[1:]
    mean = np.concatenate([m.ravel() for m in members]).mean()
    axes = tuple(range(1, 1 + len(state)))
    out = np.zeros((max_lag + 1, *state))
    for lag in range(max_lag + 1):
        count = sum(m.shape[0] - lag for m in members)
        for r in itertools.product(*(range(k) for k in state)):
            total = 0.0
            for u in members:
                T = u.shape[0]
                s = np.asarray(score(u))
                target = np.roll(u[lag:] - mean, tuple(-k for k in r), axis=axes)  # u(x + r)
                total += np.sum(target * s[: T - lag])
            out[(lag, *r)] = -total / (count * np.prod(state))
    return out


def nonlinear_score(x: np.ndarray) -> np.ndarray:
    """Some fixed non-linear, non-equivariant map (the machinery must not care)."""
    x = np.asarray(x)
    w = np.linspace(0.5, 1.5, int(np.prod(x.shape[1:]))).reshape(x.shape[1:])
    return -w * x + 0.3 * np.tanh(x * x[..., ::-1])


# ------------------------------------------------------------------- VAR(1)
A2 = np.array([[0.7, 0.2], [-0.1, 0.5]])
Q2 = np.array([[1.0, 0.3], [0.3, 0.5]])


def var1(A, Q, n_members, T, rng):
    """Stationary VAR(1) x_{t+1} = A x_t + noise(Q), started from its stationary law."""
    C = scipy.linalg.solve_discrete_lyapunov(A, Q)
    d = A.shape[0]
    x = np.empty((n_members, T, d))
    x[:, 0] = rng.standard_normal((n_members, d)) @ np.linalg.cholesky(C).T
    lq = np.linalg.cholesky(Q)
    noise = rng.standard_normal((n_members, T, d)) @ lq.T
    for t in range(1, T):
        x[:, t] = x[:, t - 1] @ A.T + noise[:, t]
    return x, C


@pytest.fixture(scope="module")
def var_data():
    x, C = var1(A2, Q2, 32, 2000, np.random.default_rng(2024))
    return x, C


def check_within_sampling_error(members, make, expected, k=5.0, skip_lag0=False):
    """Pooled estimate vs expected within k standard errors of the per-member estimates.

    Members are independent, so the spread of per-member estimates gives the standard
    error of their mean; with equal lengths the pooled estimate is that mean up to the
    O(1/N) difference of the subtracted sample means. With 32 members the estimated
    standard error has 31 degrees of freedom: |t_31| > 5 has probability 2e-5 per entry.
    """
    pooled = make().fit(list(members)).response_.values
    per = np.stack([make().fit(m).response_.values for m in members])
    se = per.std(axis=0, ddof=1) / np.sqrt(len(members))
    start = 1 if skip_lag0 else 0
    err = np.abs(pooled - expected)[start:]
    assert np.all(err <= k * se[start:]), (err / se[start:]).max()
    return pooled, se


@pytest.mark.parametrize("score", ["gaussian", "exact"])
def test_var1_response_is_matrix_power(var_data, score):
    x, C = var_data
    P = np.linalg.inv(C)
    expected = np.stack([np.linalg.matrix_power(A2, k) for k in range(6)])
    fn = "gaussian" if score == "gaussian" else (lambda b: -b @ P)
    pooled, se = check_within_sampling_error(
        x, lambda: ResponseEstimator(score=fn, max_lag=5), expected,
        skip_lag0=score == "gaussian")
    assert se[1:].max() < 0.05  # the test has power: A^1 entries are 0.1 .. 0.7
    if score == "gaussian":
        # the fitted Gaussian (maximum-likelihood covariance) satisfies the Stein
        # identity on its own data exactly: R(0) = I
        np.testing.assert_allclose(pooled[0], np.eye(2), rtol=0, atol=1e-10)


def test_var1_normalize(var_data):
    x, C = var_data
    P = np.linalg.inv(C)
    est = ResponseEstimator(score=lambda b: -b @ P, max_lag=4, normalize=True).fit(list(x))
    raw = est.response_raw_.values
    np.testing.assert_allclose(est.response_.values[0], np.eye(2), rtol=0, atol=1e-12)
    np.testing.assert_allclose(est.response_.values, raw @ np.linalg.inv(raw[0]), rtol=0,
                               atol=1e-12)
    assert est.response_.attrs["normalized"] == 1
    assert est.response_raw_.attrs["normalized"] == 0
    assert est.response_.dims == ("lag", "observable", "source")
    # a score off by a factor 3 is fixed by the normalisation
    est3 = ResponseEstimator(score=lambda b: -3 * b @ P, max_lag=4, normalize=True).fit(list(x))
    np.testing.assert_allclose(est3.response_.values, est.response_.values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(est3.response_raw_.values, 3 * raw, rtol=1e-12)


@settings(max_examples=5, deadline=None, derandomize=True)  # statistical: fixed draws
@given(a=st.floats(-0.9, 0.9))
def test_ar1_random_coefficient(a):
    """Scalar AR(1) x' = a x + noise: exact score -x (1 - a^2), response a^tau."""
    x, C = var1(np.array([[a]]), np.eye(1), 32, 1000, np.random.default_rng(7))
    np.testing.assert_allclose(C, 1 / (1 - a * a), rtol=1e-12)
    expected = (a ** np.arange(4))[:, None, None]
    check_within_sampling_error(
        x, lambda: ResponseEstimator(score=lambda b: -b * (1 - a * a), max_lag=3), expected)


# ------------------------------------------------------------------- OU fields
@pytest.mark.parametrize("score", ["gaussian", "exact"])
def test_ou_homogeneous_matches_exact_response(fast_ou, ou_run, score):
    L = 10
    est = ResponseEstimator(score=score, max_lag=L).fit(ou_run)
    assert est.homogeneous_
    r = est.response_
    assert r.dims == ("lag", "y", "x")
    np.testing.assert_allclose(r["lag"], 0.5 * np.arange(L + 1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r["x"], ou_run["x"], rtol=0, atol=0)  # offsets from 0
    exact = fast_ou.exact_response(r["lag"].values).values
    per = np.stack([ResponseEstimator(score=score, max_lag=L).fit(ou_run.isel(member=[k]))
                    .response_.values for k in range(ou_run.sizes["member"])])
    se = per.std(axis=0, ddof=1) / np.sqrt(per.shape[0])
    err = r.values - exact
    start = 0
    if score == "gaussian":
        # the fitted Gaussian (ddof 0 spectrum) gives R(0) = delta exactly on its own data
        np.testing.assert_allclose(r.values[0], exact[0], rtol=0, atol=1e-10)
        start = 1
    for lag in range(start, L + 1):
        # E ||err||^2 = sum se^2 for an unbiased estimate: allow 4 "standard errors"
        assert np.linalg.norm(err[lag]) <= 4 * np.sqrt(np.sum(se[lag] ** 2)), lag
    assert np.sqrt(np.sum(se**2)) < 0.05 * np.linalg.norm(exact)  # power


def test_ou_exact_score_from_system_argument(fast_ou, ou_run):
    """Plain arrays carry no attributes: pass homogeneous and the system."""
    a = ResponseEstimator(score="exact", max_lag=3).fit(ou_run)
    b = ResponseEstimator(score="exact", max_lag=3, homogeneous=True, system=fast_ou).fit(
        list(ou_run.u.values))
    np.testing.assert_allclose(b.response_.values, a.response_.values, rtol=0, atol=1e-13)
    with pytest.raises(ValueError, match="score='exact' needs a gfdt system"):
        ResponseEstimator(score="exact", max_lag=3, homogeneous=True).fit(ou_run.u.values[0])


def test_fit_does_not_modify_the_dataset(ou_run):
    before = dict(ou_run.u.attrs)
    ResponseEstimator(max_lag=2).fit(ou_run)
    assert dict(ou_run.u.attrs) == before


# ------------------------------------------------------------ brute force checks
def test_matrix_path_brute_force_unequal_lengths():
    rng = np.random.default_rng(0)
    members = [rng.standard_normal((T, 3)) for T in (17, 9, 25)]
    est = ResponseEstimator(score=nonlinear_score, max_lag=4, batch_size=5).fit(members)
    expected = brute_matrix(members, nonlinear_score, 4)
    np.testing.assert_allclose(est.response_.values, expected, rtol=0, atol=1e-10)
    assert est.n_samples_ == 51
    np.testing.assert_allclose(est.mean_, np.concatenate(members).mean(axis=0), rtol=1e-14)
    # stein_ is the raw lag-0 response; stein_error_ = ||R(0) - I||_F / sqrt(d)
    np.testing.assert_allclose(est.stein_.values, expected[0], rtol=0, atol=1e-10)
    assert est.stein_.dims == ("observable", "source")
    assert est.stein_error_ == pytest.approx(np.linalg.norm(expected[0] - np.eye(3)) / np.sqrt(3),
                                             rel=1e-10)
    np.testing.assert_array_equal(est.response_["lag"], np.arange(5))
    assert est.response_["lag"].attrs["units"] == "samples"


def test_matrix_path_brute_force_across_blocks():
    """Series longer than the internal block (2048): pairs straddling blocks count once."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4500, 2))
    est = ResponseEstimator(score=nonlinear_score, max_lag=3).fit(x)
    xm = x - x.mean(axis=0)
    s = nonlinear_score(x)
    expected = np.stack([-(xm[k:].T @ s[: len(x) - k]) / (len(x) - k) for k in range(4)])
    np.testing.assert_allclose(est.response_.values, expected, rtol=0, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), d=st.integers(1, 3), max_lag=st.integers(0, 4),
       lengths=st.lists(st.integers(6, 20), min_size=1, max_size=3))
def test_matrix_path_brute_force_property(seed, d, max_lag, lengths):
    rng = np.random.default_rng(seed)
    members = [rng.standard_normal((T, d)) for T in lengths]
    est = ResponseEstimator(score=nonlinear_score, max_lag=max_lag, batch_size=4).fit(members)
    assert est.response_.shape == (max_lag + 1, d, d)
    np.testing.assert_allclose(est.response_.values, brute_matrix(members, nonlinear_score,
                                                                  max_lag), rtol=0, atol=1e-10)


def test_gaussian_score_brute_force():
    """score="gaussian" is -inv(cov)(x - mean) (ML covariance) of the pooled data, lag-averaged."""
    rng = np.random.default_rng(5)
    members = [rng.standard_normal((T, 2)) @ np.array([[1.0, 0.4], [0.0, 0.7]])
               for T in (30, 41)]
    pooled = np.concatenate(members)
    mu, P = pooled.mean(axis=0), np.linalg.inv(np.cov(pooled.T, bias=True))

    def gauss(x):
        return -(x - mu) @ P

    est = ResponseEstimator(score="gaussian", max_lag=3).fit(members)
    np.testing.assert_allclose(est.response_.values, brute_matrix(members, gauss, 3), rtol=0,
                               atol=1e-10)
    # an unfitted ScoreEstimator instance is fitted on the data
    model = GaussianScore()
    assert not model.is_fitted
    est2 = ResponseEstimator(score=model, max_lag=3).fit(members)
    assert est2.score_model_ is model and model.is_fitted
    np.testing.assert_allclose(model.mean_, mu, rtol=1e-14)
    np.testing.assert_allclose(model.covariance_, np.cov(pooled.T, bias=True),
                               rtol=1e-14)
    np.testing.assert_allclose(est2.response_.values, est.response_.values, rtol=0, atol=1e-13)
    # a fitted instance is used as is
    other = GaussianScore().fit(rng.standard_normal((50, 2)))
    mean_before = other.mean_.copy()
    est3 = ResponseEstimator(score=other, max_lag=3).fit(members)
    np.testing.assert_array_equal(other.mean_, mean_before)
    np.testing.assert_allclose(est3.response_.values, brute_matrix(members, other.score, 3),
                               rtol=0, atol=1e-10)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1),
       state=st.sampled_from([(1,), (3,), (5,), (2, 3), (4, 4)]),
       batch=st.integers(1, 4), homogeneous=st.booleans())
def test_gaussian_score_shapes_and_values(seed, state, batch, homogeneous):
    """GaussianScore keeps shapes and equals -C^{-1}(x - mu), C built without FFTs."""
    rng = np.random.default_rng(seed)
    d = int(np.prod(state))
    X = rng.standard_normal((60, *state)) * np.linspace(1.0, 2.0, d).reshape(state) + 0.5
    model = GaussianScore(homogeneous=homogeneous).fit(X)
    x = rng.standard_normal((batch, *state))
    s = model.score(x)
    assert s.shape == x.shape
    np.testing.assert_allclose(model(x[0]), s[0], rtol=0, atol=1e-12)
    if homogeneous:
        mu = X.mean()
        dev = X - mu
        # C[i, j] = E[dev(i) dev(j)] averaged over translations: depends on i - j only
        axes = tuple(range(1, 1 + len(state)))
        idx = list(itertools.product(*(range(k) for k in state)))
        cov = np.empty((d, d))
        for a, i in enumerate(idx):
            for b, j in enumerate(idx):
                r = tuple(-(p - q) for p, q in zip(i, j, strict=True))
                cov[a, b] = np.mean(np.roll(dev, r, axis=axes) * dev)
    else:
        mu = X.mean(axis=0).ravel()
        cov = np.atleast_2d(np.cov(X.reshape(60, d).T, bias=True))
    expected = -np.linalg.solve(cov, (x.reshape(batch, d) - mu).T).T.reshape(x.shape)
    np.testing.assert_allclose(s, expected, rtol=0, atol=1e-9 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("state", [(6,), (4, 6)])
def test_homogeneous_path_brute_force(state):
    rng = np.random.default_rng(3)
    members = [rng.standard_normal((T, *state)) + 0.3 for T in (13, 21)]
    est = ResponseEstimator(score=nonlinear_score, max_lag=3, homogeneous=True,
                            batch_size=6).fit(members)
    expected = brute_homogeneous(members, nonlinear_score, 3)
    assert est.response_.shape == (4, *state)
    np.testing.assert_allclose(est.response_.values, expected, rtol=0, atol=1e-10)
    # Stein diagnostics: raw lag 0, and the L2 norm of R(r, 0) - delta over the field
    delta = np.zeros(state)
    delta[(0,) * len(state)] = 1.0
    np.testing.assert_allclose(est.stein_.values, expected[0], rtol=0, atol=1e-10)
    assert est.stein_error_ == pytest.approx(np.linalg.norm(expected[0] - delta), rel=1e-10)
    assert float(est.mean_) == pytest.approx(np.concatenate([m.ravel() for m in members]).mean(),
                                             rel=1e-14)


def test_homogeneous_across_blocks_and_normalize():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2100, 4, 4))
    est = ResponseEstimator(score=nonlinear_score, max_lag=2, homogeneous=True,
                            normalize=True).fit(x)
    raw = brute_homogeneous([x], nonlinear_score, 2)
    np.testing.assert_allclose(est.response_raw_.values, raw, rtol=0, atol=1e-10)
    # normalised: a division by R(., 0) in Fourier space, so R_norm(., 0) = delta
    delta = np.zeros((4, 4))
    delta[0, 0] = 1.0
    np.testing.assert_allclose(est.response_.values[0], delta, rtol=0, atol=1e-12)
    rh = np.fft.fft2(raw)
    np.testing.assert_allclose(est.response_.values,
                               np.fft.ifft2(rh / rh[0]).real, rtol=0, atol=1e-12)


# --------------------------------------------------------------- input forms
def test_ndarray_and_dataarray_agree():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 40, 3))
    a = ResponseEstimator(score=nonlinear_score, max_lag=3).fit(list(x))
    da = xr.DataArray(x.transpose(1, 0, 2), dims=("time", "member", "feature"),
                      coords={"time": 0.25 * np.arange(40), "feature": ["p", "q", "r"]})
    b = ResponseEstimator(score=nonlinear_score, max_lag=3).fit(da)
    np.testing.assert_allclose(b.response_.values, a.response_.values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(b.response_["lag"], 0.25 * np.arange(4), rtol=0, atol=1e-15)
    assert list(b.response_["observable"].values) == ["p", "q", "r"]
    # a single member without a member dim, and a 1-D series (one feature)
    c = ResponseEstimator(score=nonlinear_score, max_lag=3).fit(da.isel(member=0))
    d = ResponseEstimator(score=nonlinear_score, max_lag=3).fit(x[0])
    np.testing.assert_allclose(c.response_.values, d.response_.values, rtol=0, atol=1e-14)
    e = ResponseEstimator(score=nonlinear_score, max_lag=2).fit(x[0, :, 0])
    f = ResponseEstimator(score=nonlinear_score, max_lag=2).fit(
        xr.DataArray(x[0, :, 0], dims=("time",)))
    assert e.response_.shape == (3,)  # a single series: dims (lag,)
    np.testing.assert_allclose(f.response_.values, e.response_.values, rtol=0, atol=1e-14)


def test_dataset_and_dataarray_of_simulation_agree(ou_run):
    a = ResponseEstimator(score="gaussian", max_lag=3).fit(ou_run)
    b = ResponseEstimator(score="gaussian", max_lag=3, homogeneous=True).fit(ou_run.u)
    c = ResponseEstimator(score="gaussian", max_lag=3, homogeneous=True).fit(
        list(ou_run.u.values))
    np.testing.assert_allclose(b.response_.values, a.response_.values, rtol=0, atol=1e-14)
    np.testing.assert_allclose(c.response_.values, a.response_.values, rtol=0, atol=1e-14)
    assert a.response_.attrs["gfdt_system"] == "OrnsteinUhlenbeck"
    assert a.response_.attrs["method"] == "gaussian"


# -------------------------------------------------------------------- errors
_VARY = np.arange(10.0).reshape(5, 2)  # data that vary: constant data are an error


@pytest.mark.parametrize(
    ("X", "kwargs", "exc", "match"),
    [
        (xr.DataArray(np.zeros((10, 3)), dims=("t", "feature")), {}, ValueError,
         "X must have a 'time' dimension"),
        (np.array([[0.0, 1.0], [np.nan, 2.0], [3.0, 4.0], [1.0, 1.0]]), {}, ValueError,
         "X contains 1 NaN"),
        ([np.ones((5, 2)), np.array([[np.inf, 0.0]] * 5)], {}, ValueError, r"X\[1\] contains"),
        (np.ones((5, 2)), {"max_lag": 5}, ValueError, "max_lag"),
        ([np.ones((9, 2)), np.ones((4, 2))], {"max_lag": 4}, ValueError, "max_lag"),
        (np.ones((5, 2)), {"max_lag": -1}, ValueError, "max_lag"),
        (np.ones((5, 2)), {"max_lag": [1]}, TypeError, "max_lag"),
        (np.ones((5, 2)), {"max_lag": 1.5}, ValueError, "max_lag"),
        (_VARY, {"score": "kde"}, ValueError, "unknown score 'kde'"),
        (_VARY, {"score": 42}, TypeError, "score must be"),
        (_VARY, {"score": lambda b: b[:, :1]}, ValueError, "score returned shape"),
        (_VARY, {"score": lambda b: b * np.nan}, ValueError, "score returned NaN"),
        (np.ones((5, 2)), {"normalize": "yes"}, TypeError, "normalize"),
        (np.ones((5, 2)), {"homogeneous": "yes"}, TypeError, "homogeneous"),
        (np.ones((5, 2)), {"batch_size": 0}, ValueError, "batch_size"),
        ([np.ones((5, 2)), np.ones((5, 3))], {}, ValueError, "members of X"),
        ([], {}, ValueError, "X is an empty list"),
        (np.ones((5, 2), dtype=complex), {}, TypeError, "X must hold real numbers"),
    ],
)
def test_bad_input(X, kwargs, exc, match):
    opts = {"score": lambda b: -b, "max_lag": 1}
    opts.update(kwargs)
    with pytest.raises(exc, match=match):
        ResponseEstimator(**opts).fit(X)


def test_exact_score_shape_mismatch(fast_ou):
    x = np.random.default_rng(0).standard_normal((20, 4, 4))
    with pytest.raises(ValueError, match="score='exact': data state shape"):
        ResponseEstimator(score="exact", max_lag=2, system=fast_ou).fit(x)


def test_dataarray_from_simulate_is_self_describing(ou_run):
    """ds.u alone carries the system attributes: same homogeneous answer as the Dataset."""
    a = ResponseEstimator(score="exact", max_lag=3).fit(ou_run)
    b = ResponseEstimator(score="exact", max_lag=3).fit(ou_run.u)
    assert b.homogeneous_ and b.response_.dims == ("lag", "y", "x")
    np.testing.assert_array_equal(a.response_.values, b.response_.values)


# ------------------------------------------------------ scikit-learn contract
def test_get_set_params_and_clone_round_trip():
    sklearn_base = pytest.importorskip("sklearn.base")
    from gfdt.response import Bootstrap

    est = ResponseEstimator(score=GaussianScore(homogeneous=False), max_lag=3,
                            bootstrap=Bootstrap(n=10, block_length=5), seed=2)
    params = est.get_params()
    assert params["max_lag"] == 3 and params["score__homogeneous"] is False
    assert est.set_params(max_lag=4, score__rcond=1e-9) is est
    assert est.max_lag == 4 and est.score.rcond == 1e-9
    with pytest.raises(ValueError, match="not a parameter"):
        est.set_params(lags=2)
    twin = sklearn_base.clone(est)
    assert twin is not est and twin.score is not est.score
    assert twin.get_params(deep=False).keys() == est.get_params(deep=False).keys()
    assert twin.bootstrap == est.bootstrap and twin.max_lag == 4
    x = np.random.default_rng(0).standard_normal((200, 2))
    a, b = est.fit(x), twin.fit(x)
    np.testing.assert_array_equal(a.response_.values, b.response_.values)
    np.testing.assert_array_equal(a.response_stderr_.values, b.response_stderr_.values)
    assert not hasattr(sklearn_base.clone(a), "response_")  # clone drops fitted state


def test_not_fitted_error():
    from gfdt.scores import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        ResponseEstimator().predict(np.ones(3))


def test_bootstrap_options_object_equals_the_keywords():
    from gfdt.response import Bootstrap

    rng = np.random.default_rng(4)
    members = [rng.standard_normal((60, 3)) for _ in range(3)]
    kw = dict(score=lambda b: -b, max_lag=2, seed=7)
    a = ResponseEstimator(n_bootstrap=12, block_length=6, **kw).fit(members)
    b = ResponseEstimator(bootstrap=Bootstrap(n=12, block_length=6), **kw).fit(members)
    np.testing.assert_array_equal(a.response_stderr_.values, b.response_stderr_.values)
    assert b.response_stderr_.attrs["n_bootstrap"] == 12 and b.block_length_ == 6
    c = ResponseEstimator(bootstrap=Bootstrap(n=12, block_length=6, seed=8), **kw).fit(members)
    assert not np.array_equal(a.response_stderr_.values, c.response_stderr_.values)
    for bad in ({"n": 1}, {"block_length": 0}, {"seed": -1}):
        with pytest.raises(ValueError, match="Bootstrap"):
            Bootstrap(**bad)


# ------------------------------------------------------------ lazy imports
def test_gaussian_fit_imports_neither_torch_nor_matplotlib():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, gfdt\n"
        "x = np.random.default_rng(0).standard_normal((300, 8, 8))\n"
        "gfdt.ResponseEstimator(max_lag=3, homogeneous=True, progress=False).fit(x)\n"
        "gfdt.ResponseEstimator(max_lag=3, progress=False).fit(x.reshape(300, -1)[:, :3])\n"
        "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------ the engine
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize("block", [None, 7])
def test_lag_sums_equal_explicit_loops(stride, block):
    """The engine's plain (no bootstrap) lag sums and counts, all column pairs and
    matching complex columns (with and without the frequency-domain accumulator),
    against explicit loops over source times on the stride grid."""
    from gfdt.response.correlate import LagSums, correlate

    rng = np.random.default_rng(5)
    L = 4
    A = [rng.standard_normal((T, 2)) + 1j * rng.standard_normal((T, 2)) for T in (13, 20)]
    B = [rng.standard_normal((T, 2)) + 1j * rng.standard_normal((T, 2)) for T in (13, 20)]
    grid = [np.arange(len(b)) % stride == 0 for b in B]
    outer = np.zeros((L + 1, 2, 2))
    modes = np.zeros((L + 1, 2), dtype=complex)
    count = np.zeros(L + 1)
    for a, b, g in zip(A, B, grid, strict=True):
        for lag in range(L + 1):
            for t in range(len(a) - lag):
                if g[t]:
                    outer[lag] += np.outer(a[t + lag].real, b[t].real)
                    modes[lag] += a[t + lag] * b[t].conj()
                    count[lag] += 1
    chunk = 6 if block is None else block - block % stride
    for is_modes in (False, True):
        def read(k, a, e, b, is_modes=is_modes):
            src = B[k][a:b] * grid[k][a:b, None]
            return (A[k][a:e], src) if is_modes else (A[k][a:e].real, src.real)

        sums = LagSums(L, modes=is_modes, shape=(L + 1, 2) if is_modes else (L + 1, 2, 2),
                       stride=stride, block=block)
        assert (sums.freq is not None) == (is_modes and block is not None)
        got, n = correlate([13, 20], read, sums, chunk, progress=False).total()
        np.testing.assert_array_equal(n, count)
        np.testing.assert_allclose(got, modes if is_modes else outer, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bootstrap", [False, True])
def test_gaussian_field_from_the_autocorrelation_equals_the_fitted_score(bootstrap):
    """score="gaussian" on a homogeneous field takes the spectrum from the lag sums (one
    pass); a GaussianScore fitted beforehand goes through score evaluations: the same
    model, response and bootstrap errors up to rounding."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((3, 150, 4, 6))
    for t in range(1, 150):
        x[:, t] = 0.7 * x[:, t - 1] + np.roll(x[:, t], 1, axis=-1) * 0.3 + 0.5 * x[:, t]
    members = [m + 2.0 for m in x]
    kw = dict(max_lag=6, homogeneous=True, bootstrap=bootstrap, n_bootstrap=10,
              block_length=20, seed=1, normalize=True, progress=False)
    fast = ResponseEstimator(score="gaussian", **kw).fit(members)
    fitted = GaussianScore(homogeneous=True).fit(np.concatenate(members))
    ref = ResponseEstimator(score=fitted, **kw).fit(members)
    np.testing.assert_allclose(fast.score_model_.spectrum_, fitted.spectrum_, rtol=1e-12)
    assert float(fast.score_model_.mean_) == pytest.approx(float(fitted.mean_), rel=1e-14)
    for a, b in ((fast.response_, ref.response_), (fast.response_raw_, ref.response_raw_)):
        np.testing.assert_allclose(a.values, b.values, rtol=0, atol=1e-12)
    if bootstrap:
        np.testing.assert_allclose(fast.response_stderr_.values, ref.response_stderr_.values,
                                   rtol=0, atol=1e-12)
    assert fast.stein_error_ < 1e-12  # the Gaussian sum rule holds exactly


def test_a_score_that_reads_trajectories_gets_them_unstacked():
    """An estimator with ``accepts_trajectories = True`` is fitted on the Trajectories
    (it may stream them); the others get the stacked samples."""
    from gfdt.data import Trajectories
    from gfdt.scores.base import ScoreEstimator

    class Streaming(ScoreEstimator):
        accepts_trajectories = True

        def fit(self, X):
            self.got_ = X
            self.mean_ = np.concatenate([X.read(k, 0, T) for k, T in enumerate(X.lengths)]
                                        ).mean(axis=0)
            return self

        def score(self, x):
            return -(np.asarray(x) - self.mean_)

    members = [np.random.default_rng(k).standard_normal((50, 2)) for k in range(2)]
    est = ResponseEstimator(score=Streaming(), max_lag=2, bootstrap=False).fit(members)
    assert isinstance(est.score_model_.got_, Trajectories)
    ref = ResponseEstimator(score=lambda b: -(b - est.score_model_.mean_), max_lag=2,
                            bootstrap=False).fit(members)
    np.testing.assert_array_equal(est.response_.values, ref.response_.values)
