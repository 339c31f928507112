"""The interface every gfdt system implements."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from gfdt.conventions import attrs as cf_attrs
from gfdt.systems._spectral import _check_n, coordinates

__all__ = ["SimulationDiverged", "System"]


class SimulationDiverged(RuntimeError):
    """A simulation produced a non-finite or exploding state.

    Attributes
    ----------
    step : int
        Index of the time step (counted from the start of the run, burn-in included)
        at or before which the state was found bad.
    time : float
        Model time of that step.
    member : int
        Ensemble member in which it happened.
    """

    def __init__(self, step: int, time: float, member: int, detail: str = "") -> None:
        self.step = int(step)
        self.time = float(time)
        self.member = int(member)
        self.detail = detail
        msg = (
            f"simulation diverged in member {member} at step {step} (t = {time:g}): "
            "the state became non-finite or exceeded the divergence threshold"
        )
        if detail:
            msg += f"; {detail}"
        msg += ". Reduce dt or check the parameters; data already written is kept."
        super().__init__(msg)

    def __reduce__(self):
        # pickled by its fields (Dask workers send it back to the caller)
        return type(self), (self.step, self.time, self.member, self.detail)


#: System classes by name, filled as they are defined (for :func:`system_from_attrs`).
_SYSTEMS: dict[str, type] = {}


@dataclasses.dataclass(frozen=True)
class System:
    """Base class of gfdt's stochastic systems: a frozen set of parameters.

    Subclasses are frozen dataclasses of their physical parameters plus the grid size
    ``n`` and the time step ``dt``. They provide a compiled step kernel through
    :meth:`_kernel` / :meth:`_kernel_args` and, where known, closed forms.

    Parameters
    ----------
    n : int
        Grid points per direction (even, >= 4).
    dt : float
        Time step, in the model's time unit.
    """

    n: int = 32
    dt: float = 1.0 / 32.0

    #: Name of the data variable in datasets.
    variable: ClassVar[str] = "u"
    #: CF long_name of the field.
    long_name: ClassVar[str] = "field"
    #: CF units of the field (nondimensional by default).
    units: ClassVar[str] = "1"
    #: Whether the statistics are translation invariant on the periodic grid.
    homogeneous: ClassVar[bool] = True
    #: States whose max-norm exceeds this are treated as diverged.
    divergence_threshold: ClassVar[float] = 1e6
    #: (forward, inverse) real 2-D transforms and standard-normal (n, n) fields one time
    #: step needs: the cost model of benchmarks/solvers.py (whose RNG part counts scalar
    #: draws, :attr:`normals_per_step`).
    transforms_per_step: ClassVar[tuple[int, int, int]] = (0, 0, 0)

    #: Parameters whose sensitivities gfdt can estimate (:meth:`drift_derivative`,
    #: :meth:`diffusion_derivative`); empty when the system implements none.
    sensitivity_parameters: ClassVar[tuple[str, ...]] = ()
    #: Whether the stationary law is Gaussian (linear drift, additive noise): the exact
    #: score is then affine in the state and its Jacobian constant.
    gaussian: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _SYSTEMS.setdefault(cls.__name__, cls)

    # ------------------------------------------------------------------ checks
    def __post_init__(self) -> None:
        self._check_grid()
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "n" or not f.init:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise TypeError(f"{f.name} must be a real number, got {type(v).__name__}")
            if not math.isfinite(float(v)):
                raise ValueError(f"{f.name} must be finite, got {v}")
        if self.dt <= 0:
            raise ValueError(f"dt must be > 0, got {self.dt}")

    def _check_grid(self) -> None:
        """Validate the state size (here the grid size ``n``)."""
        _check_n(self.n)

    # -------------------------------------------------------------- metadata
    @property
    def state_shape(self) -> tuple[int, int]:
        """Shape ``(n, n)`` of the observed field, dims ``("y", "x")``."""
        return (self.n, self.n)

    @property
    def state_dims(self) -> tuple[str, ...]:
        """Names of the state axes in datasets (``("y", "x")`` for fields)."""
        return ("y", "x")

    @property
    def n_aux(self) -> int:
        """Length of the hidden (unobserved) state carried beside the field."""
        return 0

    @property
    def normals_per_step(self) -> int:
        """Scalar standard normals one time step draws from the generator (the RNG part
        of the cost model of benchmarks/solvers.py)."""
        return 0

    def parameters(self) -> dict[str, Any]:
        """All constructor fields as a plain dict (floats and ints)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def attrs(self) -> dict[str, Any]:
        """netCDF-safe attributes describing the system (enough to rebuild it)."""
        out: dict[str, Any] = {
            "gfdt_system": type(self).__name__,
            "gfdt_parameters": json.dumps(self.parameters()),
            "gfdt_homogeneous": int(self.homogeneous),
        }
        for k, v in self.parameters().items():
            out[f"gfdt_{k}"] = v
        return out

    def coords(self) -> dict[str, tuple]:
        """xarray coordinates of the grid (``y``, ``x`` in ``[0, 2 pi)``)."""
        c = coordinates(self.n)
        return {d: (d, c, cf_attrs("grid_position", dim=d, axis=d.upper())) for d in ("y", "x")}

    # ------------------------------------------------------------- dynamics
    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A starting state for spin-up: the field and the hidden state.

        The default is a zero field and an empty hidden state.
        """
        return np.zeros(self.state_shape), np.zeros(self.n_aux)

    def _kernel(self) -> Callable[..., int]:
        """The compiled integrator.

        Signature
        ``kernel(u, aux, n_steps, save_every, out, aux_out, rng, threshold, *args)``:
        advance ``u`` (n, n) and ``aux`` (n_aux,) in place by ``n_steps`` steps using
        draws from ``rng`` only; after every ``save_every`` steps store ``u`` in
        ``out[j]`` and ``aux`` in ``aux_out[j]``. Return -1 on success or the number of
        steps done when the state was found non-finite or above ``threshold``.
        """
        raise NotImplementedError

    def _kernel_args(self) -> tuple:
        """Extra (precomputed) arguments passed to the kernel after ``threshold``."""
        return ()

    def stable_dt(self) -> float:
        """A conservative estimate of the largest stable time step (inf if none)."""
        return math.inf

    # ---------------------------------------------------------- closed forms
    def exact_score(self, u: np.ndarray) -> np.ndarray:
        """Score of the exact stationary density (not available for every system)."""
        raise NotImplementedError(f"{type(self).__name__} has no closed-form score")

    @property
    def has_exact_score(self) -> bool:
        return type(self).exact_score is not System.exact_score

    # ---------------------------------------------------------- sensitivities
    def _no_sensitivity(self, what: str) -> NotImplementedError:
        names = ", ".join(self.sensitivity_parameters) or "none"
        return NotImplementedError(
            f"{type(self).__name__} does not implement {what} (its sensitivity_parameters: "
            f"{names})")

    def check_parameter(self, parameter: str) -> str:
        """``parameter`` if it is one of :attr:`sensitivity_parameters`, else an error.

        Raises
        ------
        TypeError
            ``parameter`` is not a str.
        ValueError
            Unknown parameter; the message lists the known ones.
        """
        if not isinstance(parameter, str):
            raise TypeError(f"parameter must be a str, got {type(parameter).__name__}")
        if parameter not in self.sensitivity_parameters:
            names = ", ".join(self.sensitivity_parameters) or "none"
            raise ValueError(f"parameter {parameter!r} is not a sensitivity parameter of "
                             f"{type(self).__name__} (known: {names})")
        return parameter

    def drift(self, u: np.ndarray) -> np.ndarray:
        """Deterministic drift :math:`F(u)` of the observed state.

        Parameters
        ----------
        u : numpy.ndarray, shape (m, ``*state_shape``)

        Returns
        -------
        numpy.ndarray, same shape
            State units per time unit.
        """
        raise self._no_sensitivity("drift")

    def drift_derivative(self, u: np.ndarray, parameter: str) -> np.ndarray:
        """:math:`\\partial F / \\partial\\theta` at states ``u``.

        Parameters
        ----------
        u : numpy.ndarray, shape (m, ``*state_shape``)
        parameter : str
            One of :attr:`sensitivity_parameters`.

        Returns
        -------
        numpy.ndarray, same shape as ``u``
            State units per time unit per unit of the parameter (zeros when the drift
            does not depend on it).
        """
        raise self._no_sensitivity("drift_derivative")

    def drift_derivative_divergence(self, u: np.ndarray, parameter: str) -> np.ndarray | None:
        """:math:`\\nabla\\cdot(\\partial F / \\partial\\theta)` at ``u``, shape (m,), or None.

        Optional: None (the default) means "not known in closed form"; the sensitivity
        estimator then computes the divergence numerically.
        """
        return None

    def diffusion_derivative(self, parameter: str) -> np.ndarray | None:
        """:math:`\\partial D / \\partial\\theta`, :math:`D = \\Sigma\\Sigma^T / 2`.

        The noise is additive (:math:`D` constant in the state).

        Returns
        -------
        numpy.ndarray or None
            Shape (d,) (a diagonal over the flattened state, ``d = prod(state_shape)``)
            or (d, d); None when the noise does not depend on ``parameter``.
        """
        raise self._no_sensitivity("diffusion_derivative")

    def diffusion_derivative_field(self, parameter: str) -> Any:
        """:math:`\\partial D/\\partial\\theta` when it depends on the state: a
        :class:`~gfdt.response.DiffusionField`, or None (the default: constant or no
        dependence, see :meth:`diffusion_derivative`)."""
        return None

    def with_parameters(self, **changes: Any) -> System:
        """A copy with some parameters changed (validated like the constructor).

        Raises
        ------
        ValueError
            A name that is not a parameter of the system.
        """
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(changes) - names)
        if bad:
            raise ValueError(f"{', '.join(map(repr, bad))} not a parameter of "
                             f"{type(self).__name__} (parameters: {', '.join(sorted(names))})")
        return dataclasses.replace(self, **changes)

    # -------------------------------------------------------------- helpers
    def _steps(self, interval: float, name: str) -> int:
        """Number of steps in ``interval`` time units; it must be a multiple of dt."""
        if isinstance(interval, bool) or not isinstance(interval, (int, float, np.number)):
            raise TypeError(f"{name} must be a number of time units, got {type(interval).__name__}")
        interval = float(interval)
        if not math.isfinite(interval) or interval < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {interval}")
        k = round(interval / self.dt)
        if abs(k * self.dt - interval) > 1e-9 * max(1.0, interval):
            raise ValueError(
                f"{name} = {interval} is not a multiple of dt = {self.dt}; "
                f"use e.g. {k * self.dt}"
            )
        return int(k)


def system_from_attrs(attrs: dict[str, Any]) -> System:
    """Rebuild a system from the attributes :meth:`System.attrs` wrote.

    Raises
    ------
    ValueError
        If the attributes do not name a gfdt system.
    """
    name = attrs.get("gfdt_system")
    params = attrs.get("gfdt_parameters")
    if name is None or params is None:
        raise ValueError(
            "the data carry no gfdt system attributes ('gfdt_system', 'gfdt_parameters'); "
            "pass the system explicitly"
        )
    cls = _SYSTEMS.get(str(name))
    if not (isinstance(cls, type) and issubclass(cls, System)):
        raise ValueError(f"unknown gfdt system {name!r} in the data attributes")
    if not getattr(cls, "rebuildable", True):
        raise ValueError(f"a {name} system holds user functions and cannot be rebuilt from "
                         "the data attributes; pass it explicitly (system=...)")
    return cls(**json.loads(params))
