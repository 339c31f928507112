"""KGMM: bisecting k-means, cluster-wise Tweedie scores against the exact noised score,
trained accuracy, Stein sum rule, persistence and the dimension limit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _score_helpers import mixture_samples, mixture_score

from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import KGMMScoreModel
from gfdt.scores.kgmm import bisecting_kmeans

torch.set_num_threads(1)


def test_bisecting_kmeans_separates_blobs():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0], [5.0, 20.0]])
    truth = rng.integers(0, 5, 2000)
    Y = centres[truth] + 0.5 * rng.standard_normal((2000, 2))
    labels = bisecting_kmeans(Y, 5)
    # the partition is the true one up to relabelling
    assert len(set(zip(truth.tolist(), labels.tolist(), strict=True))) == 5
    labels = bisecting_kmeans(Y, 37)
    assert set(labels.tolist()) == set(range(37))
    with pytest.raises(ValueError, match="n_clusters"):
        bisecting_kmeans(Y, 0)


def test_cluster_scores_are_the_noised_gaussian_score_at_the_centroids():
    """For p = N(mu, C), z | y is Gaussian with mean sigma (C + sigma^2)^-1 (y - mu) and
    covariance I - sigma^2 (C + sigma^2)^-1, and the clusters depend on y only: given
    the noised samples, -zbar_c / sigma is the exact noised score at the centroid plus
    Gaussian noise of known covariance / n_c. The standardised residuals are chi-square
    with K d degrees of freedom."""
    rng = np.random.default_rng(1)
    mu = np.array([1.0, -2.0])
    A = np.array([[1.5, 0.0], [0.9, 0.6]])
    C = A @ A.T
    X = mu + rng.standard_normal((20000, 2)) @ A.T
    K, d = 200, 2
    model = KGMMScoreModel(sigma=0.3, n_clusters=K, n_noise=1, max_steps=1, progress=False,
                           device="cpu").fit(X)
    sd = 0.3 * float(model.std_)  # the noise in data units
    Cs = C + sd**2 * np.eye(2)
    exact = -(model.centroids_ - mu) @ np.linalg.inv(Cs)
    resid = model.cluster_scores_ - exact
    cov = (np.eye(2) - sd**2 * np.linalg.inv(Cs)) / sd**2
    P = np.linalg.inv(cov)
    chi2 = float(np.einsum("ci,ij,cj,c->", resid, P, resid, model.cluster_counts_))
    tol = 4 * np.sqrt(2.0 / (K * d))
    assert abs(chi2 / (K * d) - 1) < tol
    # the test has power: the clean score -C^-1 (y - mu) is rejected
    resid0 = model.cluster_scores_ + (model.centroids_ - mu) @ np.linalg.inv(C)
    chi0 = float(np.einsum("ci,ij,cj,c->", resid0, P, resid0, model.cluster_counts_))
    assert chi0 / (K * d) - 1 > 5 * tol


@pytest.fixture(scope="module")
def trained():
    """40k samples, half held out for the calibration (Stein-matrix error ~ 1/sqrt(20000))."""
    X = mixture_samples(40000, 0)
    model = KGMMScoreModel(sigma=0.1, n_clusters=500, n_noise=5, max_steps=1000,
                           validation=0.5, calibrate=True, n_threads=1, progress=False,
                           device="cpu")
    return model.fit(X)


def test_trained_relative_fisher(trained):
    test = mixture_samples(10000, 1)
    assert relative_fisher_error(lambda x: trained.score(x, calibrated=False), mixture_score,
                                 test) < 0.1
    assert relative_fisher_error(trained, mixture_score, test) < 0.1


def test_stein_sum_rule(trained):
    test = mixture_samples(50000, 2)
    assert stein_error(trained, test) < 0.05


def test_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "kgmm.pkl"
    trained.save(path)
    back = KGMMScoreModel.load(path)
    x = mixture_samples(50, 3)
    np.testing.assert_array_equal(back.score(x), trained.score(x))
    np.testing.assert_array_equal(back.cluster_scores_, trained.cluster_scores_)
    assert back.get_params() == trained.get_params()
    assert back(x[0]).shape == (2,)


def test_dimension_limit_and_bad_input():
    rng = np.random.default_rng(4)
    with pytest.raises(ValueError, match="max_dim"):
        KGMMScoreModel(max_dim=16).fit(rng.standard_normal((100, 5, 5)))
    X = rng.standard_normal((100, 2))
    with pytest.raises(ValueError, match="n_clusters"):
        KGMMScoreModel(n_clusters=600, n_noise=10).fit(X)
    with pytest.raises(ValueError, match="sigma"):
        KGMMScoreModel(sigma=0.0).fit(X)
    model = KGMMScoreModel(n_clusters=10, n_noise=2, max_steps=5, progress=False,
                           device="cpu").fit(X)
    with pytest.raises(ValueError, match="calibrat"):
        model.score(X, calibrated=True)
    with pytest.raises(ValueError, match="x must"):
        model.score(np.zeros((2, 3)))


def test_response_estimator_with_kgmm_score():
    """score="kgmm" through ResponseEstimator on a linear AR(1) chain, whose response is
    Phi^k: the calibrated KGMM score reproduces it within the bootstrap standard error."""
    import gfdt

    rng = np.random.default_rng(0)
    phi = np.array([[0.9, 0.15], [-0.1, 0.8]])
    x = np.zeros((40100, 2))
    xi = rng.standard_normal((40100, 2)) * np.array([1.0, 0.5])
    for k in range(1, 40100):
        x[k] = phi @ x[k - 1] + xi[k]
    exact = np.stack([np.linalg.matrix_power(phi, k) for k in range(11)])
    est = gfdt.ResponseEstimator(
        score="kgmm", max_lag=10, progress=False, seed=0,
        score_options=dict(n_clusters=300, n_noise=3, max_steps=300, calibrate=True,
                           device="cpu")).fit(x[100:])
    assert isinstance(est.score_model_, KGMMScoreModel)
    z = np.abs(est.response_.values - exact) / est.response_stderr_.values
    assert z.max() < 5


def test_default_cluster_count_keeps_cells_of_CELL_POINTS_noised_samples():
    from gfdt.scores.kgmm import CELL_POINTS, MAX_CLUSTERS, default_clusters

    assert default_clusters(750 * 10) == 750 * 10 // CELL_POINTS == 25
    assert default_clusters(10**7) == MAX_CLUSTERS
    assert default_clusters(100) == 2 and default_clusters(4) == 2
    rng = np.random.default_rng(7)
    X = rng.standard_normal((1000, 2))
    est = KGMMScoreModel(n_noise=10, max_steps=20, seed=0).fit(X)
    from gfdt.scores._torch import training_split

    n_train = training_split(len(X), est.validation)
    assert est.n_clusters_ == default_clusters(n_train * 10) == len(est.cluster_counts_)
    assert est.cluster_counts_.sum() == n_train * 10  # every noised training sample
    assert KGMMScoreModel(n_clusters=40, max_steps=20).fit(X).n_clusters_ == 40
    with pytest.raises(ValueError, match="n_clusters"):
        KGMMScoreModel(n_clusters=0)._check_params()
