"""The contract every score estimator follows (scikit-learn style)."""

from __future__ import annotations

import functools
import inspect
import math
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gfdt._atomic import atomic_path
from gfdt.data import Trajectories

__all__ = ["NotFittedError", "ScoreEstimator", "as_points", "as_samples", "check_flag",
           "check_number", "get_score_class", "load_blob", "register_score", "score_names",
           "score_output"]


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before :meth:`fit` (one type for every gfdt estimator).

    It derives from ``ValueError`` and ``AttributeError``, as scikit-learn's
    ``NotFittedError`` does, so existing ``except ValueError`` handlers keep working.
    """


# ----------------------------------------------------------------- registry
#: name -> estimator class; filled by the estimators themselves (``@register_score``).
_REGISTRY: dict[str, type] = {}

#: Modules holding registered estimators, imported on the first look-up of a name that is
#: not registered yet (this keeps ``import gfdt`` free of torch).
_ESTIMATOR_MODULES = ("gaussian", "dsm", "hsm", "hold", "kernel", "kgmm", "auto", "features")


def register_score(name: str) -> Callable[[type], type]:
    """Class decorator: make an estimator available as ``ResponseEstimator(score=name)``.

    Parameters
    ----------
    name : str
        Lower-case name; registering a second class under a name is an error.
    """
    key = name.lower()

    def decorate(cls: type) -> type:
        old = _REGISTRY.get(key)
        if old is not None and old.__qualname__ != cls.__qualname__:
            raise ValueError(f"score name {key!r} is already registered to {old.__name__}")
        _REGISTRY[key] = cls
        cls.registry_name = key
        return cls

    return decorate


def _load_all() -> None:
    import importlib

    for mod in _ESTIMATOR_MODULES:
        importlib.import_module(f"gfdt.scores.{mod}")


def get_score_class(name: str) -> type:
    """The estimator class registered under ``name`` (case-insensitive).

    Raises
    ------
    ValueError
        Unknown name; the message lists the registered ones.
    """
    if not isinstance(name, str):
        raise TypeError(f"score name must be a str, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        _load_all()
    if key not in _REGISTRY:
        raise ValueError(f"unknown score {name!r}; choose one of {', '.join(score_names())}")
    return _REGISTRY[key]


def score_names() -> tuple[str, ...]:
    """Every registered estimator name, sorted."""
    _load_all()
    return tuple(sorted(_REGISTRY))


def as_samples(X, name: str = "X") -> np.ndarray:
    """Validate a batch of samples, shape (n_samples, *state), as float64.

    A :class:`gfdt.data.Trajectories` gives its members' samples stacked.
    """
    if isinstance(X, Trajectories):
        X = X.samples()
    try:
        raw = np.asarray(X)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape (n_samples, ...)") from None
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}")
    arr = raw.astype(float)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (n_samples, *state), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def score_output(value, name: str = "score") -> np.ndarray:
    """What a score function returned, as a float64 numpy array.

    Torch tensors are accepted (detached and moved to the CPU, so a tensor that requires
    grad or lives on a GPU is fine); anything that is not a real numeric array is a
    TypeError naming ``name``.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise TypeError(f"{name} must return a real numeric array, got "
                        f"{type(value).__name__} ({exc})") from None
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must return real numbers, got dtype {arr.dtype}")
    return arr.astype(float, copy=False)


def check_number(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False, integer: bool = False,
                 optional: bool = False):
    """Validate a numeric parameter; errors name it.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        The parameter's name.
    low, high : float, optional
        Bounds (closed unless ``low_open`` / ``high_open``).
    integer : bool
        Require an int (bools are refused).
    optional : bool
        Accept None.

    Returns
    -------
    int, float or None
        The value (an int or a float).
    """
    if value is None and optional:
        return None
    if integer:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {value!r}")
        v = int(value)
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{name} must be a real number, got {value!r}")
        v = float(value)
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {value!r}")
    bad_low = low is not None and (v <= low if low_open else v < low)
    bad_high = high is not None and (v >= high if high_open else v > high)
    if bad_low or bad_high:
        if low is not None and high is not None:
            rng = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        elif low is not None:
            rng = f"{'>' if low_open else '>='} {low:g}"
        else:
            rng = f"{'<' if high_open else '<='} {high:g}"
        raise ValueError(f"{name} must be {rng}, got {value!r}")
    return v


def check_flag(value, name: str, optional: bool = False):
    """Validate a True/False parameter (None too when ``optional``); errors name it."""
    if value is None and optional:
        return None
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False{' or None' if optional else ''}, got "
                        f"{value!r}")
    return bool(value)


def as_points(x, name: str = "x") -> np.ndarray:
    """Points at which to evaluate a score: a finite real array, as float64."""
    try:
        raw = np.asarray(x)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of states") from None
    if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold real numbers, got dtype {raw.dtype}")
    arr = raw.astype(float)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def load_blob(path, cls: type, reader: Callable[[Path], Any]) -> dict:
    """Read what ``cls.save`` wrote to ``path`` with ``reader``; errors name ``path``.

    Returns
    -------
    dict
        The saved blob; its ``"class"`` entry is ``cls.__name__``.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no file {path}")
    try:
        blob = reader(path)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"path: {path} is not a saved gfdt estimator ({exc})") from None
    if not isinstance(blob, dict) or "state" not in blob:
        raise ValueError(f"path: {path} is not a saved gfdt estimator")
    if blob.get("class") != cls.__name__:
        raise ValueError(f"path: {path} holds a {blob.get('class')}, not a {cls.__name__}")
    return blob


class ScoreEstimator:
    """Base class of score estimators.

    ``__init__`` stores parameters only; :meth:`fit` learns from samples and returns
    ``self``; learned attributes end in ``_``; :meth:`score` (or calling the object)
    returns :math:`\\nabla \\log p` at a batch of points, in the data's own units.

    Every subclass's ``fit`` first checks the constructor parameters whose default is
    a number: an int default needs an int, a float default a finite real number, and
    ``seed`` must be >= 0 (a TypeError or ValueError naming the parameter). Ranges are
    the subclass's own checks.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is None or getattr(fit, "_checks_numbers", False):
            return

        @functools.wraps(fit)
        def checked_fit(self, *args, **kw):
            self._check_numeric_params()
            if args:
                self._check_fit_memory(args[0])
            return fit(self, *args, **kw)

        checked_fit._checks_numbers = True
        cls.fit = checked_fit

    def _check_numeric_params(self) -> None:
        for p in inspect.signature(type(self).__init__).parameters.values():
            d = p.default
            if p.name == "self" or isinstance(d, bool) or not isinstance(d, (int, float)):
                continue
            value = getattr(self, p.name, d)
            check_number(value, p.name, integer=isinstance(d, int),
                         low=0 if p.name == "seed" else None)

    def fit(self, X) -> ScoreEstimator:  # pragma: no cover - interface
        raise NotImplementedError

    def _check_fit_memory(self, X) -> None:
        """Plan the fit's memory before it allocates: a MemoryPlanError (a ValueError)
        when :meth:`fit_memory` exceeds the default budget (half the memory available,
        :func:`gfdt._memory.default_budget`). Inputs of unknown size (paths, Dask data)
        are not checked."""
        from gfdt._memory import check_fit_memory

        if isinstance(X, Trajectories):
            if X.lazy:
                return
            n, shape = X.n_samples, tuple(X.state_shape)
        elif isinstance(X, np.ndarray) and X.ndim >= 2:
            n, shape = X.shape[0], tuple(X.shape[1:])
        else:
            return
        need = int(self.fit_memory(n, shape))
        check_fit_memory(f"{type(self).__name__}.fit", need,
                         f"fit on a subsample of the {n} states, or on a reduced state "
                         f"(e.g. its leading EOFs) instead of {int(np.prod(shape))} values")

    @classmethod
    def fit_memory(cls, n_samples: int, state_shape: tuple[int, ...]) -> int:
        """Bytes a fit to ``n_samples`` states of ``state_shape`` holds at its peak.

        The memory plans of the response fits count it before fitting. Default: the
        samples stacked and one working copy (``2 n d`` doubles), or, for estimators
        that read the data by index (``accepts_trajectories``), a covariance and a few
        chunks of 512 states (``2 d^2 + 2048 d``); estimators that need more
        (matrices of the state's size, kernels over samples) override it.
        """
        d = int(np.prod(state_shape))
        if getattr(cls, "accepts_trajectories", False):
            return int(8 * d * (2 * d + 4 * min(n_samples, 512)))
        return int(2 * 8 * n_samples * d)

    def score(self, x) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x) -> np.ndarray:
        return self.score(x)

    # ------------------------------------------------------------ sklearn bits
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters and their current values (scikit-learn contract).

        Parameters
        ----------
        deep : bool
            Also return the parameters of nested estimators as ``name__param``.
        """
        sig = inspect.signature(type(self).__init__)
        out = {p: getattr(self, p) for p, v in sig.parameters.items()
               if p != "self" and v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD)}
        if deep:
            for k, v in list(out.items()):
                if hasattr(v, "get_params") and not isinstance(v, type):
                    out.update({f"{k}__{kk}": vv for kk, vv in v.get_params().items()})
        return out

    def set_params(self, **params: Any) -> ScoreEstimator:
        """Set constructor parameters (``name__param`` for nested estimators).

        Returns
        -------
        self
        """
        valid = self.get_params(deep=False)
        for key, value in params.items():
            head, _, rest = key.partition("__")
            if head not in valid:
                raise ValueError(f"{key!r} is not a parameter of {type(self).__name__}; "
                                 f"valid: {', '.join(sorted(valid))}")
            if rest:
                getattr(self, head).set_params(**{rest: value})
            else:
                setattr(self, head, value)
        return self

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` has set learned attributes (names ending in ``_``)."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(X) first")

    def _check_input(self, x, state_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
        """Return x as (batch, *state) float64 and whether a single state was given."""
        arr = as_points(x)
        if arr.shape == state_shape:
            return arr[None], True
        if arr.shape[1:] != state_shape:
            raise ValueError(
                f"x must have shape (batch, {', '.join(map(str, state_shape))}) "
                f"or the state shape itself, got {arr.shape}"
            )
        return arr, False

    # -------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> None:
        """Write the fitted estimator to ``path`` (pickle of its attributes)."""
        self._check_fitted()
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            pickle.dump({"class": type(self).__name__, "state": vars(self)}, fh)

    @classmethod
    def load(cls, path: str | Path) -> ScoreEstimator:
        """Read an estimator written by :meth:`save`."""
        blob = load_blob(path, cls, lambda p: pickle.loads(p.read_bytes()))
        obj = cls.__new__(cls)
        vars(obj).update(blob["state"])
        return obj
