"""gfdt.conventions: the one table of dims, CF attributes and the lag coordinate."""

from __future__ import annotations

from importlib import metadata

import numpy as np
import pytest

import gfdt
from gfdt import conventions


def test_version_comes_from_the_package_metadata():
    assert gfdt.__version__ == conventions.version() == metadata.version("gfdt")
    attrs = conventions.global_attrs("t")
    assert attrs == {"Conventions": "CF-1.10", "title": "t",
                     "source": f"gfdt {metadata.version('gfdt')}"}


def test_lag_coordinate():
    name, values, attrs = conventions.lag_coord(4, 0.25, "days")
    assert name == "lag" and attrs == {"long_name": "time lag", "units": "days"}
    np.testing.assert_array_equal(values, [0.0, 0.25, 0.5, 0.75])
    _, values, attrs = conventions.lag_coord(3)
    np.testing.assert_array_equal(values, [0, 1, 2])
    assert attrs["units"] == "samples"
    _, values, attrs = conventions.lag_coord(2, np.timedelta64(6, "h"))
    assert values[1] == 6.0 and attrs["units"] == "hours"  # CF units, not timedelta64


def test_attribute_table():
    assert conventions.attrs("truth_response", what="a kick")["long_name"] == (
        "dynamical response to a kick")
    a = conventions.attrs("member")
    a["long_name"] = "changed"  # a copy: the table is not modified
    assert conventions.attrs("member")["long_name"] == "ensemble member"
    with pytest.raises(ValueError, match="no conventions entry"):
        conventions.attrs("nope")


def test_writers_use_the_table(fast_ou):
    ds = gfdt.simulate(fast_ou, n_members=1, burn_in=0.0, duration=2 * fast_ou.dt,
                       save_interval=fast_ou.dt, seed=0, progress=False)
    assert ds.attrs["Conventions"] == conventions.CONVENTIONS
    assert ds.attrs["source"] == f"gfdt {conventions.version()}"
    assert dict(ds["member"].attrs) == conventions.attrs("member")
    est = gfdt.ResponseEstimator(max_lag=1, bootstrap=False, progress=False).fit(ds)
    assert est.response_["lag"].attrs["long_name"] == "time lag"
