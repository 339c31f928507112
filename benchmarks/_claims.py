"""Experiment code for the seed methods' claims (used by benchmarks/scores.py,
benchmarks/_claims_kernel.py and tests/test_claims.py; not part of the library).

* :func:`gradient_snr`: the gradient signal-to-noise ratio of HSM and DSM in the
  one-dimensional Gaussian test of the HSM paper;
* :func:`memorization_claim` and its helpers: the WPO kernel score's freedom from
  memorisation against an empirical-score sampler (arXiv:2402.06162);
* :func:`w1_vs_evaluations`: Wasserstein-1 to a 1-D Gaussian mixture against the number
  of score evaluations, HOLD Lie-Trotter against VP Euler-Maruyama (exact scores).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch

from gfdt.sampling import (
    gmm_hold_score,
    gmm_vp_score,
    hold_lie_trotter,
    vp_euler_maruyama,
    wasserstein1_gmm,
)
from gfdt.scores import KernelScoreModel
from gfdt.scores.hsm import gaussian_hamiltonian_discrepancy, leapfrog, leapfrog_matrix

__all__ = ["empirical_score", "gradient_snr", "memorization_claim", "memorization_fraction",
           "reverse_sde", "w1_vs_evaluations"]


# ------------------------------------------------------------------ gradient SNR (HSM)
def _quadratic_snr(Q: np.ndarray) -> float:
    """SNR of :math:`g = w^T Q w`, :math:`w \\sim N(0, I)`: mean tr Q, variance 2 tr Q^2."""
    Q = 0.5 * (Q + Q.T)
    return float(abs(np.trace(Q)) / np.sqrt(2 * np.trace(Q @ Q)))


def gradient_snr(method: str, scale: float, *, theta: float = 1.2, n_steps: int = 6,
                 n_samples: int | None = None, seed: int = 0) -> float:
    """Signal-to-noise ratio of one-sample parameter gradients, HSM or DSM (1-D test).

    Data :math:`p = N(0, 1)`; the model is :math:`-\\theta x` with a precision error
    (the exact score has :math:`\\theta = 1`): HSM's force :math:`F_\\theta(x) =
    -\\theta x`, DSM's noise-conditional score :math:`s_\\theta(\\tilde x) = -\\theta
    \\tilde x`. The ratio :math:`|E g| / \\mathrm{std}(g)` of the per-sample gradients
    :math:`g = \\partial_\\theta \\ell` measures how many samples a gradient step needs.

    * ``"hsm"``: :math:`\\ell = 2 V^*\\cdot v_t - |V^*|^2` at time ``scale`` (leapfrog,
      ``n_steps``), the velocity predictor frozen at its exact optimum
      :math:`V^*(x) = K x` (closed form, :func:`gaussian_hamiltonian_discrepancy`).
    * ``"dsm"``: :math:`\\ell = |s_\\theta(x + \\sigma z) + z / \\sigma|^2` at noise
      ``sigma = scale``.

    Both gradients are quadratic forms :math:`w^T Q w` of the standard normal inputs
    :math:`w = (x_0, v_0)` or :math:`(x, z)`, so the SNR is exact:
    :math:`\\mathrm{tr}\\, Q / \\sqrt{2\\, \\mathrm{tr}\\, Q^2}`. With ``n_samples``
    it is instead estimated by Monte Carlo with autograd (a cross-check).

    Parameters
    ----------
    method : {"hsm", "dsm"}
    scale : float
        HSM time ``t`` or DSM noise level ``sigma`` (> 0).
    theta : float
        Model precision (1.2: a 20 % error).
    n_steps : int
        Leapfrog steps (HSM).
    n_samples : int, optional
        Monte Carlo estimate from this many samples instead of the exact value.
    seed : int
        Seed of the Monte Carlo samples.

    Returns
    -------
    float
        :math:`|E g| / \\mathrm{std}(g)`.
    """
    if method not in ("hsm", "dsm"):
        raise ValueError(f"method must be 'hsm' or 'dsm', got {method!r}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    t = float(scale)
    if method == "hsm":
        _, K = gaussian_hamiltonian_discrepancy([[theta]], [[1.0]], t, n_steps)
        c = float(K[0, 0])
    if n_samples is None:
        if method == "dsm":
            e = np.array([1.0, t])  # x~ = x + sigma z = e . (x, z)
            ez = np.array([0.0, 1.0])
            Q = 2 * theta * np.outer(e, e) - (np.outer(ez, e) + np.outer(e, ez)) / t
            return _quadratic_snr(Q)
        # l = w^T M^T G M w with (x_t, v_t) = M(theta) w; g = w^T (M'^T G M + M^T G M') w
        G = np.array([[-c * c, c], [c, 0.0]])
        th = torch.tensor(float(theta), dtype=torch.float64)
        M = leapfrog_matrix(np.array([[theta]]), t, n_steps)
        dM = torch.autograd.functional.jacobian(
            lambda a: _leapfrog_matrix_torch(a, t, n_steps), th).numpy()
        return _quadratic_snr(2 * dM.T @ G @ M)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n_samples, generator=g, dtype=torch.float64)
    z = torch.randn(n_samples, generator=g, dtype=torch.float64)
    th = torch.full((n_samples,), float(theta), dtype=torch.float64, requires_grad=True)
    if method == "hsm":
        xt, vt = leapfrog(lambda x: -th * x, x0, z, t, n_steps)
        V = c * xt
        loss = 2 * V * vt - V**2
    else:
        xn = x0 + t * z
        loss = (-th * xn + z / t) ** 2
    (grad,) = torch.autograd.grad(loss.sum(), th)
    grad = grad.numpy()
    return float(abs(grad.mean()) / grad.std())


def _leapfrog_matrix_torch(theta: torch.Tensor, t: float, n_steps: int) -> torch.Tensor:
    """2x2 leapfrog map of the 1-D force ``-theta x`` (torch, differentiable)."""
    h = t / n_steps
    one = torch.ones((), dtype=theta.dtype)
    zero = torch.zeros((), dtype=theta.dtype)
    kick = torch.stack([torch.stack([one, zero]), torch.stack([-0.5 * h * theta, one])])
    drift = torch.stack([torch.stack([one, h * one]), torch.stack([zero, one])])
    step = kick @ drift @ kick
    return torch.linalg.matrix_power(step, n_steps)



# ------------------------------------------------------- memorisation (WPO kernel)
def memorization_fraction(samples: np.ndarray, train: np.ndarray,
                           ratio: float = 1.0 / 3.0) -> float:
    """Fraction of ``samples`` closer than ``ratio`` of the nearest-neighbour gap to the
    training set: :math:`\\|y - x_{(1)}\\| < \\text{ratio}\\, \\|y - x_{(2)}\\|`, with
    :math:`x_{(1)}, x_{(2)}` the nearest and second-nearest training points.

    For samples from a locally uniform density in 2-D, :math:`(d_1/d_2)^2` is uniform, so
    the fraction is :math:`\\text{ratio}^2 = 1/9 \\approx 0.11` for fresh samples; it
    tends to 1 for samples that copy training points.
    """
    from scipy.spatial import cKDTree

    tr = np.asarray(train, dtype=float).reshape(len(train), -1)
    sm = np.asarray(samples, dtype=float).reshape(len(samples), -1)
    dist, _ = cKDTree(tr).query(sm, k=2)
    return float(np.mean(dist[:, 0] < ratio * dist[:, 1]))


def empirical_score(train: np.ndarray) -> Callable[[np.ndarray, float], np.ndarray]:
    """Score of the empirical measure of ``train`` (n, d) convolved with N(0, v I).

    Returns ``f(x, v)`` for ``x`` of shape (batch, d); the exact score of the training
    set at noise variance ``v``, which tends to the memorising empirical score as
    ``v -> 0``.
    """
    tr = np.asarray(train, dtype=float)
    tn = (tr**2).sum(1)

    def f(x: np.ndarray, v: float) -> np.ndarray:
        logits = -(((x**2).sum(1)[:, None] - 2 * x @ tr.T + tn[None]) / (2 * v))
        logits -= logits.max(axis=1, keepdims=True)
        r = np.exp(logits)
        r /= r.sum(axis=1, keepdims=True)
        return -(x - r @ tr) / v

    return f


def reverse_sde(score_fn: Callable[[np.ndarray, float], np.ndarray], x: np.ndarray,
                 times: np.ndarray, g: float, rng: np.random.Generator) -> np.ndarray:
    """Euler-Maruyama for the reverse of :math:`dX = g\\, dW` from ``times[0]`` down.

    ``x`` are samples at ``times[0]`` (the largest); ``score_fn(x, t)`` is the score of
    the forward marginal at time ``t``. Steps
    :math:`x \\leftarrow x + g^2 h\\, s(x, t_k) + g\\sqrt h\\, \\xi` with
    :math:`h = t_k - t_{k+1}`; returns the samples at ``times[-1]``.
    """
    x = np.array(x, dtype=float)
    for t_now, t_next in itertools.pairwise(times):
        h = t_now - t_next
        x = x + g**2 * h * score_fn(x, t_now) + g * math.sqrt(h) * rng.standard_normal(x.shape)
    return x


def memorization_claim(sample_fn: Callable[[int, np.ndarray], np.ndarray], *,
                        n_train: int = 4000, n_centers: int = 200, n_generate: int = 4000,
                        noise_min: float = 1e-2, n_steps: int = 400, seed: int = 0,
                        model_options: dict | None = None) -> dict:
    """Memorisation fractions of the kernel model, fresh samples and the empirical score.

    The reference set is the ``n_centers`` centres: the points the kernel model keeps
    and could copy. The kernel model is fitted on ``n_train`` samples (its centres are
    drawn from them; ISM needs many samples per centre); the empirical-score sampler
    uses the score of the empirical measure of the same centres, convolved with a
    Gaussian of shrinking variance.

    Parameters
    ----------
    sample_fn : callable
        ``sample_fn(n, rng)`` draws ``n`` samples (n, d) of the data distribution.
    n_train, n_centers : int
        Training samples and kernel centres (drawn from them).
    n_generate : int
        Samples generated by each method.
    noise_min : float
        Final noise level of the empirical-score sampler, in units of the data's
        standard deviation (the sampler stops at variance ``(noise_min std)^2``).
    n_steps : int
        Euler-Maruyama steps of each reverse-time sampler (geometric in time, from
        noise ``3 std``).
    seed : int
    model_options : dict, optional
        Further :class:`KernelScoreModel` parameters.

    Returns
    -------
    dict
        Fractions (:func:`memorization_fraction` relative to the centres) of ``fresh``
        true samples, ``kernel_exact`` (exact draws from the fitted mixture),
        ``kernel_sde`` (reverse-time sampling with the closed-form :math:`\\Gamma_t`
        scores, run to the data time) and ``empirical_sde`` (run to ``noise_min``);
        ``fresh_vs_train`` and ``kernel_exact_vs_train`` relative to all training
        samples; the fitted ``model``.
    """
    rng = np.random.default_rng(seed)
    train = np.asarray(sample_fn(n_train, rng), dtype=float)
    fresh = np.asarray(sample_fn(n_generate, rng), dtype=float)
    opts = {"n_centers": n_centers, "seed": seed, "progress": False, **(model_options or {})}
    model = KernelScoreModel(**opts).fit(train)
    centers = model.centers_
    std = float(model.std_)
    g = model.beta * std  # reverse SDE in data units: dX = g dW in standardised time
    t_max = (3.0 * std) ** 2 / g**2
    t_min = (noise_min * std) ** 2 / g**2
    times = np.geomspace(t_max, t_min, n_steps)
    # kernel: exact start at t_max, closed-form scores down to the data time t = 0
    x0 = model.sample(n_generate, t=t_max, seed=seed + 1)
    kernel_sde = reverse_sde(lambda x, t: model.score(x, t=t, calibrated=False), x0,
                              np.append(times, 0.0), g, np.random.default_rng(seed + 2))
    # empirical score of the centres: exact start, run to noise_min
    emp = empirical_score(centers)
    start = centers[rng.integers(0, len(centers), n_generate)]
    x0 = start + g * math.sqrt(t_max) * rng.standard_normal(start.shape)
    emp_sde = reverse_sde(lambda x, t: emp(x, g**2 * t), x0, times, g,
                           np.random.default_rng(seed + 3))
    kernel_exact = model.sample(n_generate, seed=seed + 4)
    samples = {"fresh": fresh, "kernel_exact": kernel_exact, "kernel_sde": kernel_sde,
               "empirical_sde": emp_sde}
    out: dict = {k: memorization_fraction(v, centers) for k, v in samples.items()}
    out["fresh_vs_train"] = memorization_fraction(fresh, train)
    out["kernel_exact_vs_train"] = memorization_fraction(kernel_exact, train)
    out["model"] = model
    return out


# ------------------------------------------------------- torch thread defaults
def kgmm_thread_timing(thread_counts=(1, 2), repeats: int = 2, n: int = 20000,
                       seed: int = 0) -> dict:
    """Seconds of a default :class:`gfdt.scores.KGMMScoreModel` fit on ``n`` samples of a
    2-D Gaussian mixture with each torch thread count (the measurement behind the
    ``n_threads=None`` rule of :func:`gfdt.scores._torch.default_threads`)."""
    import time

    from gfdt.scores import KGMMScoreModel

    rng = np.random.default_rng(seed)
    comp = rng.choice(2, size=n, p=[0.4, 0.6])
    X = np.array([[-1.5, 0.0], [1.5, 0.5]])[comp] + \
        np.array([0.5, 0.7])[comp, None] * rng.standard_normal((n, 2))
    out: dict = {}
    for _rep in range(repeats):
        for nt in thread_counts:
            t0 = time.perf_counter()
            KGMMScoreModel(n_threads=nt, progress=False, device="cpu").fit(X)
            out.setdefault(nt, []).append(round(time.perf_counter() - t0, 1))
    return out


if __name__ == "__main__":  # python benchmarks/_claims.py  (thread timing)
    import os
    import warnings

    warnings.simplefilter("ignore")
    print(f"os.cpu_count() = {os.cpu_count()}, load average {os.getloadavg()}")
    print("KGMM fit seconds by torch threads:", kgmm_thread_timing())


# ------------------------------------------------- sampler discretisation (HOLD vs VP)
#: The 1-D Gaussian mixture of :func:`w1_vs_evaluations` (weights, means, stds): two
#: narrow, well separated modes (unit variance overall), where the score changes fast at
#: small noise and the discretisation of a sampler shows.
GMM_1D = ((0.5, 0.5), (-1.0, 1.0), (0.05, 0.05))


def w1_vs_evaluations(n_evals: Sequence[int] = (25, 100, 200, 400), *,
                      gmm=GMM_1D, n_samples: int = 200_000, seed: int = 0,
                      T: float = 8.0, rho: float = 2.0,
                      progress: bool | None = None) -> dict[str, list]:
    """Wasserstein-1 to a 1-D Gaussian mixture against score evaluations: HOLD vs VP.

    Both samplers use their exact time-dependent mixture scores, so the error is the
    discretisation alone plus the sampling noise of ``n_samples`` draws (the W1 of an
    exact sample of that size, returned as ``floor``): :func:`hold_lie_trotter` (grid
    exponent ``rho`` from ``T`` to 0, default ``beta``, ``r``) and
    :func:`vp_euler_maruyama` (``beta`` 0.1 to 20, uniform grid to ``t_eps = 1e-3``),
    each with ``n`` score evaluations per sample.

    Parameters
    ----------
    n_evals : sequence of int
        Score evaluations per sample.
    gmm : (weights, means, stds)
    n_samples : int
    seed : int
    T : float
        HOLD start time.
    rho : float
        HOLD grid exponent.
    progress : bool, optional

    Returns
    -------
    dict
        ``n_evals``, ``hold`` and ``vp`` (lists of W1), ``floor`` (float), ``gmm``.
    """
    w, mu, sd = (np.asarray(a, dtype=float) for a in gmm)
    hold_s = gmm_hold_score(w, mu, sd)
    vp_s = gmm_vp_score(w, mu, sd)
    rng = np.random.default_rng([seed, 1])
    comp = rng.choice(len(w), size=n_samples, p=w)
    exact = mu[comp] + sd[comp] * rng.standard_normal(n_samples)
    out: dict[str, list] = {"n_evals": [int(n) for n in n_evals], "hold": [], "vp": [],
                            "floor": wasserstein1_gmm(exact, w, mu, sd),
                            "gmm": [w.tolist(), mu.tolist(), sd.tolist()]}
    for n in out["n_evals"]:
        xh = hold_lie_trotter(hold_s, n_samples, n_steps=n, T=T, rho=rho, seed=seed,
                              progress=progress)
        xv = vp_euler_maruyama(vp_s, n_samples, n_steps=n, seed=seed, progress=progress)
        out["hold"].append(wasserstein1_gmm(xh, w, mu, sd))
        out["vp"].append(wasserstein1_gmm(xv, w, mu, sd))
    return out
