"""Real gridded files that pip packages ship: they fit with defaults or fail with a named fix.

eofs' example data (``sst_ndjfm_anom.nc``: 50 winters of Pacific SST anomalies, land
as NaN; ``hgt_djf.nc``: 65 winters of 500 hPa height up to the pole) and
iris-sample-data (``A1B_north_america.nc``, ``ostia_monthly.nc``); skipped when the
package is not installed.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import gfdt


def _file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None:
        pytest.skip(f"{package} is not installed")
    return Path(spec.submodule_search_locations[0]).joinpath(*parts)


def _open(path: Path, var: str) -> xr.DataArray:
    ds = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    return ds[var].load()


def test_eofs_sst_with_land_masks_and_the_full_grid_error():
    sst = _open(_file("eofs", "examples", "example_data", "sst_ndjfm_anom.nc"), "sst")
    land = np.isnan(sst.isel(time=0).values)
    assert land.sum() == 90
    with pytest.raises(ValueError, match=r"450 state coordinates but only 50 samples.*"
                                         r"reduce=gfdt.EOF"):
        gfdt.ResponseEstimator(max_lag=5, progress=False).fit(
            sst.stack(space=("latitude", "longitude")).dropna("space"))
    with pytest.raises(ValueError, match=r"max_lag = 100 .* e.g. max_lag=10"):
        gfdt.ResponseEstimator(progress=False, reduce=gfdt.EOF()).fit(sst)
    with warnings.catch_warnings():  # few blocks; a trend in PC 2 (the record warms)
        warnings.simplefilter("ignore", gfdt.response.BootstrapWarning)
        warnings.simplefilter("ignore", gfdt.response.NonStationarityWarning)
        est = gfdt.ResponseEstimator(max_lag=5, progress=False, reduce=gfdt.EOF(),
                                     seed=0).fit(sst)
    k = est.reduce_.n_modes_
    np.testing.assert_allclose(est.response_.isel(lag=0).values, np.eye(k), atol=1e-10)
    assert est.reduce_.latitude_ == "latitude" and est.reduce_.mask_.values.sum() == 450
    box = xr.where((sst.latitude > 10) & (sst.latitude < 30), 1.0, 0.0).broadcast_like(
        sst.isel(time=0, drop=True))
    with pytest.warns(UserWarning, match="represent only"):  # a band, not a large scale
        out = est.response_to(box)
    assert np.isnan(out.response.values[:, land]).all()
    assert np.isfinite(out.response.values[:, ~land]).all()
    # the box's response at lag 0 is its projection on the modes: R(0) f = E E^T (w f) / w
    proj = est.reduce_.to_grid(est.reduce_.project(box))
    np.testing.assert_allclose(out.response.isel(lag=0).values, proj, atol=1e-12)


def test_eofs_hgt_white_noise_winters_and_the_pole():
    z = _open(_file("eofs", "examples", "example_data", "hgt_djf.nc"), "z")
    assert float(z.latitude.max()) == 90.0
    with pytest.warns(UserWarning, match="better than zero"):
        eof = gfdt.EOF().fit(z)
    assert eof.n_modes_ == 1
    assert np.isfinite(eof.patterns_.sel(latitude=90.0).values).all()  # weight ~0 there


def test_a1b_with_reduce_and_latitude_is_never_periodic():
    tas = _open(_file("iris_sample_data", "sample_data", "A1B_north_america.nc"),
                "air_temperature")
    with pytest.raises(ValueError, match="'latitude' is latitude"):
        gfdt.ResponseEstimator(max_lag=5, homogeneous=True, progress=False).fit(tas)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the raw scenario warms: NonStationarityWarning
        est = gfdt.ResponseEstimator(max_lag=10, progress=False, reduce=gfdt.EOF(),
                                     seed=0).fit(tas)
    assert est.response_.dims == ("lag", "mode", "source_mode")
    assert est.stein_error_ < 1e-10


def test_ostia_longitude_closes_the_circle_but_latitude_does_not():
    from gfdt._axes import periodic_axes

    sst = _open(_file("iris_sample_data", "sample_data", "ostia_monthly.nc"),
                "surface_temperature")
    axes = periodic_axes(sst.isel(time=0, drop=True), ("latitude", "longitude"), {})
    assert axes["longitude"][0] is True and axes["latitude"][0] is False
    eof = gfdt.EOF(n_modes=3).fit(sst)
    assert eof.mask_.values.sum() == 5721  # land (NaN) points masked
