"""Input checks and the progress bar shared by the samplers of :mod:`gfdt.sampling`."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gfdt._progress import tqdm
from gfdt.scores.base import score_output


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
