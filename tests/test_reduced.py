"""ResponseEstimator(reduce=EOF(...)): the GFDT on principal components, mapped to the grid."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import gfdt
from gfdt.response._checks import SteinWarning

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _climate_fields import DoubleWellField, LinearField, relative_error


def _var1_field(n=400, ny=4, nx=5, seed=0):
    """A VAR(1) on a small lat-lon grid with three land points (NaN)."""
    rng = np.random.default_rng(seed)
    d = ny * nx
    A = 0.6 * np.eye(d) + 0.15 * rng.standard_normal((d, d)) / np.sqrt(d)
    x = np.zeros((n + 100, d))
    for t in range(1, n + 100):
        x[t] = A @ x[t - 1] + rng.standard_normal(d)
    x = x[100:].reshape(n, ny, nx) + 5.0
    x[:, 0, :2] = np.nan
    x[:, 3, 4] = np.nan
    return xr.DataArray(x, dims=("time", "lat", "lon"), name="sst", coords={
        "time": np.arange(n, dtype=float),
        "lat": ("lat", np.linspace(10, 40, ny), {"units": "degrees_north"}),
        "lon": ("lon", np.linspace(200, 240, nx), {"units": "degrees_east"})})


def _kw(**kw):
    return dict(score="gaussian", max_lag=4, progress=False, **kw)


def test_full_rank_reduction_equals_the_full_grid_gaussian():
    """With every mode kept the EOF map is invertible, and the Gaussian GFDT is
    equivariant under invertible linear maps: response_to(point) is the full matrix's
    column, as the full-grid fit of the stacked, land-dropped field gives it."""
    da = _var1_field()
    full = gfdt.ResponseEstimator(**_kw(bootstrap=False)).fit(
        da.stack(space=("lat", "lon")).dropna("space"))
    red = gfdt.ResponseEstimator(**_kw(bootstrap=False, reduce=gfdt.EOF(n_modes=17))).fit(da)
    assert red.response_.dims == ("lag", "mode", "source_mode")
    assert red.response_.sizes["mode"] == 17 and red.response_kind_ == "reduced"
    np.testing.assert_allclose(red.stein_.values, np.eye(17), atol=1e-10)
    # the full matrix keeps the stacked coordinates: a MultiIndex that unstacks to maps
    R = full.response_
    assert list(R.indexes["observable"].names) == ["lat", "lon"]
    assert list(R.indexes["source"].names) == ["lat_source", "lon_source"]
    for lat, lon in ((10.0, 220.0), (30.0, 230.0)):
        impulse = xr.zeros_like(da.isel(time=0, drop=True)).where(da.isel(time=0).notnull())
        impulse.loc[{"lat": lat, "lon": lon}] = 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # 17 modes capture a point fully
            out = red.response_to(impulse)
        col = R.sel(lat_source=lat, lon_source=lon).unstack("observable")
        col = col.reindex_like(out.response)
        np.testing.assert_allclose(out.response.values, col.values, rtol=0, atol=1e-9)
        assert np.isnan(out.response.values[:, 0, 0]).all()
        assert out.response.attrs["captured"] > 0.999


def test_reduced_response_matches_the_closed_form():
    """The linear benchmark field (4 slow non-orthogonal patterns, non-normal drift, fast
    remainder, 748 ocean points) with a record as long as the grid: EOF (default rule) +
    Gaussian is within 0.12 of the exact response to the regional patch over lags 1-12."""
    fld = LinearField()
    f = fld.grid.regional_pattern()
    est = gfdt.ResponseEstimator(score="gaussian", max_lag=12, progress=False,
                                 bootstrap=False, reduce=gfdt.EOF()).fit(fld.simulate(750, 0))
    assert est.reduce_.n_modes_ == 4
    out = est.response_to(f)
    assert out.response.dims == ("lag", "lat", "lon")
    assert np.isnan(out.response.values[:, ~fld.grid.ocean]).all()
    assert relative_error(out.response, fld.response(f, 12)) < 0.12


def test_response_to_stderr_is_the_spread_of_the_mapped_replicates():
    da = _var1_field(n=600)
    est = gfdt.ResponseEstimator(**_kw(reduce=gfdt.EOF(n_modes=5), n_bootstrap=40,
                                       block_length=30, seed=3)).fit(da)
    f = xr.zeros_like(da.isel(time=0, drop=True)).fillna(0.0)
    f[1:3, 1:4] = 1.0
    out = est.response_to(f)
    eof = est.reduce_
    p = eof.project(f)
    maps = np.stack([eof.to_grid(np.einsum("lij,j->li", r, p)) for r in est._replicates])
    np.testing.assert_allclose(out.stderr.values, maps.std(axis=0, ddof=1), rtol=1e-9, atol=1e-12,
                               equal_nan=True)
    assert np.all(np.isnan(out.stderr.values[:, 0, :2]))
    # with normalize, the replicates of the normalised response are used
    est_n = gfdt.ResponseEstimator(**_kw(reduce=gfdt.EOF(n_modes=5), n_bootstrap=40,
                                         block_length=30, seed=3, normalize=True)).fit(da)
    np.testing.assert_allclose(est_n.response_to(f).response.isel(lag=0).values,
                               out.response.isel(lag=0).values, atol=1e-10)


def test_predict_with_a_pattern_times_a_series():
    da = _var1_field()
    est = gfdt.ResponseEstimator(**_kw(reduce=gfdt.EOF(n_modes=6), n_bootstrap=20,
                                       block_length=20, seed=0)).fit(da)
    f = da.isel(time=0, drop=True).notnull().astype(float).where(da.isel(time=0).notnull())
    series = np.sin(np.arange(12) / 3.0)
    a, se = est.predict((f, series), return_stderr=True)
    assert a.dims == ("time", "lat", "lon") and a.shape == (12, 4, 5)
    assert np.isnan(a.values[:, 0, 0]).all() and np.isnan(se.values[:, 0, 0]).all()
    # the same as the forcing field pattern x series, and as the convolution of response_to
    field = xr.DataArray(series, dims="time") * f
    np.testing.assert_allclose(est.predict(field).values, a.values, atol=1e-12)
    R = est.response_to(f).response.values
    conv = np.array([sum(R[n - j] * series[j] for j in range(max(0, n - 4), n + 1))
                     for n in range(12)])
    np.testing.assert_allclose(a.values, conv, atol=1e-10)


def test_reduce_rejects_options_that_do_not_apply():
    da = _var1_field(n=100)
    for kw, msg in ((dict(homogeneous=True), "homogeneous=True does not apply"),
                    (dict(observable="mean"), "observable and perturbation"),
                    (dict(reduce="eof"), "reduce must be a gfdt.EOF")):
        kw.setdefault("reduce", gfdt.EOF(n_modes=2))
        with pytest.raises((ValueError, TypeError), match=msg):
            gfdt.ResponseEstimator(**_kw(bootstrap=False, **kw)).fit(da)
    plain = gfdt.ResponseEstimator(**_kw(bootstrap=False)).fit(da.fillna(0.0).isel(lat=[1, 2]))
    with pytest.raises(ValueError, match="response_to needs a fit with reduce"):
        plain.response_to(da.isel(time=0))


def test_more_coordinates_than_samples_is_an_error_naming_rank_and_fix():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 8, 10))  # 80 coordinates, 60 samples
    with pytest.raises(ValueError, match=r"80 state coordinates but only 60 samples.*rank at "
                                         r"most 59.*reduce=gfdt.EOF"):
        gfdt.ResponseEstimator(**_kw()).fit(x)
    # a known (not estimated) score is allowed; its Stein sum over 60 samples in 80
    # dimensions is far from the identity, which is said
    with pytest.warns(SteinWarning):
        gfdt.ResponseEstimator(score=lambda b: -b, max_lag=2, progress=False,
                               bootstrap=False).fit(x)
    # enough samples but a redundant coordinate: the numerical rank is named
    y = rng.standard_normal((500, 4))
    y = np.concatenate([y, y[:, :1] + y[:, 1:2]], axis=1)
    with pytest.raises(ValueError, match=r"numerical rank 4.*500 samples.*reduce=gfdt.EOF"):
        gfdt.ResponseEstimator(**_kw()).fit(y)


def test_homogeneous_true_needs_periodic_axes():
    da = _var1_field(n=80).fillna(0.0)
    with pytest.raises(ValueError, match=r"'lat' is latitude .* never periodic"):
        gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(da)
    box = da.isel(lat=[1]).squeeze("lat", drop=True)  # longitude 200-240 only
    with pytest.raises(ValueError, match=r"longitude 'lon' spans 200 to 240 degrees"):
        gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(box)
    ring = box.assign_coords(lon=np.arange(0, 360, 72.0))  # closes the circle
    gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(ring)
    other = box.rename(lon="x").assign_coords(x=np.arange(5.0))
    with pytest.raises(ValueError, match="nothing says 'x' is periodic"):
        gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(other)
    other["x"].attrs["periodic"] = "true"
    gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(other)
    # plain arrays have no coordinates: the caller's word is taken
    gfdt.ResponseEstimator(**_kw(homogeneous=True, bootstrap=False)).fit(box.values)


def test_auto_on_a_lat_lon_field_is_not_the_periodic_cnn():
    from gfdt.scores.auto import choose_score

    expected = "864 coordinates (state shape (24, 36), not known to be periodic): DSM with the MLP"
    assert choose_score((24, 36), periodic=False) == ("dsm", expected)
    assert choose_score((24, 36), periodic=True)[1].endswith("periodic CNN")
    assert choose_score((4,), periodic=False)[0] == "dsm" and choose_score((3,))[0] == "kgmm"


def test_stein_warning_when_r0_is_far_from_the_identity():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 3))
    with pytest.warns(SteinWarning, match="differs from the identity by"):
        gfdt.ResponseEstimator(score=lambda b: -0.5 * b, max_lag=2, progress=False,
                               bootstrap=False).fit(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SteinWarning)
        gfdt.ResponseEstimator(**_kw(bootstrap=False)).fit(x)


def test_multiindex_response_round_trips_through_io(tmp_path):
    da = _var1_field(n=150)
    est = gfdt.ResponseEstimator(**_kw(bootstrap=False)).fit(
        da.stack(space=("lat", "lon")).dropna("space"))
    path = gfdt.io.save(est.response_, tmp_path / "r.nc")
    back = gfdt.io.load(path)["response"]
    assert back.indexes["observable"].equals(est.response_.indexes["observable"])
    assert back.indexes["source"].equals(est.response_.indexes["source"])
    np.testing.assert_array_equal(back.values, est.response_.values)
    maps = back.sel(lat_source=20.0, lon_source=220.0).unstack("observable")
    assert maps.dims == ("lag", "lat", "lon") and maps.shape == (5, 4, 5)
    # a 2-D state without stacking: a MultiIndex over both dims
    est2 = gfdt.ResponseEstimator(**_kw(bootstrap=False)).fit(da.fillna(0.0).isel(lat=[1, 2]))
    assert list(est2.response_.indexes["observable"].names) == ["lat", "lon"]
    back2 = gfdt.io.load(gfdt.io.save(est2.response_, tmp_path / "r2.nc"))["response"]
    assert back2.unstack("observable").unstack("source").shape == (5, 2, 5, 2, 5)


def test_null_bands_with_reduce_are_the_principal_components_red_noise_band():
    da = _var1_field(n=300)
    est = gfdt.ResponseEstimator(**_kw(reduce=gfdt.EOF(n_modes=3), bootstrap=False)).fit(da)
    band = est.null_bands(da, n_surrogates=8, seed=2)
    assert band["upper"].dims == ("lag", "mode", "source_mode")
    # the same as the plain estimator's band on the PCs of the fitted EOFs
    pcs = est.reduce_.transform(da)
    plain = gfdt.ResponseEstimator(**_kw(bootstrap=False)).null_bands(pcs, n_surrogates=8,
                                                                      seed=2)
    np.testing.assert_allclose(band["upper"].values, plain["upper"].values, rtol=1e-12)


@pytest.mark.slow
def test_auto_beats_the_gaussian_on_coupled_double_wells():
    """Nonlinear slow part (3 coupled double wells under a fast remainder): on the PCs
    the learned score ("auto": KGMM for 3 modes) gets the paired-ensemble response much
    better than the Gaussian, whose response is the slow autocorrelation."""
    fld = DoubleWellField()
    f = fld.grid.regional_pattern()
    truth, _ = fld.response(f, 12, n_pairs=10000)
    x = fld.simulate(3750, 0)
    errs = {}
    for score in ("gaussian", "auto"):
        est = gfdt.ResponseEstimator(score=score, max_lag=12, progress=False, bootstrap=False,
                                     reduce=gfdt.EOF()).fit(x)
        assert est.reduce_.n_modes_ == 3
        errs[score] = relative_error(est.response_to(f).response, truth)
    assert est.score_model_.chosen_name_ == "kgmm"
    assert errs["gaussian"] > 1.0 and errs["auto"] < 0.6 * errs["gaussian"], errs
