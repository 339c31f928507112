"""Memory plans: no fit allocates more than its plan, chunked bootstraps give the same
errors, a plan that cannot fit fails before allocating, and the default budget reads
the limits of the machine (``ulimit -v`` included)."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import gfdt
from gfdt._memory import available_memory, default_budget
from gfdt.response import MemoryPlanError


def _ar(n: int, d: int, seed: int = 0, phi: float = 0.7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.zeros((n, d))
    z = rng.standard_normal((n, d))
    for t in range(1, n):
        x[t] = phi * x[t - 1] + z[t]
    return x


def _peak(fn) -> tuple[int, object]:
    """Peak bytes numpy (and Python) allocate while ``fn()`` runs, beyond what existed."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = fn()
        return tracemalloc.get_traced_memory()[1] - base, out
    finally:
        tracemalloc.stop()


CONFIGS = {
    "matrix, bootstrap": (lambda: _ar(400, 40), dict(max_lag=8)),
    "matrix, normalised, replicates in passes": (
        lambda: _ar(400, 60), dict(max_lag=8, normalize=True, memory_budget="12MB",
                                   n_bootstrap=30, block_length=9)),
    "matrix, normalised, block parts kept": (
        lambda: _ar(400, 60), dict(max_lag=8, normalize=True, memory_budget="40MB")),
    "matrix, replicates accumulated": (lambda: _ar(400, 60),
                                       dict(max_lag=8, n_bootstrap=20, block_length=9)),
    "matrix, no bootstrap": (lambda: _ar(400, 60), dict(max_lag=8, bootstrap=False)),
    "homogeneous field": (lambda: _ar(600, 256).reshape(600, 16, 16),
                          dict(max_lag=8, homogeneous=True, memory_budget="30MB")),
    "observable": (lambda: _ar(500, 30), dict(max_lag=6, observable="mean")),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fit_allocates_no_more_than_its_plan(name):
    make, kw = CONFIGS[name]
    x = make()
    kw = {"progress": False, "seed": 1, **kw}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gfdt.ResponseEstimator(**kw).fit(x[:100])  # load the code paths (imports) first
        peak, est = _peak(lambda: gfdt.ResponseEstimator(**kw).fit(x))
    plan = est.memory_plan_
    assert 0 < peak <= plan.peak, (name, peak, plan.describe())
    assert plan.peak <= plan.budget  # and the plan is within its budget
    if "passes" in name:
        assert plan.passes > 1 and plan.replicates_per_pass < 30
    if name in ("matrix, bootstrap", "matrix, normalised, block parts kept"):
        assert plan.store_blocks > 0  # fewer blocks than replicates: the parts are kept
    if "accumulated" in name or "passes" in name:
        assert plan.store_blocks == 0
    assert "memory plan" in est.summary()


def test_sensitivity_and_null_bands_allocate_no_more_than_their_plans():
    ou = gfdt.OrnsteinUhlenbeck(n=8, dt=0.05, lam=0.5, kappa=0.05, A=0.2, eps2=0.04)
    ds = gfdt.simulate(ou, n_members=2, burn_in=20.0, duration=60.0, save_interval=0.5,
                       seed=3, progress=False, n_workers=1)
    obs = {"var": lambda u: (u**2).mean(axis=(1, 2))}
    kw = dict(max_lag=8.0, seed=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gfdt.SensitivityEstimator("exact", obs, ["lam"], **kw).fit(ds.isel(time=slice(0, 40)))
        peak, est = _peak(lambda: gfdt.SensitivityEstimator("exact", obs, ["lam", "eps2"],
                                                            **kw).fit(ds))
    assert 0 < peak <= est.memory_plan_.peak, (peak, est.memory_plan_.describe())
    assert np.all(np.isfinite(est.sensitivity_stderr_.values))
    # null bands: one surrogate fit at a time, bounded quantile buffers
    import gfdt.nullmodel as nm

    x = _ar(300, 20, seed=2)
    est = gfdt.ResponseEstimator(max_lag=6, progress=False)
    plans = []
    real = nm._BandPlan._decide

    def spy(self):
        real(self)
        plans.append(self)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.null_bands(x[:50], n_surrogates=4)
        nm._BandPlan._decide = spy
        try:
            peak, _ = _peak(lambda: est.null_bands(x, n_surrogates=40))
        finally:
            nm._BandPlan._decide = real
    assert 0 < peak <= plans[-1].peak + x.nbytes, (peak, plans[-1].describe())


def test_replicates_in_passes_equal_one_pass():
    """The same seed gives the same replicates whatever the chunk: equal errors (more
    blocks than replicates: the replicates are accumulated, in passes if need be)."""
    x = _ar(400, 30, seed=3)
    kw = dict(max_lag=6, normalize=True, seed=5, progress=False, block_length=8,
              n_bootstrap=40)
    one = gfdt.ResponseEstimator(**kw).fit(x)
    many = gfdt.ResponseEstimator(**kw, memory_budget="3MB").fit(x)
    assert one.memory_plan_.passes == 1 and many.memory_plan_.passes > 1
    assert one.memory_plan_.store_blocks == many.memory_plan_.store_blocks == 0
    for attr in ("response_stderr_", "response_raw_stderr_"):
        np.testing.assert_allclose(getattr(many, attr).values, getattr(one, attr).values,
                                   rtol=1e-9, atol=1e-14)
    np.testing.assert_array_equal(many.response_.values, one.response_.values)


def test_kept_block_parts_equal_accumulated_replicates():
    """Fewer blocks than replicates: keeping the blocks' parts and forming each
    replicate from them gives the replicates accumulated block by block."""
    from gfdt.response.bootstrap import BlockBootstrap

    rng = np.random.default_rng(0)
    parts = rng.standard_normal((7, 4, 3, 3)) + 1j * rng.standard_normal((7, 4, 3, 3))
    counts = rng.integers(5, 9, size=(7, 4)).astype(float)
    out = []
    for store in (False, True):
        b = BlockBootstrap(7, 12, (4, 3, 3), complex, np.random.default_rng(3), store=store,
                           flush=2)
        b.add(parts[:3], counts[:3])
        b.add(parts[3:], counts[3:])
        out.append(np.stack(list(b.replicates())))
        np.testing.assert_allclose(b.mean(), parts.sum(0) / counts.sum(0)[:, None, None])
    order = np.lexsort(b.weights.T[::-1])  # kept parts: distinct resamples in row order
    np.testing.assert_allclose(out[1], out[0][order], rtol=1e-12)
    # three blocks: 10 distinct resamples of 100, each formed once
    b = BlockBootstrap(3, 100, (4, 3, 3), complex, np.random.default_rng(3), store=True)
    b.add(parts[:3], counts[:3])
    distinct = list(b.distinct_replicates())
    assert len(distinct) <= 10 and sum(c for _, c in distinct) == 100
    x = _ar(300, 8, seed=4)  # and an estimator that keeps them
    est = gfdt.ResponseEstimator(max_lag=5, seed=1, progress=False).fit(x)
    assert est.memory_plan_.store_blocks == n_blocks_of(est) < 100


def n_blocks_of(est) -> int:
    return int(est.response_stderr_.attrs["n_blocks"])


def test_too_large_fails_before_allocating():
    x = _ar(60, 3000, seed=0)  # a (11, 3000, 3000) result: 792 MB per array
    # a known score: a Gaussian estimated from 60 samples in 3000 dimensions is a rank
    # error before any plan (test_reduced.py)
    est = gfdt.ResponseEstimator(score=lambda b: -b, max_lag=10, memory_budget="6GB",
                                 progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        def attempt():
            with pytest.raises(MemoryPlanError) as err:
                est.fit(x)
            return err

        peak, err = _peak(attempt)
    msg = str(err.value)
    assert peak < 4 * 8 * x.size, peak  # a few copies of the data: nothing of the plan's size
    for part in ("792.0 MB", "6.0 GB", "bootstrap=False", "max_lag <=",
                 "reduced to at most", "memory_budget of at least"):
        assert part in msg, (part, msg)
    assert isinstance(err.value, ValueError)


def test_plan_options_would_fit():
    """Each option the error names fits when taken."""
    x = _ar(100, 80, seed=1)  # more samples than coordinates: a Gaussian can be estimated
    est = gfdt.ResponseEstimator(max_lag=10, memory_budget="3MB", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(MemoryPlanError) as err:
            est.fit(x)
        msg = str(err.value)
        lag = int(msg.split("max_lag <= ")[1].split()[0])
        assert 1 <= lag < 10
        gfdt.ResponseEstimator(max_lag=lag, memory_budget="3MB", progress=False).fit(x)
        if "bootstrap=False" in msg:
            gfdt.ResponseEstimator(max_lag=10, memory_budget="3MB", bootstrap=False,
                                   progress=False).fit(x)


def test_available_memory_reads_the_address_space_limit():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30));"
            "from gfdt._memory import available_memory, default_budget;"
            "print(available_memory()[0], available_memory()[1], default_budget()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    size, budget = int(out[0]), int(out[-1])
    assert "RLIMIT_AS" in " ".join(out[1:-1])
    assert 0 < size < 3 * 2**30 and budget == size // 2
    size, label = available_memory()
    assert size > 0 and label
    assert default_budget()[0] <= size


def test_null_bands_on_too_few_samples_is_the_rank_error_not_a_memory_plan():
    """As fit: fewer samples than coordinates is named before a memory plan is made
    (a plan's options such as a smaller max_lag would not help)."""
    x = _ar(60, 300, seed=2)
    est = gfdt.ResponseEstimator(max_lag=10, memory_budget="1MB", progress=False)
    with pytest.raises(ValueError, match="only 60 samples") as err:
        est.null_bands(x, n_surrogates=5)
    assert not isinstance(err.value, MemoryPlanError)
    with pytest.raises(ValueError, match="only 60 samples"):
        est.fit(x)
