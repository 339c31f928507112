"""Malformed input to every public entry point: a ValueError or TypeError naming the argument.

Each case calls one entry point with one argument malformed (wrong type, dims or
dtype; NaN or inf; empty; too short for max_lag; non-monotonic or uneven time;
mismatched time steps; zero, negative or out-of-range parameters; unknown names) and
asserts that it raises ValueError or TypeError (FileNotFoundError for a missing path)
whose message contains the argument's name. Hypothesis draws the bad values; explicit
tables cover the structural cases. ``TRIED`` counts every malformed input tried
(printed at the end of the module with ``pytest -s``).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from collections import Counter

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gfdt
from gfdt import io, metrics, plotting, stats
from gfdt.scores import AnalyticScore, DenoisingScoreModel, GaussianScore, ScoreEstimator
from gfdt.systems import AllenCahn, NavierStokes2D, OrnsteinUhlenbeck

matplotlib.use("Agg")

TRIED: Counter = Counter()
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])

NAN, INF = float("nan"), float("inf")


def rejects(call, *names, exc=(ValueError, TypeError), group="explicit"):
    """``call()`` must raise ``exc`` with a message naming one of ``names``."""
    TRIED[group] += 1
    try:
        with pytest.raises(exc) as info:
            call()
    finally:
        plt.close("all")
    msg = str(info.value)
    assert any(n in msg for n in names), f"message {msg!r} does not name {names}"


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    total = sum(TRIED.values())
    print(f"\n[test_reliability] malformed inputs tried: {total} "
          f"({', '.join(f'{k}: {v}' for k, v in sorted(TRIED.items()))})")


# ------------------------------------------------------------------ valid objects
@functools.cache
def ou() -> OrnsteinUhlenbeck:
    return OrnsteinUhlenbeck(n=4)


@functools.cache
def run() -> xr.Dataset:
    return gfdt.simulate(ou(), n_members=2, duration=2.0, save_interval=0.25, seed=0,
                         progress=False, n_workers=1)


@functools.cache
def vectors() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((64, 2))


@functools.cache
def response() -> xr.DataArray:
    r = np.random.default_rng(1).standard_normal((3, 4, 4))
    c = np.arange(4.0)
    return xr.DataArray(r, dims=("lag", "y", "x"),
                        coords={"lag": [0.0, 0.25, 0.5], "y": c, "x": c}, name="response")


@functools.cache
def errors() -> xr.Dataset:
    return metrics.response_error(response(), response() * 1.1)


# ------------------------------------------------------------------ strategies
non_numbers = st.one_of(st.text(max_size=3), st.none(), st.just([1.0, 2.0]), st.just(1j),
                        st.just(object()))
non_finite = st.sampled_from([NAN, INF, -INF])
negative = st.floats(max_value=-1e-9, min_value=-1e9, allow_nan=False)
non_positive = st.floats(max_value=0.0, min_value=-1e9, allow_nan=False)
non_ints = st.one_of(st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda v: v != int(v)), st.text(max_size=2), st.none(), st.just(True))
bad_counts = st.one_of(st.integers(max_value=0, min_value=-10**6), non_ints)


def corrupt(arr: np.ndarray, kind: str, where: int) -> object:
    """A malformed version of a valid array (same layout unless the kind changes it)."""
    a = np.array(arr, dtype=float)
    if kind in ("nan", "inf", "-inf"):
        a.flat[where % a.size] = {"nan": NAN, "inf": INF, "-inf": -INF}[kind]
        return a
    if kind == "empty":
        return a[:0]
    if kind == "strings":
        return a.astype(str)
    if kind == "complex":
        return a + 1j
    if kind == "object":
        o = a.astype(object)
        o.flat[where % a.size] = None
        return o
    if kind == "scalar":
        return a.flat[0]
    raise AssertionError(kind)


ARRAY_KINDS = ["nan", "inf", "-inf", "empty", "strings", "complex", "object", "scalar"]
bad_array = st.tuples(st.sampled_from(ARRAY_KINDS), st.integers(0, 10**6))


# ==================================================================== systems
# (class, field, constraint): every field rejects non-numbers and non-finite values,
# plus its own range
SYSTEM_FIELDS = [
    (OrnsteinUhlenbeck, "dt", "positive"), (OrnsteinUhlenbeck, "lam", "positive"),
    (OrnsteinUhlenbeck, "eps2", "positive"), (OrnsteinUhlenbeck, "kappa", "nonneg"),
    (OrnsteinUhlenbeck, "A", "real"),
    (AllenCahn, "dt", "positive"), (AllenCahn, "eps2", "positive"),
    (AllenCahn, "kappa", "nonneg"), (AllenCahn, "alpha", "nonneg"), (AllenCahn, "A", "real"),
    (NavierStokes2D, "dt", "positive"), (NavierStokes2D, "nu_h", "nonneg"),
    (NavierStokes2D, "nu", "nonneg"), (NavierStokes2D, "nu_0", "nonneg"),
    (NavierStokes2D, "F", "nonneg"), (NavierStokes2D, "kf2", "nonneg"),
    (NavierStokes2D, "phase_diffusivity", "nonneg"), (NavierStokes2D, "A", "real"),
]


@SETTINGS
@given(case=st.sampled_from(SYSTEM_FIELDS), data=st.data())
def test_system_parameters(case, data):
    cls, name, rule = case
    bad = [non_finite, non_numbers.filter(lambda v: not (name == "F" and v is None))]
    if rule == "positive":
        bad.append(non_positive)
    elif rule == "nonneg":
        bad.append(negative)
    value = data.draw(st.one_of(*bad))
    rejects(lambda: cls(**{name: value}), name, group="systems")


@SETTINGS
@given(cls=st.sampled_from([OrnsteinUhlenbeck, AllenCahn, NavierStokes2D]),
       n=st.one_of(st.integers(-10, 3), st.integers(2, 50).map(lambda k: 2 * k + 1),
                   st.floats(4.0, 64.0), st.text(max_size=2), st.none()))
def test_system_grid_size(cls, n):
    rejects(lambda: cls(n=n), "n", group="systems")


def test_system_structural():
    rejects(lambda: NavierStokes2D(dealias=2), "dealias")
    rejects(lambda: NavierStokes2D(dealias=0.5), "dealias")
    rejects(lambda: OrnsteinUhlenbeck(viscosity=1.0), "viscosity")  # unknown name


# ==================================================================== simulate
SIM = dict(duration=1.0, save_interval=0.25, seed=0, progress=False, n_workers=1)


@SETTINGS
@given(name=st.sampled_from(["burn_in", "duration", "save_interval"]), data=st.data())
def test_simulate_times(name, data):
    value = data.draw(st.one_of(
        non_finite, negative, st.text(max_size=2), st.none(), st.just([1.0]),
        st.floats(0.001, 10.0).filter(lambda v: abs(v * 32 - round(v * 32)) > 1e-6)))
    if name != "burn_in" and value is None:
        value = 0.0  # None means "default" nowhere; 0 is as bad for these two
    rejects(lambda: gfdt.simulate(ou(), **{**SIM, name: value}), name, group="simulate")


@SETTINGS
@given(name=st.sampled_from(["n_members", "n_workers", "seed"]), data=st.data())
def test_simulate_counts(name, data):
    if name == "seed":
        value = data.draw(st.one_of(st.integers(max_value=-1), st.floats(0.5, 9.5),
                                    st.text(min_size=1, max_size=2), st.just([1.5])))
    else:
        value = data.draw(bad_counts.filter(lambda v: not (name == "n_workers" and v is None)))
    rejects(lambda: gfdt.simulate(ou(), **{**SIM, name: value}), name, group="simulate")


@SETTINGS
@given(bad=bad_array)
def test_simulate_initial(bad):
    value = corrupt(np.zeros((1, 4, 4)), *bad)
    rejects(lambda: gfdt.simulate(ou(), **SIM, initial=value), "initial", group="simulate")


def test_simulate_structural(tmp_path):
    for system in ("ou", OrnsteinUhlenbeck, 4, None):
        rejects(lambda s=system: gfdt.simulate(s, **SIM), "system")
    for initial in (np.zeros((1, 4, 5)), np.zeros((2, 4, 4)), np.zeros(4), np.zeros((1, 1, 4, 4))):
        rejects(lambda i=initial: gfdt.simulate(ou(), **SIM, initial=i), "initial")
    rejects(lambda: gfdt.simulate(ou(), **SIM, initial=xr.DataArray(
        np.zeros((1, 2, 4, 4)), dims=("member", "time", "y", "x"))), "initial")
    rejects(lambda: gfdt.simulate(ou(), **SIM, output=tmp_path / "r", segment=-1.0), "segment")
    rejects(lambda: gfdt.simulate(ou(), **SIM, output=tmp_path / "r2", segment="x"), "segment")
    rejects(lambda: gfdt.simulate(ou(), **SIM, stride=2), "stride")  # unknown name
    gfdt.simulate(ou(), **SIM, output=tmp_path / "r3")
    rejects(lambda: gfdt.simulate(ou(), **{**SIM, "seed": 1}, output=tmp_path / "r3",
                                  resume=True), "output")
    rejects(lambda: gfdt.simulate(ou(), **SIM, output=tmp_path / "r3"), "output")


# ============================================================ perturbation_response
PR = dict(max_lag=2, save_interval=0.25, delta=0.1, seed=0, progress=False, n_workers=1)


def _initial():
    return np.zeros((2, 4, 4))


@SETTINGS
@given(name=st.sampled_from(["max_lag", "n_windows", "save_interval", "delta", "n_workers"]),
       data=st.data())
def test_perturbation_response_parameters(name, data):
    if name in ("max_lag", "n_windows", "n_workers"):
        value = data.draw(bad_counts.filter(lambda v: not (name == "n_workers" and v is None)))
    elif name == "delta":
        value = data.draw(st.one_of(non_finite, st.just(0.0), st.text(max_size=2), st.none()))
    else:
        value = data.draw(st.one_of(non_finite, non_positive, st.text(max_size=2)))
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **{**PR, name: value}), name,
            group="perturbation_response")


@SETTINGS
@given(bad=bad_array)
def test_perturbation_response_initial(bad):
    value = corrupt(_initial(), *bad)
    rejects(lambda: gfdt.perturbation_response(ou(), value, **PR), "initial",
            group="perturbation_response")


@SETTINGS
@given(pixel=st.one_of(st.tuples(st.integers(4, 100), st.integers(0, 3)),
                       st.tuples(st.integers(0, 3), st.integers(-100, -5)),
                       st.just((1,)), st.just((1, 2, 3)), st.just("a"), st.just((0.5, 1)),
                       st.just([]), st.just([(0, 0), (9, 9)])))
def test_perturbation_response_pixel(pixel):
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **PR, pixel=pixel), "pixel",
            group="perturbation_response")


def test_perturbation_response_structural():
    rejects(lambda: gfdt.perturbation_response("ou", _initial(), **PR), "system")
    rejects(lambda: gfdt.perturbation_response(ou(), np.zeros((2, 5, 5)), **PR), "initial")
    ns = NavierStokes2D(n=4)
    rejects(lambda: gfdt.perturbation_response(ns, _initial(), **{**PR, "save_interval": 1 / 32},
                                               initial_aux=np.zeros((2, 3))), "initial_aux")
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **PR, observable="median"),
            "observable")
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **PR,
                                               perturbation=np.zeros((3, 3))), "perturbation")
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **PR,
                                               perturbation=np.full((4, 4), NAN)),
            "perturbation")
    rejects(lambda: gfdt.perturbation_response(ou(), _initial(), **PR, pixel=(1, 1),
                                               perturbation=np.ones((4, 4))), "pixel",
            "perturbation")


# ============================================================ ResponseEstimator
def _fit(X, **kw):
    return gfdt.ResponseEstimator(**{"max_lag": 2, "progress": False, **kw}).fit(X)


@SETTINGS
@given(bad=bad_array, layout=st.sampled_from(["array", "dataarray", "list"]))
def test_response_estimator_data(bad, layout):
    valid = vectors()[:20]
    value = corrupt(valid, *bad)
    if layout == "dataarray" and isinstance(value, np.ndarray) and value.ndim == 2:
        value = xr.DataArray(value, dims=("time", "feature"))
    elif layout == "list":
        value = [valid, value]
    rejects(lambda: _fit(value), "X", group="ResponseEstimator")


@SETTINGS
@given(steps=st.lists(st.floats(-1.0, 2.0, allow_nan=False), min_size=9, max_size=9).filter(
    lambda d: np.any(np.asarray(d) <= 0) or np.ptp(d) > 1e-3))
def test_response_estimator_time_coordinate(steps):
    """Non-monotonic or unevenly spaced time: an error naming X's time coordinate."""
    t = np.concatenate([[0.0], np.cumsum(steps)])
    da = xr.DataArray(vectors()[:10], dims=("time", "feature"), coords={"time": t})
    rejects(lambda: _fit(da), "X", "time", group="ResponseEstimator")


@SETTINGS
@given(max_lag=st.one_of(st.integers(20, 10**6), st.integers(-10**6, -1), non_ints))
def test_response_estimator_max_lag(max_lag):
    rejects(lambda: _fit(vectors()[:20], max_lag=max_lag), "max_lag", group="ResponseEstimator")


RE_PARAMS = {  # parameter: strategy of bad values (checked when fit starts)
    "score": st.one_of(st.sampled_from(["gausian", "", "DSMx", "kernel2"]), st.integers(),
                       st.just([1])),
    "batch_size": bad_counts,
    "normalize": st.sampled_from(["yes", 1.5, None, [True]]),
    "homogeneous": st.sampled_from(["yes", 2.5, [True]]),
    "source_stride": bad_counts,
    "score_options": st.sampled_from([[1], "max_steps=2", 3]),
    "system": st.sampled_from(["OrnsteinUhlenbeck", 3, OrnsteinUhlenbeck]),
    "memory_budget": st.sampled_from(["lots", -5, "12 parsecs", [1]]),
}


@SETTINGS
@given(name=st.sampled_from(sorted(RE_PARAMS)), data=st.data())
def test_response_estimator_parameters(name, data):
    value = data.draw(RE_PARAMS[name])
    kw = {name: value}
    if name == "system":
        kw["score"] = "exact"
    if name == "score_options":
        kw["score"] = "dsm"
    rejects(lambda: _fit(vectors()[:20], **kw), name, group="ResponseEstimator")


def test_response_estimator_structural():
    X = vectors()[:20]
    rejects(lambda: _fit([X, np.zeros((20, 3))]), "X")  # members of different states
    a = xr.DataArray(X, dims=("time", "feature"), coords={"time": np.arange(20) * 0.5})
    b = xr.DataArray(X, dims=("time", "feature"), coords={"time": np.arange(20) * 0.25})
    rejects(lambda: _fit([a, b]), "X")  # mismatched time steps
    rejects(lambda: _fit(xr.DataArray(X, dims=("t", "feature"))), "X")  # no time dim
    rejects(lambda: _fit(xr.Dataset({"a": (("time", "f"), X), "b": (("time", "f"), X)})), "X")
    rejects(lambda: _fit([]), "X")
    rejects(lambda: _fit(X, score="exact"), "system", "score")  # no system to take it from
    rejects(lambda: _fit(run().u, score="exact", system=AllenCahn(n=8)), "system", "score")
    rejects(lambda: _fit(X, score=lambda x: x[:, :1]), "score")  # wrong output shape
    rejects(lambda: _fit(X, score=lambda x: np.full_like(x, NAN)), "score")
    rejects(lambda: gfdt.ResponseEstimator(max_lag=2, foo=1), "foo")
    est = _fit(X, max_lag=2)
    for forcing in (np.full((5, 2), NAN), np.zeros((5, 3)), np.zeros((0, 2)),
                    np.array([["a", "b"]]), xr.DataArray(np.zeros((5, 2)), dims=("t", "s"))):
        rejects(lambda f=forcing: est.predict(f), "forcing")
    da = xr.DataArray(np.zeros((5, 2)), dims=("time", "source"),
                      coords={"time": np.arange(5) * 0.3})  # mismatched dt (lag step 1)
    rejects(lambda: est.predict(da), "forcing")
    rejects(lambda: gfdt.ResponseEstimator().predict(np.zeros((5, 2))), "fit")


# ============================================================ score estimators
def _estimators() -> list[type]:
    """Every score estimator that gfdt.scores defines, exported or not yet (all modules)."""
    for info in pkgutil.iter_modules(gfdt.scores.__path__):
        importlib.import_module(f"gfdt.scores.{info.name}")
    out, todo = [], list(ScoreEstimator.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.startswith("gfdt.scores") and cls is not AnalyticScore \
                and not inspect.isabstract(cls) and not cls.__name__.startswith("_"):
            out.append(cls)
    return sorted(set(out), key=lambda c: c.__name__)


#: keyword arguments that keep a fit short if a bad value slips through
_QUICK = {"max_steps": 2, "n_iter": 2, "eval_every": 1, "warmup": 1, "progress": False,
          "n_threads": 1, "n_centers": 8, "hidden": 8, "batch_size": 8}


def _quick(cls, **kw) -> ScoreEstimator:
    params = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in {**_QUICK, **kw}.items() if k in params})


@SETTINGS
@given(cls=st.sampled_from(_estimators()), bad=bad_array)
def test_score_estimator_fit_data(cls, bad):
    value = corrupt(vectors(), *bad)
    rejects(lambda: _quick(cls).fit(value), "X", group="score estimators")


def _numeric_params(cls) -> list[tuple[str, object]]:
    """Constructor parameters whose default is a number (not a bool)."""
    out = []
    for p in inspect.signature(cls.__init__).parameters.values():
        d = p.default
        if isinstance(d, (int, float)) and not isinstance(d, bool):
            out.append((p.name, d))
    return out


NUMERIC_CASES = [(cls, name, default) for cls in _estimators()
                 for name, default in _numeric_params(cls)]


@pytest.mark.parametrize("cls,name", [(c, n) for c, n, _ in NUMERIC_CASES],
                         ids=[f"{c.__name__}-{n}" for c, n, _ in NUMERIC_CASES])
def test_score_estimator_numeric_parameters(cls, name):
    """NaN, inf, strings, None, lists and complex numbers for every numeric parameter."""
    for value in (NAN, INF, -INF, "0.1", None, [1], 1j):
        rejects(lambda v=value: _quick(cls, **{name: v}).fit(vectors()), name,
                group="score estimators")


# positivity and ranges known from the docs of each estimator
RANGE_CASES = [
    (GaussianScore, "rcond", -1.0),
    (DenoisingScoreModel, "sigma_min", 0.0), (DenoisingScoreModel, "sigma_min", -0.1),
    (DenoisingScoreModel, "sigma_max", 0.001), (DenoisingScoreModel, "batch_size", 0),
    (DenoisingScoreModel, "batch_size", 2.5), (DenoisingScoreModel, "lr", 0.0),
    (DenoisingScoreModel, "lr", -1e-3), (DenoisingScoreModel, "warmup", -1),
    (DenoisingScoreModel, "max_steps", 0), (DenoisingScoreModel, "max_time", -1.0),
    (DenoisingScoreModel, "ema", 1.0), (DenoisingScoreModel, "ema", -0.5),
    (DenoisingScoreModel, "grad_clip", 0.0), (DenoisingScoreModel, "validation", 0.0),
    (DenoisingScoreModel, "validation", 0.95), (DenoisingScoreModel, "eval_every", 0),
    (DenoisingScoreModel, "patience", 0), (DenoisingScoreModel, "seed", -1),
    (DenoisingScoreModel, "seed", 1.5), (DenoisingScoreModel, "n_threads", 0),
    (DenoisingScoreModel, "chunk_size", 0), (DenoisingScoreModel, "network", "transformer"),
    (DenoisingScoreModel, "network", 3), (DenoisingScoreModel, "device", "warp-drive"),
    (DenoisingScoreModel, "distributed", "always"), (DenoisingScoreModel, "homogeneous", "yes"),
    (DenoisingScoreModel, "residual", "yes"), (DenoisingScoreModel, "checkpoint", 3.5),
]


@pytest.mark.parametrize("cls,name,value", RANGE_CASES)
def test_score_estimator_ranges(cls, name, value):
    rejects(lambda: _quick(cls, **{name: value}).fit(vectors()), name)


def test_score_estimators_structural(tmp_path):
    X = vectors()
    for cls in _estimators():
        rejects(lambda c=cls: _quick(c).fit(X[:1]), "X")  # one sample
        rejects(lambda c=cls: _quick(c).fit(X[:, 0]), "X")  # no state axis
        rejects(lambda c=cls: c(unknown_option=1), "unknown_option")
        rejects(lambda c=cls: c.load(tmp_path / "missing.pt"), "path",
                exc=(FileNotFoundError, ValueError))
    g = GaussianScore().fit(X)
    for x in (np.zeros((3, 3)), np.zeros(5), np.array([["a", "b"]]), np.zeros((2, 2, 2))):
        rejects(lambda x=x: g.score(x), "x")
    m = _quick(DenoisingScoreModel).fit(X)
    for x in (np.zeros((3, 3)), np.array([["a", "b"]]), np.full((2, 2), NAN)):
        rejects(lambda x=x: m.score(x), "x")
    rejects(lambda: m.score(X[:2], sigma=-1.0), "sigma")
    rejects(lambda: m.score(X[:2], batch_size=0), "batch_size")
    g.save(tmp_path / "g.pkl")
    rejects(lambda: DenoisingScoreModel.load(tmp_path / "g.pkl"), "path", "GaussianScore")
    rejects(lambda: AnalyticScore("not a function").fit(), "function")
    rejects(lambda: AnalyticScore(lambda x: x).fit().score(np.array([["a"]])), "x")


# ==================================================================== io
def test_io(tmp_path):
    ds = xr.Dataset({"u": ("t", np.arange(3.0))})
    for data in (np.zeros(3), [1, 2], "u", None):
        rejects(lambda d=data: io.save(d, tmp_path / "x.nc"), "data")
    rejects(lambda: io.save(ds, tmp_path / "missing" / "x.nc"), "path")
    for path in (3, None, 2.5, ["a"]):
        rejects(lambda p=path: io.save(ds, p), "path")
        rejects(lambda p=path: io.load(p), "path")
        rejects(lambda p=path: io.open_run(p), "path")
    rejects(lambda: io.load(tmp_path / "nothing.nc"), "path", exc=FileNotFoundError)
    (tmp_path / "junk.nc").write_bytes(b"this is not netCDF")
    rejects(lambda: io.load(tmp_path / "junk.nc"), "path")
    rejects(lambda: io.open_run(tmp_path / "empty"), "path", exc=FileNotFoundError)
    rejects(lambda: io.open_run(tmp_path), "path", exc=FileNotFoundError)  # no segments
    gfdt.simulate(ou(), **SIM, output=tmp_path / "run")
    rejects(lambda: io.open_run(tmp_path / "run", chunks=3.5), "chunks")


# ==================================================================== metrics
@SETTINGS
@given(which=st.sampled_from(["estimate", "reference"]), bad=bad_array)
def test_response_error_values(which, bad):
    good = response().values
    kw = {"estimate": good, "reference": good, which: corrupt(good, *bad)}
    rejects(lambda: metrics.response_error(kw["estimate"], kw["reference"]), which,
            group="metrics")


def test_metrics_structural():
    R = response()
    rejects(lambda: metrics.response_error(R.rename(lag="t"), R), "estimate")
    rejects(lambda: metrics.response_error(R, R.rename(lag="t")), "reference")
    rejects(lambda: metrics.response_error(R.values, R.values[:, :2]), "estimate", "reference")
    rejects(lambda: metrics.response_error(R, R.assign_coords(lag=[5.0, 6.0, 7.0])),
            "estimate", "reference")
    rejects(lambda: metrics.response_error(xr.Dataset({"r": R}), R), "estimate")
    rejects(lambda: metrics.response_error(R, R, stderr=np.zeros((3, 2))), "stderr")
    rejects(lambda: metrics.response_error(R, R, stderr=-abs(R)), "stderr")
    rejects(lambda: metrics.response_error(R, R, stderr=R * NAN), "stderr")
    for e in (R, {"l2": 1.0}, xr.Dataset({"x": ("lag", [1.0])}), xr.Dataset(), 3):
        rejects(lambda e=e: metrics.summarize_errors(e), "errors")
    X = vectors()
    exact = lambda x: -x  # noqa: E731
    for f, args in ((metrics.relative_fisher_error, (exact, exact)),
                    (metrics.stein_error, (exact,))):
        rejects(lambda f=f, a=args: f("score", *a[1:], X), "score")
        rejects(lambda f=f, a=args: f(*a, X, batch_size=0), "batch_size")
        rejects(lambda f=f, a=args: f(*a, X, batch_size=2.5), "batch_size")
        for kind in ARRAY_KINDS:
            rejects(lambda f=f, a=args, k=kind: f(*a, corrupt(X, k, 3)), "X")
        rejects(lambda f=f, a=args: f(lambda x: x[:, :1], *a[1:], X), "score")
        rejects(lambda f=f, a=args: f(lambda x: x * NAN, *a[1:], X), "score")
    rejects(lambda: metrics.relative_fisher_error(exact, None, X), "reference")
    rejects(lambda: metrics.relative_fisher_error(exact, lambda x: 0 * x, X), "reference")
    rejects(lambda: metrics.stein_error(exact, X, homogeneous="yes"), "homogeneous")


# ==================================================================== stats
@SETTINGS
@given(fn=st.sampled_from(["isotropic_spectrum", "marginal_moments", "autocorrelation",
                           "shell_sum"]), bad=bad_array)
def test_stats_values(fn, bad):
    good = run().u.isel(member=0).values  # (time, y, x)
    if fn == "shell_sum":
        value = corrupt(np.ones((4, 3)), *bad)
        rejects(lambda: stats.shell_sum(value), "modal", group="stats")
        return
    if fn == "marginal_moments" and bad[0] == "scalar":
        return  # one value is a (degenerate) sample of any shape, not malformed
    value = corrupt(good, *bad)
    call = {"isotropic_spectrum": lambda: stats.isotropic_spectrum(value),
            "marginal_moments": lambda: stats.marginal_moments(value),
            "autocorrelation": lambda: stats.autocorrelation(value, 2)}[fn]
    rejects(call, "u", group="stats")


@SETTINGS
@given(max_lag=st.one_of(st.integers(8, 10**6), st.integers(-10**6, -1), non_ints))
def test_autocorrelation_max_lag(max_lag):
    rejects(lambda: stats.autocorrelation(run().u, max_lag), "max_lag", group="stats")


def test_stats_structural():
    u = run().u
    rejects(lambda: stats.isotropic_spectrum(u.rename(x="lon")), "u")
    rejects(lambda: stats.isotropic_spectrum(np.zeros((3, 4, 5))), "u")
    rejects(lambda: stats.isotropic_spectrum(np.zeros(4)), "u")
    rejects(lambda: stats.isotropic_spectrum(xr.Dataset({"a": u, "b": u})), "u")
    rejects(lambda: stats.shell_sum(np.ones((4, 3)), n=6), "n", "modal")
    rejects(lambda: stats.shell_sum(np.ones((4, 3)), n="4"), "n")
    rejects(lambda: stats.shell_sum(np.ones((4, 5))), "modal")
    rejects(lambda: stats.shell_sum(np.ones(4)), "modal")
    rejects(lambda: stats.autocorrelation(u, 2, normalize="yes"), "normalize")
    rejects(lambda: stats.autocorrelation(u.isel(time=[0, 2, 1, 3, 4, 5]), 2), "u")
    rejects(lambda: stats.autocorrelation(np.ones((10, 2)), 2), "u")  # constant
    rejects(lambda: stats.marginal_moments(xr.Dataset({"a": u, "b": u})), "u")


# ==================================================================== plotting
@SETTINGS
@given(bad=bad_array)
def test_plot_histogram_values(bad):
    if bad[0] == "scalar":
        return  # one value is a (degenerate) field, not malformed
    value = corrupt(run().u.values, *bad)
    rejects(lambda: plotting.plot_histogram(value), "fields", group="plotting")


def test_plotting_structural():
    R = response()
    rejects(lambda: plotting.plot_response(R, axis="z"), "axis")
    rejects(lambda: plotting.plot_response(R.rename(x="lon")), "responses")
    rejects(lambda: plotting.plot_response(np.zeros((3, 4, 4))), "responses")
    rejects(lambda: plotting.plot_response(R, offsets=[0.5]), "offsets")
    rejects(lambda: plotting.plot_response(R, offsets="0"), "offsets")
    rejects(lambda: plotting.plot_response(R, stderr=R.isel(lag=[0])), "stderr")
    rejects(lambda: plotting.plot_response(R, n_sigma=-1.0), "n_sigma")
    rejects(lambda: plotting.plot_response(R, n_sigma=NAN), "n_sigma")
    rejects(lambda: plotting.plot_response({}), "responses")
    for e in (R, xr.Dataset({"x": ("lag", [1.0])}), 3):
        rejects(lambda e=e: plotting.plot_errors(e), "errors")
    _, ax = plt.subplots()
    rejects(lambda: plotting.plot_errors(errors(), axes=[ax]), "axes")
    for f in (R, R.isel(lag=0, y=0), np.zeros((4, 4)), R.isel(lag=0).rename(x="lon")):
        rejects(lambda f=f: plotting.plot_field(f), "field")
    spec = stats.isotropic_spectrum(run().u)
    for s in (R, np.ones(4), spec.rename(k="q")):
        rejects(lambda s=s: plotting.plot_spectrum(s), "spectra")
    rejects(lambda: plotting.plot_spectrum(spec, k_max=-1), "k_max")
    rejects(lambda: plotting.plot_spectrum(spec, k_max="3"), "k_max")
    for bins in (0, -3, 2.5, "auto!", [1.0], [2.0, 1.0, 3.0], [0.0, NAN]):
        rejects(lambda b=bins: plotting.plot_histogram(run().u, bins=b), "bins")
    rejects(lambda: plotting.plot_histogram({}), "fields")
    rejects(lambda: plotting.plot_histogram(run().u, density="yes"), "density")



# ============================================================ regressions found here
def test_plot_response_of_one_dataset_is_one_estimate_with_bands():
    """A Dataset is a Mapping: it was drawn as two estimates, "response" and "stderr"."""
    R = response()
    ds = xr.Dataset({"response": R, "stderr": 0.1 * abs(R)})
    ax = plotting.plot_response(ds, offsets=(0, 2))
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 3]
    assert len(lines) == 2  # two offsets of one estimate (not four)
    np.testing.assert_array_equal(lines[1].get_ydata(), R.isel(y=0, x=2).values)
    assert len(ax.collections) == 2  # one band per curve
    plt.close("all")


def test_summarize_errors_of_response_error():
    e = metrics.response_error(response(), response() + 0.5)
    s = metrics.summarize_errors(e)
    assert s["linf_max"] == pytest.approx(0.5) and s["l2_max"] == pytest.approx(0.5 * 4)
