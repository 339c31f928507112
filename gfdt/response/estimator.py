"""ResponseEstimator: responses from the generalized fluctuation-dissipation theorem.

The estimator is thin: it resolves the score (:mod:`gfdt.response._score`), builds
targets :math:`A` and sources :math:`B` (plain GFDT: :math:`A = x - \\mu`,
:math:`B = -s`; observables and perturbations: :mod:`gfdt.response.conjugate`) and
hands them to the one lagged-correlation engine (:mod:`gfdt.response.correlate`),
with error bars from :mod:`gfdt.response.bootstrap`.

The module is longer than gfdt's ~500-line guide because about 250 of its lines are
docstrings: the class docstring (the one reference of the estimator's parameters and
attributes) and those of the public methods.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import scipy.fft as sfft
import xarray as xr

from gfdt._memory import estimator_bytes, parse_bytes
from gfdt._time import parse_max_lag
from gfdt.conventions import attrs as cf_attrs
from gfdt.data import Trajectories, as_trajectories
from gfdt.response import _output, _plan
from gfdt.response._checks import (
    check_gaussian_fit,
    check_not_constant,
    check_record,
    check_samples,
)
from gfdt.response._output import normalize_response as _normalize
from gfdt.response._output import spectral_score as _spectral_score
from gfdt.response._score import data_mean, evaluate, resolve_score
from gfdt.response.bootstrap import (
    BlockBootstrap,
    Bootstrap,
    check_seed,
    own_statistics,
    stderr_arrays,
)
from gfdt.response.conjugate import Observable, Perturbation, conjugate_series
from gfdt.response.correlate import LagSums, correlate, fft_workers
from gfdt.response.forcing import prediction_stderr, response_to_forcing, scalar_forcing
from gfdt.scores.base import NotFittedError, ScoreEstimator, check_flag
from gfdt.scores.gaussian import GaussianScore
from gfdt.systems._spectral import resolved_impulse, resolved_mask
from gfdt.systems.base import System

__all__ = ["ResponseEstimator"]

logger = logging.getLogger("gfdt")


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
    max_lag : int, float, str or timedelta
        Largest lag; the response covers lags ``0..max_lag``. An int counts samples; a
        float is a duration in the data's time units (e.g. ``12.0`` for monthly data:
        12 months); a string such as ``"12 months"``, ``"30 days"`` or ``"6 hours"``, or
        a timedelta, is converted to the data's units. A duration must be a whole number
        of time steps.
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
    perturbation : callable, array_like or Perturbation, optional
        State-dependent perturbation :math:`x \\to x + \\delta\\, u(x)` at time 0: a
        callable ``u`` mapping ``(batch, *state)`` to ``(batch, *state)`` fields, or a
        state-shaped array (a constant direction). The response per unit
        :math:`\\delta` is :math:`R_A(t) = \\langle (A(x(t)) - \\langle A\\rangle)
        B(x(0))\\rangle` with the conjugate variable
        :math:`B = -\\nabla\\cdot u - u\\cdot s`; dims ``("lag", "observable")``, or
        ``("lag", *state_dims)`` for the identity observable. ``normalize`` does not
        apply. A :class:`~gfdt.response.Perturbation` carries its own numerical
        options (``divergence``, ``autograd``, ``n_probes``, ``probe``, ``fd_step``);
        the keywords below are the shorthand for a plain callable or array.
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
    bootstrap : bool or Bootstrap
        Estimate ``response_stderr_`` by a block bootstrap (see Notes): True (with
        ``n_bootstrap`` and ``block_length``), False, or the options as
        :class:`~gfdt.response.Bootstrap` ``(n=..., block_length=..., seed=...)``.
    n_bootstrap : int
        Bootstrap replicates (with ``bootstrap=True``).
    block_length : int, optional
        Bootstrap block length in samples (source times), with ``bootstrap=True``.
        Default: the Politis-White (2004; Patton et al. 2009) length of the lagged
        products the bootstrap resamples (the trace of :math:`x(t + \\tau) s(t)^T` at
        a few lags), at least ``max_lag + 1``, at most the longest member.
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
        series into memory. Every fit plans its memory before allocating (the plan is in
        the log and :meth:`summary`, attribute ``memory_plan_``): it streams (bootstrap
        replicates in chunks, one pass over the data per chunk) or raises a ValueError
        naming the options that would fit. Without a budget the plan uses half of the
        memory available (:func:`gfdt._memory.available_memory`: free memory, cgroup
        and ``ulimit -v`` limits).
    kick : {"pixel", "resolved"}
        Homogeneous fields, plain GFDT: the shape of the unit kick at the origin.
        ``"pixel"``: one grid point, :math:`R(t)\\,\\delta_0`. ``"resolved"``: the pixel
        impulse with the Nyquist lines removed, :math:`R(t)\\,P\\delta_0`, the response
        a paired truth made with ``perturbation_response(kick="resolved")`` measures.
        On a grid whose Nyquist modes are slaved to the resolved ones by aliasing
        (turbulent fields), only this kick has a response that a score estimated from
        data can resolve (theory page, "Kick conventions"). With ``normalize`` the
        inverse of :math:`R(0)` is taken on the resolved modes.
    stein_correction : bool
        Wrap the fitted score in :class:`~gfdt.scores.SteinCorrected`, fitted on the same
        data: the affine correction after which :math:`E[s] = 0` and
        :math:`-E[(x - \\mu) s^T] = I` hold on the data (per Fourier mode, i.e.
        translation-averaged, for homogeneous fields), so the raw response at lag 0 is
        the identity. One extra pass of score evaluations.

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
        ``bootstrap=False``; NaN with fewer than 2 blocks). For ``normalize=True`` every
        replicate is normalised by its own :math:`R(0)`, so the error of the
        normalisation is included.
    response_raw_stderr_ : xarray.DataArray or None
        Bootstrap standard error of ``response_raw_``.
    block_length_ : int
        Bootstrap block length used (samples).
    memory_plan_ : gfdt.response.MemoryPlan
        The fit's memory plan (also in the log and :meth:`summary`).
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
    re-evaluated. Every statistic estimated from the data enters each replicate: a
    Gaussian score fitted here (``score="gaussian"``) uses the replicate's own
    covariance (its lag-0 sums), so the raw replicate is the Gaussian estimate of the
    resample, and with ``normalize=True`` every replicate is divided by its own
    :math:`R(0)`. A learned score is held fixed (its training error is not included
    beyond the normalisation), and so is the data mean (an :math:`O(1/N)` effect).
    Blocks much longer than the correlation time of the summands make the replicate
    spread a standard error; with few blocks (< 20) it is unreliable and a
    :class:`~gfdt.response.BootstrapWarning` is raised (``warnings.warn``).

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
        observable: str | Callable[[np.ndarray], np.ndarray] | Observable | None = None,
        perturbation: Callable[[np.ndarray], np.ndarray] | np.ndarray | Perturbation
        | None = None,
        divergence: str | Callable[[np.ndarray], np.ndarray] = "auto",
        autograd: bool = False,
        n_probes: int = 16,
        probe: str = "rademacher",
        fd_step: float | None = None,
        bootstrap: bool | Bootstrap = True,
        n_bootstrap: int = 100,
        block_length: int | None = None,
        seed: int | None = None,
        memory_budget: int | str | None = None,
        kick: str = "pixel",
        stein_correction: bool = False,
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
        self.kick = kick
        self.stein_correction = stein_correction

    # the scikit-learn parameter contract, shared with the score estimators
    get_params = ScoreEstimator.get_params
    set_params = ScoreEstimator.set_params

    def __repr__(self) -> str:
        return (f"ResponseEstimator(score={self.score!r}, max_lag={self.max_lag}, "
                f"normalize={self.normalize}, homogeneous={self.homogeneous})")

    # ------------------------------------------------------------------ checks
    def _check_params(self, data: Trajectories) -> int:
        check_samples(data, "X")
        L = parse_max_lag(self.max_lag, data.step)
        if L >= data.min_length:
            raise ValueError(f"max_lag = {L} must be smaller than the length of every time "
                             f"series (shortest has {data.min_length} samples)")
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
        if not isinstance(self.kick, str) or self.kick not in ("pixel", "resolved"):
            raise ValueError(f"kick must be 'pixel' or 'resolved', got {self.kick!r}")
        return int(L)

    def _is_homogeneous(self, data: Trajectories) -> bool:
        if self.homogeneous is None:
            return bool(int(data.attrs.get("gfdt_homogeneous", 0)))
        if not isinstance(self.homogeneous, (bool, np.bool_)):
            raise TypeError(f"homogeneous must be True, False or None, got {self.homogeneous!r}")
        return bool(self.homogeneous)

    def _bootstrap_options(self) -> Bootstrap | None:
        """The bootstrap options (None without bootstrap), checked."""
        check_seed(self.seed)
        return Bootstrap.from_keywords(self.bootstrap, self.n_bootstrap, self.block_length)

    def _seed_streams(self, opts: Bootstrap | None
                      ) -> tuple[np.random.Generator, np.random.Generator]:
        """Independent generators for the bootstrap and the Hutchinson probes."""
        boot, probes = np.random.SeedSequence(self.seed).spawn(2)
        if opts is not None and opts.seed is not None:
            boot = np.random.SeedSequence(opts.seed)
        return np.random.default_rng(boot), np.random.default_rng(probes)

    def _finish_bootstrap(self, boot: BlockBootstrap | None,
                          raw_of: Callable[[np.ndarray], np.ndarray],
                          norm_of: Callable[[np.ndarray], np.ndarray] | None,
                          repass: Callable[[], object]) -> None:
        """Set ``response_raw_stderr_`` and ``response_stderr_`` from the replicates
        (``repass()`` streams the data again for the next chunk of replicates)."""
        if boot is None:
            self.response_raw_stderr_ = self.response_stderr_ = self._replicates = None
            return
        self.response_raw_stderr_, self.response_stderr_, self._replicates = stderr_arrays(
            boot, raw_of, norm_of if self.normalize else None, self.response_raw_,
            self.response_, self.block_length_,
            _plan.KEEP_BYTES if self.memory_plan_.keep_replicates else 0, repass)

    def summary(self) -> str:
        """A plain-text account of the fit: data, score, bootstrap, memory plan."""
        from gfdt.response._summary import summary

        return summary(self)

    def _method(self) -> str:
        if isinstance(self.score, str):
            return self.score.lower()
        return getattr(self.score, "name", type(self.score).__name__)

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> ResponseEstimator:
        """Estimate the response from unperturbed data ``X``.

        Parameters
        ----------
        X : xarray.DataArray, xarray.Dataset, numpy.ndarray, list of arrays or Trajectories
            A DataArray with a ``time`` dim and optionally ``member`` (every other dim
            is state), a Dataset holding one such variable (``u`` preferred), an array
            of shape ``(time, *state)``, a list of such arrays (independent members), or
            a :class:`gfdt.data.Trajectories`.
        y : ignored

        Returns
        -------
        ResponseEstimator
            ``self``, fitted.
        """
        data = as_trajectories(X, "X")
        L = self._check_params(data)
        parse_bytes(self.memory_budget)  # a bad size fails before any work
        self._bootstrap_options()  # bad options fail before any work
        homogeneous = self._is_homogeneous(data)
        if self.kick == "resolved" and (not homogeneous or self.observable is not None
                                        or self.perturbation is not None):
            raise ValueError("kick='resolved' applies to the plain GFDT of a homogeneous "
                             "field (no observable, no perturbation)")
        check_not_constant(data, homogeneous, "X")
        check_record(data, L, "X")
        _plan.prepare(self, data, L, homogeneous)  # the memory plan: fail before any work
        t0 = time.perf_counter()
        if self._gaussian_from_autocorrelation(data, homogeneous):
            model, streamed = GaussianScore(homogeneous=True), False  # fitted in _fit_state
        else:
            model, streamed = resolve_score(
                self.score, data, homogeneous, system=self.system,
                score_options=self.score_options, memory_budget=self.memory_budget,
                progress=self.progress)
        check_gaussian_fit(model, "X")
        if check_flag(self.stein_correction, "stein_correction"):
            from gfdt.scores.stein import SteinCorrected

            model = SteinCorrected(model, homogeneous=homogeneous).fit(data)
        t1 = time.perf_counter()
        if self.observable is not None or self.perturbation is not None:
            self._fit_conjugate(data, model, L)
        else:
            self._fit_state(data, model, L, homogeneous, streamed)
        self.score_model_ = model
        self.n_samples_ = data.n_samples
        self.timings_ = {"score_fit_s": t1 - t0, "correlation_s": time.perf_counter() - t1}
        return self

    def _gaussian_from_autocorrelation(self, data: Trajectories, homogeneous: bool) -> bool:
        """Whether the Gaussian score of a homogeneous field comes from the lag sums.

        For the homogeneous Gaussian score :math:`\\hat s_k = -\\hat u_k / S_k` the
        sources are the targets scaled per mode, so the lag sums are the per-mode
        autocovariances times :math:`1/S_k`, and the spectrum :math:`S_k` is their lag 0:
        one pass over the data (no separate fit, no score evaluation) gives the same
        estimate up to rounding. Used for ``score="gaussian"`` on in-memory data with
        ``source_stride=1`` and no ``memory_budget``.
        """
        return (isinstance(self.score, str) and self.score.lower() == "gaussian"
                and homogeneous and not data.lazy and int(self.source_stride) == 1
                and self.memory_budget is None and self.observable is None
                and self.perturbation is None and not self.stein_correction)

    def _fit_state(self, data: Trajectories, model: ScoreEstimator, L: int,
                   homogeneous: bool, streamed: bool) -> None:
        """Plain GFDT: targets :math:`x - \\mu`, sources :math:`-s`, lag means by the engine.

        For homogeneous fields both are taken to spatial Fourier modes, where the
        translation average is a product per mode.
        """
        state_shape = data.state_shape
        d = int(np.prod(state_shape))
        self.mean_ = data_mean(data, model, homogeneous, self.memory_budget, self.progress,
                               streamed)
        axes = tuple(range(1, 1 + len(state_shape)))
        spec_shape = np.fft.rfftn(np.zeros(state_shape)).shape
        shape = (L + 1, int(np.prod(spec_shape))) if homogeneous else (L + 1, d, d)
        stride = int(self.source_stride)
        autocov = not model.is_fitted  # a Gaussian fitted below from the lag sums
        read = self._state_reader(data, model, homogeneous, autocov)
        held = estimator_bytes(model)
        block0 = self._plan_state(data, L, homogeneous, 0, held, False)[0].block
        block0 = max(stride, block0 - block0 % stride)  # pieces start on source times
        boot, blen, plan, fft_bytes = _plan.start_bootstrap(
            self, data, L, shape, complex if homogeneous else float,
            lambda bl: self._plan_state(data, L, homogeneous, bl, held),
            _plan.product_series(read, data.lengths, L, block0, autocov, stride=stride))
        block, given = plan.block, parse_bytes(self.memory_budget)

        def lag_sums() -> LagSums:
            return correlate(data.lengths, read,
                             LagSums(L, modes=homogeneous, shape=shape, stride=stride,
                                     bootstrap=boot, block_length=blen, fft_bytes=fft_bytes,
                                     block=block if given is None else None),
                             block, progress=self.progress)

        sums = lag_sums()

        if autocov:  # the spectrum is the lag-0 autocovariance of the modes
            lag0, counts = sums.total()
            model.fit_spectrum(float(self.mean_), (lag0[0].real / (counts[0] * d))
                               .reshape(spec_shape), state_shape)

        resolved = resolved_mask(state_shape) if self.kick == "resolved" else None

        def raw_of(m: np.ndarray) -> np.ndarray:
            if autocov:
                m = -model.spectral_score(m)
            if homogeneous:
                m = m.reshape(L + 1, *spec_shape)
                if resolved is not None:  # the kick P delta: zero response on Nyquist lines
                    m = m * resolved
                return np.fft.irfftn(m, s=state_shape, axes=axes) / d
            return m

        m = sums.mean(release=True)
        raw = raw_of(m)
        self._state_outputs(raw, data, homogeneous, axes, resolved)
        rep_raw = raw_of
        if self._gaussian_here:  # replicates use their own covariance (see Notes)
            rescale = own_statistics(m, homogeneous)

            def rep_raw(r: np.ndarray) -> np.ndarray:
                return raw_of(rescale(r))

        self._finish_bootstrap(boot, rep_raw,
                               lambda r: _normalize(r, homogeneous, axes, resolved), lag_sums)
        logger.info("GFDT response from %d states: Stein error %.3g", data.n_samples,
                    self.stein_error_)

    def _plan_state(self, data: Trajectories, L: int, homogeneous: bool, blen: int,
                    model_bytes: int, log: bool = True, what: str = "ResponseEstimator.fit"
                    ) -> tuple[_plan.MemoryPlan, int]:
        """Memory plan of the plain GFDT (:mod:`gfdt.response._plan`) and FFT work space."""
        d = int(np.prod(data.state_shape))
        return _plan.plan_fit(
            self, data, L, d=d, shape_of=_plan.state_shape_of(homogeneous, data.state_shape),
            homogeneous=homogeneous, score_fit=self._score_fit[0], model_bytes=model_bytes,
            blen=blen, own_stats=self._gaussian_here and not homogeneous, log=log, what=what)

    def _state_reader(self, data: Trajectories, model: ScoreEstimator, homogeneous: bool,
                      autocov: bool) -> Callable:
        """``read(k, a, e, b)`` of the plain GFDT: targets :math:`x - \\mu`, sources
        :math:`-s` on the stride grid (spatial Fourier modes for a homogeneous field)."""
        stride, d = int(self.source_stride), int(np.prod(data.state_shape))
        axes = tuple(range(1, 1 + len(data.state_shape)))
        spectral = _spectral_score(model) if homogeneous and not autocov else None
        workers = fft_workers()

        def read(k: int, a: int, e: int, b: int) -> tuple[np.ndarray, np.ndarray | None]:
            xe = data.read(k, a, e)  # sources a..b-1 and their targets (one read)
            u = xe - self.mean_
            if autocov:  # sources: the targets (scaled per mode later)
                return sfft.rfftn(u, axes=axes, workers=workers).reshape(e - a, -1), None
            if spectral is not None:  # a score diagonal in Fourier space: no field round trip
                uh = sfft.rfftn(u, axes=axes, workers=workers).reshape(e - a, -1)
                if stride == 1:
                    sh = spectral(uh[: b - a], self.mean_)
                else:
                    sh = np.zeros((b - a, uh.shape[1]), dtype=complex)
                    sh[::stride] = spectral(uh[: b - a: stride], self.mean_)
                return uh, np.negative(sh, out=sh)
            s = np.zeros_like(xe[: b - a])
            s[::stride] = evaluate(model, xe[: b - a: stride], int(self.batch_size))
            if homogeneous:
                uh = sfft.rfftn(u, axes=axes, workers=workers).reshape(e - a, -1)
                s = sfft.rfftn(s, axes=axes, workers=workers).reshape(b - a, -1)
                return uh, np.negative(s, out=s)  # in place: no copy beyond the budget
            return u.reshape(e - a, d), np.negative(s, out=s).reshape(b - a, d)

        return read

    def _state_outputs(self, raw: np.ndarray, data: Trajectories, homogeneous: bool,
                       axes: tuple[int, ...], resolved: np.ndarray | None = None) -> None:
        """``response_raw_``, ``response_``, ``stein_`` and ``stein_error_`` of the plain
        GFDT from the raw response ``raw`` (lag first)."""
        state_shape, d = data.state_shape, int(np.prod(data.state_shape))
        self.homogeneous_ = homogeneous
        self.response_raw_ = _output.state_response(raw, data, homogeneous, False,
                                                    self._method())
        self.stein_ = self.response_raw_.isel(lag=0, drop=True)
        eye = np.zeros(state_shape) if homogeneous else np.eye(d)
        if homogeneous and resolved is not None:  # R(0) of the kick P delta is P delta
            eye = resolved_impulse(state_shape)
        elif homogeneous:
            eye[(0,) * len(state_shape)] = 1.0
        self.stein_error_ = float(np.linalg.norm(raw[0] - eye)
                                  / (1 if homogeneous else np.sqrt(d)))
        self.response_ = self.response_raw_
        if self.normalize:
            self.response_ = _output.state_response(_normalize(raw, homogeneous, axes,
                                                               resolved), data,
                                                    homogeneous, True, self._method())
        self.response_kind_ = "homogeneous" if homogeneous else "matrix"
        self.stein_expected_ = None

    # -------------------------------------------------- observables, perturbations
    def _conjugate_objects(self, data: Trajectories
                           ) -> tuple[Observable, Perturbation | None]:
        state_shape = data.state_shape
        obs = Observable(self.observable, state_shape)
        if self.perturbation is None:
            return obs, None
        pert = self.perturbation
        if not isinstance(pert, Perturbation):
            pert = Perturbation(pert, divergence=self.divergence, autograd=self.autograd,
                                n_probes=self.n_probes, probe=self.probe,
                                fd_step=self.fd_step)

        def scale() -> float:
            first = np.asarray(data.members[0], dtype=float)
            return float(first.reshape(first.shape[0], -1).std(axis=0).mean())

        return obs, pert.bind(state_shape, self._seed_streams(None)[1], scale)

    def _fit_conjugate(self, data: Trajectories, model: ScoreEstimator, L: int) -> None:
        """Response of an observable to a perturbation (or to kicks of each coordinate)."""
        if self.normalize:
            raise ValueError("normalize=True applies to the plain state response, not with "
                             "observable or perturbation")
        obs, pert = self._conjugate_objects(data)
        A, B, expected = conjugate_series(data, model, obs, pert, int(self.source_stride),
                                          int(self.batch_size), self.progress)
        mean_A = sum(v.sum(axis=0) for v in A) / data.n_samples
        stride = int(self.source_stride)
        shape = (L + 1, A[0].shape[1], B[0].shape[1])
        d = int(np.prod(data.state_shape))

        def read(k: int, a: int, e: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            return A[k][a:e] - mean_A, B[k][a:b]

        def replan(bl: int) -> tuple[_plan.MemoryPlan, int]:
            return _plan.plan_fit(self, data, L, d=d, shape_of=lambda L_, d_: (
                L_ + 1, shape[1], shape[2]), homogeneous=False, score_fit=self._score_fit[0],
                model_bytes=estimator_bytes(model), blen=bl)

        boot, blen, plan, _ = _plan.start_bootstrap(
            self, data, L, shape, float, replan,
            _plan.product_series(read, data.lengths, L, 4096, False, stride=stride))

        def lag_sums() -> LagSums:
            return correlate(data.lengths, read, LagSums(
                L, modes=False, shape=shape, stride=stride, bootstrap=boot, block_length=blen),
                plan.block, progress=False)

        sums = lag_sums()
        identity = obs.identity and pert is not None
        kind = "observable" if pert is None else "perturbation"
        r_shape = ((L + 1, *data.state_shape) if identity
                   else shape[:2] if pert is not None else shape)

        def raw_of(m: np.ndarray) -> np.ndarray:
            return (m[..., 0] if pert is not None else m).reshape(r_shape)

        raw = raw_of(sums.mean(release=True))
        self.homogeneous_ = False
        self.mean_ = mean_A.reshape(data.state_shape) if identity else mean_A
        self.response_kind_ = kind
        self.response_raw_ = _output.conjugate_response(raw, data, obs, pert, kind, identity,
                                                        self._method())
        self.response_ = self.response_raw_
        self.stein_ = self.response_raw_.isel(lag=0, drop=True)
        self.stein_expected_, self.stein_error_ = None, float("nan")
        if expected is not None:
            expected = expected.reshape(raw.shape[1:])
            self.stein_expected_ = self.stein_.copy(data=expected)
            self.stein_expected_.attrs.update(cf_attrs("stein_expected"))
            norm = float(np.linalg.norm(expected))
            self.stein_error_ = (float(np.linalg.norm(raw[0] - expected)) / norm if norm > 0
                                 else float("nan"))
        self._finish_bootstrap(boot, raw_of, None, lag_sums)
        logger.info("GFDT %s response from %d states", kind, data.n_samples)

    # ------------------------------------------------------------- null model
    def null_bands(self, X, *, n_surrogates: int = 100, level: float = 0.95, seed: int = 0,
                   kind: str = "ar1", attribute: str = "response_") -> xr.Dataset:
        """Red-noise (AR(1)) or VAR(1) null-model band of the response of ``X``.

        Fits an unfitted clone of this estimator (same parameters, no bootstrap) to
        ``n_surrogates`` surrogates of ``X`` with the same lag-1 autocorrelation and
        variance (:func:`gfdt.nullmodel.surrogate_bands`); a response outside the band
        differs from what red noise would give. The estimator itself is not changed.

        Parameters
        ----------
        X : xarray.DataArray or numpy.ndarray, shape ``(time, *state)``
            The data (as for :meth:`fit`).
        n_surrogates : int
            Surrogates (>= 2; about ``40 / (1 - level)`` for stable edges).
        level : float
            Central probability of the band, in (0, 1).
        seed : int
            Seed of the surrogates.
        kind : {"ar1", "var1"}
            Independent AR(1) per coordinate, or a VAR(1) with the lag-1 cross-
            covariances.
        attribute : str
            Fitted attribute to band (default ``"response_"``).

        Returns
        -------
        xarray.Dataset
            ``lower``, ``median``, ``upper`` with the layout of ``attribute``.
        """
        from gfdt.nullmodel import surrogate_bands

        return surrogate_bands(self, X, n_surrogates=n_surrogates, level=level, seed=seed,
                               kind=kind, attribute=attribute)

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
        :func:`~gfdt.response.response_to_forcing` for the layouts.

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

        Raises
        ------
        gfdt.scores.NotFittedError
            Before :meth:`fit`.
        """
        if not hasattr(self, "response_"):
            raise NotFittedError("this ResponseEstimator is not fitted yet: call fit() first")
        response, reps = self.response_, getattr(self, "_replicates", None)
        scalar = response.dims == ("lag",) and self.response_kind_ == "matrix"
        if scalar:  # a single series: a (lag, 1, 1) matrix, forcing (time,) or (time, 1)
            response = response.expand_dims(("observable", "source"), axis=(1, 2))
            reps = None if reps is None else reps.reshape(*reps.shape, 1, 1)
            forcing = scalar_forcing(forcing)
        pred = response_to_forcing(response, forcing, kind=self.response_kind_)
        if not return_stderr:
            return pred.squeeze("observable", drop=False) if scalar else pred
        se = prediction_stderr(response, reps, forcing, self.response_kind_, pred)
        if scalar:
            return pred.squeeze("observable"), se.squeeze("observable")
        return pred, se
