"""ResponseEstimator: responses from the generalized fluctuation-dissipation theorem."""

from __future__ import annotations

import inspect
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft as sfft
import xarray as xr
from tqdm.auto import tqdm

from gfdt._bootstrap import (
    BlockBootstrap,
    block_pair_counts,
    integrated_time,
    lagged_blocks_fft,
    lagged_blocks_outer,
    n_blocks,
    replicate_std,
)
from gfdt._conjugate import Observable, Perturbation
from gfdt._data import Series, as_series
from gfdt._memory import correlation_block, estimator_bytes, parse_bytes, stats_block
from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator, get_score_class, score_names
from gfdt.scores.gaussian import GaussianScore
from gfdt.systems.base import System, system_from_attrs

__all__ = ["ResponseEstimator", "response_to_forcing"]

logger = logging.getLogger("gfdt")


_MODE_CHUNK_BYTES = 64 * 2**20
_KEEP_REPLICATES_BYTES = 64 * 2**20  # bootstrap replicates kept for predict() errors


class ResponseEstimator:
    """Linear response from unperturbed data via the GFDT.

    For a stationary process with score :math:`s = \\nabla \\log p`, the mean change of
    :math:`x_i` at time :math:`t` after a small kick :math:`\\delta x_j` at time 0 is
    :math:`R_{ij}(t)\\,\\delta x_j` with

    .. math:: R_{ij}(t) = -\\langle x_i(t)\\, s_j(x(0)) \\rangle .

    The average runs over all time pairs of every member with *unbiased* lag means
    (no circular wrap in time). For homogeneous periodic fields it also runs over all
    source points, giving the response field :math:`R(r, t)` to a unit kick at the
    origin, computed with FFTs in space and (zero-padded) in time.

    Parameters
    ----------
    score : str, callable or ScoreEstimator
        ``"gaussian"`` (fit :math:`-C^{-1}(x - \\mu)` to the data), ``"dsm"`` (train a
        :class:`~gfdt.scores.DenoisingScoreModel` with its defaults; ``"hsm"``,
        ``"hold"``: Hamiltonian or HOLD score matching likewise; ``"kernel"``: the
        WPO-informed kernel score; ``"kgmm"``: KGMM, low dimension only), ``"exact"`` (the
        closed-form score of the gfdt system that made the data, or of ``system``), a
        callable mapping a batch ``(batch, *state)`` to scores of the same shape, or a
        score estimator (fitted, or fitted here on the data).
    max_lag : int
        Largest lag, in saved samples; the response covers lags ``0..max_lag``.
    normalize : bool
        Report :math:`R(t) R(0)^{-1}` as the paper does (corrects a score's overall
        scale and Stein-identity error). The raw estimate is kept in
        ``response_raw_`` either way.
    homogeneous : bool, optional
        Translation-average over a periodic field. Default: True for data from gfdt's
        periodic systems (attribute ``gfdt_homogeneous``), else False.
    system : gfdt.systems.System, optional
        Source of the exact score when the data carry no gfdt attributes.
    batch_size : int
        States per score evaluation.
    progress : bool, optional
        Progress bar (default: only on a terminal).
    score_options : dict, optional
        Keyword arguments of the score estimator a score name creates (``"dsm"``:
        :class:`~gfdt.scores.DenoisingScoreModel`, ``"hsm"``:
        :class:`~gfdt.scores.HamiltonianScoreModel`, ``"hold"``:
        :class:`~gfdt.scores.HOLDScoreModel`, ``"kernel"``:
        :class:`~gfdt.scores.KernelScoreModel`, ``"kgmm"``:
        :class:`~gfdt.scores.KGMMScoreModel`).
    source_stride : int
        Evaluate the score only at every ``source_stride``-th sample of each time
        series (the source times :math:`t_0` of :math:`x(t_0 + \\tau)\\, s(x(t_0))`),
        while the lags keep the full time resolution. Lag means stay unbiased (each is
        divided by its own number of source times). Data saved at every time step are
        strongly correlated over a few steps, so a stride of a few steps cuts the cost
        of expensive (learned) scores several-fold at almost no loss of precision.
    observable : None, str or callable
        Observable :math:`A` whose response is wanted: a callable mapping a batch
        ``(batch, *state)`` to ``(batch, n_obs)`` (or ``(batch,)``) values, ``"mean"``
        (the mean over all state coordinates) or ``"identity"`` (every coordinate).
        Default: the state itself (with ``perturbation``) or the plain GFDT (without).
        Observables are not translation-averaged, even for homogeneous fields.
        With an observable but no perturbation, the sources are kicks on every state
        coordinate: :math:`R^A_j(t) = -\\langle (A(x(t)) - \\langle A\\rangle)
        s_j(x(0))\\rangle`, dims ``("lag", "observable", "source")``.
    perturbation : callable or array_like, optional
        State-dependent perturbation :math:`x \\to x + \\delta\\, u(x)` at time 0: a
        callable ``u`` mapping ``(batch, *state)`` to ``(batch, *state)`` fields, or a
        state-shaped array (a constant direction). The response per unit
        :math:`\\delta` is :math:`R_A(t) = \\langle (A(x(t)) - \\langle A\\rangle)
        B(x(0))\\rangle` with the conjugate variable
        :math:`B = -\\nabla\\cdot u - u\\cdot s`; dims ``("lag", "observable")``, or
        ``("lag", *state_dims)`` for the identity observable. ``normalize`` does not
        apply.
    divergence : {"auto", "exact", "hutchinson"} or callable
        How :math:`\\nabla\\cdot u` is computed. ``"exact"``: the sum over all ``d``
        coordinates of central differences (``2 d`` evaluations of ``u`` per state);
        ``"hutchinson"``: the mean over ``n_probes`` random probes :math:`v` of
        :math:`v\\cdot(u(x + hv) - u(x - hv))/2h`, unbiased with variance
        :math:`\\frac{2}{n_p}(\\|J_s\\|_F^2 - \\sum_i J_{ii}^2)` for Rademacher and
        :math:`\\frac{2}{n_p}\\|J_s\\|_F^2` for Gaussian probes (:math:`J` the
        Jacobian of ``u``, :math:`J_s` its symmetric part; Rademacher probes are exact
        for pointwise maps :math:`u_i(x) = f(x_i)`). Probes are drawn afresh for every
        state, so this noise is white in time and adds about
        :math:`E[(A - \\langle A\\rangle)^2 \\sigma^2_{div}] / N` to the variance of
        :math:`R_A` (:math:`N` states). ``"auto"``: exact up to 64 coordinates. A
        callable returns the divergence, shape ``(batch,)``.
    autograd : bool
        ``perturbation`` is a torch callable (float64 tensors in and out): derivatives
        by torch automatic differentiation instead of finite differences.
    n_probes : int
        Probes per state of the Hutchinson estimate.
    probe : {"rademacher", "gaussian"}
        Distribution of the Hutchinson probes.
    fd_step : float, optional
        Finite-difference step in state units (default: 1e-4 times the data's standard
        deviation).
    bootstrap : bool
        Estimate ``response_stderr_`` by a block bootstrap (see Notes).
    n_bootstrap : int
        Bootstrap replicates.
    block_length : int, optional
        Bootstrap block length in samples (source times). Default: the larger of
        ``max_lag + 1`` and 20 integrated autocorrelation times of the data (pooled
        over coordinates: a score that weighs slow, weak modes up, like the exact score
        of a field, may need longer blocks), at most the longest member.
    seed : int, optional
        Seed of the bootstrap resampling and of the Hutchinson probes.
    memory_budget : int or str, optional
        Bytes the fit may use beyond the data and the imported libraries, as a number
        or a string like ``"256MB"`` or ``"1GiB"``. It sets how many samples are read and
        processed at a time (blocks overlap by ``max_lag`` samples, so every lag pair is
        counted once) and the FFT work space. Most useful with Dask-backed data (e.g.
        ``xr.open_mfdataset(files, chunks={"time": 1000})`` or
        ``gfdt.io.open_run(folder, chunks={})``), which is then never loaded whole: the
        mean and the Gaussian score's covariance are computed in a streaming pass, the
        lagged correlations in a second. A quarter of the budget is kept for memory not
        counted array by array (library caches, Dask graphs, allocator slack); the
        result and, with ``bootstrap``, the replicates must fit in the rest. Keep the
        Dask chunks along ``time`` no larger than a block. Default: blocks of
        ``max(4 max_lag, 2048)`` samples. Learned scores (``"dsm"``) and the
        observable/perturbation path still read their training data or observable
        series into memory.

    Attributes
    ----------
    response_ : xarray.DataArray
        The (normalised if asked) response; dims ``("lag", *state_dims)`` when
        homogeneous, else ``("lag", "observable", "source")``.
    response_raw_ : xarray.DataArray
        Unnormalised estimate, same layout.
    stein_ : xarray.DataArray
        Raw response at lag 0: the Stein sum rule :math:`-E[x s^T]`, ideally the
        identity (a delta at offset 0 for fields).
    stein_error_ : float
        :math:`\\|R(0) - I\\|_F / \\sqrt{d}` of the raw estimate (for fields: the L2
        norm of :math:`R(r, 0) - \\delta_r` over the field). With a perturbation:
        :math:`\\|R_A(0) - E[\\nabla A\\cdot u]\\| / \\|E[\\nabla A\\cdot u]\\|`
        (NaN for an observable without perturbation).
    stein_expected_ : xarray.DataArray or None
        With a perturbation: the sum rule's value :math:`E[\\nabla A\\cdot u]`
        (central differences of :math:`A` along :math:`u`, averaged over the source
        states), which :math:`R_A(0)` should equal; None otherwise.
    score_model_ : ScoreEstimator
        The score used.
    mean_ : numpy.ndarray
        Data mean subtracted from :math:`x(t)` (scalar for homogeneous fields); with
        an observable, :math:`\\langle A\\rangle`.
    n_samples_ : int
        Number of states used.
    timings_ : dict
        Seconds spent fitting the score and computing correlations.
    response_stderr_ : xarray.DataArray or None
        Bootstrap standard error of ``response_`` (same layout; None with
        ``bootstrap=False``). For ``normalize=True`` every replicate is normalised by
        its own :math:`R(0)`, so the error of the normalisation is included.
    response_raw_stderr_ : xarray.DataArray or None
        Bootstrap standard error of ``response_raw_``.
    block_length_ : int
        Bootstrap block length used (samples).
    response_kind_ : str
        ``"matrix"``, ``"homogeneous"``, ``"observable"`` (dims ``("lag",
        "observable", "source")`` for observables under kicks of every coordinate) or
        ``"perturbation"``: how :meth:`predict` applies a forcing.

    Notes
    -----
    The bootstrap cuts every member into blocks of ``block_length`` source times, keeps
    each block's part of the lagged cross-correlation sums (pairs belong to the block
    of their source time), and draws ``n_bootstrap`` resamples of all blocks with
    replacement, recomputing each estimate from the stored parts: the score is never
    re-evaluated, and a score fitted to the data (e.g. the Gaussian) is held fixed, so
    its own fitting error is not included, except through the normalisation with
    ``normalize=True`` (for the Gaussian score the normalised replicate is exactly the
    Gaussian estimate of the resample). Blocks much longer than the correlation time of
    the summands make the replicate spread a standard error; with few blocks (< 20) it
    is unreliable and a warning is logged.

    Examples
    --------
    >>> import numpy as np, gfdt
    >>> rng = np.random.default_rng(0)
    >>> x = np.zeros((20000, 1))
    >>> for t in range(1, len(x)):            # AR(1): x' = 0.9 x + noise
    ...     x[t] = 0.9 * x[t - 1] + rng.standard_normal(1)
    >>> est = gfdt.ResponseEstimator(score="gaussian", max_lag=3).fit(x)
    >>> np.round(est.response_.values[:, 0, 0], 1)
    array([1. , 0.9, 0.8, 0.7])
    """

    def __init__(
        self,
        score: str | Callable[[np.ndarray], np.ndarray] | ScoreEstimator = "gaussian",
        max_lag: int = 100,
        normalize: bool = False,
        homogeneous: bool | None = None,
        system: System | None = None,
        batch_size: int = 256,
        progress: bool | None = None,
        score_options: dict | None = None,
        source_stride: int = 1,
        observable: str | Callable[[np.ndarray], np.ndarray] | None = None,
        perturbation: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None,
        divergence: str | Callable[[np.ndarray], np.ndarray] = "auto",
        autograd: bool = False,
        n_probes: int = 16,
        probe: str = "rademacher",
        fd_step: float | None = None,
        bootstrap: bool = True,
        n_bootstrap: int = 100,
        block_length: int | None = None,
        seed: int | None = None,
        memory_budget: int | str | None = None,
    ) -> None:
        self.score = score
        self.max_lag = max_lag
        self.normalize = normalize
        self.homogeneous = homogeneous
        self.system = system
        self.batch_size = batch_size
        self.progress = progress
        self.score_options = score_options
        self.source_stride = source_stride
        self.observable = observable
        self.perturbation = perturbation
        self.divergence = divergence
        self.autograd = autograd
        self.n_probes = n_probes
        self.probe = probe
        self.fd_step = fd_step
        self.bootstrap = bootstrap
        self.n_bootstrap = n_bootstrap
        self.block_length = block_length
        self.seed = seed
        self.memory_budget = memory_budget

    def __repr__(self) -> str:
        return (f"ResponseEstimator(score={self.score!r}, max_lag={self.max_lag}, "
                f"normalize={self.normalize}, homogeneous={self.homogeneous})")

    # ------------------------------------------------------------------ checks
    def _check_params(self, series: Series) -> int:
        L = self.max_lag
        if isinstance(L, bool) or not isinstance(L, (int, np.integer)):
            raise TypeError(f"max_lag must be an int, got {type(L).__name__}")
        if L < 0:
            raise ValueError(f"max_lag must be >= 0, got {L}")
        if L >= series.min_length:
            raise ValueError(
                f"max_lag = {L} must be smaller than the length of every time series "
                f"(shortest has {series.min_length} samples)"
            )
        b = self.batch_size
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or b < 1:
            raise ValueError(f"batch_size must be a positive int, got {b!r}")
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise TypeError(f"normalize must be True or False, got {self.normalize!r}")
        k = self.source_stride
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"source_stride must be a positive int, got {k!r}")
        if self.score_options is not None and not isinstance(self.score_options, dict):
            raise TypeError(f"score_options must be a dict of keyword arguments, got "
                            f"{type(self.score_options).__name__}")
        return int(L)

    def _is_homogeneous(self, series: Series) -> bool:
        if self.homogeneous is None:
            return bool(int(series.attrs.get("gfdt_homogeneous", 0)))
        if not isinstance(self.homogeneous, (bool, np.bool_)):
            raise TypeError(f"homogeneous must be True, False or None, got {self.homogeneous!r}")
        return bool(self.homogeneous)

    def _fit_gaussian(self, model: GaussianScore, series: Series) -> GaussianScore:
        """Fit on all samples; Dask-backed data in one streaming pass (see memory_budget)."""
        if not series.lazy:
            return model.fit(series.samples())
        d = int(np.prod(series.state_shape))
        budget = parse_bytes(self.memory_budget)
        block = (2048 if budget is None
                 else stats_block(budget, d, covariance=not model.homogeneous))
        model.fit_blocks(self._stats_blocks(series, block))
        self._streamed_model = model  # its mean is the data mean: no second pass for it
        return model

    def _stats_blocks(self, series: Series, block: int):
        bar = tqdm(total=series.n_samples, desc="GFDT statistics", unit="state",
                   unit_scale=True, leave=False,
                   disable=None if self.progress is None else not self.progress)
        try:
            for x in series.blocks(block):
                yield x
                bar.update(x.shape[0])
        finally:
            bar.close()

    def _streaming_mean(self, series: Series, model: ScoreEstimator,
                        homogeneous: bool) -> np.ndarray:
        """Data mean of Dask-backed data: from the streamed Gaussian fit, or one pass."""
        if getattr(self, "_streamed_model", None) is model:
            return np.array(model.mean_, dtype=float)
        d = int(np.prod(series.state_shape))
        budget = parse_bytes(self.memory_budget)
        block = 2048 if budget is None else stats_block(budget, d, covariance=False)
        total = 0.0 if homogeneous else np.zeros(series.state_shape)
        for x in self._stats_blocks(series, block):
            total = total + (x.sum() if homogeneous else x.sum(axis=0))
        n = series.n_samples * (d if homogeneous else 1)
        return np.asarray(total / n)

    def _resolve_score(self, series: Series, homogeneous: bool) -> ScoreEstimator:
        s = self.score
        if isinstance(s, str):
            name = s.lower()
            if name == "gaussian":
                return self._fit_gaussian(GaussianScore(homogeneous=homogeneous), series)
            if name == "exact":
                system = self.system
                if system is None:
                    try:
                        system = system_from_attrs(series.attrs)
                    except ValueError as exc:
                        raise ValueError(
                            f"score='exact' needs a gfdt system: {exc}"
                        ) from None
                if not isinstance(system, System):
                    raise TypeError(f"system must be a gfdt System, got {type(system).__name__}")
                if not system.has_exact_score:
                    raise ValueError(f"score='exact': {type(system).__name__} has no exact score")
                if tuple(series.state_shape) != system.state_shape:
                    raise ValueError(
                        f"score='exact': data state shape {series.state_shape} does not match "
                        f"{type(system).__name__}(n={system.n})"
                    )
                return AnalyticScore(system.exact_score, name="exact").fit()
            cls = get_score_class(name)
            if cls is GaussianScore:
                return self._fit_gaussian(GaussianScore(homogeneous=homogeneous), series)
            opts = {"progress": self.progress, **(self.score_options or {})}
            if "homogeneous" in inspect.signature(cls.__init__).parameters:
                opts = {"homogeneous": homogeneous, **opts}
            return cls(**opts).fit(series.samples())
        if isinstance(s, ScoreEstimator):
            if not s.is_fitted and isinstance(s, GaussianScore):
                return self._fit_gaussian(s, series)
            return s if s.is_fitted else s.fit(series.samples())
        if callable(s):
            return AnalyticScore(s, name=getattr(s, "__name__", "callable")).fit()
        raise TypeError(
            f"score must be a name ({', '.join(('exact', *score_names()))}), a callable or a "
            f"ScoreEstimator, got {type(s).__name__}"
        )

    # ---------------------------------------------------------------- compute
    def _scores(self, model: ScoreEstimator, x: np.ndarray) -> np.ndarray:
        out = np.empty_like(x)
        for a in range(0, x.shape[0], self.batch_size):
            b = min(a + self.batch_size, x.shape[0])
            s = np.asarray(model(x[a:b]), dtype=float)
            if s.shape != x[a:b].shape:
                raise ValueError(
                    f"score returned shape {s.shape} for a batch of shape {x[a:b].shape}; "
                    "it must return one score per state, same shape"
                )
            if not np.all(np.isfinite(s)):
                raise ValueError("score returned NaN or inf")
            out[a:b] = s
        return out

    def fit(self, X, y=None) -> ResponseEstimator:
        """Estimate the response from unperturbed data ``X``.

        Parameters
        ----------
        X : xarray.DataArray, xarray.Dataset, numpy.ndarray or list of arrays
            A DataArray with a ``time`` dim and optionally ``member`` (every other dim
            is state), a Dataset holding one such variable (``u`` preferred), an array
            of shape ``(time, *state)``, or a list of such arrays (independent members).
        y : ignored

        Returns
        -------
        ResponseEstimator
            ``self``, fitted.
        """
        series = as_series(X, "X")
        L = self._check_params(series)
        parse_bytes(self.memory_budget)  # a bad size fails before any work
        self._streamed_model = None
        homogeneous = self._is_homogeneous(series)
        t0 = time.perf_counter()
        model = self._resolve_score(series, homogeneous)
        t1 = time.perf_counter()
        if self.observable is not None or self.perturbation is not None:
            return self._fit_conjugate(series, model, L, homogeneous, t0, t1)
        state_shape = series.state_shape
        d = int(np.prod(state_shape))
        if series.lazy:
            self.mean_ = self._streaming_mean(series, model, homogeneous)
        elif homogeneous:
            self.mean_ = np.asarray(sum(m.sum() for m in series.members)
                                    / sum(m.size for m in series.members))
        else:
            self.mean_ = sum(m.sum(axis=0) for m in series.members) / series.n_samples

        axes = tuple(range(1, 1 + len(state_shape)))
        if homogeneous:
            spec_shape = np.fft.rfftn(np.zeros(state_shape)).shape
            acc = np.zeros((L + 1, int(np.prod(spec_shape))), dtype=complex)
        else:
            acc = np.zeros((L + 1, d, d))
        counts = np.zeros(L + 1)
        stride = int(self.source_stride)
        block = max(4 * L, 2048)
        block += -block % stride  # blocks start on source times
        boot, blen = self._start_bootstrap(series, L, acc.shape, acc.dtype, stride)
        if boot is not None:
            block = blen * -(-block // blen)  # chunks hold whole bootstrap blocks
        fft_bytes = _MODE_CHUNK_BYTES
        budget = parse_bytes(self.memory_budget)
        if budget is not None:  # block length and FFT work space from the budget
            block, fft_bytes = correlation_block(
                budget, d=d, L=L, result_bytes=acc.nbytes, homogeneous=homogeneous,
                model_bytes=estimator_bytes(model), batch_size=int(self.batch_size),
                stride=stride,
                bootstrap=None if boot is None else (int(self.n_bootstrap), blen))
        bar = tqdm(total=series.n_samples, desc="GFDT", unit="state", unit_scale=True,
                   disable=None if self.progress is None else not self.progress, leave=False)
        try:
            for x in series.members:
                T = x.shape[0]
                # number of source times t0 = 0, stride, ... with t0 + lag <= T - 1
                counts += (T - 1 - np.arange(L + 1)) // stride + 1
                for a in range(0, T, block):
                    b = min(a + block, T)
                    e = min(b + L, T)
                    xe = x[a:e]  # sources a..b-1 and their targets (one read)
                    if stride == 1:
                        s = self._scores(model, xe[: b - a])
                    else:
                        s = np.zeros_like(xe[: b - a])
                        s[::stride] = self._scores(model, xe[: b - a: stride])
                    u = xe - self.mean_
                    if homogeneous:
                        sh = np.fft.rfftn(s, axes=axes).reshape(b - a, -1)
                        uh = np.fft.rfftn(u, axes=axes).reshape(e - a, -1)
                        if boot is None:
                            acc += _lagged_cross(uh, sh, L, fft_bytes)
                        else:
                            boot.add(lagged_blocks_fft(uh, sh, L, blen),
                                     block_pair_counts(a, b, T, L, blen, stride))
                    else:
                        sf = s.reshape(b - a, d)
                        uf = u.reshape(e - a, d)
                        if boot is not None:
                            boot.add(lagged_blocks_outer(uf, sf, L, blen),
                                     block_pair_counts(a, b, T, L, blen, stride))
                        for lag in range(L + 1 if boot is None else 0):
                            n = min(b, T - lag) - a
                            if n > 0:
                                acc[lag] += uf[lag:lag + n].T @ sf[:n]
                    bar.update(b - a)
        finally:
            bar.close()
        if boot is not None:
            acc = boot.total.copy()
        acc /= counts.reshape(-1, *([1] * (acc.ndim - 1)))
        if homogeneous:
            raw = -np.fft.irfftn(acc.reshape(L + 1, *spec_shape), s=state_shape,
                                 axes=axes) / d
        else:
            raw = -acc
        t2 = time.perf_counter()

        self.score_model_ = model
        self.n_samples_ = series.n_samples
        self.homogeneous_ = homogeneous
        self.timings_ = {"score_fit_s": t1 - t0, "correlation_s": t2 - t1}
        self.response_raw_ = self._to_xarray(raw, series, homogeneous, normalized=False)
        self.stein_ = self.response_raw_.isel(lag=0, drop=True)
        eye = np.zeros(state_shape) if homogeneous else np.eye(d)
        if homogeneous:
            eye[(0,) * len(state_shape)] = 1.0
        self.stein_error_ = float(np.linalg.norm(raw[0] - eye) / (1 if homogeneous else
                                                                  np.sqrt(d)))
        if self.normalize:
            self.response_ = self._to_xarray(_normalize(raw, homogeneous, axes), series,
                                             homogeneous, normalized=True)
        else:
            self.response_ = self.response_raw_
        self.response_kind_ = "homogeneous" if homogeneous else "matrix"
        self.stein_expected_ = None

        def raw_of(m: np.ndarray) -> np.ndarray:
            if homogeneous:
                return -np.fft.irfftn(m.reshape(L + 1, *spec_shape), s=state_shape,
                                      axes=axes) / d
            return -m

        self._finish_bootstrap(boot, series, raw_of,
                               lambda r: _normalize(r, homogeneous, axes), homogeneous)
        logger.info("GFDT response from %d states: Stein error %.3g", self.n_samples_,
                    self.stein_error_)
        return self

    # ------------------------------------------------------------ bootstrap
    def _check_bootstrap_params(self) -> None:
        if not isinstance(self.bootstrap, (bool, np.bool_)):
            raise TypeError(f"bootstrap must be True or False, got {self.bootstrap!r}")
        nb = self.n_bootstrap
        if isinstance(nb, bool) or not isinstance(nb, (int, np.integer)) or nb < 2:
            raise ValueError(f"n_bootstrap must be an int >= 2, got {nb!r}")
        bl = self.block_length
        if bl is not None and (isinstance(bl, bool) or not isinstance(bl, (int, np.integer))
                               or bl < 1):
            raise ValueError(f"block_length must be None or a positive int, got {bl!r}")
        sd = self.seed
        if sd is not None and (isinstance(sd, bool) or not isinstance(sd, (int, np.integer))
                               or sd < 0):
            raise ValueError(f"seed must be None or an int >= 0, got {sd!r}")

    def _seed_streams(self) -> tuple[np.random.Generator, np.random.Generator]:
        """Independent generators for the bootstrap and the Hutchinson probes."""
        boot, probes = np.random.SeedSequence(self.seed).spawn(2)
        return np.random.default_rng(boot), np.random.default_rng(probes)

    def _start_bootstrap(self, series: Series, L: int, shape: tuple[int, ...], dtype,
                         stride: int) -> tuple[BlockBootstrap | None, int]:
        """The block accumulator (None with ``bootstrap=False``) and the block length."""
        self._check_bootstrap_params()
        if not self.bootstrap:
            self.block_length_ = None
            return None, 0
        lengths = [m.shape[0] for m in series.members]
        if self.block_length is None:
            tau = integrated_time(series.members)
            blen = max(L + 1, math.ceil(20.0 * tau))
            logger.info("bootstrap: integrated autocorrelation time %.3g samples", tau)
        else:
            blen = int(self.block_length)
        blen = min(blen, max(lengths))
        blen += -blen % stride  # blocks start on source times
        K = n_blocks(lengths, blen)
        if K < 20:
            logger.warning("bootstrap: only %d blocks of %d samples; the standard errors are "
                           "unreliable (use more or longer members or a shorter block_length)",
                           K, blen)
        self.block_length_ = int(blen)
        return BlockBootstrap(K, int(self.n_bootstrap), shape, dtype,
                              self._seed_streams()[0]), blen

    def _finish_bootstrap(self, boot: BlockBootstrap | None, series: Series,
                          raw_of: Callable[[np.ndarray], np.ndarray],
                          norm_of: Callable[[np.ndarray], np.ndarray] | None,
                          homogeneous: bool) -> None:
        """Set ``response_raw_stderr_`` and ``response_stderr_`` from the replicates."""
        if boot is None:
            self.response_raw_stderr_ = None
            self.response_stderr_ = None
            self._replicates = None
            return
        transforms = [raw_of]
        if self.normalize and norm_of is not None:
            transforms.append(lambda m: norm_of(raw_of(m)))
        small = 8 * self.response_.size * int(self.n_bootstrap) <= _KEEP_REPLICATES_BYTES
        ses, kept = replicate_std(boot.replicates(), transforms,
                                  keep=len(transforms) - 1 if small else None)
        # replicates of response_ (small responses only): prediction errors in predict()
        self._replicates = np.stack(kept) if small and len(kept) > 1 else None

        def wrap(se, like: xr.DataArray) -> xr.DataArray:
            vals = np.full(like.shape, np.nan) if se is None else se
            out = like.copy(data=vals)
            out.name = "stderr"
            out.attrs.update({
                "long_name": "bootstrap standard error of the "
                             + like.attrs.get("long_name", "response"),
                "n_bootstrap": int(self.n_bootstrap),
                "block_length": int(self.block_length_),
            })
            return out

        self.response_raw_stderr_ = wrap(ses[0], self.response_raw_)
        if len(ses) > 1:
            self.response_stderr_ = wrap(ses[1], self.response_)
        else:
            self.response_stderr_ = self.response_raw_stderr_

    # -------------------------------------------------- observables, perturbations
    def _fit_conjugate(self, series: Series, model: ScoreEstimator, L: int,
                       homogeneous: bool, t0: float, t1: float) -> ResponseEstimator:
        """Response of an observable to a perturbation (or to kicks of each coordinate)."""
        if self.normalize:
            raise ValueError("normalize=True applies to the plain state response, not with "
                             "observable or perturbation")
        state_shape = series.state_shape
        d = int(np.prod(state_shape))
        obs = Observable(self.observable, state_shape)
        _, probe_rng = self._seed_streams()
        pert = None
        if self.perturbation is not None:
            step = self.fd_step
            if step is None:
                first = np.asarray(series.members[0], dtype=float)
                scale = float(first.reshape(first.shape[0], -1).std(axis=0).mean())
                step = 1e-4 * (scale if scale > 0 else 1.0)
            pert = Perturbation(self.perturbation, state_shape, divergence=self.divergence,
                                autograd=self.autograd, n_probes=self.n_probes,
                                probe=self.probe, fd_step=step, rng=probe_rng)
        stride = int(self.source_stride)
        chunk = max(1, self.batch_size)
        obs_series, conj_series = [], []
        dA_sum = None  # sum of (A(x + h u) - A(x - h u)) / 2h over source states
        n_src = 0
        bar = tqdm(total=series.n_samples, desc="GFDT", unit="state", unit_scale=True,
                   disable=None if self.progress is None else not self.progress, leave=False)
        try:
            for x in series.members:
                T = x.shape[0]
                a_parts, b_parts = [], []
                for a in range(0, T, chunk):
                    b = min(a + chunk, T)
                    xb = np.asarray(x[a:b], dtype=float)
                    a_parts.append(obs(xb))
                    first = -a % stride  # source times are multiples of stride
                    src = xb[first::stride]
                    q = 1 if pert is not None else d
                    bb = np.zeros((b - a, q))
                    if src.shape[0]:
                        s = self._scores(model, src)
                        if pert is not None:
                            u, div = pert.field_and_divergence(src)
                            bb[first::stride, 0] = -div - np.einsum(
                                "bi,bi->b", u.reshape(len(src), -1), s.reshape(len(src), -1))
                            h = pert.fd_step
                            dA = ((obs(src + h * u) - obs(src - h * u)) / (2 * h)).sum(axis=0)
                            dA_sum = dA if dA_sum is None else dA_sum + dA
                            n_src += len(src)
                        else:
                            bb[first::stride] = -s.reshape(len(src), d)
                    b_parts.append(bb)
                    bar.update(b - a)
                obs_series.append(np.concatenate(a_parts))
                conj_series.append(np.concatenate(b_parts))
        finally:
            bar.close()
        n_obs = obs_series[0].shape[1]
        mean_A = sum(v.sum(axis=0) for v in obs_series) / series.n_samples
        q = conj_series[0].shape[1]
        shape = (L + 1, n_obs, q)
        boot, blen = self._start_bootstrap(series, L, shape, float, stride)
        if boot is None:
            blen = max(m.shape[0] for m in series.members)
            blen += -blen % stride
            boot = BlockBootstrap(n_blocks([m.shape[0] for m in series.members], blen), 0,
                                  shape, float, np.random.default_rng(0))
            keep = False
        else:
            keep = True
        for A, B in zip(obs_series, conj_series, strict=True):
            T = A.shape[0]
            boot.add(lagged_blocks_outer(A - mean_A, B, L, blen),
                     block_pair_counts(0, T, T, L, blen, stride))
        acc = boot.mean()
        t2 = time.perf_counter()

        identity = obs.identity and pert is not None
        if pert is not None:
            kind = "perturbation"
            raw = acc[..., 0]
            if identity:
                raw = raw.reshape(L + 1, *state_shape)
        else:
            kind = "observable"
            raw = acc

        def raw_of(m: np.ndarray) -> np.ndarray:
            r = m[..., 0] if pert is not None else m
            return r.reshape(raw.shape)

        self.score_model_ = model
        self.n_samples_ = series.n_samples
        self.homogeneous_ = False
        self.mean_ = mean_A.reshape(state_shape) if identity else mean_A
        self.timings_ = {"score_fit_s": t1 - t0, "correlation_s": t2 - t1}
        self.response_kind_ = kind
        self.response_raw_ = self._conjugate_xarray(raw, series, obs, pert, kind, identity)
        self.response_ = self.response_raw_
        self.stein_ = self.response_raw_.isel(lag=0, drop=True)
        if pert is not None and n_src:
            expected = (dA_sum / n_src).reshape(raw.shape[1:])
            self.stein_expected_ = self.stein_.copy(data=expected)
            self.stein_expected_.attrs["long_name"] = "E[grad A . u] (Stein sum rule)"
            norm = float(np.linalg.norm(expected))
            self.stein_error_ = (float(np.linalg.norm(raw[0] - expected)) / norm if norm > 0
                                 else float("nan"))
        else:
            self.stein_expected_ = None
            self.stein_error_ = float("nan")
        self._finish_bootstrap(boot if keep else None, series, raw_of, None, False)
        logger.info("GFDT %s response from %d states", kind, self.n_samples_)
        return self

    def _conjugate_xarray(self, r: np.ndarray, series: Series, obs: Observable,
                          pert: Perturbation | None, kind: str,
                          identity: bool) -> xr.DataArray:
        L = r.shape[0] - 1
        coords: dict[str, Any] = {"lag": _lag_coord(series, L)}
        if identity:
            dims = ("lag", *series.state_dims)
            for dim in series.state_dims:
                if dim in series.state_coords:
                    c = series.state_coords[dim]
                    coords[dim] = (dim, np.asarray(c.values), dict(c.attrs))
        else:
            dims = ("lag", "observable") + (("source",) if kind == "observable" else ())
            n_obs = r.shape[1]
            coords["observable"] = (["mean"] if obs.label == "mean" and n_obs == 1
                                    else np.arange(n_obs))
        what = "the state" if obs.identity else f"observable {obs.label}"
        how = (f"x -> x + delta u(x), u = {pert.label}" if pert is not None
               else "a unit impulse on each state coordinate")
        attrs = {
            "long_name": f"response of the mean of {what} to {how}",
            "units": "observable units per unit delta" if pert is not None
                     else "observable units per unit kick",
            "method": self._score_name(),
            "normalized": 0,
            "n_samples": int(series.n_samples),
            "observable": obs.label,
            "response_kind": kind,
        }
        if pert is not None:
            attrs["perturbation"] = pert.label
            attrs["divergence"] = pert.method if pert.constant is None else "zero"
            if pert.method == "hutchinson" and pert.constant is None:
                attrs["n_probes"] = pert.n_probes
                attrs["probe"] = pert.probe
        attrs.update({k: v for k, v in series.attrs.items() if k.startswith("gfdt_")})
        return xr.DataArray(r, dims=dims, coords=coords, name="response", attrs=attrs)

    # ------------------------------------------------------------- prediction
    def predict(self, forcing, return_stderr: bool = False
                ) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
        """Mean response of the observable(s) to a time-dependent forcing.

        .. math:: \\delta\\langle A\\rangle(t_n) = \\sum_{j \\le n} R(t_n - t_j)\\,
                  f(t_j)\\, \\Delta t

        with :math:`\\Delta t` the lag spacing of ``response_`` (the save interval of the
        fitted data; 1 sample when the data had no time coordinate). The forcing
        enters the dynamics as :math:`dx/dt = \\ldots + f(t)`, i.e. as kicks
        :math:`f(t_j)\\Delta t` at the sample times, the kick at :math:`t_n` included.
        The response is taken as zero beyond ``max_lag``. See
        :func:`response_to_forcing` for the layouts.

        Parameters
        ----------
        forcing : numpy.ndarray or xarray.DataArray
            Forcing per unit time on the fitted data's time grid, time first:
            ``(time, *state)`` for a homogeneous field response (convolved in space
            too, periodically), ``(time, source)`` for a matrix response,
            ``(time,)`` for the amplitude of ``perturbation``. A DataArray needs a
            ``time`` dim (its coordinate, if any, must have the lag spacing).
        return_stderr : bool
            Also return the bootstrap standard error of the prediction: the spread of
            the predictions of the bootstrap replicates of ``response_`` (kept when
            they take at most 64 MiB; fit with ``bootstrap=True``).

        Returns
        -------
        xarray.DataArray or (xarray.DataArray, xarray.DataArray)
            :math:`\\delta\\langle A\\rangle`, dims ``("time", ...)``, in the units of
            the observable; with ``return_stderr``, also its standard error.
        """
        if not hasattr(self, "response_"):
            raise ValueError("this ResponseEstimator is not fitted yet: call fit() first")
        pred = response_to_forcing(self.response_, forcing, kind=self.response_kind_)
        if not return_stderr:
            return pred
        reps = getattr(self, "_replicates", None)
        if reps is None:
            raise ValueError("return_stderr=True needs the bootstrap replicates: fit with "
                             "bootstrap=True (kept only when n_bootstrap x the response "
                             "size takes at most 64 MiB)")
        preds = np.stack([response_to_forcing(self.response_.copy(data=r), forcing,
                                              kind=self.response_kind_).values
                          for r in reps])
        se = pred.copy(data=preds.std(axis=0, ddof=1))
        se.name = "stderr"
        se.attrs["long_name"] = "bootstrap standard error of the prediction"
        return pred, se

    def _to_xarray(self, r: np.ndarray, series: Series, homogeneous: bool,
                   normalized: bool) -> xr.DataArray:
        L = r.shape[0] - 1
        if series.dt is not None:
            lag_vals = np.arange(L + 1) * series.dt
            lag_attrs = {"long_name": "time lag", **{k: v for k, v in series.time_attrs.items()
                                                     if k == "units"}}
        else:
            lag_vals = np.arange(L + 1)
            lag_attrs = {"long_name": "time lag", "units": "samples"}
        coords: dict[str, Any] = {"lag": ("lag", lag_vals, lag_attrs)}
        if homogeneous:
            dims = ("lag", *series.state_dims)
            for dim in series.state_dims:
                if dim in series.state_coords:
                    c = series.state_coords[dim]
                    vals = np.asarray(c.values)
                    if np.issubdtype(vals.dtype, np.number):
                        vals = vals - vals[0]
                    coords[dim] = (dim, vals, {**c.attrs, "long_name": f"offset in {dim}"})
        else:
            dims = ("lag", "observable", "source")
            if len(series.state_dims) == 1 and series.state_dims[0] in series.state_coords:
                vals = np.asarray(series.state_coords[series.state_dims[0]].values)
                coords["observable"] = vals
                coords["source"] = vals
        name = self._score_name()
        attrs = {
            "long_name": "response to a unit impulse" + (" at the origin" if homogeneous else ""),
            "units": "1",
            "method": name,
            "normalized": int(normalized),
            "n_samples": int(series.n_samples),
        }
        attrs.update({k: v for k, v in series.attrs.items() if k.startswith("gfdt_")})
        return xr.DataArray(r, dims=dims, coords=coords, name="response", attrs=attrs)

    def _score_name(self) -> str:
        if isinstance(self.score, str):
            return self.score.lower()
        return getattr(self.score, "name", type(self.score).__name__)


def _lagged_cross(uh: np.ndarray, sh: np.ndarray, L: int,
                  work_bytes: int = _MODE_CHUNK_BYTES) -> np.ndarray:
    """:math:`c[\\tau, k] = \\sum_t u_k(t + \\tau) \\overline{s_k(t)}`, tau = 0..L.

    ``uh`` (Tu, M) covers the targets, ``sh`` (Ts, M) the sources, with
    ``Tu <= Ts + L``; zero padding to ``nfft >= Ts + L`` removes circular wrap.
    """
    Ts, M = sh.shape
    nfft = sfft.next_fast_len(Ts + L)
    chunk = max(1, work_bytes // (16 * nfft * 3))
    out = np.empty((L + 1, M), dtype=complex)
    for a in range(0, M, chunk):
        b = min(a + chunk, M)
        fu = sfft.fft(uh[:, a:b], n=nfft, axis=0)
        fs = sfft.fft(sh[:, a:b], n=nfft, axis=0)
        out[:, a:b] = sfft.ifft(fu * fs.conj(), axis=0)[: L + 1]
    return out


def _normalize(raw: np.ndarray, homogeneous: bool, axes: tuple[int, ...]) -> np.ndarray:
    """:math:`R(t) R(0)^{-1}`; for fields a division in Fourier space."""
    if homogeneous:
        rh = np.fft.rfftn(raw, axes=axes)
        r0 = rh[0]
        if np.any(np.abs(r0) < 1e-12 * np.abs(r0).max()):
            raise ValueError("normalize=True: R(0) is singular in some Fourier modes")
        return np.fft.irfftn(rh / r0, s=raw.shape[1:], axes=axes)
    try:
        inv = np.linalg.inv(raw[0])
    except np.linalg.LinAlgError:
        raise ValueError("normalize=True: the raw R(0) is singular") from None
    return raw @ inv


def _lag_coord(series: Series, L: int) -> tuple:
    """The ``lag`` coordinate: time units when the data have a time step, else samples."""
    if series.dt is not None:
        attrs = {"long_name": "time lag",
                 **{k: v for k, v in series.time_attrs.items() if k == "units"}}
        return ("lag", np.arange(L + 1) * series.dt, attrs)
    return ("lag", np.arange(L + 1), {"long_name": "time lag", "units": "samples"})


_KINDS = ("homogeneous", "matrix", "observable", "perturbation")


def response_to_forcing(response: xr.DataArray, forcing, *, kind: str | None = None,
                        time_step: float | None = None) -> xr.DataArray:
    """Linear-response prediction of the mean change under a time-dependent forcing.

    .. math:: \\delta\\langle A\\rangle(t_n) = \\sum_{j=0}^{n} R(t_n - t_j)\\,
              f(t_j)\\, \\Delta t, \\qquad t_j = j\\,\\Delta t,

    a causal convolution in time (zero-padded FFTs, no wrap), with :math:`R = 0`
    beyond the last lag of ``response``. The forcing acts as :math:`dx/dt = \\ldots +
    f(t)`, discretised as kicks :math:`f(t_j)\\Delta t` at the sample times (the kick
    at :math:`t_n` included), as :func:`gfdt.forced_response` applies them; the
    forcing starts at :math:`t_0` from the stationary state.

    Parameters
    ----------
    response : xarray.DataArray
        A response with ``lag`` as first dim, evenly spaced from 0: e.g.
        :attr:`ResponseEstimator.response_` or an exact response.
    forcing : numpy.ndarray or xarray.DataArray
        Forcing per unit time (state units per time unit, or perturbation amplitude
        per time unit), sampled every :math:`\\Delta t`, time first. Layouts by kind:

        * ``"homogeneous"``: response ``(lag, *space)`` of a translation-invariant
          field to a kick at the origin; forcing ``(time, *space)``; the result is
          also a periodic convolution in space (FFT):
          :math:`\\delta u(r) = \\sum_{r'} R(r - r') f(r')`.
        * ``"matrix"`` / ``"observable"``: response ``(lag, observable, source)``;
          forcing ``(time, source)``.
        * ``"perturbation"``: response ``(lag, ...)`` to :math:`x \\to x + \\delta
          u(x)`; forcing ``(time,)``, the amplitude of :math:`f(t)\\,u(x)`.

        A DataArray needs a ``time`` dim (other dims are put in the response's order);
        a numeric time coordinate must have the spacing :math:`\\Delta t`.
    kind : str, optional
        One of the layouts above. Default: the response's ``response_kind``
        attribute, else ``"matrix"`` when it has a ``source`` dim, ``"perturbation"``
        for a 1-D forcing, ``"homogeneous"`` otherwise.
    time_step : float, optional
        :math:`\\Delta t`; default: the spacing of the ``lag`` coordinate (1 when it is
        in samples or missing).

    Returns
    -------
    xarray.DataArray
        dims ``("time", ...)``: the response's non-lag dims (``observable`` for a
        matrix response), in the observable's units.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> r = xr.DataArray(0.5 ** np.arange(4.0)[:, None], dims=("lag", "observable"),
    ...                  coords={"lag": np.arange(4.0)})
    >>> response_to_forcing(r, np.ones(3), kind="perturbation").values[:, 0]
    array([1.  , 1.5 , 1.75])
    """
    if not isinstance(response, xr.DataArray):
        raise TypeError(f"response must be an xarray.DataArray, got {type(response).__name__}")
    if response.ndim < 1 or response.dims[0] != "lag":
        raise ValueError(f"response must have 'lag' as its first dim, got dims {response.dims}")
    R = np.asarray(response.values, dtype=float)
    L = R.shape[0] - 1
    dt = _forcing_time_step(response, time_step)
    if kind is None:
        kind = response.attrs.get("response_kind")
    if isinstance(forcing, xr.DataArray):
        if "time" not in forcing.dims:
            raise ValueError(f"forcing must have a 'time' dimension, got dims {forcing.dims}")
        other = [dm for dm in forcing.dims if dm != "time"]
        order = ["time"] + [dm for dm in response.dims[1:] if dm in other]
        order += [dm for dm in other if dm not in order]
        fda = forcing.transpose(*order)
        tcoord = None
        if "time" in forcing.coords:
            tv = forcing["time"].values
            if tv.size > 1 and np.issubdtype(tv.dtype, np.number):
                steps = np.diff(tv.astype(float))
                if np.any(np.abs(steps - dt) > 1e-6 * dt):
                    raise ValueError(
                        f"forcing's time coordinate must have the response's lag spacing "
                        f"{dt:g} (got steps {steps.min():g} .. {steps.max():g})"
                    )
            tcoord = forcing["time"]
        F = np.asarray(fda.values)
    else:
        tcoord = None
        F = np.asarray(forcing)
    if F.dtype == object or not np.issubdtype(F.dtype, np.number) \
            or np.issubdtype(F.dtype, np.complexfloating):
        raise TypeError("forcing must be a real numeric array")
    F = F.astype(float)
    if F.ndim < 1 or F.shape[0] < 1:
        raise ValueError("forcing must have at least one time sample (axis 0)")
    if not np.all(np.isfinite(F)):
        raise ValueError("forcing contains NaN or inf")
    if kind is None:
        if "source" in response.dims:
            kind = "matrix"
        elif F.ndim == 1:
            kind = "perturbation"
        else:
            kind = "homogeneous"
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    N = F.shape[0]
    nfft = sfft.next_fast_len(N + L)
    if kind == "homogeneous":
        if F.shape[1:] != R.shape[1:]:
            raise ValueError(f"forcing must have shape (time, {', '.join(map(str, R.shape[1:]))})"
                             f" for this field response, got {F.shape}")
        axes = tuple(range(1, R.ndim))
        Rh = sfft.rfftn(R, axes=axes) if axes else R.astype(complex)
        Fh = sfft.rfftn(F, axes=axes) if axes else F.astype(complex)
        conv = sfft.ifft(sfft.fft(Rh, n=nfft, axis=0) * sfft.fft(Fh, n=nfft, axis=0),
                         axis=0)[:N]
        out = (sfft.irfftn(conv, s=R.shape[1:], axes=axes) if axes else conv.real) * dt
        dims = ("time", *response.dims[1:])
    elif kind in ("matrix", "observable"):
        if R.ndim != 3:
            raise ValueError(f"a {kind} response needs dims (lag, observable, source), got "
                             f"{response.dims}")
        if F.shape[1:] != (R.shape[2],):
            raise ValueError(f"forcing must have shape (time, {R.shape[2]}) for this response, "
                             f"got {F.shape}")
        fr = sfft.rfft(R, n=nfft, axis=0)
        ff = sfft.rfft(F, n=nfft, axis=0)
        out = sfft.irfft(np.einsum("fpq,fq->fp", fr, ff), n=nfft, axis=0)[:N] * dt
        dims = ("time", response.dims[1])
    else:  # perturbation
        if F.ndim != 1:
            raise ValueError(f"forcing of a perturbation response is an amplitude, shape "
                             f"(time,), got {F.shape}")
        fr = sfft.rfft(R, n=nfft, axis=0)
        ff = sfft.rfft(F, n=nfft)
        out = sfft.irfft(fr * ff.reshape(-1, *([1] * (R.ndim - 1))), n=nfft,
                         axis=0)[:N] * dt
        dims = ("time", *response.dims[1:])
    coords: dict[str, Any] = {}
    if tcoord is not None:
        coords["time"] = tcoord
    else:
        lag_attrs = dict(response["lag"].attrs) if "lag" in response.coords else {}
        coords["time"] = ("time", np.arange(N) * dt,
                          {"long_name": "time since the forcing started",
                           **{k: v for k, v in lag_attrs.items() if k == "units"}})
    for dim in dims[1:]:
        if dim in response.coords:
            coords[dim] = response[dim]
    attrs = {"long_name": "linear-response prediction of the change of the mean",
             "time_step": float(dt), "kind": kind, "max_lag": int(L)}
    return xr.DataArray(out, dims=dims, coords=coords, name="predicted_response", attrs=attrs)


def _forcing_time_step(response: xr.DataArray, time_step: float | None) -> float:
    if time_step is not None:
        if isinstance(time_step, bool) or not isinstance(time_step, (int, float, np.number)) \
                or not np.isfinite(time_step) or time_step <= 0:
            raise ValueError(f"time_step must be a positive number, got {time_step!r}")
        return float(time_step)
    if "lag" not in response.coords or response.sizes["lag"] < 2:
        return 1.0
    lag = response["lag"]
    if lag.attrs.get("units") == "samples" or not np.issubdtype(lag.dtype, np.number):
        return 1.0
    v = lag.values.astype(float)
    steps = np.diff(v)
    if abs(v[0]) > 1e-9 * abs(steps[0]) or np.any(np.abs(steps - steps[0]) > 1e-6 * steps[0]) \
            or steps[0] <= 0:
        raise ValueError("response's lag coordinate must be evenly spaced from 0; pass time_step")
    return float(steps[0])
