"""perturbation_response(keep_members=True): per-member means behind the pooled result."""

from __future__ import annotations

import numpy as np

import gfdt


def test_member_responses_reproduce_mean_and_stderr():
    # nonlinear system: the members' responses differ (for OU they would all be equal)
    ac = gfdt.AllenCahn(n=8)
    rng = np.random.default_rng(0)
    initial = rng.choice([-1.0, 1.0], size=(5, 1, 1)) + 0.1 * rng.standard_normal((5, 8, 8))
    kw = dict(max_lag=4, save_interval=0.5, delta=0.1, seed=11, n_windows=2,
              pixel=[(0, 0), (3, 5)], n_workers=1, progress=False)
    ds = gfdt.perturbation_response(ac, initial, keep_members=True, **kw)
    plain = gfdt.perturbation_response(ac, initial, **kw)
    per = ds["member_response"]
    assert per.dims == ("member", "lag", "y", "x") and per.sizes["member"] == 5
    np.testing.assert_allclose(per.mean("member"), ds.response, rtol=0, atol=1e-13)
    np.testing.assert_allclose(per.std("member", ddof=1) / np.sqrt(5), ds.stderr,
                               rtol=1e-10, atol=1e-15)
    assert float(ds.stderr.isel(lag=-1).max()) > 1e-6  # a non-trivial check
    # the option adds a variable and changes nothing else
    np.testing.assert_array_equal(ds.response, plain.response)
    assert "member_response" not in plain
