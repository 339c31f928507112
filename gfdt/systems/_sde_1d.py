"""Closed forms of one-dimensional SDEs by quadrature: density, score, sensitivities.

For :math:`dx = F(x)\\,dt + g(x)\\,dW` (Ito, any number of Wiener processes) with
:math:`D = \\sum_k g_k^2/2 > 0`, the zero-flux solution of the Fokker-Planck equation
:math:`0 = -(F p)' + (D p)''` is

.. math:: p(x) \\propto \\frac{1}{D(x)} \\exp\\Big(\\int^x \\frac{F}{D}\\,dy\\Big),
          \\qquad s = (\\log p)' = \\frac{F - D'}{D},

and its parameter derivative :math:`\\partial_\\theta\\log p = \\int^x
\\partial_\\theta(F/D)\\,dy - \\partial_\\theta D/D - \\text{const}` gives the exact
sensitivity :math:`\\partial\\langle A\\rangle/\\partial\\theta =
\\mathrm{Cov}_p(A, \\partial_\\theta\\log p)` by quadrature (trapezoid rule on the grid).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["score_1d", "stationary_density", "stationary_sensitivity"]


def _check(sde) -> None:
    if sde.d != 1:
        raise ValueError(f"quadrature closed forms need a 1-D SDE, this one has d = {sde.d}")


def _grid(grid) -> np.ndarray:
    g = np.asarray(grid, dtype=float)
    if g.ndim != 1 or g.size < 3 or not np.all(np.isfinite(g)) or np.any(np.diff(g) <= 0):
        raise ValueError("grid must be an increasing 1-D array of at least 3 finite points")
    return g


def _cumtrapz(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    out = np.zeros_like(y)
    out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x), axis=0)
    return out


def _trapz(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.sum(0.5 * (y[1:] + y[:-1]) * np.diff(x)[(...,) + (None,) * (y.ndim - 1)],
                  axis=0)


def _D_and_slope(sde, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:math:`D` and :math:`D'` on points ``x`` (symbolic slope when traced)."""
    D = sde.diffusion(x[:, None]).reshape(x.size)
    tr = sde._model.trace()
    if tr is not None:
        import sympy as sp

        from gfdt.systems._sde_trace import numpy_function

        Dexpr = tr.diffusion()
        e = Dexpr[0] if tr.noise is None else Dexpr[0, 0]
        slope = numpy_function([sp.diff(e, tr.x[0])], tr.x, tr.p, "dDdx")(x[:, None],
                                                                         sde._pvec())[:, 0]
        return D, slope
    h = 1e-5 * max(1.0, float(np.max(np.abs(x))))
    Dp = sde.diffusion((x + h)[:, None]).reshape(x.size)
    Dm = sde.diffusion((x - h)[:, None]).reshape(x.size)
    return D, (Dp - Dm) / (2 * h)


def score_1d(sde, x: np.ndarray) -> np.ndarray:
    """The exact score :math:`(F - D')/D` of a 1-D SDE at points ``x`` (any shape)."""
    _check(sde)
    x = np.asarray(x, dtype=float)
    flat = x.reshape(-1)
    F = sde.drift(flat[:, None]).reshape(-1)
    D, slope = _D_and_slope(sde, flat)
    if np.any(D <= 0):
        raise ValueError("the diffusion D = g^2/2 vanishes at some points: no closed-form "
                         "score there")
    return ((F - slope) / D).reshape(x.shape)


def _log_density(sde, g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normalised density on the grid, plus F and D there."""
    F = sde.drift(g[:, None]).reshape(-1)
    D = sde.diffusion(g[:, None]).reshape(-1)
    if np.any(D <= 0):
        raise ValueError("the diffusion D = g^2/2 must be > 0 on the whole grid")
    logp = _cumtrapz(F / D, g) - np.log(D)
    p = np.exp(logp - logp.max())
    p /= _trapz(p, g)
    if max(p[0], p[-1]) > 1e-10 * p.max():
        raise ValueError(f"the stationary density is not negligible at the grid's ends "
                         f"(p/max p = {p[0] / p.max():.2g}, {p[-1] / p.max():.2g}): extend "
                         "the grid")
    return p, F, D


def stationary_density(sde, grid) -> np.ndarray:
    """The zero-flux stationary density of a 1-D SDE on ``grid``.

    Parameters
    ----------
    sde : gfdt.systems.SDE
        With d = 1.
    grid : array_like, shape (k,)
        Increasing points covering the density's support (its value at both ends must be
        below 1e-10 of its maximum).

    Returns
    -------
    numpy.ndarray, shape (k,)
        Density (per state unit), normalised by the trapezoid rule on ``grid``.
    """
    _check(sde)
    g = _grid(grid)
    return _log_density(sde, g)[0]


def _observables(observables: Any) -> list[Callable]:
    if isinstance(observables, Mapping):
        return list(observables.values())
    if callable(observables):
        return [observables]
    return list(observables)


def stationary_sensitivity(sde, observables, grid, parameters: Sequence[str] | None = None
                           ) -> np.ndarray:
    """The exact static sensitivities :math:`\\partial\\langle A_i\\rangle/\\partial\\theta_j`
    of a 1-D SDE by quadrature (module docstring).

    Parameters
    ----------
    sde : gfdt.systems.SDE
        With d = 1.
    observables : mapping or sequence of callables
        Each maps states (m, 1) to (m,).
    grid : array_like, shape (k,)
        As for :func:`stationary_density`; a few 10^4 points make the trapezoid error
        negligible (second order in the spacing).
    parameters : sequence of str, optional
        Default: every parameter of ``sde``.

    Returns
    -------
    numpy.ndarray, shape (n_observables, n_parameters)
        Observable units per unit of the parameter.
    """
    _check(sde)
    g = _grid(grid)
    names = list(sde.parameter_names if parameters is None else parameters)
    for n in names:
        sde.check_parameter(n)
    p, F, D = _log_density(sde, g)
    A = np.stack([np.asarray(f(g[:, None]), dtype=float).reshape(-1)
                  for f in _observables(observables)], axis=1)  # (k, p)
    S = np.empty((A.shape[1], len(names)))
    for j, name in enumerate(names):
        dF = sde.drift_derivative(g[:, None], name).reshape(-1)
        dD = sde._dD(name)
        if dD is None:
            dDg = np.zeros_like(g)
        elif isinstance(dD, np.ndarray):
            dDg = np.full_like(g, float(np.asarray(dD).reshape(-1)[0]))
        else:
            dDg = dD(g[:, None]).reshape(-1)
        dlogp = _cumtrapz((dF * D - F * dDg) / D**2, g) - dDg / D
        dlogp -= _trapz(p * dlogp, g)
        S[:, j] = _trapz(A * (p * dlogp)[:, None], g)
    return S
