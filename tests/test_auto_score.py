"""score="auto" (the rule and the delegation), DSM's shape rule for its defaults, and the
closed-form (kernel-density) DSM optimum for one-coordinate data."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _score_helpers import one_torch_thread  # noqa: F401 (autouse fixture)

import gfdt
from gfdt.metrics import relative_fisher_error
from gfdt.scores import AutoScore, DenoisingScoreModel, GaussianScore, ScoreQualityWarning
from gfdt.scores._kde import kde_score
from gfdt.scores.auto import choose_score
from gfdt.scores.dsm import dsm_defaults

# a 1-D two-component mixture with a closed-form score
M1, S1, W1 = np.array([-1.2, 1.0]), np.array([0.45, 0.6]), np.array([0.45, 0.55])


def bimodal(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.choice(2, size=n, p=W1)
    return (M1[c] + S1[c] * rng.standard_normal(n))[:, None]


def bimodal_score(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    logw = np.log(W1) - np.log(S1) - (x - M1) ** 2 / (2 * S1**2)  # (n, 2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return (w * (-(x - M1) / S1**2)).sum(axis=1, keepdims=True)


@pytest.mark.parametrize(("shape", "name"), [((1,), "kgmm"), ((3,), "kgmm"), ((4,), "dsm"),
                                             ((64,), "dsm"), ((16, 16), "dsm"),
                                             ((2, 3, 4), "dsm")])
def test_choice_rule_on_shapes(shape, name):
    assert choose_score(shape)[0] == name


def test_choice_rule_threshold_is_a_parameter():
    assert choose_score((3,), max_kgmm_dim=2)[0] == "dsm"
    assert choose_score((1,), max_kgmm_dim=0)[0] == "dsm"


def test_dsm_default_rule():
    """Fields keep the small-noise range and batch 64; vectors get noise up to the data's
    scale and batch 512, at most a quarter of the training samples."""
    f = dsm_defaults((16, 16), 10000)
    assert (f["kind"], f["sigma_min"], f["sigma_max"], f["batch_size"]) == \
        ("field", 0.01, 0.2, 64)
    v = dsm_defaults((4,), 10000)
    assert (v["kind"], v["sigma_min"], v["sigma_max"], v["batch_size"]) == \
        ("vector", 0.05, 1.0, 512)
    assert dsm_defaults((4,), 400)["batch_size"] == 100
    assert dsm_defaults((16, 16), 10000, "mlp")["kind"] == "vector"


def test_dsm_resolves_defaults_and_keeps_given_values():
    X = bimodal(2000, 0) @ np.ones((1, 4)) + 0.3 * np.random.default_rng(1).standard_normal(
        (2000, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        m = DenoisingScoreModel(max_steps=2, n_threads=1, progress=False).fit(X)
        assert (m.sigma_min_, m.sigma_max_, m.batch_size_) == (0.05, 1.0, 400)
        assert m.sigma_min is None  # the parameter is left as given
        m = DenoisingScoreModel(max_steps=2, n_threads=1, progress=False, sigma_min=0.02,
                                batch_size=32).fit(X)
        assert (m.sigma_min_, m.sigma_max_, m.batch_size_) == (0.02, 1.0, 32)
    with pytest.raises(ValueError, match="sigma_min"):
        DenoisingScoreModel(sigma_min=2.0, max_steps=2, progress=False).fit(X)


def test_kde_score_is_the_gradient_of_the_log_kde():
    """Independent check of the closed form: central differences of log of the KDE."""
    rng = np.random.default_rng(3)
    c = rng.standard_normal((50, 2))
    x = rng.standard_normal((7, 2))
    h, eps = 0.4, 1e-5

    def logp(y):
        d2 = ((y[:, None, :] - c[None]) ** 2).sum(-1)
        return np.log(np.exp(-d2 / (2 * h * h)).sum(1))

    fd = np.stack([(logp(x + eps * e) - logp(x - eps * e)) / (2 * eps) for e in np.eye(2)], 1)
    s, div = kde_score(c, h, x, divergence=True)
    np.testing.assert_allclose(s, fd, rtol=1e-6, atol=1e-8)
    lap = sum((kde_score(c, h, x + eps * e)[:, k] - kde_score(c, h, x - eps * e)[:, k])
              / (2 * eps) for k, e in enumerate(np.eye(2)))
    np.testing.assert_allclose(div, lap, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def bimodal_fits():
    X = bimodal(12000, 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dsm = DenoisingScoreModel(n_threads=1, progress=False).fit(X)
        auto = AutoScore(n_threads=1, kgmm_options={"max_steps": 800}).fit(X)
    return X, dsm, auto, caught


def test_one_coordinate_dsm_is_the_closed_form_optimum(bimodal_fits, tmp_path):
    """1-D DSM: kernel-density score (no training), far better than the Gaussian in
    relative Fisher error against the closed form; silent quality report; save/load."""
    X, dsm, _, caught = bimodal_fits
    assert dsm.kde_centres_ is not None and dsm.n_steps_ == 0
    assert not [w for w in caught if issubclass(w.category, ScoreQualityWarning)]
    test = bimodal(4000, 1)
    err = relative_fisher_error(dsm, bimodal_score, test)
    gauss = relative_fisher_error(GaussianScore().fit(X), bimodal_score, test)
    assert err < 0.05 and gauss > 0.3
    assert 0.03 < dsm.sigma_min_ < 0.6
    assert "closed-form kernel-density" in dsm.summary()
    dsm.save(tmp_path / "dsm.pt")
    back = DenoisingScoreModel.load(tmp_path / "dsm.pt")
    np.testing.assert_allclose(back.score(test[:100]), dsm.score(test[:100]))


def test_auto_chooses_kgmm_and_beats_the_gaussian(bimodal_fits, tmp_path):
    X, _, auto, _ = bimodal_fits
    assert auto.chosen_name_ == "kgmm"
    assert auto.chosen_.max_steps == 800 and auto.chosen_.n_threads == 1
    assert "chose 'kgmm'" in auto.summary()
    assert auto.quality_ is auto.chosen_.quality_ and auto.quality_.better_than_gaussian
    test = bimodal(4000, 1)
    err = relative_fisher_error(auto, bimodal_score, test)
    gauss = relative_fisher_error(GaussianScore().fit(X), bimodal_score, test)
    assert err < 0.5 * gauss
    auto.save(tmp_path / "auto.pkl")
    back = AutoScore.load(tmp_path / "auto.pkl")
    assert back.chosen_name_ == "kgmm"
    np.testing.assert_allclose(back.score(test[:100]), auto.score(test[:100]))


def test_auto_through_response_estimator():
    x = [bimodal(3000, k).reshape(3000, 1) for k in range(2)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        est = gfdt.ResponseEstimator(score="auto", max_lag=3, progress=False, bootstrap=False,
                                     score_options={"n_threads": 1,
                                                    "kgmm_options": {"max_steps": 50}})
        est.fit(x)
    assert isinstance(est.score_model_, AutoScore)
    assert est.score_model_.chosen_name_ == "kgmm"
    assert est.score_model_.chosen_.max_steps == 50


def test_auto_bad_options():
    with pytest.raises(TypeError, match="dsm_options"):
        AutoScore(dsm_options=[1]).fit(bimodal(100, 0))
    with pytest.raises(ValueError, match="max_kgmm_dim"):
        AutoScore(max_kgmm_dim=-1).fit(bimodal(100, 0))
    with pytest.raises(ValueError, match="X"):
        AutoScore().fit(np.zeros(10))
