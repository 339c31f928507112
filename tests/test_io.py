"""gfdt.io: lossless netCDF round trips and atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gfdt import io


def test_round_trip_simulation(tmp_path, tiny_run):
    path = io.save(tiny_run, tmp_path / "run.nc")
    assert path == tmp_path / "run.nc"
    back = io.load(path)
    xr.testing.assert_identical(back, tiny_run)
    assert back["u"].dtype == np.float64
    assert back.attrs["gfdt_parameters"] == tiny_run.attrs["gfdt_parameters"]


def test_round_trip_perturbation_response(tmp_path, ou_truth):
    back = io.load(io.save(ou_truth, tmp_path / "truth.nc"))
    xr.testing.assert_identical(back, ou_truth)
    np.testing.assert_array_equal(back["response"].values, ou_truth["response"].values)


def test_round_trip_dataarray(tmp_path, fast_ou):
    r = fast_ou.exact_response([0.0, 1.0])
    back = io.load(io.save(r, tmp_path / "r.nc"))
    xr.testing.assert_identical(back["response"], r)


def test_failed_write_keeps_old_file(tmp_path, tiny_run, monkeypatch):
    path = tmp_path / "run.nc"
    path.write_bytes(b"old contents")

    def broken(self, target, *args, **kwargs):
        with open(target, "wb") as fh:  # a partial write, then a failure
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        io.save(tiny_run, path)
    assert path.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.nc"]  # no temporary left


def test_errors(tmp_path):
    with pytest.raises(TypeError, match="data must be"):
        io.save(np.zeros(3), tmp_path / "x.nc")
    with pytest.raises(ValueError, match="path: directory"):
        io.save(xr.Dataset(), tmp_path / "missing" / "x.nc")
    with pytest.raises(FileNotFoundError, match="path: no file"):
        io.load(tmp_path / "nothing.nc")
