"""gfdt.data.Trajectories: one type for every input layout, reads by index, samples."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from gfdt.data import Trajectories, as_trajectories, time_axis


def test_layouts_give_the_same_members():
    x = np.random.default_rng(0).standard_normal((2, 9, 3, 4))
    da = xr.DataArray(x, dims=("member", "time", "y", "x"),
                      coords={"time": 0.5 * np.arange(9), "y": np.arange(3)})
    for data in (as_trajectories(da), as_trajectories(list(x)),
                 as_trajectories(da.chunk({"time": 4}))):
        assert isinstance(data, Trajectories)
        assert data.n_members == 2 and data.lengths == [9, 9]
        assert data.state_shape == (3, 4)
        np.testing.assert_array_equal(data.read(1, 2, 7), x[1, 2:7])
        np.testing.assert_array_equal(data.samples(), x.reshape(18, 3, 4))
        np.testing.assert_array_equal(data.samples(stride=4),
                                      np.concatenate([x[0, ::4], x[1, ::4]]))
    assert as_trajectories(da).dt == 0.5
    assert as_trajectories(da).lazy is False and as_trajectories(da.chunk()).lazy is True
    same = as_trajectories(da)
    assert as_trajectories(same) is same
    with pytest.raises(ValueError, match="stride"):
        same.samples(stride=0)


def test_time_axis_is_read_in_one_place():
    da = xr.DataArray(np.zeros((4, 2)), dims=("time", "feature"),
                      coords={"time": ("time", [1.0, 3.0, 5.0, 7.0], {"units": "days"})})
    step, attrs = time_axis(da, "X")
    assert (step.step, step.units, attrs) == (2.0, "days", {"units": "days"})
    assert time_axis(da.drop_vars("time"), "X") == (None, {})
    days = np.array(["2000-01-01", "2000-01-02", "2000-01-03"], dtype="datetime64[ns]")
    for unit in ("ns", "s"):
        step, attrs = time_axis(xr.DataArray(np.zeros(3), dims="time", coords={
            "time": days.astype(f"datetime64[{unit}]")}), "X")
        assert (step.step, step.units, attrs["units"]) == (1.0, "days", "days")
    with pytest.raises(ValueError, match=r"not evenly spaced: steps found 1 \(x2\), "
                                         r"2 \(x1\)"):
        time_axis(da.assign_coords(time=[0.0, 1.0, 3.0, 4.0]), "X")
