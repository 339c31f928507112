"""FeatureScore: closed-form implicit score matching on a feature library.

Checks against exact references: the linear-only library is the Gaussian score; the
divergence terms computed from moments equal those from plane-wave Jacobian-vector
products on the same snapshots; on Allen-Cahn (no advection) the polynomial library
holds the exact score, whose cubic coefficient it recovers.
"""

from __future__ import annotations

import numpy as np
import pytest

from gfdt.scores import FeatureScore, GaussianScore, ScoreQualityWarning
from gfdt.scores.features import FeatureLibrary, SpectralOps, feature_library


@pytest.fixture(scope="module")
def ou_fields(ou_run):
    return ou_run.u.values.reshape(-1, *ou_run.u.shape[-2:])


def test_linear_library_is_the_gaussian_score(ou_fields):
    X = ou_fields - ou_fields.mean()  # the Gaussian fit centres; the library does not
    fs = FeatureScore(features=FeatureLibrary(["x"], []), validation=0.0, ridge=0.0).fit(X)
    g = GaussianScore(homogeneous=True).fit(X)
    a, b = fs.score(X[:20]), g.score(X[:20])
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-9 * np.abs(b).max())


def _channel_products_as_nested(lib: FeatureLibrary):
    def nested(ops, x):
        ch = lib.channel_fields(ops, x)
        return [np.prod([ch[c] for c in p], axis=0) for p in lib.products], \
            ["*".join(p) for p in lib.products]
    return nested


def test_divergence_from_moments_equals_plane_wave_jvps(ou_fields):
    X = ou_fields[:40] + 0.3  # a non-zero mean makes every product's D non-zero
    lib = FeatureLibrary(["x", "dx", "u"], [("x", "x"), ("x", "dx"), ("u", "dx"),
                                            ("x", "x", "x"), ("x", "u", "dx")])
    exact = FeatureScore(features=lib, validation=0.0).fit(X)
    jvp = FeatureScore(features=FeatureLibrary(lib.channels, [],
                                               _channel_products_as_nested(lib)),
                       validation=0.0, n_divergence=len(X)).fit(X)
    scale = np.abs(exact.divergence_[..., 1:]).max()
    assert scale > 1.0
    np.testing.assert_allclose(jvp.divergence_, exact.divergence_, rtol=0,
                               atol=1e-6 * scale)
    # closed form for x^3: D(k) = 3 n^2 E[x^2] on every mode
    n2 = X.shape[1] * X.shape[2]
    np.testing.assert_allclose(exact.divergence_[..., 4], 3 * n2 * np.mean(X**2), rtol=1e-12)


def test_polynomial_library_recovers_the_allen_cahn_score(allen_cahn_small):
    ac, run = allen_cahn_small
    X = run.u.values.reshape(-1, ac.n, ac.n)
    fs = FeatureScore(features="polynomial").fit(X[:-2000])
    g = GaussianScore(homogeneous=True).fit(X[:-2000])
    test = X[-2000:]
    ex = ac.exact_score(test)

    def rel(s):
        return float(((s - ex) ** 2).sum() / (ex**2).sum())

    assert rel(fs.score(test)) < 0.1 * rel(g.score(test))
    # the pointwise cubic term has a flat filter equal to the exact coefficient, up to
    # the time-step bias of the discrete chain (about 5 % at dt = 1/32; theory page)
    s1 = ac.exact_score(np.ones((1, ac.n, ac.n)))[0, 0, 0]
    s2 = ac.exact_score(2 * np.ones((1, ac.n, ac.n)))[0, 0, 0]
    cubic = fs.coef_[..., fs.feature_names_.index("x*x*x")]
    assert cubic.real.mean() == pytest.approx((s2 - 2 * s1) / 6, rel=0.1)
    assert fs.quality_["gain"] > 2 * fs.quality_["gain_stderr"]


@pytest.mark.filterwarnings("ignore::gfdt.scores.quality.ScoreQualityWarning")
def test_translation_equivariance_and_save_load(ou_fields, tmp_path):
    fs = FeatureScore(features="vorticity", n_divergence=2).fit(ou_fields[:300])
    x = ou_fields[300:303]
    shifted = np.roll(x, (2, 5), axis=(1, 2))
    np.testing.assert_allclose(fs.score(shifted), np.roll(fs.score(x), (2, 5), axis=(1, 2)),
                               rtol=0, atol=1e-10 * np.abs(fs.score(x)).max())
    fs.save(tmp_path / "fs.pkl")
    back = FeatureScore.load(tmp_path / "fs.pkl")
    np.testing.assert_array_equal(back.score(x), fs.score(x))
    assert len(fs.feature_names_) == 24


def test_warns_when_no_better_than_gaussian(ou_fields):
    # OU data are Gaussian: the extra features cannot help on held-out data
    with pytest.warns(ScoreQualityWarning, match="no better than the Gaussian"):
        FeatureScore(features="polynomial").fit(ou_fields[:2000])


def test_resolved_data_give_zero_coefficients_on_nyquist_lines(ou_fields):
    n = ou_fields.shape[-1]
    h = np.fft.rfft2(ou_fields[:500])
    h[:, n // 2, :] = 0
    h[:, :, n // 2] = 0
    X = np.fft.irfft2(h, s=(n, n))
    fs = FeatureScore(features="polynomial", validation=0.0).fit(X)
    assert np.all(fs.coef_[n // 2] == 0) and np.all(fs.coef_[:, n // 2] == 0)
    assert np.isfinite(fs.score(X[:3])).all()


@pytest.mark.parametrize("kwargs, X_shape, exc, match", [
    ({}, (50, 8), ValueError, "2-D fields"),
    ({"features": "turbulence"}, (50, 8, 8), ValueError, "features must be one of"),
    ({"features": 3}, (50, 8, 8), TypeError, "features must be"),
    ({"ridge": -1.0}, (50, 8, 8), ValueError, "ridge"),
    ({"n_divergence": 0}, (50, 8, 8), ValueError, "n_divergence"),
    ({"features": "vorticity"}, (30, 8, 8), ValueError, "too few"),
])
def test_bad_input(kwargs, X_shape, exc, match):
    X = np.random.default_rng(0).standard_normal(X_shape)
    with pytest.raises(exc, match=match):
        FeatureScore(**kwargs).fit(X)


def test_bad_library():
    with pytest.raises(ValueError, match="unknown channels"):
        FeatureLibrary(["x", "curl"], [])
    with pytest.raises(ValueError, match="2 or 3"):
        FeatureLibrary(["x"], [("x",)])
    assert feature_library("polynomial").names(SpectralOps((8, 8)))[0] == "x"
