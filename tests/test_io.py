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


def _segment(k: int, n: int = 4, time: bool = True) -> xr.Dataset:
    t = np.arange(k * n, (k + 1) * n) * 0.5
    ds = xr.Dataset({"u": (("time", "x"), np.tile(t[:, None], (1, 3)))})
    return ds.assign_coords(time=t) if time else ds


def test_open_run_refuses_a_gap_in_time(tmp_path):
    for k in (0, 1, 3):  # segment 2 lost
        io.save(_segment(k), tmp_path / f"segment_{k:04d}.nc")
    with pytest.raises(ValueError, match=r"path: segment 0002 is missing .* time jumps from "
                                         r"3.5 \(segment_0001.nc\) to 6.0 \(segment_0003.nc\)"):
        io.open_run(tmp_path)
    with pytest.raises(ValueError, match="segment 0002 is missing"):
        io.open_run(tmp_path, chunks={})
    # restored: the stitched run is the whole series
    io.save(_segment(2), tmp_path / "segment_0002.nc")
    ds = io.open_run(tmp_path)
    np.testing.assert_array_equal(ds["time"].values, np.arange(16) * 0.5)
    np.testing.assert_array_equal(ds["u"].values[:, 0], np.arange(16) * 0.5)


def test_open_run_numbering_gap_without_time_gap_is_fine(tmp_path):
    # a segment that held no samples is not written, its number is skipped
    io.save(_segment(0), tmp_path / "segment_0000.nc")
    io.save(_segment(1), tmp_path / "segment_0002.nc")
    np.testing.assert_array_equal(io.open_run(tmp_path)["time"].values, np.arange(8) * 0.5)


def test_open_run_without_time_coordinate_refuses_a_numbering_gap(tmp_path):
    for k in (0, 2):
        io.save(_segment(k, time=False), tmp_path / f"segment_{k:04d}.nc")
    with pytest.raises(ValueError, match="segment 0001 is missing"):
        io.open_run(tmp_path)


def test_save_path_must_name_a_file(tmp_path):
    with pytest.raises(ValueError, match="path must name a file, got ''"):
        io.save(xr.Dataset(), "")
    with pytest.raises(ValueError, match=r"path must name a file, .*\(a directory\)"):
        io.save(xr.Dataset(), tmp_path)


def _failing_dask_dataset():
    import time

    da = pytest.importorskip("dask.array")

    def block(x, block_info=None):
        if block_info[0]["chunk-location"][0] == 3:
            raise RuntimeError("chunk 3 failed")
        time.sleep(0.02)  # other threads are still writing when chunk 3 fails
        return x + 1.0

    arr = da.zeros((40, 1000), chunks=(1, 1000)).map_blocks(block, dtype=float)
    return xr.Dataset({"u": (("time", "x"), arr)})


def test_failing_dask_save_leaves_no_temporary(tmp_path):
    """Was: a hidden temporary left behind in 3-6 of 10 tries (threads still writing)."""
    for trial in range(10):
        folder = tmp_path / str(trial)
        folder.mkdir()
        (folder / "run.nc").write_bytes(b"old")
        with pytest.raises(RuntimeError, match="chunk 3 failed"):
            io.save(_failing_dask_dataset(), folder / "run.nc")
        assert sorted(p.name for p in folder.iterdir()) == ["run.nc"]
        assert (folder / "run.nc").read_bytes() == b"old"


def test_dask_save_round_trip(tmp_path):
    da = pytest.importorskip("dask.array")
    arr = da.arange(60.0, chunks=7).reshape(20, 3)
    ds = xr.Dataset({"u": (("time", "x"), arr)}, coords={"time": np.arange(20.0)})
    back = io.load(io.save(ds, tmp_path / "d.nc"))
    xr.testing.assert_identical(back, ds.compute())
