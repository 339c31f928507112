"""Out-of-core GFDT: Dask-backed data split over files give the in-memory answer while
every read stays a bounded time block; memory budgets; streaming Gaussian fit."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import gfdt
from gfdt import ResponseEstimator
from gfdt._memory import correlation_block, estimator_bytes, parse_bytes, stats_block
from gfdt.data import LazyMember
from gfdt.scores import GaussianScore

pytest.importorskip("dask")

L = 10
T = 3000
#: budgets giving blocks well below a member (3000 samples of 8 x 8 fields)
BUDGETS = {True: "1.5MB", False: "3MB"}


@pytest.fixture(scope="module")
def files(ou_run, tmp_path_factory):
    """2 members x 3000 samples (the fast OU's members 0-4 and 5-9 joined in time: only
    the equality of two computations on the same numbers is tested), 3 files."""
    u = ou_run.u.isel(member=slice(0, 10)).values.reshape(2, T, 8, 8)
    ds = xr.Dataset(
        {"u": (("member", "time", "y", "x"), u, ou_run.u.attrs)},
        coords={"member": np.arange(2), "time": 0.5 * np.arange(T), "y": ou_run.y,
                "x": ou_run.x},
        attrs=ou_run.attrs)
    folder = tmp_path_factory.mktemp("ooc")
    paths = []
    for i in range(3):
        path = folder / f"part_{i}.nc"
        gfdt.io.save(ds.isel(time=slice(1000 * i, 1000 * (i + 1))), path)
        paths.append(path)
    return paths


@pytest.fixture
def reads(monkeypatch):
    """Record the number of samples of every read of Dask-backed data."""
    sizes: list[tuple[int, int]] = []
    real = LazyMember.__getitem__

    def spy(self, key):
        out = real(self, key)
        sizes.append((out.shape[0], self.shape[0]))
        return out

    monkeypatch.setattr(LazyMember, "__getitem__", spy)
    return sizes


def open_lazy(files) -> xr.Dataset:
    return xr.open_mfdataset(files, combine="by_coords", chunks={"time": 100},
                             data_vars="minimal", coords="minimal", compat="override",
                             join="exact")


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to 1e-10 relative to the response's scale."""
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10 * np.abs(b).max())


@pytest.mark.parametrize("homogeneous", [True, False], ids=["homogeneous", "matrix"])
@pytest.mark.parametrize("score", ["gaussian", "exact"])
def test_out_of_core_fit_equals_in_memory(files, reads, score, homogeneous):
    kw = dict(score=score, max_lag=L, homogeneous=homogeneous, bootstrap=False)
    with open_lazy(files) as lazy:
        assert lazy.u.chunks is not None  # Dask-backed, nothing read yet
        budget = BUDGETS[homogeneous]
        est = ResponseEstimator(**kw, memory_budget=budget).fit(lazy)
        ref = ResponseEstimator(**kw).fit(lazy.load())
    assert reads, "the fit read nothing through the lazy path"
    # streamed: every read is a block no longer than the budget allows, well below a
    # member; two passes (statistics or mean, then correlations with overlaps of L)
    d = 64
    result = (L + 1) * (8 * 5 * 16 if homogeneous else d * d * 8)
    model = est.score_model_
    corr, _ = correlation_block(parse_bytes(budget), d=d, L=L, result_bytes=result,
                                homogeneous=homogeneous, batch_size=256,
                                model_bytes=estimator_bytes(model))
    stats = stats_block(parse_bytes(budget), d,
                        covariance=score == "gaussian" and not homogeneous)
    longest = max(stats, corr + L)
    assert max(n for n, _ in reads) <= longest < T
    assert all(n_member == T for _, n_member in reads)
    assert 2 * 2 * T <= sum(n for n, _ in reads) < 2 * 2 * T * 1.2
    close(est.response_.values, ref.response_.values)
    close(est.response_raw_.values, ref.response_raw_.values)
    np.testing.assert_allclose(est.mean_, ref.mean_, rtol=1e-12, atol=1e-14)
    assert est.response_.dims == ref.response_.dims
    np.testing.assert_array_equal(est.response_["lag"].values, ref.response_["lag"].values)
    assert est.n_samples_ == ref.n_samples_ == 2 * T
    if score == "gaussian":
        m, r = est.score_model_, ref.score_model_
        if homogeneous:
            close(m.spectrum_, r.spectrum_)
        else:
            close(m.covariance_, r.covariance_)


def test_out_of_core_normalize_and_bootstrap(files):
    """Normalised responses and bootstrap replicates from the same per-block sums."""
    kw = dict(score="gaussian", max_lag=L, normalize=True, n_bootstrap=20, block_length=40,
              seed=3)
    with open_lazy(files) as lazy:
        est = ResponseEstimator(**kw, memory_budget="40MB").fit(lazy)
        ref = ResponseEstimator(**kw).fit(lazy.load())
    close(est.response_.values, ref.response_.values)
    close(est.response_raw_.values, ref.response_raw_.values)
    if getattr(ref, "response_stderr_", None) is not None:
        close(est.response_stderr_.values, ref.response_stderr_.values)


def test_open_run_lazily_and_fit(tmp_path, fast_ou):
    """A run streamed by simulate, opened lazily with gfdt.io.open_run: same response."""
    gfdt.simulate(fast_ou, n_members=2, burn_in=0.0, duration=150.0, save_interval=0.5,
                  seed=1, progress=False, output=tmp_path / "run", segment=30.0)
    lazy = gfdt.io.open_run(tmp_path / "run", chunks={})
    assert lazy.u.chunks is not None and len(lazy.u.chunks[1]) > 3  # one chunk per file
    kw = dict(score="exact", max_lag=5, bootstrap=False)
    est = ResponseEstimator(**kw, memory_budget="2.5MB").fit(lazy)
    ref = ResponseEstimator(**kw).fit(gfdt.io.open_run(tmp_path / "run"))
    close(est.response_.values, ref.response_.values)


def test_time_blocks_overlap_by_max_lag():
    """A long 1-D series split into many blocks: pairs straddling blocks count exactly once
    (against a plain lag sum), on a (time, feature) array held by Dask."""
    import dask.array as dsa

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3001, 3)).cumsum(axis=0) * 0.01 + rng.standard_normal((3001, 3))
    da = xr.DataArray(dsa.from_array(x, chunks=(97, 3)), dims=("time", "feature"))

    def score(b):
        return -np.tanh(b) * np.array([1.0, 0.5, 2.0])

    est = ResponseEstimator(score=score, max_lag=7, bootstrap=False,
                            memory_budget="300kB").fit(da)
    xm = x - x.mean(axis=0)
    s = score(x)
    expected = np.stack([-(xm[k:].T @ s[: len(x) - k]) / (len(x) - k) for k in range(8)])
    close(est.response_.values, expected)


def test_nan_in_a_file_is_reported(files, tmp_path):
    ds = gfdt.io.load(files[1])
    ds.u.values[1, 17, 2, 3] = np.nan
    bad = tmp_path / "bad.nc"
    gfdt.io.save(ds, bad)
    with xr.open_mfdataset([files[0], bad, files[2]], combine="by_coords",
                           chunks={"time": 50}) as lazy:
        with pytest.raises(ValueError, match="X contains 1 NaN"):
            ResponseEstimator(max_lag=3, bootstrap=False, memory_budget="3MB").fit(lazy)


def test_streaming_gaussian_fit_equals_fit():
    rng = np.random.default_rng(1)
    for state, homogeneous in [((5,), False), ((4, 6), False), ((4, 6), True), ((8,), True)]:
        X = (rng.standard_normal((157, *state)) * np.linspace(0.5, 2.0, int(np.prod(state)))
             .reshape(state) + 40.0)  # a large mean: the shifted merge keeps precision
        a = GaussianScore(homogeneous=homogeneous).fit(X)
        b = GaussianScore(homogeneous=homogeneous).fit_blocks([X[:1], X[1:60], X[60:]])
        np.testing.assert_allclose(b.mean_, a.mean_, rtol=1e-14)
        if homogeneous:
            close(b.spectrum_, a.spectrum_)
        else:
            close(b.covariance_, a.covariance_)
        x = rng.standard_normal((3, *state)) + 40.0
        close(b.score(x), a.score(x))
    with pytest.raises(ValueError, match="at least 2"):
        GaussianScore().fit_blocks([np.zeros((1, 3))])
    with pytest.raises(ValueError, match="state shapes"):
        GaussianScore().fit_blocks([np.zeros((4, 3)), np.zeros((4, 2))])


@pytest.mark.parametrize(("value", "expected"), [
    ("256MB", 256 * 10**6), ("1.5 GiB", 3 * 2**29), ("2e8", 2 * 10**8), (1000, 1000),
    ("64kB", 64000), ("3 mib", 3 * 2**20), (None, None)])
def test_parse_bytes(value, expected):
    assert parse_bytes(value) == expected


@pytest.mark.parametrize(("value", "exc"), [
    ("lots", ValueError), ("-5MB", ValueError), (0, ValueError), ("12 parsecs", ValueError),
    (True, TypeError), ([1], TypeError)])
def test_bad_memory_budget(value, exc):
    with pytest.raises(exc, match="memory_budget"):
        ResponseEstimator(max_lag=1, memory_budget=value).fit(np.ones((5, 2)))


def test_budget_too_small_says_how_much_is_needed():
    with pytest.raises(ValueError, match=r"needs about .* more than its memory budget of "
                       r"10\.0 kB .*memory_budget of at least"):
        ResponseEstimator(score=lambda b: -b, max_lag=3, bootstrap=False,
                          memory_budget="10kB").fit(np.arange(3200.0).reshape(50, 64))
    # the block is what remains after the reserve (a quarter) and the fixed part, per
    # sample (6 arrays of d doubles), minus the overlap of L samples
    block, _ = correlation_block(10**6, d=10, L=5, result_bytes=0, homogeneous=False,
                                 model_bytes=0, batch_size=1)
    assert block == (750_000 - 4 * 80) // (6 * 80) - 5
    block, _ = correlation_block(10**6, d=10, L=5, result_bytes=0, homogeneous=False,
                                 model_bytes=0, batch_size=1, stride=4)
    assert block % 4 == 0


def test_learned_score_streams_out_of_core(files, reads, monkeypatch):
    """score="dsm" inside ResponseEstimator trains on the Trajectories by index: no read
    of a whole member, and the same network as when trained on the data in memory."""

    def whole_read(self, dtype=None, copy=None):
        raise AssertionError("a Dask-backed member was read whole")

    monkeypatch.setattr(LazyMember, "__array__", whole_read)
    opts = dict(max_steps=20, batch_size=16, eval_every=10, warmup=5, n_threads=1,
                network="mlp", seed=1)
    kw = dict(score="dsm", max_lag=L, homogeneous=False, bootstrap=False,
              score_options=opts)
    with open_lazy(files) as lazy:
        est = ResponseEstimator(**kw, memory_budget="3MB").fit(lazy)
        ref = ResponseEstimator(**kw).fit(lazy.load())
    assert reads and max(n for n, _ in reads) < T
    x = lazy.u.isel(member=0, time=slice(0, 50)).values
    np.testing.assert_array_equal(est.score_model_.score(x), ref.score_model_.score(x))
    close(est.response_raw_.values, ref.response_raw_.values)
