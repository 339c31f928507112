"""The resolved-kick convention: the pixel impulse without the Nyquist lines.

Exact checks: the kick's Fourier transform is the resolved mask; on the linear OU the
paired truth with the resolved kick is the exact propagator applied to that kick; the
GFDT estimate with ``kick="resolved"`` is the pixel estimate projected, and its
normalisation inverts R(0) on the resolved modes only.
"""

from __future__ import annotations

import numpy as np
import pytest

import gfdt
from gfdt.systems._spectral import resolved_impulse, resolved_mask


def _project(field: np.ndarray) -> np.ndarray:
    """Remove the Nyquist lines of the last two axes (an independent numpy route)."""
    n0, n1 = field.shape[-2:]
    fh = np.fft.fft2(field, axes=(-2, -1))
    fh[..., n0 // 2, :] = 0
    fh[..., :, n1 // 2] = 0
    return np.fft.ifft2(fh, axes=(-2, -1)).real


@pytest.mark.parametrize("shape", [(8, 8), (6, 10), (4, 4)])
def test_resolved_impulse_is_the_projected_delta(shape):
    delta = np.zeros(shape)
    delta[0, 0] = 1.0
    kick = resolved_impulse(shape)
    np.testing.assert_allclose(kick, _project(delta), rtol=0, atol=1e-14)
    # value at the origin: prod over even axes of (1 - 1/n)
    assert kick[0, 0] == pytest.approx((1 - 1 / shape[0]) * (1 - 1 / shape[1]), abs=1e-14)
    mask = resolved_mask(shape)
    assert mask.shape == np.fft.rfft2(delta).shape
    assert mask.sum() == np.prod(np.fft.rfft2(delta).shape) - (shape[1] // 2 + 1) \
        - shape[0] + 1


def test_odd_axes_have_no_nyquist_line():
    delta = np.zeros((5, 7))
    delta[0, 0] = 1.0
    np.testing.assert_allclose(resolved_impulse((5, 7)), delta, rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="state_shape"):
        resolved_mask(())


def test_paired_truth_with_resolved_kick_is_the_projected_propagator(fast_ou, ou_run):
    initial = ou_run.u.isel(time=-1, member=slice(0, 3))
    kw = {"max_lag": 4, "save_interval": 0.5, "delta": 0.05, "seed": 1, "progress": False}
    r = gfdt.perturbation_response(fast_ou, initial, pixel=[(0, 0), (3, 5)], kick="resolved",
                                   **kw)
    exact = fast_ou.exact_response(r["lag"].values).values  # pixel kick, offsets
    np.testing.assert_allclose(r["response"].values, _project(exact), rtol=0, atol=1e-8)
    assert r.attrs["kick"] == "resolved"
    # the pixel kick carries its Nyquist part: the two differ by exactly that part
    p = gfdt.perturbation_response(fast_ou, initial, pixel=(0, 0), **kw)
    assert p.attrs["kick"] == "pixel"
    nyq = p["response"].values - r["response"].values
    assert np.abs(nyq).max() > 1e-3
    np.testing.assert_allclose(_project(nyq), 0, atol=1e-8)


def test_gfdt_resolved_kick_is_the_projected_pixel_estimate(ou_run):
    kw = {"max_lag": 3, "bootstrap": False}
    pixel = gfdt.ResponseEstimator(**kw).fit(ou_run)
    res = gfdt.ResponseEstimator(kick="resolved", **kw).fit(ou_run)
    np.testing.assert_allclose(res.response_raw_.values, _project(pixel.response_raw_.values),
                               rtol=0, atol=1e-12)
    # Gaussian score: R(0) is the kick itself, so the Stein error stays at round-off
    assert res.stein_error_ < 1e-10
    norm = gfdt.ResponseEstimator(kick="resolved", normalize=True, **kw).fit(ou_run)
    nh = np.fft.fft2(norm.response_.values)
    n = nh.shape[-1]
    assert np.abs(nh[:, n // 2, :]).max() < 1e-12 and np.abs(nh[:, :, n // 2]).max() < 1e-12
    # on the resolved modes: R(t)/R(0) per mode, as for the pixel kick
    ph = np.fft.fft2(gfdt.ResponseEstimator(normalize=True, **kw).fit(ou_run).response_.values)
    keep = np.ones(nh.shape[1:], dtype=bool)
    keep[n // 2, :] = keep[:, n // 2] = False
    np.testing.assert_allclose(nh[:, keep], ph[:, keep], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kwargs, match", [
    ({"kick": "nyquist"}, "kick must be"),
    ({"kick": "resolved", "homogeneous": False}, "kick='resolved'"),
    ({"kick": "resolved", "observable": "mean"}, "kick='resolved'"),
])
def test_bad_kick(ou_run, kwargs, match):
    with pytest.raises(ValueError, match=match):
        gfdt.ResponseEstimator(max_lag=2, bootstrap=False, **kwargs).fit(ou_run)


def test_bad_kick_in_truth(fast_ou, ou_run):
    initial = ou_run.u.isel(time=-1, member=slice(0, 2))
    kw = {"max_lag": 2, "save_interval": 0.5, "delta": 0.05, "seed": 1, "progress": False}
    with pytest.raises(ValueError, match="kick must be"):
        gfdt.perturbation_response(fast_ou, initial, kick="half", **kw)
    with pytest.raises(ValueError, match="kick='resolved' or perturbation"):
        gfdt.perturbation_response(fast_ou, initial, kick="resolved",
                                   perturbation=np.ones((fast_ou.n, fast_ou.n)), **kw)
