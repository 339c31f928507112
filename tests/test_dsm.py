"""Denoising score matching: closed-form scores, equivariance, persistence, resume."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from _score_helpers import mixture_samples, mixture_score

import gfdt
from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import DenoisingScoreModel, ScoreQualityWarning
from gfdt.scores.dsm import resolve_device
from gfdt.scores.networks import MLP, PeriodicCNN, PeriodicUNet

FAST = dict(max_steps=1500, batch_size=256, eval_every=250, patience=20, progress=False,
            n_threads=1, lr=3e-3)


@pytest.fixture(scope="module")
def mixture_fit():
    """The trained mixture model and the warnings its fit raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = DenoisingScoreModel(**FAST).fit(mixture_samples(20000, 0))
    return model, caught


@pytest.fixture(scope="module")
def mixture_model(mixture_fit):
    return mixture_fit[0]


def test_quality_report_is_silent_on_a_well_trained_model(mixture_fit):
    """A clearly non-Gaussian 2-D mixture, 1500 steps: the held-out denoising loss beats
    the Gaussian's by many standard errors; no ScoreQualityWarning; the noise-level
    breakdown of the validation loss covers [sigma_min, sigma_max]."""
    model, caught = mixture_fit
    assert not [w for w in caught if issubclass(w.category, ScoreQualityWarning)]
    q = model.quality_
    assert q.better_than_gaussian and q.gain > 5 * q.gain_stderr
    assert q.denoising_loss < q.gaussian_denoising_loss
    assert "no better" not in model.summary()
    assert len(model.validation_by_level_) == 4


def test_gaussian_mixture_relative_fisher(mixture_model):
    test = mixture_samples(5000, 1)
    err = relative_fisher_error(mixture_model, mixture_score, test)
    assert err < 0.1
    # the Gaussian fit alone is far off: the network did the work
    g = gfdt.scores.GaussianScore().fit(mixture_samples(20000, 0))
    assert relative_fisher_error(g, mixture_score, test) > 3 * err


def test_anisotropic_gaussian_without_residual():
    """A pure network (no Gaussian part) learns an 8-D anisotropic Gaussian score."""
    rng = np.random.default_rng(2)
    scales = np.geomspace(0.3, 3.0, 8)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = Q * scales  # x = A z: covariance A A^T
    P = np.linalg.inv(A @ A.T)
    X = rng.standard_normal((20000, 8)) @ A.T
    m = DenoisingScoreModel(residual=False, **FAST)
    m.fit(X)
    test = rng.standard_normal((4000, 8)) @ A.T
    assert relative_fisher_error(m, lambda x: -x @ P, test) < 0.1


def test_anisotropic_gaussian_residual_model_obeys_stein():
    """With the Gaussian part the residual network has nothing to learn: Stein holds."""
    rng = np.random.default_rng(2)
    A = np.diag(np.geomspace(0.3, 3.0, 8))
    X = rng.standard_normal((20000, 8)) @ A.T
    m = DenoisingScoreModel(**{**FAST, "max_steps": 500}).fit(X)
    test = rng.standard_normal((4000, 8)) @ A.T
    P = np.linalg.inv(A @ A.T)
    assert relative_fisher_error(m, lambda x: -x @ P, test) < 0.02
    # the Stein matrix of 4000 anisotropic samples has its own sampling error (entries
    # ~ (scale ratio) / sqrt(4000)): compare with the exact score on the same samples
    assert stein_error(m, test) < stein_error(lambda x: -x @ P, test) + 0.05


def test_score_is_in_data_units(mixture_model):
    """Scaling the data by c scales the learned score by 1/c (standardisation inside)."""
    c = 7.0
    m2 = DenoisingScoreModel(**FAST).fit(c * mixture_samples(20000, 0))
    test = mixture_samples(2000, 3)
    s1 = mixture_model(test)
    s2 = m2(c * test)
    # same seed, same standardised problem: identical up to float32 round-off
    np.testing.assert_allclose(c * s2, s1, rtol=1e-3, atol=1e-3 * np.abs(s1).max())


@pytest.mark.parametrize("pointwise", ["cubic", "mlp"])
def test_periodic_cnn_is_translation_equivariant(pointwise):
    torch.manual_seed(0)
    net = PeriodicCNN(size=(16, 16), pointwise=pointwise)
    assert float(net(torch.randn(2, 16, 16), torch.zeros(2)).abs().max()) == 0.0  # zero init
    with torch.no_grad():  # make every branch non-trivial
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(3, 16, 16)
    ls = torch.full((3,), -1.0)
    y = net(x, ls)
    for shift in [(1, 0), (0, 5), (7, 3)]:
        ys = net(torch.roll(x, shift, dims=(1, 2)), ls)
        torch.testing.assert_close(ys, torch.roll(y, shift, dims=(1, 2)), rtol=1e-5,
                                   atol=1e-5)


def test_unet_and_mlp_shapes_and_errors():
    x = torch.randn(2, 16, 16)
    assert PeriodicUNet(channels=(8, 16), n_bottleneck=1)(x, torch.zeros(2)).shape == x.shape
    with pytest.raises(ValueError, match="divisible"):
        PeriodicUNet(channels=(8, 16, 32, 64))(torch.randn(2, 12, 12), torch.zeros(2))
    assert MLP(5)(torch.randn(4, 5), torch.zeros(4)).shape == (4, 5)
    with pytest.raises(ValueError, match="shape"):
        PeriodicCNN(size=(16, 16))(torch.randn(2, 8, 8), torch.zeros(2))
    with pytest.raises(ValueError, match="pointwise"):
        PeriodicCNN(pointwise="quartic")


def test_save_load_gives_identical_scores(mixture_model, tmp_path):
    mixture_model.save(tmp_path / "m.pt")
    m2 = DenoisingScoreModel.load(tmp_path / "m.pt")
    x = mixture_samples(100, 4)
    np.testing.assert_array_equal(m2(x), mixture_model(x))
    assert m2.get_params() == mixture_model.get_params()


def test_interrupted_training_resumes_to_the_same_end(tmp_path, monkeypatch):
    X = mixture_samples(4000, 5)
    kw = dict(max_steps=300, batch_size=64, eval_every=50, patience=100, progress=False,
              n_threads=1, seed=3)
    ref = DenoisingScoreModel(**kw).fit(X)
    ck = tmp_path / "ck.pt"
    calls = {"n": 0}
    real = DenoisingScoreModel._loss

    def crashing(self, *a):
        calls["n"] += 1
        if calls["n"] == 180:  # mid-way between checkpoints
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(DenoisingScoreModel, "_loss", crashing)
    with pytest.raises(KeyboardInterrupt):
        DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    monkeypatch.setattr(DenoisingScoreModel, "_loss", real)
    assert ck.exists()
    resumed = DenoisingScoreModel(**kw, checkpoint=ck).fit(X)
    assert resumed.n_steps_ == ref.n_steps_ == 300
    assert resumed.history_["val_loss"] == ref.history_["val_loss"]
    x = mixture_samples(50, 6)
    np.testing.assert_array_equal(resumed(x), ref(x))


def test_checkpoint_with_other_parameters_is_refused(tmp_path):
    X = mixture_samples(1000, 7)
    kw = dict(max_steps=20, eval_every=10, progress=False, n_threads=1)
    DenoisingScoreModel(**kw, checkpoint=tmp_path / "ck.pt").fit(X)
    with pytest.raises(ValueError, match="other parameters"):
        DenoisingScoreModel(**kw, lr=1e-3, checkpoint=tmp_path / "ck.pt").fit(X)


@pytest.mark.parametrize("kw,match", [
    (dict(sigma_min=0.0), "sigma_min"), (dict(sigma_min=2.0, sigma_max=1.0), "sigma_max"),
    (dict(batch_size=0), "batch_size"), (dict(lr=0.0), "lr"), (dict(ema=1.0), "ema"),
    (dict(validation=0.95), "validation"), (dict(network="transformer"), "network"),
])
def test_bad_parameters_name_the_argument(kw, match):
    with pytest.raises(ValueError, match=match):
        DenoisingScoreModel(**kw, max_steps=1, progress=False).fit(mixture_samples(100, 0))


def test_device_auto_is_cpu_without_cuda():
    dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("warp-drive")


def test_response_estimator_dsm_on_vector_data():
    """score='dsm' trains the default model; on a Gaussian AR(1) the response is phi^t."""
    rng = np.random.default_rng(8)
    phi = 0.8
    x = np.zeros((30000, 1))
    for t in range(1, len(x)):
        x[t] = phi * x[t - 1] + rng.standard_normal(1)
    est = gfdt.ResponseEstimator(score="dsm", max_lag=3, normalize=True,
                                 score_options=dict(max_steps=300, n_threads=1)).fit(x)
    assert isinstance(est.score_model_, DenoisingScoreModel)
    # sampling error of the lag averages: ~ sqrt(2 / T) relative
    np.testing.assert_allclose(est.response_.values[:, 0, 0], phi ** np.arange(4), atol=0.05)


def test_vector_score_has_no_noise_floor_bias_on_correlated_gaussian_data():
    """Vectors: the Gaussian part is evaluated at sigma = 0, so on Gaussian data with a
    standardised eigenvalue of 0.01 (correlation 0.99, far below sigma_min^2 + 0.01 =
    0.0125) the default DSM score matches the exact one to the Gaussian fit's own
    sampling error (~ 5 parameters / 8000 samples ~ 6e-4 in relative Fisher); at
    -(C + sigma_min^2)^-1 it was 0.037."""
    from gfdt.metrics import relative_fisher_error

    rng = np.random.default_rng(0)
    C = np.array([[1.0, 0.99], [0.99, 1.0]])
    L = np.linalg.cholesky(C)
    P = np.linalg.inv(C)
    X = rng.standard_normal((8000, 2)) @ L.T
    T = rng.standard_normal((4000, 2)) @ L.T
    m = DenoisingScoreModel(max_steps=300, progress=False, n_threads=1, seed=0).fit(X)
    assert m.sigma_min_ == pytest.approx(0.05)
    assert relative_fisher_error(m, lambda x: -x @ P, T) < 0.0025


def test_affine_part_is_the_least_squares_affine_fit():
    """affine_part returns the exact affine map of an affine correction, and leaves any
    correction with a residual of zero mean and zero covariance with x."""
    from gfdt.scores._projection import affine_part

    rng = np.random.default_rng(0)
    X = rng.standard_normal((5000, 4)) @ rng.standard_normal((4, 4)) + 1.0
    a, B, W = rng.standard_normal(4), rng.standard_normal((4, 4)), rng.standard_normal((4, 4))

    def read(i, j):
        return X[i:j]

    centre, mean, lin = affine_part(lambda x: a + x @ B, read, len(X), chunk=777)
    np.testing.assert_allclose(centre, X.mean(0), atol=1e-12)
    np.testing.assert_allclose(lin, B, atol=1e-9)
    np.testing.assert_allclose(mean, a + X.mean(0) @ B, atol=1e-9)

    def f(x):
        return a + x @ B + np.tanh(x) @ W

    centre, mean, lin = affine_part(f, read, len(X), chunk=1000)
    r = f(X) - mean - (X - centre) @ lin
    np.testing.assert_allclose(r.mean(0), 0, atol=1e-10)
    np.testing.assert_allclose((X - X.mean(0)).T @ r / len(X), 0, atol=1e-10)


def test_stein_projection_makes_the_lag0_identity_hold_on_the_training_samples():
    """With the projection, -E[(x - mean) s^T] over the training samples is the Gaussian
    fit's C_biased C^-1 = (n-1)/n I and E[s] = 0, to float32 round-off, whatever the
    network learned; without it, not."""
    X = mixture_samples(3000, 4)
    kw = dict(max_steps=300, batch_size=128, progress=False, n_threads=1, lr=5e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScoreQualityWarning)
        m = DenoisingScoreModel(**kw).fit(X)
        m0 = DenoisingScoreModel(**kw, stein_projection=False).fit(X)
    n_train = 3000 - round(0.2 * 3000)
    xt = X[:n_train]
    for model, tol in ((m, 2e-5), (m0, None)):
        s = model.score(xt)
        stein = -(xt - xt.mean(0)).T @ s / n_train
        dev = np.abs(stein - (n_train - 1) / n_train * np.eye(2)).max()
        if tol is None:
            assert dev > 1e-3
        else:
            assert dev < tol and np.abs(s.mean(0)).max() < tol
