r"""Diffusion samplers: reverse-time VE SDE, VE probability flow and the VP baseline.

* :func:`reverse_sde`, :func:`probability_flow`: variance-exploding (VE) diffusion with
  :math:`\sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^t`, for noise-conditional
  scores :math:`s(x, \sigma)` such as :class:`gfdt.scores.DenoisingScoreModel`;
* :func:`vp_euler_maruyama`: the variance-preserving (VP) SDE of Song et al. (2021),
  Euler-Maruyama in reverse time, for time-dependent scores :math:`s(x, t)`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from gfdt.sampling._checks import _bar, _call, _check_int, _initial, _number, _states

__all__ = ["probability_flow", "reverse_sde", "vp_euler_maruyama"]


class _VEScore:
    """A noise-conditional score in standardised units with its sampling defaults."""

    def __init__(self, model, sigma_min, sigma_max) -> None:
        self.model = model
        # the fitted range (``sigma_min_``) where the estimator resolves defaults at fit
        fit_min = getattr(model, "sigma_min_", model.sigma_min)
        fit_max = getattr(model, "sigma_max_", model.sigma_max)
        self.sigma_min = fit_min if sigma_min is None else float(sigma_min)
        self.sigma_max = fit_max if sigma_max is None else float(sigma_max)
        self.mean = np.asarray(model.mean_, dtype=float)
        self.std = np.asarray(model.std_, dtype=float)
        self.state_shape = tuple(model.state_shape_)

    def __call__(self, xs: np.ndarray, sigma: float) -> np.ndarray:
        return self.model.score(self.mean + self.std * xs, sigma=float(sigma)) * self.std

    def draw_prior(self, n: int, sigma: float, rng: np.random.Generator) -> np.ndarray:
        """The Gaussian fit of the data convolved with the noise (standardised units)."""
        z = rng.standard_normal((n, *self.state_shape))
        prior = getattr(self.model, "prior_", None)
        if prior is not None:  # the estimator's Gaussian part: (C + sigma^2)^(1/2) z
            import torch

            with torch.no_grad():
                buf = next(prior.buffers())  # the estimator's dtype and device
                out = prior.apply(torch.as_tensor(z, dtype=buf.dtype, device=buf.device),
                                  lambda var: torch.sqrt(var + sigma**2))
            return out.cpu().numpy().astype(float)
        return z * math.sqrt(1 + sigma**2)


def _ve_setup(model, x_init, n_samples, sigma_min, sigma_max, rng):
    """Score in working units, initial state, sigma range and the back-transform."""
    if hasattr(model, "score") and hasattr(model, "std_") and hasattr(model, "sigma_min"):
        ve = _VEScore(model, sigma_min, sigma_max)
        if x_init is not None:
            x = (_states(x_init, "x_init") - ve.mean) / ve.std
        else:
            if n_samples is None:
                raise ValueError("give n_samples or x_init")
            x = ve.draw_prior(_check_int(n_samples, "n_samples"), ve.sigma_max, rng)
        return ve, x, ve.sigma_min, ve.sigma_max, (lambda xs: ve.mean + ve.std * xs)
    if not callable(model):
        raise TypeError("model must be a fitted DenoisingScoreModel or a callable "
                        "score(x, sigma)")
    if x_init is None:
        raise ValueError("x_init is required with a callable score: draw it from the "
                         "data law convolved with N(0, sigma_max^2)")
    if sigma_min is None or sigma_max is None:
        raise ValueError("sigma_min and sigma_max are required with a callable score")
    return model, _states(x_init, "x_init"), _number(sigma_min, "sigma_min"), \
        _number(sigma_max, "sigma_max"), (lambda xs: xs)


def _sigma_grid(sigma_min: float, sigma_max: float, n_steps: int) -> np.ndarray:
    if not (0 < sigma_min < sigma_max) or not math.isfinite(sigma_max):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min}, "
                         f"sigma_max={sigma_max}")
    return sigma_max * (sigma_min / sigma_max) ** (np.arange(n_steps + 1) / n_steps)


def _ve_integrate(step: Callable, desc: str, model, x_init, n_samples, sigma_min, sigma_max,
                  n_steps, seed, progress) -> np.ndarray:
    """Run ``x = step(score, x, sigma_i, sigma_i+1, rng)`` down the geometric noise grid
    from the start of :func:`_ve_setup`; returns data units."""
    n_steps = _check_int(n_steps, "n_steps")
    rng = np.random.default_rng(seed)
    score, x, smin, smax, back = _ve_setup(model, x_init, n_samples, sigma_min, sigma_max,
                                           rng)
    sig = _sigma_grid(smin, smax, n_steps)
    bar = _bar(n_steps, desc, progress)
    try:
        for i in range(n_steps):
            x = step(score, x, sig[i], sig[i + 1], rng)
            bar.update(1)
    finally:
        bar.close()
    return back(x)


# ------------------------------------------------------------------ VE samplers
def reverse_sde(model, n_samples: int | None = None, *, x_init=None,
                sigma_min: float | None = None, sigma_max: float | None = None,
                n_steps: int = 500, seed: int = 0, progress: bool | None = None) -> np.ndarray:
    """Samples from the reverse-time VE SDE (Euler-Maruyama on a geometric noise grid).

    With :math:`\\sigma_0 = \\sigma_{\\max} > \\dots > \\sigma_N = \\sigma_{\\min}` and
    :math:`\\Delta_i = \\sigma_i^2 - \\sigma_{i+1}^2`:
    :math:`x \\leftarrow x + \\Delta_i\\, s(x, \\sigma_i) + \\sqrt{\\Delta_i}\\, z`. The output
    follows the data law convolved with :math:`N(0, \\sigma_{\\min}^2)`.

    Parameters
    ----------
    model : DenoisingScoreModel or callable
        A fitted noise-conditional model (``score(x, sigma)``, sigma in units of the
        data's standard deviation; sampling runs in standardised units and returns data
        units), or a callable ``score(x, sigma)`` in the units of ``x_init``.
    n_samples : int, optional
        Number of samples (model only: the start is the Gaussian fit of the data
        convolved with :math:`N(0, \\sigma_{\\max}^2)`).
    x_init : array_like, shape ``(n_samples, *state)``, optional
        Start at :math:`\\sigma_{\\max}` (required with a callable).
    sigma_min, sigma_max : float, optional
        Noise range (default: the model's).
    n_steps : int
        Steps (score evaluations).
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape ``(n_samples, *state)``
    """
    def euler_maruyama(score, x, s0, s1, rng):
        delta = s0**2 - s1**2
        return x + delta * _call(score, x, s0, shape=x.shape) + \
            math.sqrt(delta) * rng.standard_normal(x.shape)

    return _ve_integrate(euler_maruyama, "reverse SDE", model, x_init, n_samples, sigma_min,
                         sigma_max, n_steps, seed, progress)


def probability_flow(model, n_samples: int | None = None, *, x_init=None,
                     sigma_min: float | None = None, sigma_max: float | None = None,
                     n_steps: int = 100, seed: int = 0,
                     progress: bool | None = None) -> np.ndarray:
    """Samples from the VE probability-flow ODE :math:`dx/d\\sigma = -\\sigma\\, s(x, \\sigma)`.

    Heun's method (second order, two score evaluations per step) on a geometric grid
    from ``sigma_max`` down to ``sigma_min``; deterministic given the start.

    Parameters
    ----------
    model, n_samples, x_init, sigma_min, sigma_max, seed, progress
        As in :func:`reverse_sde` (``seed`` only draws the start).
    n_steps : int
        Heun steps.

    Returns
    -------
    numpy.ndarray, shape ``(n_samples, *state)``
    """
    def heun(score, x, s0, s1, rng):
        h = s1 - s0
        k1 = -s0 * _call(score, x, s0, shape=x.shape)
        xp = x + h * k1
        k2 = -s1 * _call(score, xp, s1, shape=x.shape)
        return x + 0.5 * h * (k1 + k2)

    return _ve_integrate(heun, "probability flow", model, x_init, n_samples, sigma_min,
                         sigma_max, n_steps, seed, progress)


# ------------------------------------------------------------------ VP baseline
def _vp_alpha(t, beta_min: float, beta_max: float) -> np.ndarray:
    """:math:`\\alpha(t) = \\exp(-\\tfrac12 \\int_0^t \\beta)`, linear :math:`\\beta`."""
    t = np.asarray(t, dtype=float)
    return np.exp(-0.5 * (beta_min * t + 0.5 * (beta_max - beta_min) * t**2))


def vp_euler_maruyama(score_fn: Callable, n_samples: int | None = None, *, x_init=None,
                      state_shape: Sequence[int] = (1,), n_steps: int = 100,
                      beta_min: float = 0.1, beta_max: float = 20.0, t_eps: float = 1e-3,
                      seed: int = 0, progress: bool | None = None) -> np.ndarray:
    """Reverse-time VP SDE by Euler-Maruyama (the baseline sampler of score diffusion).

    Forward: :math:`dx = -\\tfrac12 \\beta(t) x\\, dt + \\sqrt{\\beta(t)}\\, dW`,
    :math:`\\beta(t) = \\beta_{\\min} + t(\\beta_{\\max} - \\beta_{\\min})`, :math:`t \\in [0, 1]`;
    :math:`x_t \\mid x_0 \\sim N(\\alpha_t x_0, 1 - \\alpha_t^2)`. Reverse steps on the
    uniform grid from 1 to ``t_eps``:
    :math:`x \\leftarrow x + [\\tfrac12 \\beta x + \\beta s(x, t)]\\Delta t +
    \\sqrt{\\beta \\Delta t}\\, z`, one score evaluation per step.

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x, t)`` (``t`` a float in ``[t_eps, 1]``), the score of the law of
        :math:`x_t`.
    n_samples : int, optional
        Start from :math:`N(0, I)` (shape ``(n_samples, *state_shape)``).
    x_init : array_like, optional
        Start instead of :math:`N(0, I)` draws.
    state_shape : sequence of int
    n_steps : int
    beta_min, beta_max : float
    t_eps : float
        Final time.
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape ``(n_samples, *state_shape)``: samples at ``t_eps``.
    """
    if not callable(score_fn):
        raise TypeError("score_fn must be callable")
    n_steps = _check_int(n_steps, "n_steps")
    t_eps = _number(t_eps, "t_eps")
    beta_min, beta_max = _number(beta_min, "beta_min"), _number(beta_max, "beta_max")
    if not (0 < t_eps < 1):
        raise ValueError(f"t_eps must be in (0, 1), got {t_eps}")
    if not (0 < beta_min < beta_max):
        raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
    rng = np.random.default_rng(seed)
    x = _initial(x_init, n_samples, state_shape)
    if x is None:
        if n_samples is None:
            raise ValueError("give n_samples or x_init")
        x = rng.standard_normal((int(n_samples), *tuple(state_shape)))
    ts = np.linspace(1.0, t_eps, n_steps + 1)
    bar = _bar(n_steps, "VP Euler-Maruyama", progress)
    try:
        for i in range(n_steps):
            t, dt = ts[i], ts[i] - ts[i + 1]
            b = beta_min + t * (beta_max - beta_min)
            x = x + (0.5 * b * x + b * _call(score_fn, x, t, shape=x.shape)) * dt + \
                math.sqrt(b * dt) * rng.standard_normal(x.shape)
            bar.update(1)
    finally:
        bar.close()
    return x
