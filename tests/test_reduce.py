"""gfdt.EOF: against a direct SVD, masks round-trip, weights, solvers, the mode-count rule."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from gfdt.reduce import EOF

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _climate_fields import LinearField


def _field(n=120, ny=9, nx=14, seed=0, members=None):
    """Three smooth modes plus noise on a lat-lon grid; land (NaN) and a constant point."""
    rng = np.random.default_rng(seed)
    lat = np.linspace(-40, 70, ny)
    lon = np.linspace(100, 230, nx)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    modes = np.stack([np.cos(np.deg2rad(la)) * np.sin(np.deg2rad(lo)),
                      np.exp(-((la - 20) / 20) ** 2), np.sin(np.deg2rad(2 * la))])
    shape = (n,) if members is None else (members, n)
    amp = rng.standard_normal((*shape, 3)) * np.array([3.0, 2.0, 1.0])
    x = np.einsum("...k,kij->...ij", amp, modes) + 0.3 * rng.standard_normal((*shape, ny, nx))
    x = x + 280.0  # a large mean: the scan must not lose precision
    x[..., 2:4, 5:8] = np.nan  # land
    x[..., 0, 0] = 7.0  # a constant point
    dims = ("time", "lat", "lon") if members is None else ("member", "time", "lat", "lon")
    return xr.DataArray(x, dims=dims, coords={
        "lat": ("lat", lat, {"units": "degrees_north"}),
        "lon": ("lon", lon, {"units": "degrees_east"}), "time": np.arange(n) * 1.0},
        name="sst", attrs={"units": "K"})


def _direct(da: xr.DataArray, weights: np.ndarray | None = None):
    """Weighted anomalies of the valid points and their SVD, computed directly."""
    x = da.values.reshape(-1, da.sizes["lat"] * da.sizes["lon"])
    valid = np.all(np.isfinite(x), axis=0)
    valid[valid] = x[:, valid].std(axis=0) > 0
    if weights is None:
        lat = np.broadcast_to(da["lat"].values[:, None], da.shape[-2:]).reshape(-1)
        weights = np.sqrt(np.cos(np.deg2rad(lat)))
    w = weights.reshape(-1)[valid]
    y = (x[:, valid] - x[:, valid].mean(axis=0)) * w
    u, s, vt = np.linalg.svd(y, full_matrices=False)
    return valid, w, y, u, s, vt


@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_eof_matches_a_direct_svd(solver):
    da = _field(n=100)  # fewer samples than the 119 valid points: the Gram route
    valid, w, y, u, s, vt = _direct(da)
    eof = EOF(n_modes=6, solver=solver).fit(da)
    assert eof.solver_ == ("gram" if solver == "exact" else "randomized")
    # the randomized solver resolves the modes above the noise floor (3 here); modes in
    # a flat part of the spectrum are approximate (Halko et al. 2011, sec. 10)
    k = 6 if solver == "exact" else 3
    np.testing.assert_allclose(eof.singular_values_.values[:k], s[:k], rtol=1e-9)
    comps = eof.components_.values.reshape(6, -1)
    assert np.all(np.isnan(comps[:, ~valid]))
    for j in range(k):  # the same vectors up to sign
        np.testing.assert_allclose(abs(comps[j, valid] @ vt[j]), 1.0, rtol=0, atol=1e-8)
    np.testing.assert_allclose(eof.explained_variance_ratio_.values[:k],
                               s[:k] ** 2 / (s**2).sum(), rtol=1e-9)
    np.testing.assert_allclose(eof.explained_variance_.values[:k], s[:k] ** 2 / (len(y) - 1),
                               rtol=1e-9)
    # PCs: E^T w (x - m); patterns E / w
    pcs = eof.transform(da)
    assert pcs.dims == ("time", "mode") and list(pcs["mode"].values) == list(range(1, 7))
    np.testing.assert_allclose(np.abs(pcs.values[:, :k]), np.abs(u[:, :k] * s[:k]),
                               rtol=1e-7, atol=1e-8)
    pat = eof.patterns_.values.reshape(6, -1)[:, valid]
    np.testing.assert_allclose(pat * w, comps[:, valid], rtol=1e-9, atol=1e-12)
    # the components are orthonormal over the valid points
    np.testing.assert_allclose(comps[:, valid] @ comps[:, valid].T, np.eye(6), atol=1e-9)


def test_covariance_route_and_members_pool_samples():
    da = _field(n=60, ny=5, nx=6, members=4)  # 240 samples > 27 valid points
    eof = EOF(n_modes=3, solver="exact").fit(da)
    assert eof.solver_ == "covariance"
    pooled = xr.concat([da.isel(member=k) for k in range(4)], "time")
    pooled["time"] = np.arange(240.0)
    _valid, _w, _y, u, s, _vt = _direct(pooled)
    np.testing.assert_allclose(eof.singular_values_.values, s[:3], rtol=1e-9)
    pcs = eof.transform(da)
    assert pcs.dims == ("member", "time", "mode") and pcs.shape == (4, 60, 3)
    np.testing.assert_allclose(np.abs(pcs.values.reshape(240, 3)), np.abs(u[:, :3] * s[:3]),
                               rtol=1e-7, atol=1e-8)


def test_masks_round_trip_and_full_rank_reconstruction():
    da = _field(n=40, ny=5, nx=8)  # 39 valid... points: 40 - 6 land - 1 constant = 33
    eof = EOF(n_modes=33, solver="exact").fit(da)
    mask = eof.mask_.values
    assert mask.sum() == 33 and not mask[0, 0] and not mask[2:4, 5:8].any()
    back = eof.inverse_transform(eof.transform(da))
    assert back.dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(back["lat"].values, da["lat"].values)
    assert np.all(np.isnan(back.values[:, ~mask]))
    np.testing.assert_allclose(back.values[:, mask], da.values[:, mask], rtol=0, atol=1e-9)
    # truncated: the residual is orthogonal (in the weighted space) to the modes kept
    e3 = EOF(n_modes=3).fit(da)
    res = (da - e3.inverse_transform(e3.transform(da))).values[:, mask] * e3.weights_.values[mask]
    np.testing.assert_allclose(res @ e3.components_.values[:, mask].T, 0.0, atol=1e-9)
    # numpy in, numpy out, same numbers
    a = e3.transform(da.values)
    np.testing.assert_allclose(a, e3.transform(da).values, rtol=0, atol=1e-12)
    # NaN at a valid point is an error naming the problem
    bad = da.copy()
    bad[3, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf values at points that were valid"):
        e3.transform(bad)


def test_weights_coslat_uniform_custom_and_the_pole():
    da = _field(n=50)
    a = EOF(n_modes=2).fit(da)
    assert a.latitude_ == "lat"
    lat2d = np.broadcast_to(da["lat"].values[:, None], (9, 14))
    np.testing.assert_allclose(a.weights_.values, np.sqrt(np.cos(np.deg2rad(lat2d))))
    b = EOF(n_modes=2, weights=None).fit(da)
    np.testing.assert_array_equal(b.weights_.values, 1.0)
    custom = xr.DataArray(np.linspace(0.5, 1.5, 14), dims="lon")
    c = EOF(n_modes=2, weights=custom).fit(da)
    _valid, _w, _y, _u, s, _vt = _direct(da, np.broadcast_to(custom.values, (9, 14)))
    np.testing.assert_allclose(c.singular_values_.values, s[:2], rtol=1e-9)
    with pytest.raises(ValueError, match="weights has shape"):
        EOF(weights=np.ones(3)).fit(da)
    # a pole row (weight ~0) keeps a finite pattern: the map back never divides by w
    pole = da.assign_coords(lat=np.linspace(10, 90, 9))
    e = EOF(n_modes=2).fit(pole)
    assert np.all(np.isfinite(e.patterns_.values[:, -1, 1:]))
    # curvilinear grid: a 2-D latitude found by its CF attributes
    curv = da.rename(lat="y", lon="x").drop_vars(["y", "x"]).assign_coords(
        nav_lat=(("y", "x"), lat2d, {"standard_name": "latitude", "units": "degrees_north"}))
    f = EOF(n_modes=2).fit(curv)
    assert f.latitude_ == "nav_lat"
    np.testing.assert_allclose(f.singular_values_.values, a.singular_values_.values, rtol=1e-9)


def test_n_modes_fraction_int_and_errors():
    da = _field(n=80)
    e = EOF(n_modes=0.9).fit(da)
    full = EOF(n_modes=20).fit(da).explained_variance_ratio_.values
    k = int(np.searchsorted(np.cumsum(full), 0.9) + 1)
    assert e.n_modes_ == k
    with pytest.raises(ValueError, match="resolve only"):
        EOF(n_modes=40, solver="exact").fit(da.isel(time=slice(0, 30)))
    for bad, exc in ((0, ValueError), (1.5, ValueError), ("all", ValueError), (True, TypeError)):
        with pytest.raises(exc, match="n_modes"):
            EOF(n_modes=bad).fit(da)
    with pytest.raises(ValueError, match="no point that is finite"):
        EOF().fit(xr.full_like(da, np.nan))
    with pytest.raises(ValueError, match="space shape"):
        e.transform(da.isel(lat=slice(0, 4)))


def test_partly_missing_points_are_masked_with_a_warning():
    da = _field(n=50)
    da[10, 6, 3] = np.nan
    with pytest.warns(UserWarning, match="1 point.* NaN at some times only"):
        e = EOF(n_modes=2).fit(da)
    assert not e.mask_.values[6, 3]


def test_dask_backed_data_match_in_memory():
    pytest.importorskip("dask")
    da = _field(n=90)
    a = EOF(n_modes=4, solver="randomized").fit(da)
    b = EOF(n_modes=4, solver="randomized").fit(da.chunk({"time": 25}))
    np.testing.assert_allclose(b.singular_values_.values, a.singular_values_.values, rtol=1e-9)
    np.testing.assert_allclose(b.transform(da.chunk({"time": 25})).values,
                               a.transform(da).values, rtol=1e-7, atol=1e-9)


def test_default_rule_picks_the_slow_patterns():
    """The linear benchmark field: 4 slow patterns under a fast remainder. The rule
    (cross-validated forecast error, one standard error) keeps exactly those 4."""
    fld = LinearField()
    for n, seed in ((350, 0), (750, 1)):
        eof = EOF().fit(fld.simulate(n, seed))
        assert eof.n_modes_ == 4, (n, seed, eof.n_modes_)
        cv = eof.cv_error_
        assert float(cv["mean"][4]) < float(cv["mean"][3])  # the 4th pattern is predictable


def test_white_noise_warns_and_keeps_one_mode():
    rng = np.random.default_rng(1)
    da = xr.DataArray(rng.standard_normal((300, 6, 7)), dims=("time", "y", "x"))
    with pytest.warns(UserWarning, match="better than zero"):
        e = EOF().fit(da)
    assert e.n_modes_ == 1 and e.latitude_ is None


def test_memory_is_checked_before_the_decomposition(monkeypatch):
    import gfdt._memory

    da = _field(n=100)
    monkeypatch.setattr(gfdt._memory, "default_budget", lambda: (10**6, "a test budget"))
    with pytest.raises(ValueError, match=r"gram route for 100 samples x 119 points .* "
                                         r"more than the budget 1.0 MB"):
        EOF(n_modes=3).fit(da)
