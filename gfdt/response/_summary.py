"""Plain-text summaries of fitted response estimators (``summary()``)."""

from __future__ import annotations

import numpy as np

from gfdt.scores.base import NotFittedError

__all__ = ["summary"]


def summary(est) -> str:
    """Data, score, lags, bootstrap and memory plan of a fitted estimator, as text.

    Raises
    ------
    gfdt.scores.NotFittedError
        Before ``fit``.
    """
    name = type(est).__name__
    if not hasattr(est, "response_"):
        raise NotFittedError(f"this {name} is not fitted yet: call fit() first")
    r = est.response_
    lines = [f"{name}: score {est._method()!r}, {int(est.n_samples_)} states, "
             f"max_lag {r.sizes['lag'] - 1} samples, response dims {tuple(r.dims)}"]
    stein = getattr(est, "stein_error_", None)
    if stein is not None and np.isfinite(stein):
        lines.append(f"  Stein error |R(0) - I|: {stein:.3g}")
    se = getattr(est, "response_stderr_", None)
    if se is None:
        lines.append("  bootstrap: off (no standard errors)")
    else:
        n_blocks = se.attrs.get("n_blocks")
        nan = bool(np.all(np.isnan(se.values)))
        lines.append(f"  bootstrap: {se.attrs.get('n_bootstrap')} replicates of "
                     f"{n_blocks} blocks of {est.block_length_} samples"
                     + (" (standard errors NaN: fewer than 2 blocks)" if nan else ""))
    eof = getattr(est, "reduce_", None)
    if eof is not None:  # the GFDT ran on EOF principal components
        lines.append("  reduce: " + eof.summary().replace("\n", "\n    "))
    plan = getattr(est, "memory_plan_", None)
    if plan is not None:
        lines.append("  " + plan.describe())
    timings = getattr(est, "timings_", None)
    if timings:
        lines.append("  time: " + ", ".join(f"{k} {v:.3g}" for k, v in timings.items()))
    return "\n".join(lines)
