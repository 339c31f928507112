"""The score of a GFDT fit: names, callables and estimators resolved to a fitted model."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import numpy as np

from gfdt._memory import parse_bytes, stats_block
from gfdt._progress import tqdm
from gfdt.data import Trajectories
from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator, get_score_class, score_names, score_output
from gfdt.scores.gaussian import GaussianScore
from gfdt.systems.base import System, system_from_attrs

__all__ = ["data_mean", "evaluate", "resolve_score"]


def _stats_blocks(data: Trajectories, block: int, progress: bool | None):
    bar = tqdm(total=data.n_samples, desc="GFDT statistics", unit="state", unit_scale=True,
               leave=False, disable=None if progress is None else not progress)
    try:
        for x in data.blocks(block):
            yield x
            bar.update(x.shape[0])
    finally:
        bar.close()


def _fit_gaussian(model: GaussianScore, data: Trajectories, memory_budget,
                  progress: bool | None) -> GaussianScore:
    """Fit on all samples; Dask-backed data in one streaming pass (see memory_budget).

    A homogeneous fit to in-memory data streams over the members too (in blocks
    within a given budget): no stacked copy of the data (the same estimate up to
    rounding).
    """
    budget = parse_bytes(memory_budget)
    if not data.lazy:
        if model.homogeneous and budget is None:
            return model.fit_blocks(data.members)
        if not model.homogeneous:
            return model.fit(data.samples())
    d = int(np.prod(data.state_shape))
    block = 2048 if budget is None else stats_block(budget, d, covariance=not model.homogeneous)
    return model.fit_blocks(_stats_blocks(data, block, progress))


def data_mean(data: Trajectories, model: ScoreEstimator, homogeneous: bool, memory_budget,
              progress: bool | None, streamed: bool = False) -> np.ndarray:
    """Mean of the data (a scalar for homogeneous fields), shape ``state`` or ``()``.

    In-memory data are summed member by member; Dask-backed data take the mean of a
    streamed Gaussian fit, or one streaming pass.
    """
    if not data.lazy:
        if homogeneous:
            return np.asarray(sum(m.sum() for m in data.members)
                              / sum(m.size for m in data.members))
        return sum(m.sum(axis=0) for m in data.members) / data.n_samples
    if streamed:
        return np.array(model.mean_, dtype=float)
    d = int(np.prod(data.state_shape))
    budget = parse_bytes(memory_budget)
    block = 2048 if budget is None else stats_block(budget, d, covariance=False)
    total = 0.0 if homogeneous else np.zeros(data.state_shape)
    for x in _stats_blocks(data, block, progress):
        total = total + (x.sum() if homogeneous else x.sum(axis=0))
    n = data.n_samples * (d if homogeneous else 1)
    return np.asarray(total / n)


def _exact(system: System | None, data: Trajectories) -> ScoreEstimator:
    if system is None:
        try:
            system = system_from_attrs(data.attrs)
        except ValueError as exc:
            raise ValueError(f"score='exact' needs a gfdt system: {exc}") from None
    if not isinstance(system, System):
        raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
    if not system.has_exact_score:
        raise ValueError(f"score='exact': {type(system).__name__} has no exact score")
    if tuple(data.state_shape) != system.state_shape:
        raise ValueError(f"score='exact': data state shape {data.state_shape} does not match "
                         f"{type(system).__name__}(n={system.n})")
    return AnalyticScore(system.exact_score, name="exact").fit()


def resolve_score(score, data: Trajectories, homogeneous: bool, *, system: System | None,
                  score_options: dict | None, memory_budget, progress: bool | None
                  ) -> tuple[ScoreEstimator, bool]:
    """A fitted score model from a name, a callable or a (fitted or not) estimator.

    Returns the model and whether it is a Gaussian fitted here by streaming over
    Dask-backed ``data`` (its mean is then the data mean).

    Names come from the score registry (plus ``"exact"``: the closed form of the gfdt
    system that made the data, or of ``system``). An unfitted estimator, or one
    created from a name with ``score_options``, is fitted on ``data`` here.
    """
    if isinstance(score, str):
        name = score.lower()
        if name == "exact":
            return _exact(system, data), False
        cls = get_score_class(name)
        if cls is GaussianScore:
            return (_fit_gaussian(GaussianScore(homogeneous=homogeneous), data,
                                  memory_budget, progress), data.lazy)
        opts = {"progress": progress, **(score_options or {})}
        if "homogeneous" in inspect.signature(cls.__init__).parameters:
            opts = {"homogeneous": homogeneous, **opts}
        return _fit_on(cls(**opts), data), False
    if isinstance(score, ScoreEstimator):
        if not score.is_fitted and isinstance(score, GaussianScore):
            return _fit_gaussian(score, data, memory_budget, progress), data.lazy
        return (score if score.is_fitted else _fit_on(score, data)), False
    if callable(score):
        return AnalyticScore(score, name=getattr(score, "__name__", "callable")).fit(), False
    raise TypeError(f"score must be a name ({', '.join(('exact', *score_names()))}), a "
                    f"callable or a ScoreEstimator, got {type(score).__name__}")


def _fit_on(model: ScoreEstimator, data: Trajectories) -> ScoreEstimator:
    """Fit a score estimator on the data: the :class:`~gfdt.data.Trajectories` itself
    when the estimator reads them (class attribute ``accepts_trajectories = True``: it
    can stream Dask-backed members block by block), else all samples stacked."""
    if getattr(model, "accepts_trajectories", False):
        return model.fit(data)
    return model.fit(data.samples())


def evaluate(model: Callable[[np.ndarray], np.ndarray], x: np.ndarray,
             batch_size: int) -> np.ndarray:
    """Scores of the states ``x`` ``(batch, *state)`` in batches, checked; same shape."""
    out = np.empty_like(x)
    for a in range(0, x.shape[0], batch_size):
        b = min(a + batch_size, x.shape[0])
        s = score_output(model(x[a:b]), "score")
        if s.shape != x[a:b].shape:
            raise ValueError(f"score returned shape {s.shape} for a batch of shape "
                             f"{x[a:b].shape}; it must return one score per state, same shape")
        if not np.all(np.isfinite(s)):
            raise ValueError("score returned NaN or inf")
        out[a:b] = s
    return out
