r"""Langevin-type samplers: unadjusted Langevin dynamics and HOLD's reverse process.

* :func:`langevin`: unadjusted Langevin dynamics with any score :math:`s(x)`;
* :func:`hold_lie_trotter`: HOLD's third-order Langevin process in reverse time, split
  into its exact Ornstein-Uhlenbeck part and a score step, for :math:`a`-block scores
  (:class:`gfdt.scores.HOLDScoreModel` or a callable).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from gfdt.sampling._checks import _bar, _call, _check_int, _number, _states
from gfdt.scores.hold import hold_coefficients, propagator

__all__ = ["hold_lie_trotter", "langevin"]


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
