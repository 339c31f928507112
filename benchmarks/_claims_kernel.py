"""Claims of the WPO kernel score and KGMM on a 2-D Gaussian mixture (and a Gaussian field).

Measures, for :class:`gfdt.scores.KernelScoreModel` and
:class:`gfdt.scores.KGMMScoreModel`: relative Fisher divergence against the exact score,
Stein sum-rule error (raw and calibrated) and training time; and the memorisation claim
of the WPO paper (arXiv:2402.06162): with 200 centres, samples of the kernel model are
as close to the centres as fresh samples (~1/9 by the 1/3-gap criterion) while an
empirical-score sampler run to small noise copies them.

Usage::

    python benchmarks/_claims_kernel.py --quick     # about a minute on one core
    python benchmarks/_claims_kernel.py             # default sizes

Prints the figures and writes ``results.json`` to ``--out``.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import torch
from _claims import empirical_score, memorization_claim, memorization_fraction, reverse_sde
from _common import parser, setup_logging

from gfdt.metrics import relative_fisher_error, stein_error
from gfdt.scores import KernelScoreModel, KGMMScoreModel

logger = logging.getLogger("gfdt.benchmarks")

MEANS = np.array([[-1.5, 0.0], [1.5, 0.5]])
STDS = np.array([0.5, 0.7])
WEIGHTS = np.array([0.4, 0.6])

SIZES = {
    "quick": dict(n=40000, n_test=20000, kernel=dict(n_centers=1000, max_steps=600),
                  kgmm=dict(n_clusters=500, n_noise=5, max_steps=1000),
                  claim=dict(n_generate=3000, n_steps=60, max_steps=300), noise=(0.1, 0.01),
                  field=dict(n_centers=200, max_steps=100)),
    "default": dict(n=40000, n_test=50000, kernel=dict(n_centers=1000, max_steps=2000),
                    kgmm=dict(n_clusters=1000, n_noise=10, max_steps=2000),
                    claim=dict(n_generate=10000, n_steps=400, max_steps=1000),
                    noise=(0.1, 0.03, 0.01, 0.003), field=dict(n_centers=500, max_steps=500)),
}
SIZES["paper"] = SIZES["default"]


def mixture_samples(n: int, rng) -> np.ndarray:
    rng = np.random.default_rng(rng)
    comp = rng.choice(2, size=n, p=WEIGHTS)
    return MEANS[comp] + STDS[comp, None] * rng.standard_normal((n, 2))


def mixture_score(x: np.ndarray) -> np.ndarray:
    d2 = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)
    logw = np.log(WEIGHTS) - 2 * np.log(STDS) - d2 / (2 * STDS**2)
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    return (w[..., None] * (-(x[:, None, :] - MEANS[None]) / STDS[None, :, None] ** 2)).sum(1)


def score_figures(model, exact, test, homogeneous: bool = False) -> dict:
    def raw(x):
        return model.score(x, calibrated=False)

    out = {"relative_fisher_raw": relative_fisher_error(raw, exact, test),
           "stein_raw": stein_error(raw, test, homogeneous=homogeneous),
           "stein_exact_score": stein_error(exact, test, homogeneous=homogeneous),
           "train_time_s": round(model.train_time_, 2)}
    if model.calibration_ is not None:
        out["relative_fisher_calibrated"] = relative_fisher_error(model, exact, test)
        out["stein_calibrated"] = stein_error(model, test, homogeneous=homogeneous)
    return out


def gaussian_field(n: int, N: int, rng):
    k2 = (np.fft.fftfreq(n) * n)[:, None] ** 2 + (np.fft.rfftfreq(n) * n)[None] ** 2
    spec = 1.0 / (1.0 + 0.5 * k2)
    xh = np.fft.rfftn(rng.standard_normal((N, n, n)), axes=(1, 2), norm="ortho")
    X = np.fft.irfftn(xh * np.sqrt(spec), s=(n, n), axes=(1, 2), norm="ortho")

    def exact(x):
        return -np.fft.irfftn(np.fft.rfftn(x, axes=(1, 2)) / spec, s=(n, n), axes=(1, 2))

    return X, exact


def main(argv: list[str] | None = None) -> dict:
    args = parser(__doc__.splitlines()[0], "results/claims_kernel").parse_args(argv)
    setup_logging()
    torch.set_num_threads(args.workers or 1)
    cfg = SIZES[args.size]
    progress = False if args.no_progress else None
    seed = args.seed
    X = mixture_samples(cfg["n"], seed)
    test = mixture_samples(cfg["n_test"], seed + 1)
    res: dict = {"size": args.size, "seed": seed}

    kern = KernelScoreModel(batch_size=256, lr=5e-3, depth=2, validation=0.5, calibrate=True,
                            seed=seed, progress=progress, device="cpu", **cfg["kernel"])
    res["kernel_gmm"] = {**cfg["kernel"], **score_figures(kern.fit(X), mixture_score, test)}
    logger.info("kernel: %s", res["kernel_gmm"])

    kg = KGMMScoreModel(sigma=0.1, validation=0.5, calibrate=True, seed=seed,
                        progress=progress, device="cpu", **cfg["kgmm"])
    res["kgmm_gmm"] = {**cfg["kgmm"], **score_figures(kg.fit(X), mixture_score, test)}
    logger.info("kgmm: %s", res["kgmm_gmm"])

    rng = np.random.default_rng(seed + 2)
    Xf, exact_f = gaussian_field(8, 20000, rng)
    Tf, _ = gaussian_field(8, 10000, rng)
    kf = KernelScoreModel(batch_size=128, calibrate=True, seed=seed, progress=progress,
                          device="cpu", **cfg["field"])
    res["kernel_gaussian_field_8x8"] = {**cfg["field"],
                                        **score_figures(kf.fit(Xf), exact_f, Tf, True)}
    logger.info("kernel, 8x8 Gaussian field (fourier): %s", res["kernel_gaussian_field_8x8"])

    c = cfg["claim"]
    t0 = time.perf_counter()
    claim = memorization_claim(
        mixture_samples, n_train=4000, n_centers=200, n_generate=c["n_generate"],
        noise_min=0.01, n_steps=c["n_steps"], seed=seed,
        model_options=dict(max_steps=c["max_steps"], batch_size=256, lr=5e-3, depth=2,
                           device="cpu"))
    centers = claim.pop("model").centers_
    claim["seconds"] = round(time.perf_counter() - t0, 1)
    logger.info("memorisation (200 centres, empirical score to noise 0.01 std): %s", claim)
    # the empirical-score sampler of the same centres, run to other final noise levels
    std = float(np.std(centers))
    emp = empirical_score(centers)
    sweep = {}
    for noise in cfg["noise"]:
        r = np.random.default_rng(seed + 5)
        times = np.geomspace((3 * std) ** 2, (noise * std) ** 2, c["n_steps"])
        x0 = centers[r.integers(0, len(centers), c["n_generate"])]
        x0 = x0 + 3 * std * r.standard_normal(x0.shape)
        xs = reverse_sde(emp, x0, times, 1.0, r)
        sweep[f"noise_min={noise}"] = memorization_fraction(xs, centers)
    claim["empirical_sde_by_final_noise"] = sweep
    logger.info("empirical-score sampler by final noise: %s", sweep)
    res["memorization_200_centers"] = claim
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(res, indent=2, default=float))
    print(json.dumps(res, indent=2, default=float))
    return res


if __name__ == "__main__":
    main()
