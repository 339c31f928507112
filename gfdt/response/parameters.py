"""Parameter perturbations and their conjugate variables (drift and diffusion).

A parameter :math:`\\theta` of the SDE :math:`dx = F_\\theta(x)\\,dt +
\\sqrt{2 D_\\theta}\\, dW` enters the Fokker-Planck operator
:math:`\\mathcal{L}_\\theta p = -\\nabla\\cdot(F_\\theta p) + \\nabla\\nabla : (D_\\theta p)`.
A change :math:`\\theta \\to \\theta + \\delta\\theta` changes it by
:math:`\\delta\\theta\\, \\partial_\\theta\\mathcal{L}`, and linear response theory gives
the response of :math:`\\langle A\\rangle` through the conjugate variable
:math:`B = (\\partial_\\theta\\mathcal{L}\\, p) / p` of the stationary density
:math:`p` (score :math:`s = \\nabla\\log p`):

* drift, :math:`\\partial_\\theta\\mathcal{L}p = -\\nabla\\cdot(F' p)` with
  :math:`F' = \\partial F/\\partial\\theta`:
  :math:`B_F = -\\nabla\\cdot F' - F'\\cdot s`;
* diffusion, constant :math:`D' = \\partial D/\\partial\\theta`:
  :math:`\\partial_\\theta\\mathcal{L}p = \\sum_{ij} D'_{ij}\\partial_i\\partial_j p` and
  :math:`\\partial_i\\partial_j p / p = \\partial_i s_j + s_i s_j`, so
  :math:`B_D = \\mathrm{tr}(D'(\\nabla s + s s^T))`.
* diffusion, state-dependent :math:`D'(x)` (:class:`~gfdt.response.DiffusionField`):
  :math:`B_D = \\partial_i\\partial_j D'_{ij} + 2(\\partial_i D'_{ij}) s_j
  + D'_{ij}(\\partial_i s_j + s_i s_j)` (:mod:`gfdt.response._diffusion`).

Both have zero mean under :math:`p` (integration by parts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from gfdt.response._diffusion import DiffusionField
from gfdt.response.conjugate import EXACT_DIVERGENCE_MAX_DIM, Perturbation

__all__ = ["JACOBIAN_METHODS", "ParameterPerturbation", "is_affine_score"]

#: How the trace :math:`\\mathrm{tr}(D'\\nabla s)` of the diffusion conjugate is computed.
JACOBIAN_METHODS = ("auto", "constant", "exact", "hutchinson")

#: Step of the divergences of a state-dependent D' (second differences) per unit of the
#: score's finite-difference step.
FIELD_STEP_FACTOR = 100.0

#: Largest state dimension whose full score Jacobian a shared memo holds (m d^2 floats).
SHARED_JACOBIAN_MAX_DIM = 16

#: Score evaluations (states times directions) per finite-difference batch.
_FD_BATCH_STATES = 4096


def is_affine_score(model: Any) -> bool:
    """Whether a fitted score is affine in the state (constant Jacobian).

    True for :class:`~gfdt.scores.GaussianScore`, for a
    :class:`~gfdt.scores.SteinCorrected` wrapper of an affine score, and for any object
    with a true ``affine`` attribute (e.g. ``AnalyticScore(f, affine=True)``, or the
    exact score of a Gaussian system, ``System.gaussian``).
    """
    from gfdt.scores.gaussian import GaussianScore

    if isinstance(model, GaussianScore) or getattr(model, "affine", False) in (True, 1):
        return True
    inner = getattr(model, "score_model_", None)
    return inner is not None and inner is not model and is_affine_score(inner)


class ParameterPerturbation:
    """A parameter of the dynamics: what its change does to the drift and the noise.

    Parameters
    ----------
    drift_derivative : callable, optional
        :math:`F'(x) = \\partial F/\\partial\\theta`: maps states ``(m, *state)`` to
        ``(m, *state)`` (state units per time unit per unit of the parameter). None:
        the drift does not depend on the parameter.
    diffusion_derivative : array_like or DiffusionField, optional
        :math:`D' = \\partial D/\\partial\\theta` with :math:`D = \\Sigma\\Sigma^T/2`:
        constant in the state, shape ``(d,)`` (a diagonal over the flattened state) or
        ``(d, d)`` (symmetric); or a :class:`~gfdt.response.DiffusionField` for noise
        that depends on the state. None: the noise does not depend on the parameter.
    name : str
        Label of the parameter in outputs.
    drift_divergence : callable, optional
        :math:`\\nabla\\cdot F'` in closed form, ``(m, *state) -> (m,)``; else computed
        by ``divergence`` (see :class:`~gfdt.response.Perturbation`: central
        differences, exact up to 64 coordinates, Hutchinson probes beyond).
    divergence : {"auto", "exact", "hutchinson"}
        Numerical divergence of :math:`F'` when ``drift_divergence`` is not given.
    jacobian : {"auto", "constant", "exact", "hutchinson"}
        How :math:`\\mathrm{tr}(D'\\nabla s(x))` is computed, by central differences of
        the score: ``"constant"`` once, at the first state (exact for an affine score,
        e.g. Gaussian or the exact score of a linear system, for any step);
        ``"exact"``: ``2 d`` score evaluations per state (all basis directions);
        ``"hutchinson"``: :math:`E_v[(D'v)\\cdot(\\nabla s\\, v)]` over ``n_probes``
        Rademacher or Gaussian probes (unbiased, 2 evaluations per probe). ``"auto"``:
        ``"constant"`` for an affine score (:func:`is_affine_score`), else ``"exact"``
        up to 64 coordinates, else ``"hutchinson"``.
    n_probes : int
        Probes per state (Hutchinson divergence and Jacobian trace).
    probe : {"rademacher", "gaussian"}
    fd_step : float, optional
        Finite-difference step in state units (default 1e-4 times the data's standard
        deviation once bound by an estimator).
    rng : numpy.random.Generator, optional
        Source of the probes (an estimator binds its own seeded generator).
    """

    def __init__(self, drift_derivative: Callable[[np.ndarray], np.ndarray] | None = None,
                 diffusion_derivative: np.ndarray | None = None, name: str = "theta", *,
                 drift_divergence: Callable[[np.ndarray], np.ndarray] | None = None,
                 divergence: str = "auto", jacobian: str = "auto", n_probes: int = 16,
                 probe: str = "rademacher", fd_step: float | None = None,
                 rng: np.random.Generator | None = None) -> None:
        if drift_derivative is not None and not callable(drift_derivative):
            raise TypeError(f"drift_derivative must be a callable or None, got "
                            f"{type(drift_derivative).__name__}")
        if drift_divergence is not None and not callable(drift_divergence):
            raise TypeError(f"drift_divergence must be a callable or None, got "
                            f"{type(drift_divergence).__name__}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if not isinstance(jacobian, str) or jacobian.lower() not in JACOBIAN_METHODS:
            raise ValueError(f"jacobian must be one of {', '.join(JACOBIAN_METHODS)}, "
                             f"got {jacobian!r}")
        self.dD = None
        self.dD_field = None
        if isinstance(diffusion_derivative, DiffusionField):
            self.dD_field = diffusion_derivative
        elif diffusion_derivative is not None:
            dD = np.asarray(diffusion_derivative, dtype=float)
            if dD.ndim not in (1, 2) or (dD.ndim == 2 and dD.shape[0] != dD.shape[1]):
                raise ValueError(f"diffusion_derivative must have shape (d,) or (d, d), got "
                                 f"{dD.shape}")
            if not np.all(np.isfinite(dD)):
                raise ValueError("diffusion_derivative contains NaN or inf")
            if dD.ndim == 2 and not np.allclose(dD, dD.T, atol=1e-12 * np.abs(dD).max()):
                raise ValueError("diffusion_derivative must be symmetric")
            self.dD = dD
        if drift_derivative is None and self.dD is None and self.dD_field is None:
            raise ValueError(f"parameter {name!r}: give drift_derivative, "
                             "diffusion_derivative or both")
        self.drift_derivative = drift_derivative
        self.drift_divergence = drift_divergence
        self.name = name
        self.jacobian = jacobian.lower()
        self.options = {"divergence": divergence, "n_probes": n_probes, "probe": probe,
                        "fd_step": fd_step}
        # the drift part is a state-dependent perturbation u = F' (checks the options)
        self.drift = None if drift_derivative is None else Perturbation(
            drift_derivative, divergence=drift_divergence or divergence, n_probes=n_probes,
            probe=probe, fd_step=fd_step, rng=rng)
        self.n_probes = int(n_probes)
        self.probe = str(probe).lower()
        self.fd_step = 1e-4 if fd_step is None else float(fd_step)
        self.rng = rng if rng is not None else np.random.default_rng()
        self.state_shape: tuple[int, ...] | None = None
        self._trace_const: float | None = None
        self._jac_const: np.ndarray | None = None
        #: A dict shared by the perturbations of one estimator: the exact score Jacobian
        #: of the current batch is then computed once for all of them.
        self.jacobian_memo: dict | None = None

    @classmethod
    def from_system(cls, system: Any, parameter: str, **options: Any) -> ParameterPerturbation:
        """The perturbation of ``parameter`` of a gfdt system, from its methods
        ``drift_derivative``, ``drift_derivative_divergence`` and ``diffusion_derivative``.

        Parameters
        ----------
        system : gfdt.systems.System
        parameter : str
            One of ``system.sensitivity_parameters``.
        **options
            Numerical options of :class:`ParameterPerturbation`.
        """
        from gfdt.systems.base import System

        if not isinstance(system, System):
            raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
        system.check_parameter(parameter)
        dD = system.diffusion_derivative_field(parameter)
        if dD is None:
            dD = system.diffusion_derivative(parameter)
        probe = np.random.default_rng(0).standard_normal((1, *system.state_shape))
        drift = None
        if dD is None or np.any(system.drift_derivative(probe, parameter) != 0):
            def drift(u: np.ndarray) -> np.ndarray:
                return system.drift_derivative(u, parameter)

            drift.__name__ = f"d{type(system).__name__}_drift/d{parameter}"
        div = None
        if drift is not None and system.drift_derivative_divergence(probe, parameter) is not None:
            def div(u: np.ndarray) -> np.ndarray:
                return system.drift_derivative_divergence(u, parameter)
        options.setdefault("drift_divergence", div)
        return cls(drift, dD, parameter, **options)

    def bind(self, state_shape: tuple[int, ...], rng: np.random.Generator,
             fd_step: float) -> ParameterPerturbation:
        """A copy for states of ``state_shape`` with probes from ``rng`` and, unless given,
        the finite-difference step ``fd_step``."""
        opts = dict(self.options)
        if opts["fd_step"] is None:
            opts["fd_step"] = float(fd_step)
        dD = self.dD if self.dD_field is None else self.dD_field.bind_step(
            FIELD_STEP_FACTOR * float(opts["fd_step"]))
        out = ParameterPerturbation(self.drift_derivative, dD, self.name,
                                    drift_divergence=self.drift_divergence,
                                    jacobian=self.jacobian, rng=rng, **opts)
        out.state_shape = tuple(state_shape)
        d = int(np.prod(state_shape))
        if out.dD is not None and out.dD.shape[0] != d:
            raise ValueError(f"diffusion_derivative of {self.name!r} has size "
                             f"{out.dD.shape[0]}, the state has {d} coordinates")
        if out.drift is not None:
            out.drift = out.drift.bind(tuple(state_shape), rng)
            out.drift.fd_step = out.fd_step
        return out

    def __repr__(self) -> str:
        parts = [p for p, v in (("drift", self.drift), ("diffusion", self.dD),
                                ("diffusion", self.dD_field)) if v is not None]
        return f"ParameterPerturbation({self.name!r}, {'+'.join(parts)})"

    def jacobian_method(self, model: Any) -> str:
        """The trace method ``"auto"`` resolves to for ``model``."""
        if self.jacobian != "auto":
            return self.jacobian
        if is_affine_score(model):
            return "constant"
        d = int(np.prod(self.state_shape))
        return "exact" if d <= EXACT_DIVERGENCE_MAX_DIM else "hutchinson"

    # ------------------------------------------------------------- conjugate
    def conjugate(self, x: np.ndarray, s: np.ndarray, model: Callable) -> np.ndarray:
        """:math:`B(x) = B_F + B_D` at states ``x`` with scores ``s`` (both
        ``(m, *state)``); ``model`` evaluates the score (for its Jacobian). Shape (m,)."""
        m = x.shape[0]
        out = np.zeros(m)
        if self.drift is not None:
            out += self.drift.conjugate(x, s)
        if self.dD is not None:
            sf = s.reshape(m, -1)
            ds = sf * self.dD if self.dD.ndim == 1 else sf @ self.dD
            out += np.einsum("bi,bi->b", ds, sf) + self._trace(x, model)
        if self.dD_field is not None:
            out += self.dD_field.conjugate(x, s, lambda xx, dD: self._trace(xx, model, dD))
        return out

    def _apply_dD(self, v: np.ndarray, dD: np.ndarray | None = None) -> np.ndarray:
        """:math:`D' v` per state; ``dD`` per state ((m, d) or (m, d, d)) or the constant."""
        if dD is None:
            return v * self.dD if self.dD.ndim == 1 else v @ self.dD
        return v * dD if dD.ndim == 2 else np.einsum("mij,mj->mi", dD, v)

    def _trace(self, x: np.ndarray, model: Callable, dD: np.ndarray | None = None
               ) -> np.ndarray:
        """:math:`\\mathrm{tr}(D'\\nabla s(x))`, shape (m,); ``dD`` per state, or None for
        the constant :math:`D'`."""
        m = x.shape[0]
        method = self.jacobian_method(model)
        if method == "constant":
            if dD is not None:  # a constant Jacobian, once, against every state's D'
                if self._jac_const is None:
                    self._jac_const = self._jacobian(x[:1], model)[0]
                J = self._jac_const
                return (dD @ np.diag(J) if dD.ndim == 2
                        else np.einsum("mij,ij->m", dD, J))
            if self._trace_const is None:
                self._trace_const = float(self._trace_exact(x[:1], model)[0])
            return np.full(m, self._trace_const)
        if method == "exact":
            d = int(np.prod(self.state_shape))
            if self.jacobian_memo is not None and d <= SHARED_JACOBIAN_MAX_DIM:
                J = self._shared_jacobian(x, model)
                if dD is None:
                    dD = self.dD if self.dD.ndim == 1 else self.dD[None]
                if dD.ndim == 1:
                    return np.einsum("mjj,j->m", J, dD)
                if dD.ndim == 2:
                    return np.einsum("mjj,mj->m", J, dD)
                return np.einsum("mij,mij->m", np.broadcast_to(dD, J.shape), J)
            return self._trace_exact(x, model, dD)
        return self._trace_hutchinson(x, model, dD)

    def _shared_jacobian(self, x: np.ndarray, model: Callable) -> np.ndarray:
        """The score Jacobian at ``x``, computed once for every perturbation sharing
        :attr:`jacobian_memo` (keyed by the identity of the state batch)."""
        memo = self.jacobian_memo
        if (memo.get("x") is not x or memo.get("h") != self.fd_step
                or memo.get("model") is not model):
            memo.clear()
            memo.update(x=x, h=self.fd_step, model=model, J=self._jacobian(x, model))
        return memo["J"]

    def _jacobian(self, x: np.ndarray, model: Callable) -> np.ndarray:
        """:math:`J_{ji} = \\partial_j s_i` by central differences, shape (m, d, d)."""
        m, d, h = x.shape[0], int(np.prod(self.state_shape)), self.fd_step
        flat = x.reshape(m, d)
        xp = np.repeat(flat[:, None, :], d, axis=1)
        xm = xp.copy()
        xp[:, np.arange(d), np.arange(d)] += h
        xm[:, np.arange(d), np.arange(d)] -= h
        sp_ = self._score(model, xp.reshape(m * d, *self.state_shape)).reshape(m, d, d)
        sm = self._score(model, xm.reshape(m * d, *self.state_shape)).reshape(m, d, d)
        return (sp_ - sm) / (2 * h)

    def _score(self, model: Callable, x: np.ndarray) -> np.ndarray:
        from gfdt.scores.base import score_output

        return score_output(model(x), "score").reshape(x.shape[0], -1)

    def _trace_exact(self, x: np.ndarray, model: Callable, dD: np.ndarray | None = None
                     ) -> np.ndarray:
        """:math:`\\sum_j D'_{j\\cdot}\\cdot\\partial_j s` by central differences along every
        basis direction (``2 d`` score evaluations per state)."""
        m, d, h = x.shape[0], int(np.prod(self.state_shape)), self.fd_step
        flat = x.reshape(m, d)
        out = np.zeros(m)
        chunk = max(1, _FD_BATCH_STATES // max(1, m))
        for a in range(0, d, chunk):
            idx = np.arange(a, min(a + chunk, d))
            k = idx.size
            xp = np.repeat(flat[:, None, :], k, axis=1)
            xm = xp.copy()
            xp[:, np.arange(k), idx] += h
            xm[:, np.arange(k), idx] -= h
            sp = self._score(model, xp.reshape(m * k, *self.state_shape)).reshape(m, k, d)
            sm = self._score(model, xm.reshape(m * k, *self.state_shape)).reshape(m, k, d)
            col = (sp - sm) / (2 * h)  # (m, k, d): column j of the Jacobian, j in idx
            if dD is not None:
                if dD.ndim == 2:
                    out += np.einsum("mk,mk->m", col[:, np.arange(k), idx], dD[:, idx])
                else:
                    out += np.einsum("mki,mki->m", col, dD[:, idx, :])
            elif self.dD.ndim == 1:
                out += np.einsum("mk,k->m", col[:, np.arange(k), idx], self.dD[idx])
            else:
                out += np.einsum("mki,ki->m", col, self.dD[idx])
        return out

    def _trace_hutchinson(self, x: np.ndarray, model: Callable,
                          dD: np.ndarray | None = None) -> np.ndarray:
        """Mean over probes of :math:`(D'v)\\cdot(s(x + hv) - s(x - hv))/2h`."""
        m, h = x.shape[0], self.fd_step
        out = np.zeros(m)
        for _ in range(self.n_probes):
            shape = (m, *self.state_shape)
            v = (self.rng.choice(np.array([-1.0, 1.0]), size=shape)
                 if self.probe == "rademacher" else self.rng.standard_normal(shape))
            js = (self._score(model, x + h * v) - self._score(model, x - h * v)) / (2 * h)
            out += np.einsum("bi,bi->b", self._apply_dD(v.reshape(m, -1), dD), js)
        return out / self.n_probes
