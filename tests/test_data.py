"""The stored reference data: consistent with how it was made and with the spec."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gfdt

TRUTH = Path(__file__).resolve().parents[1] / "data" / "allen_cahn_truth.nc"


@pytest.fixture(scope="module")
def truth():
    if not TRUTH.exists():
        pytest.skip("data/allen_cahn_truth.nc not generated")
    return gfdt.io.load(TRUTH)


def test_truth_meets_the_precision_target(truth):
    """L2 norm over the field of the standard error <= 0.05 at every lag (issue spec)."""
    l2se = np.sqrt((truth["stderr"] ** 2).sum(("y", "x")))
    assert float(l2se.max()) <= 0.05
    np.testing.assert_allclose(truth["l2_stderr"].values, l2se.values, rtol=1e-12)
    assert truth.attrs["n_impulses"] >= 10000


def test_truth_lag_zero_is_the_impulse(truth):
    """(perturbed - unperturbed) / delta at lag 0 is exactly the unit impulse."""
    r0 = truth["response"].isel(lag=0).values
    expect = np.zeros_like(r0)
    expect[0, 0] = 1.0
    np.testing.assert_allclose(r0, expect, atol=1e-12)
    np.testing.assert_allclose(truth["stderr"].isel(lag=0).values, 0.0, atol=1e-12)


def test_truth_describes_its_system(truth):
    system = gfdt.systems.system_from_attrs(truth.attrs)
    assert system == gfdt.systems.AllenCahn()
    assert truth.attrs["delta"] == pytest.approx(2 * system.dt)
