"""The contract every score estimator follows (scikit-learn style)."""

from __future__ import annotations

import inspect
import pickle
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ScoreEstimator", "as_samples"]


def as_samples(X, name: str = "X") -> np.ndarray:
    """Validate a batch of samples, shape (n_samples, *state), as float64."""
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a numeric array of shape (n_samples, ...)") from None
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (n_samples, *state), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


class ScoreEstimator:
    """Base class of score estimators.

    ``__init__`` stores parameters only; :meth:`fit` learns from samples and returns
    ``self``; learned attributes end in ``_``; :meth:`score` (or calling the object)
    returns :math:`\\nabla \\log p` at a batch of points, in the data's own units.
    """

    def fit(self, X) -> ScoreEstimator:  # pragma: no cover - interface
        raise NotImplementedError

    def score(self, x) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, x) -> np.ndarray:
        return self.score(x)

    # ------------------------------------------------------------ sklearn bits
    def get_params(self) -> dict[str, Any]:
        """Constructor parameters and their current values."""
        sig = inspect.signature(type(self).__init__)
        return {p: getattr(self, p) for p in sig.parameters if p != "self"}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @property
    def is_fitted(self) -> bool:
        """True once :meth:`fit` has set learned attributes (names ending in ``_``)."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(f"{type(self).__name__} is not fitted yet; call fit(X) first")

    def _check_input(self, x, state_shape: tuple[int, ...]) -> tuple[np.ndarray, bool]:
        """Return x as (batch, *state) float64 and whether a single state was given."""
        arr = np.asarray(x, dtype=float)
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
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            pickle.dump({"class": type(self).__name__, "state": vars(self)}, fh)
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path) -> ScoreEstimator:
        """Read an estimator written by :meth:`save`."""
        with open(path, "rb") as fh:
            blob = pickle.load(fh)
        if blob.get("class") != cls.__name__:
            raise ValueError(f"{path} holds a {blob.get('class')}, not a {cls.__name__}")
        obj = cls.__new__(cls)
        vars(obj).update(blob["state"])
        return obj
