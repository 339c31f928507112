"""Any user SDE as a gfdt system: drift and noise callables with named parameters.

.. code-block:: python

    sde = gfdt.systems.SDE(
        drift=lambda x, p: p["F"] + p["a"] * x + p["b"] * x**2 - p["c"] * x**3,
        noise=lambda x, p: p["s"],
        parameters={"F": 0.6, "a": -0.0222, "b": -0.2, "c": 0.0494, "s": 0.7071},
        dt=0.01, dim=1)

The functions are written in plain numpy for a batch of states ``x`` of shape
``(n, *state_shape)``; ``p`` maps parameter names to values. gfdt traces them to
symbolic expressions, generates an allocation-free scalar integrator compiled with
numba (as fast as a hand-written loop), and differentiates them exactly in the
parameters and the state for :class:`~gfdt.SensitivityEstimator`. Functions that cannot
be traced (value-dependent branches, ``np.zeros`` filled with states) are compiled with
``numba.njit`` as they are, or run in Python, with central differences for the
derivatives (:mod:`gfdt.systems._sde_kernels`).
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np

from gfdt.systems._sde_model import Model, infer_shape
from gfdt.systems.base import System

__all__ = ["SDE"]

logger = logging.getLogger("gfdt")

SCHEMES = ("auto", "euler", "heun")
BACKENDS = ("auto", "traced", "jit", "python")
#: Constructor keywords (parameter names may not shadow them or the methods).
_RESERVED = {"n", "dt", "drift", "noise", "parameters", "scheme", "backend", "bounds",
             "initial", "name", "dim", "state_shape"}


def _as_params(parameters: Mapping[str, Any] | None) -> dict[str, float]:
    if parameters is None:
        return {}
    if not isinstance(parameters, Mapping):
        raise TypeError(f"parameters must be a mapping name -> number, got "
                        f"{type(parameters).__name__}")
    out = {}
    for k, v in parameters.items():
        if not isinstance(k, str) or not k.isidentifier():
            raise ValueError(f"parameters: names must be Python identifiers, got {k!r}")
        if k in _RESERVED or k.startswith("_") or hasattr(SDE, k):
            raise ValueError(f"parameters: the name {k!r} is reserved (an SDE attribute)")
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise TypeError(f"parameters[{k!r}] must be a real number, got "
                            f"{type(v).__name__}")
        if not math.isfinite(float(v)):
            raise ValueError(f"parameters[{k!r}] must be finite, got {v}")
        out[k] = float(v)
    return out


class SDE(System):
    """A stochastic system from a user's drift and noise (Ito):
    :math:`dx = F(x; \\theta)\\,dt + g(x; \\theta)\\,dW`.

    Parameters
    ----------
    drift : callable
        ``drift(x, p)``: ``x`` of shape (n, ``*state_shape``), ``p`` a mapping of the
        parameter values; returns (n, ``*state_shape``), state units per time unit.
        Written with numpy operations (``np.stack``, ``np.zeros_like(x)``, ``x[:, 0]``,
        ``np.tanh``, ``x @ A``); value-dependent branches make it untraceable (slower
        back end, numerical derivatives).
    noise : callable, float or array_like
        Coefficients of :math:`dW` (Ito). A callable ``noise(x, p)`` returns the
        diagonal (n, ``*state_shape``), the full matrix (n, d, m) with m Wiener
        processes, or a scalar (the same on every coordinate). A number, a (d,) array
        (diagonal) or a (d, m) array is additive noise independent of the parameters.
    parameters : mapping, optional
        Parameter names and values (``{"F": 0.6, "a": -0.0222}``), available as
        ``p["F"]`` in the functions and as attributes (``sde.F``).
    dt : float
        Time step (time units).
    dim : int, optional
        State dimension d (for vector states). Default: from a constant noise array, or
        the unique d for which the drift returns (n, d).
    state_shape : tuple of int, optional
        Shape of one state, e.g. ``(16, 16)`` for a field (instead of ``dim``).
    initial : array_like or callable, optional
        Starting state of spin-ups, shape ``state_shape``, or ``initial(rng)`` returning
        one. Default: zeros.
    scheme : {"auto", "euler", "heun"}
        Euler-Maruyama (any noise), or stochastic Heun (predictor-corrector; additive
        noise only: weak order 2, strong order 1). ``"auto"``: Heun when the noise is
        provably additive (a constant, or traced expressions free of the state), else
        Euler-Maruyama. Both draw the m normals of a step in the order of the Wiener
        processes (zero diagonal coefficients draw none, with the traced back end).
    backend : {"auto", "traced", "jit", "python"}
        How the integrator is built (:mod:`gfdt.systems._sde_kernels`). ``"auto"``:
        traced if possible, else jit, else python (with a warning).
    bounds : (array_like, array_like), optional
        Lower and upper bounds of every coordinate (broadcast to ``state_shape``); a
        state outside raises :class:`~gfdt.SimulationDiverged`.
    divergence_threshold : float
        States whose max-norm exceeds it are diverged.
    exact_score : callable, optional
        ``exact_score(x, p)``: the known score of the stationary density (n,
        ``*state_shape``). One-dimensional models have it without this, from the
        zero-flux density: :math:`s = (F - D')/D`, :math:`D = g^2/2`.
    name : str
        long_name of the state in datasets.

    Attributes
    ----------
    backend_ : str
        The back end in use (after the first compilation or derivative).
    sensitivity_parameters : tuple of str
        Every parameter (derivatives need no user code).

    Examples
    --------
    >>> import numpy as np
    >>> from gfdt.systems import SDE
    >>> ou = SDE(drift=lambda x, p: -p["k"] * x, noise=lambda x, p: p["s"],
    ...          parameters={"k": 1.0, "s": 0.5}, dt=0.01, dim=2)
    >>> ou.state_shape, ou.k, ou.scheme
    ((2,), 1.0, 'heun')
    """

    rebuildable: ClassVar[bool] = False
    homogeneous: ClassVar[bool] = False

    def __init__(self, drift: Callable, noise: Any, parameters: Mapping[str, Any] | None = None,
                 *, dt: float, dim: int | None = None,
                 state_shape: tuple[int, ...] | None = None, initial: Any = None,
                 scheme: str = "auto", backend: str = "auto", bounds: Any = None,
                 divergence_threshold: float = 1e8, exact_score: Callable | None = None,
                 name: str = "state", _model: Model | None = None) -> None:
        if not callable(drift):
            raise TypeError(f"drift must be a callable drift(x, p), got {type(drift).__name__}")
        if isinstance(noise, (str, bytes)) or noise is None:
            raise TypeError("noise must be a callable noise(x, p), a number or an array")
        params = _as_params(parameters)
        if isinstance(dt, bool) or not isinstance(dt, (int, float, np.integer, np.floating)):
            raise TypeError(f"dt must be a number, got {type(dt).__name__}")
        if not (math.isfinite(float(dt)) and dt > 0):
            raise ValueError(f"dt must be finite and > 0, got {dt}")
        if not isinstance(scheme, str) or scheme.lower() not in SCHEMES:
            raise ValueError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
        if not isinstance(backend, str) or backend.lower() not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if exact_score is not None and not callable(exact_score):
            raise TypeError("exact_score must be a callable exact_score(x, p) or None")
        if not (isinstance(divergence_threshold, (int, float)) and divergence_threshold > 0):
            raise ValueError(f"divergence_threshold must be > 0, got {divergence_threshold!r}")
        shape = self._shape(drift, noise, params, dim, state_shape)
        set_ = object.__setattr__
        set_(self, "n", int(np.prod(shape)))  # the size: pixel (0, 0) checks pass
        set_(self, "dt", float(dt))
        set_(self, "_params", params)
        set_(self, "_shape_", shape)
        set_(self, "_initial", initial)
        set_(self, "_scheme_req", scheme.lower())
        set_(self, "_bounds", self._check_bounds(bounds, shape))
        set_(self, "divergence_threshold", float(divergence_threshold))
        set_(self, "_exact", exact_score)
        set_(self, "_name", str(name))
        if _model is None:
            _model = Model(drift, noise, shape, tuple(params), backend.lower())
        set_(self, "_model", _model)
        if self._scheme_req == "heun" and not self._provably_additive():
            raise ValueError("scheme='heun' needs additive noise: give the noise as a "
                             "constant, or as a traceable function of the parameters only")

    # ------------------------------------------------------------------ basics
    @staticmethod
    def _shape(drift, noise, params, dim, state_shape) -> tuple[int, ...]:
        if dim is not None and state_shape is not None:
            raise ValueError("give dim or state_shape, not both")
        if state_shape is not None:
            shape = tuple(int(v) for v in np.atleast_1d(state_shape))
        elif dim is not None:
            if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
                raise ValueError(f"dim must be a positive int, got {dim!r}")
            shape = (int(dim),)
        else:
            shape = infer_shape(drift, noise, params)
        if not shape or any(v < 1 for v in shape):
            raise ValueError(f"state_shape must be positive sizes, got {shape}")
        return shape

    @staticmethod
    def _check_bounds(bounds, shape) -> tuple[np.ndarray, np.ndarray]:
        d = int(np.prod(shape))
        if bounds is None:
            return np.full(d, -np.inf), np.full(d, np.inf)
        try:
            lo, hi = bounds
        except (TypeError, ValueError):
            raise TypeError("bounds must be a pair (lower, upper)") from None
        lo = np.broadcast_to(np.asarray(lo, dtype=float), shape).reshape(d).copy()
        hi = np.broadcast_to(np.asarray(hi, dtype=float), shape).reshape(d).copy()
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo >= hi):
            raise ValueError("bounds: every lower bound must be below its upper bound")
        return lo, hi

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"SDE is immutable; use with_parameters({name}=...)")

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("_"):
            params = self.__dict__.get("_params", {})
            if name in params:
                return params[name]
        raise AttributeError(f"{type(self).__name__!r} has no attribute {name!r}")

    def __repr__(self) -> str:
        ps = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return (f"SDE(state_shape={self._shape_}, {ps}{', ' if ps else ''}dt={self.dt!r}, "
                f"scheme={self.scheme!r})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SDE):
            return NotImplemented
        return (self._model is other._model and self._params == other._params
                and self.dt == other.dt and self.scheme == other.scheme)

    def __hash__(self) -> int:
        return hash((id(self._model), tuple(self._params.items()), self.dt))

    def __reduce__(self):
        return _rebuild, (self._model, self._state())

    def _state(self) -> dict:
        return {"parameters": dict(self._params), "dt": self.dt,
                "state_shape": self._shape_, "initial": self._initial,
                "scheme": self._scheme_req, "bounds": self._bounds,
                "divergence_threshold": self.divergence_threshold,
                "exact_score": self._exact, "name": self._name}

    # --------------------------------------------------------------- metadata
    @property
    def state_shape(self) -> tuple[int, ...]:
        return self._shape_

    @property
    def state_dims(self) -> tuple[str, ...]:
        if len(self._shape_) == 1:
            return ("state",)
        if len(self._shape_) == 2:
            return ("y", "x")
        return tuple(f"dim_{i}" for i in range(len(self._shape_)))

    def coords(self) -> dict[str, tuple]:
        return {d: (d, np.arange(n), {"long_name": f"state index ({d})"})
                for d, n in zip(self.state_dims, self._shape_, strict=True)}

    @property
    def d(self) -> int:
        """Number of state coordinates."""
        return int(np.prod(self._shape_))

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(self._params)

    @property
    def sensitivity_parameters(self) -> tuple[str, ...]:
        return tuple(self._params)

    def parameters(self) -> dict[str, Any]:
        """The named parameters (name -> value)."""
        return dict(self._params)

    def attrs(self) -> dict[str, Any]:
        out = {"gfdt_system": "SDE", "gfdt_parameters": json.dumps(self._params),
               "gfdt_homogeneous": 0, "gfdt_dt": self.dt, "gfdt_scheme": self.scheme,
               "gfdt_state_shape": json.dumps(list(self._shape_))}
        for k, v in self._params.items():
            out[f"gfdt_{k}"] = v
        return out

    @property
    def long_name(self) -> str:  # type: ignore[override]
        return self._name

    @property
    def scheme(self) -> str:
        """The integration scheme in use: ``"euler"`` or ``"heun"``."""
        if self._scheme_req == "auto":
            return "heun" if self._provably_additive() else "euler"
        return self._scheme_req

    def _provably_additive(self) -> bool:
        if not callable(self._model.noise):
            return True
        tr = self._model.trace()
        return tr is not None and tr.additive

    @property
    def normals_per_step(self) -> int:
        tr = self._model.trace()
        if tr is None:
            return self._noise_layout()[1]
        if tr.noise is None:
            return sum(1 for e in tr.noise_diag if e != 0)
        return int(tr.m)

    @property
    def gaussian(self) -> bool:  # type: ignore[override]
        """Linear drift and additive noise (traced): a Gaussian stationary law."""
        tr = self._model.trace()
        return tr is not None and tr.additive and tr.affine_drift()

    @property
    def backend_(self) -> str:
        return self._backend()

    def derivative_method(self) -> str:
        """``"symbolic"`` (traced functions) or ``"central differences"``; the
        parameter steps of the latter in :meth:`derivative_steps`."""
        return self._model.derivatives().method

    def derivative_steps(self) -> dict[str, float]:
        """Central-difference steps used so far per parameter (empty when symbolic)."""
        return self._model.derivatives().steps()

    # --------------------------------------------------------------- dynamics
    def _pvec(self) -> np.ndarray:
        return np.array(list(self._params.values()), dtype=float)

    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        init = self._initial
        u = init(rng) if callable(init) else (np.zeros(self._shape_) if init is None
                                              else init)
        u = np.array(u, dtype=float).reshape(self._shape_)
        if not np.all(np.isfinite(u)):
            raise ValueError("initial contains NaN or inf")
        return u, np.zeros(0)

    def _noise_layout(self) -> tuple[int, int, np.ndarray]:
        """(kind, m, gconst) of the jit/python kernels (see ``_sde_kernels._generic``)."""
        d, g = self.d, self._model.noise
        if not callable(g):
            a = np.asarray(g, dtype=float)
            if a.ndim == 0:
                G = float(a) * np.eye(d)
            elif a.size == d and a.ndim <= len(self._shape_):
                G = np.diag(a.reshape(d))
            elif a.ndim == 2 and a.shape[0] == d:
                G = a.copy()
            else:
                raise ValueError(f"noise: a constant must be a number, ({d},) or ({d}, m), "
                                 f"got shape {a.shape}")
            return 3, G.shape[1], np.ascontiguousarray(G)
        u, _ = self.initial_state(np.random.default_rng(0))
        x = np.repeat(u[None], 2, axis=0)
        with np.errstate(all="ignore"):
            out = np.asarray(g(x, dict(self._params)), dtype=float)
        empty = np.zeros((1, 1))
        if out.ndim == 0:
            return 2, d, empty
        if out.shape == (2, *self._shape_):
            return 0, d, empty
        if out.ndim == 3 and out.shape[:2] == (2, d):
            return 1, out.shape[2], empty
        raise ValueError(f"noise returned shape {out.shape} for a batch of 2 states; expected "
                         f"(2, {', '.join(map(str, self._shape_))}), (2, {d}, m) or a scalar")

    def _backend(self) -> str:
        m = self._model
        if m._backend is None:
            if m.trace() is not None:
                m._backend = "traced"
            elif m.requested == "python":
                m._backend = "python"
            else:
                m._backend = self._try_jit()
        return m._backend

    def _try_jit(self) -> str:
        """Compile the user functions with numba and run one step; "python" on failure."""
        import numba as nb

        m = self._model
        try:
            kind, mm, G = self._noise_layout()
            fd = nb.njit(m.drift)
            fn = nb.njit(m.noise) if callable(m.noise) else fd
            m._jitted = (fd, fn, kind, mm, G)
            u, aux = self.initial_state(np.random.default_rng(0))
            self._kernel("jit")(u, aux, 1, 0, np.empty((0, *self._shape_)), np.empty((0, 0)),
                           np.random.default_rng(0), self.divergence_threshold,
                           *self._kernel_args(backend="jit"))
            logger.info("SDE: functions not traceable (%s); compiled with numba.njit",
                        m.trace_error)
            return "jit"
        except Exception as exc:
            m._jitted = None
            if m.requested == "jit":
                raise ValueError(f"backend='jit': numba cannot compile the functions: "
                                 f"{type(exc).__name__}: {str(exc)[:300]}") from None
            warnings.warn(f"SDE: the drift/noise can be neither traced ({m.trace_error}) nor "
                          f"compiled by numba ({type(exc).__name__}); running them in Python, "
                          "which is orders of magnitude slower", RuntimeWarning, stacklevel=4)
            return "python"

    def _kernel(self, backend: str | None = None) -> Callable[..., int]:
        from gfdt.systems import _sde_kernels as K

        m = self._model
        backend = backend or self._backend()
        if backend == "traced":
            key = f"traced-{self.scheme}"
            if key not in m._kernels:
                m._kernels[key] = K.compile_traced(K.traced_source(m.trace(), self.scheme))
            return m._kernels[key]
        if backend == "jit":
            return K.generic_kernel(m._jitted[2])
        return K.python_kernel

    def _kernel_args(self, backend: str | None = None) -> tuple:
        backend = backend or self._backend()
        lo, hi = self._bounds
        if backend == "traced":
            return (self._pvec(), self.dt, lo, hi)
        heun = self.scheme == "heun"
        if backend == "jit":
            fd, fn, kind, mm, G = self._model._jitted
            rec = np.zeros(1, dtype=[(k, "f8") for k in self._params] or [("_", "f8")])
            for k, v in self._params.items():
                rec[k] = v
            return (rec[0], self.dt, lo, hi, fd, fn, kind, mm, G, heun)
        kind, mm, G = self._noise_layout()
        return (dict(self._params), self.dt, lo, hi, self._model.drift, self._model.noise,
                kind, mm, G, heun)

    # ------------------------------------------------------------ evaluation
    def _states(self, u) -> np.ndarray:
        u = np.asarray(u, dtype=float)
        if u.shape[-len(self._shape_):] != self._shape_ or u.ndim == len(self._shape_):
            if u.shape == self._shape_:
                u = u[None]
            else:
                raise ValueError(f"u must have shape (m, {', '.join(map(str, self._shape_))}),"
                                 f" got {u.shape}")
        return u

    def drift(self, u: np.ndarray) -> np.ndarray:
        """The user's drift at states ``u`` (m, ``*state_shape``) and these parameters."""
        u = self._states(u)
        out = np.asarray(self._model.drift(u, dict(self._params)), dtype=float)
        return out.reshape(u.shape)

    def diffusion(self, u: np.ndarray) -> np.ndarray:
        """:math:`D = g g^T/2` at states ``u``: (m, d) for diagonal, (m, d, d) for full
        noise."""
        from gfdt.systems._sde_derivatives import NumericDerivatives

        u = self._states(u)
        nd = NumericDerivatives(self._model.drift, self._model.noise, self.parameter_names,
                                self._shape_)
        return nd._D(u.reshape(u.shape[0], -1), dict(self._params))

    def drift_derivative(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\partial F/\\partial\\theta` at states ``u`` (symbolic, or central
        differences with the step in :meth:`derivative_steps`)."""
        self.check_parameter(parameter)
        u = self._states(u)
        out = self._model.derivatives().drift_derivative(u.reshape(u.shape[0], -1),
                                                         self._pvec(), parameter)
        return out.reshape(u.shape)

    def drift_derivative_divergence(self, u: np.ndarray, parameter: str) -> np.ndarray | None:
        """:math:`\\nabla\\cdot\\partial F/\\partial\\theta` (symbolic), or None (numerical,
        by the estimator) for untraceable functions."""
        self.check_parameter(parameter)
        u = self._states(u)
        return self._model.derivatives().drift_divergence(u.reshape(u.shape[0], -1),
                                                          self._pvec(), parameter)

    def _dD(self, parameter: str) -> Any:
        self.check_parameter(parameter)
        return self._model.derivatives().diffusion(parameter, self._pvec())

    def diffusion_derivative(self, parameter: str) -> np.ndarray | None:
        """:math:`\\partial D/\\partial\\theta` when constant in the state ((d,) or (d, d)),
        else None (see :meth:`diffusion_derivative_field`)."""
        dD = self._dD(parameter)
        return dD if isinstance(dD, np.ndarray) else None

    def diffusion_derivative_field(self, parameter: str) -> Any:
        """:math:`\\partial D/\\partial\\theta` when it depends on the state: a
        :class:`~gfdt.response.DiffusionField` with its divergences, else None."""
        dD = self._dD(parameter)
        return None if dD is None or isinstance(dD, np.ndarray) else dD

    # ----------------------------------------------------------- closed forms
    @property
    def has_exact_score(self) -> bool:  # type: ignore[override]
        return self._exact is not None or self.d == 1

    def exact_score(self, u: np.ndarray) -> np.ndarray:
        """The score of the stationary density: the user's ``exact_score``, or for d = 1
        the zero-flux :math:`s = (F - D')/D` (:mod:`gfdt.systems._sde_1d`)."""
        u = self._states(u)
        if self._exact is not None:
            return np.asarray(self._exact(u, dict(self._params)), dtype=float).reshape(u.shape)
        if self.d != 1:
            raise NotImplementedError("this SDE has no closed-form score: pass exact_score=")
        from gfdt.systems._sde_1d import score_1d

        return score_1d(self, u.reshape(-1)).reshape(u.shape)

    def stationary_density(self, grid: np.ndarray) -> np.ndarray:
        """1-D models: the zero-flux stationary density on ``grid`` (see
        :func:`gfdt.systems._sde_1d.stationary_density`)."""
        from gfdt.systems._sde_1d import stationary_density

        return stationary_density(self, grid)

    def stationary_sensitivity(self, observables: Any, grid: np.ndarray,
                               parameters: Any = None) -> np.ndarray:
        """1-D models: the exact :math:`\\partial\\langle A\\rangle/\\partial\\theta` by
        quadrature (see :func:`gfdt.systems._sde_1d.stationary_sensitivity`)."""
        from gfdt.systems._sde_1d import stationary_sensitivity

        return stationary_sensitivity(self, observables, grid, parameters)

    # --------------------------------------------------------------- variants
    def with_parameters(self, **changes: Any) -> SDE:
        """A copy with some parameters (or ``dt``) changed; the compiled integrator and
        derivatives are shared.

        Raises
        ------
        ValueError
            A name that is neither a parameter nor ``dt``.
        """
        bad = sorted(set(changes) - set(self._params) - {"dt"})
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not a parameter of this SDE "
                             f"(parameters: {', '.join(self._params) or 'none'}, dt)")
        state = self._state()
        state["dt"] = changes.pop("dt", self.dt)
        state["parameters"] = {**self._params, **changes}
        return _rebuild(self._model, state)


def _rebuild(model: Model, state: dict) -> SDE:
    state = dict(state)
    return SDE(model.drift, model.noise, state.pop("parameters"), _model=model,
               backend=model.requested, **state)
