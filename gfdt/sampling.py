r"""Generative samplers that use a score: judge a score by what it generates.

* :func:`reverse_sde`, :func:`probability_flow`: variance-exploding (VE) diffusion with
  :math:`\sigma(t) = \sigma_{\min} (\sigma_{\max}/\sigma_{\min})^t`, for noise-conditional
  scores :math:`s(x, \sigma)` such as :class:`gfdt.scores.DenoisingScoreModel`;
* :func:`langevin`: unadjusted Langevin dynamics with any score :math:`s(x)`;
* :func:`vp_euler_maruyama`: the variance-preserving (VP) SDE of Song et al. (2021),
  Euler-Maruyama in reverse time, for time-dependent scores :math:`s(x, t)`;
* :func:`hold_lie_trotter`: HOLD's third-order Langevin process in reverse time, split
  into its exact Ornstein-Uhlenbeck part and a score step, for :math:`a`-block scores
  (:class:`gfdt.scores.HOLDScoreModel` or a callable);
* :func:`hamiltonian_flow`: Hamiltonian generative flows, integrating
  :math:`\dot x = V(x, t)` from :math:`T` back to 0;
* :func:`gmm_vp_score`, :func:`gmm_hold_score`,
  :func:`wasserstein1_gmm`: exact scores of Gaussian mixtures and the W1 distance, to
  check samplers.

All samplers take explicit seeds (``numpy.random.Generator`` streams), return numpy
arrays and show a progress bar on a terminal (``progress``).

Size: past 500 lines because it holds seven independent samplers and the exact
Gaussian-mixture scores that check them; each function is short and they share only the
input checks at the top.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from scipy.special import ndtr

from gfdt._progress import tqdm
from gfdt.scores.base import score_output
from gfdt.scores.hold import hold_coefficients, mean_cov, propagator

__all__ = [
    "gmm_hold_score",
    "gmm_vp_score",
    "hamiltonian_flow",
    "hold_lie_trotter",
    "langevin",
    "probability_flow",
    "reverse_sde",
    "vp_euler_maruyama",
    "wasserstein1_gmm",
]


# ------------------------------------------------------------------ helpers
def _check_int(v, name: str, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def _bar(n: int, desc: str, progress: bool | None):
    return tqdm(total=n, desc=desc, leave=False,
                disable=None if progress is None else not progress)


def _number(v, name: str, positive: bool = True) -> float:
    """A finite real number (> 0 with ``positive``); TypeError/ValueError name it."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    if not math.isfinite(v) or (positive and v <= 0):
        raise ValueError(f"{name} must be a {'positive ' if positive else ''}finite number, "
                         f"got {v!r}")
    return float(v)


def _states(x, name: str, min_ndim: int = 2) -> np.ndarray:
    """A finite float64 copy of a start array; errors name it."""
    try:
        arr = np.array(x, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape (n, *state)") from None
    if arr.ndim < min_ndim or 0 in arr.shape:
        raise ValueError(f"{name} must have shape (n_samples, *state), got {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} contains {int(bad.sum())} NaN or inf values (first at "
                         f"index {tuple(int(i) for i in np.argwhere(bad)[0])})")
    return arr


def _initial(x_init, n_samples, state_shape, name: str = "x_init") -> np.ndarray | None:
    if x_init is not None:
        return _states(x_init, name)
    if n_samples is None:
        return None
    _check_int(n_samples, "n_samples")
    return None


def _call(score: Callable, *args, shape, step: int | None = None) -> np.ndarray:
    """Evaluate a score; its output must have ``shape`` and be finite."""
    s = score_output(score(*args), "score")
    if s.shape != shape:
        raise ValueError(f"score returned shape {s.shape}, expected {shape}")
    bad = ~np.isfinite(s)
    if bad.any():
        where = "" if step is None else (
            " at the first step (check the score and the start)" if step == 0 else
            f" at step {step} (the state diverged: try a smaller step size)")
        raise ValueError(f"score returned {int(bad.sum())} NaN or inf values{where}")
    return s


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


def langevin(score_fn: Callable, x0, step: float, n_steps: int, seed: int = 0,
             progress: bool | None = None) -> np.ndarray:
    """Unadjusted Langevin dynamics :math:`x \\leftarrow x + h\\, s(x) + \\sqrt{2h}\\, z`.

    Its stationary law approximates :math:`p \\propto e^{\\log p}` with an :math:`O(h)`
    bias (for :math:`N(0, c)`: variance :math:`c / (1 - h / 2c)`).

    Parameters
    ----------
    score_fn : callable
        ``score_fn(x)`` for ``x`` of shape ``(n, *state)`` (a score estimator works).
    x0 : array_like, shape ``(n, *state)``
        Start.
    step : float
        Step size :math:`h` (> 0), units of :math:`x^2`.
    n_steps : int
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape of ``x0``

    Raises
    ------
    ValueError
        ``x0`` not finite, or the score returns NaN or inf (at the start, or later when
        the chain diverges; the step is named).
    TypeError
        ``step`` not a real number.
    """
    if not callable(score_fn):
        raise TypeError("score_fn must be callable")
    step = _number(step, "step")
    n_steps = _check_int(n_steps, "n_steps", 0)
    x = _states(x0, "x0")
    rng = np.random.default_rng(seed)
    noise = math.sqrt(2 * step)
    bar = _bar(n_steps, "Langevin", progress)
    try:
        for i in range(n_steps):
            x = x + step * _call(score_fn, x, shape=x.shape, step=i) + \
                noise * rng.standard_normal(x.shape)
            bar.update(1)
    finally:
        bar.close()
    return x


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


# ------------------------------------------------------------------ HOLD
def hold_lie_trotter(model, n_samples: int | None = None, *,
                     state_shape: Sequence[int] | None = None, u_init=None,
                     n_steps: int = 100, T: float = 8.0, t_end: float = 0.0,
                     beta: float | None = None, r: float | None = None,
                     rho: float = 2.0, seed: int = 0,
                     progress: bool | None = None) -> np.ndarray:
    """HOLD reverse-time sampler: exact Ornstein-Uhlenbeck step plus a score step.

    The reverse of :math:`du = \\beta A u\\, dt + \\sqrt{2\\xi\\beta}\\, e_a dW` is, in
    reverse time :math:`s`,
    :math:`du = \\beta A^T u\\, ds + \\sqrt{2\\xi\\beta}\\, e_a dW
    + 2\\xi\\beta\\, e_a (s_a(u, t) + u_a)\\, ds` (using :math:`A + A^T = -2\\xi e_a e_a^T`).
    The linear part, stationary :math:`N(0, I)`, is integrated exactly,
    :math:`u \\leftarrow e^{\\beta\\delta A^T} u + (I - e^{\\beta\\delta A^T}
    e^{\\beta\\delta A})^{1/2} z`; the rest by Euler,
    :math:`u_a \\leftarrow u_a + 2\\xi\\beta\\delta\\, (s_a(u, t_k) + u_a)`, one score
    evaluation per step, taken at the start :math:`t_k` of each interval (before its OU
    step; the other order differs only by a void step at :math:`T` or at 0, where
    :math:`s_a + u_a = m_a \\varphi = 0`). The grid is
    :math:`t_k = t_{\\rm end} + (T - t_{\\rm end})(k/N)^\\rho`: ``rho = 1`` is uniform;
    ``rho = 2`` (default) spends the steps where the law changes, at small :math:`t`,
    instead of in the nearly stationary range (with exact scores on 1-D mixtures, 25
    steps with ``rho = 2`` were as accurate as about 100 uniform ones).

    Parameters
    ----------
    model : HOLDScoreModel or callable
        A fitted model (its :meth:`~gfdt.scores.HOLDScoreModel.augmented_score`, its
        ``beta`` and ``r``; output in data units), or a callable ``s_a(u, t)`` with ``u``
        of shape ``(n, 3, *state)`` returning ``(n, *state)``.
    n_samples : int, optional
        Start from :math:`u \\sim N(0, I)`.
    state_shape : sequence of int, optional
        State shape (callable without ``u_init``; default ``(1,)``).
    u_init : array_like, shape ``(n, 3, *state)``, optional
        Start instead (at time ``T``).
    n_steps : int
        Steps (= score evaluations).
    T : float
        Start time (``beta * r * T`` of about 14 makes the start law :math:`N(0, I)`
        to ~1e-4).
    t_end : float
        Final time.
    beta, r : float, optional
        Process parameters (default: the model's, else 1 and :math:`\\sqrt 3`).
    rho : float
        Grid exponent (>= 1).
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape ``(n, *state)``: the :math:`x` block at ``t_end``.
    """
    n_steps = _check_int(n_steps, "n_steps")
    T, t_end = _number(T, "T"), _number(t_end, "t_end", positive=False)
    rho = _number(rho, "rho")
    if not (0 <= t_end < T) or not math.isfinite(T):
        raise ValueError(f"need 0 <= t_end < T < inf, got t_end={t_end}, T={T}")
    if not (rho >= 1 and math.isfinite(rho)):
        raise ValueError(f"rho must be >= 1, got {rho}")
    back: Callable = lambda x: x  # noqa: E731
    if hasattr(model, "augmented_score"):
        model._check_fitted()
        s_a = model.augmented_score
        beta = model.beta if beta is None else beta
        r = model.r if r is None else r
        state = tuple(model.state_shape_)
        mean, std = model.mean_, model.std_
        back = lambda x: mean + std * x  # noqa: E731
    elif callable(model):
        s_a = model
        beta = 1.0 if beta is None else beta
        r = math.sqrt(3) if r is None else r
        state = tuple(state_shape) if state_shape is not None else (1,)
    else:
        raise TypeError("model must be a fitted HOLDScoreModel or a callable s_a(u, t)")
    rng = np.random.default_rng(seed)
    if u_init is not None:
        u = _states(u_init, "u_init", 3)
        if u.shape[1] != 3:
            raise ValueError(f"u_init must have shape (n, 3, *state), got {u.shape}")
    else:
        if n_samples is None:
            raise ValueError("give n_samples or u_init")
        u = rng.standard_normal((_check_int(n_samples, "n_samples"), 3, *state))
    _, _, xi = hold_coefficients(r)
    ts = t_end + (T - t_end) * (np.arange(n_steps, -1, -1) / n_steps) ** rho
    def ou(u, delta):
        F = propagator(delta, beta=beta, r=r).T  # exp(beta delta A^T)
        lam, vec = np.linalg.eigh(np.eye(3) - F @ F.T)
        L = (vec * np.sqrt(np.maximum(lam, 0))) @ vec.T  # any square root of the covariance
        z = rng.standard_normal(u.shape)
        return np.einsum("ij,nj...->ni...", F, u) + np.einsum("ij,nj...->ni...", L, z)

    def score_step(u, t, delta):
        s = _call(s_a, u, float(t), shape=u[:, 2].shape)
        u[:, 2] = u[:, 2] + 2 * xi * beta * delta * (s + u[:, 2])
        return u

    bar = _bar(n_steps, "HOLD Lie-Trotter", progress)
    try:
        for i in range(n_steps):
            delta = ts[i] - ts[i + 1]
            u = ou(score_step(u, ts[i], delta), delta)
            bar.update(1)
    finally:
        bar.close()
    return back(u[:, 0])


# ------------------------------------------------------------------ HGF
def hamiltonian_flow(velocity: Callable, n_samples: int | None = None, *, x_init=None,
                     state_shape: Sequence[int] = (1,), alpha: float | None = None,
                     T: float | None = None, n_steps: int = 100, seed: int = 0,
                     progress: bool | None = None) -> np.ndarray:
    """Hamiltonian generative flow: integrate :math:`\\dot x = V(x, t)` from ``T`` to 0.

    :math:`V(x, t) = E[v_t \\mid x_t = x]` for the Hamiltonian flow
    :math:`\\dot x = v, \\dot v = F(x)` started at data :math:`\\times N(0, I)`: the ODE
    transports the law of :math:`x_T` back to the data law. With the oscillation force
    :math:`F = -\\alpha^2 x` and :math:`T = \\pi / (2\\alpha)`, :math:`x_T = v_0/\\alpha` is
    exactly :math:`N(0, I/\\alpha^2)`, the start drawn here; with zero force
    (``alpha=None``) the caller gives ``x_init``. Heun's method, uniform grid.

    Parameters
    ----------
    velocity : callable
        ``velocity(x, t)`` for ``x`` of shape ``(n, *state)``, ``t`` a float.
    n_samples : int, optional
        With ``alpha``: draw the start :math:`N(0, I/\\alpha^2)`.
    x_init : array_like, optional
        Start at ``T``.
    state_shape : sequence of int
    alpha : float, optional
        Oscillation frequency.
    T : float, optional
        Start time (default :math:`\\pi/(2\\alpha)`).
    n_steps : int
        Heun steps (two velocity evaluations each).
    seed : int
    progress : bool, optional

    Returns
    -------
    numpy.ndarray, shape ``(n, *state)``
    """
    if not callable(velocity):
        raise TypeError("velocity must be callable")
    n_steps = _check_int(n_steps, "n_steps")
    if alpha is not None:
        alpha = _number(alpha, "alpha")
    if T is None:
        if alpha is None:
            raise ValueError("give T (or alpha, for T = pi / (2 alpha))")
        T = math.pi / (2 * alpha)
    T = _number(T, "T")
    rng = np.random.default_rng(seed)
    x = _initial(x_init, n_samples, state_shape)
    if x is None:
        if alpha is None or n_samples is None:
            raise ValueError("give x_init, or alpha and n_samples")
        x = rng.standard_normal((int(n_samples), *tuple(state_shape))) / alpha
    ts = np.linspace(T, 0.0, n_steps + 1)
    bar = _bar(n_steps, "Hamiltonian flow", progress)
    try:
        for i in range(n_steps):
            h = ts[i + 1] - ts[i]
            k1 = _call(velocity, x, ts[i], shape=x.shape)
            k2 = _call(velocity, x + h * k1, ts[i + 1], shape=x.shape)
            x = x + 0.5 * h * (k1 + k2)
            bar.update(1)
    finally:
        bar.close()
    return x


# ------------------------------------------------------------------ exact GMM scores
def _gmm_arrays(weights, means, stds):
    w = np.asarray(weights, dtype=float)
    mu = np.asarray(means, dtype=float)
    sd = np.asarray(stds, dtype=float)
    if not (w.ndim == mu.ndim == sd.ndim == 1 and len(w) == len(mu) == len(sd)):
        raise ValueError("weights, means and stds must be 1-D of one length")
    if not all(np.all(np.isfinite(a)) for a in (w, mu, sd)):
        raise ValueError("weights, means and stds must be finite")
    if np.any(w < 0) or not np.isclose(w.sum(), 1) or np.any(sd <= 0):
        raise ValueError("weights must be >= 0 and sum to 1; stds must be > 0")
    return w, mu, sd


def _gmm_logpdf_grad(y: np.ndarray, w, centres, var) -> np.ndarray:
    """d/dy log sum_k w_k N(y; centres_k, var_k), elementwise in ``y``."""
    d = y[..., None] - centres
    logc = np.log(w) - 0.5 * np.log(var) - 0.5 * d**2 / var
    logc -= logc.max(axis=-1, keepdims=True)
    resp = np.exp(logc)
    resp /= resp.sum(axis=-1, keepdims=True)
    return -(resp * d / var).sum(axis=-1)


def gmm_vp_score(weights, means, stds, *, beta_min: float = 0.1,
                 beta_max: float = 20.0) -> Callable:
    """Exact VP-SDE score :math:`s(x, t)` of a 1-D Gaussian mixture (each coordinate).

    :math:`x_t \\sim \\sum_k \\pi_k N(\\alpha_t \\mu_k, \\alpha_t^2\\sigma_k^2 + 1 - \\alpha_t^2)`.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)

    def score(x, t):
        a = float(_vp_alpha(t, beta_min, beta_max))
        return _gmm_logpdf_grad(np.asarray(x, dtype=float), w, a * mu,
                                a**2 * sd**2 + 1 - a**2)

    return score


def gmm_hold_score(weights, means, stds, *, beta: float = 1.0,
                   r: float = math.sqrt(3)) -> Callable:
    """Exact HOLD :math:`a`-block score :math:`s_a(u, t)` of a 1-D Gaussian mixture.

    :math:`s_a = -u_a + m_a \\varphi(y)`, :math:`y = m\\cdot u`,
    :math:`\\varphi = (\\log p_y)'(y) + y/|m|^2` with
    :math:`y \\sim \\sum_k \\pi_k N(|m|^2\\mu_k, |m|^4\\sigma_k^2 + |m|^2(1 - |m|^2))`
    (module notes of :mod:`gfdt.scores.hold`); ``u`` of shape ``(n, 3, *state)``.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)

    def s_a(u, t):
        u = np.asarray(u, dtype=float)
        m, _ = mean_cov(float(t), beta=beta, r=r)
        n2 = float(m @ m)
        y = np.tensordot(m, u, axes=([0], [1]))
        var = n2**2 * sd**2 + n2 * max(1 - n2, 0.0)
        phi = _gmm_logpdf_grad(y, w, n2 * mu, var) + y / n2
        return -u[:, 2] + m[2] * phi

    return s_a


def wasserstein1_gmm(samples, weights, means, stds, *, n_grid: int = 40001) -> float:
    """Wasserstein-1 distance of 1-D samples to a Gaussian mixture (exact target CDF).

    :math:`W_1 = \\int |F_n(x) - F(x)|\\, dx`, trapezoidal on a fine grid covering the
    samples and 10 standard deviations around every component.
    """
    w, mu, sd = _gmm_arrays(weights, means, stds)
    x = np.sort(_states(np.reshape(samples, (-1, 1)), "samples").ravel())
    lo = min(x[0], float(np.min(mu - 10 * sd)))
    hi = max(x[-1], float(np.max(mu + 10 * sd)))
    grid = np.linspace(lo, hi, n_grid)
    Fn = np.searchsorted(x, grid, side="right") / len(x)
    F = (w * ndtr((grid[:, None] - mu) / sd)).sum(axis=1)
    return float(np.trapezoid(np.abs(Fn - F), grid))
