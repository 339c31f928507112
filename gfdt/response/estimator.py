"""ResponseEstimator: responses from the generalized fluctuation-dissipation theorem.

The estimator is thin: it resolves the score (:mod:`gfdt.response._score`), builds
targets :math:`A = x - \\mu` and sources :math:`B = -s` (or those of
:mod:`gfdt.response.conjugate`) for the lagged-correlation engine
(:mod:`gfdt.response.correlate`), with error bars from :mod:`gfdt.response.bootstrap`.
The options are explained in ``docs/response_estimator.md``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
import scipy.fft as sfft
import xarray as xr

from gfdt._memory import estimator_bytes, parse_bytes
from gfdt.conventions import attrs as cf_attrs
from gfdt.data import Trajectories, as_trajectories
from gfdt.response import _output, _plan
from gfdt.response._checks import (
    check_gaussian_fit,
    check_not_constant,
    check_params,
    check_periodic,
    check_rank,
    check_record,
    check_stein,
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
from gfdt.response.conjugate import (
    Observable,
    Perturbation,
    conjugate_objects,
    conjugate_series,
)
from gfdt.response.correlate import LagSums, correlate, fft_workers
from gfdt.response.forcing import predict
from gfdt.response.reduced import ReducedResponse
from gfdt.scores.base import NotFittedError, ScoreEstimator, check_flag
from gfdt.scores.gaussian import GaussianScore
from gfdt.systems._spectral import resolved_mask
from gfdt.systems.base import System

__all__ = ["ResponseEstimator"]

logger = logging.getLogger("gfdt")


class ResponseEstimator(ReducedResponse):
    """Linear response from unperturbed data via the GFDT.

    :math:`R_{ij}(t) = -\\langle x_i(t)\\, s_j(x(0)) \\rangle`: the mean change of
    :math:`x_i` at time :math:`t` per unit kick of :math:`x_j` at time 0. The options
    explained: :doc:`/response_estimator`; conventions: :doc:`/theory`.

    Parameters
    ----------
    score : str, callable or ScoreEstimator
        ``"gaussian"``, ``"exact"`` (of the data's gfdt system or ``system``), a learned
        score's name (``"dsm"``, ``"hsm"``, ``"hold"``, ``"kernel"``, ``"kgmm"``,
        ``"auto"``), a callable ``(batch, *state) -> (batch, *state)``, or an estimator.
    max_lag : int, float, str or timedelta
        Largest lag: samples (int), or a duration in the data's time units (float,
        ``"12 months"``, timedelta) that is a whole number of time steps.
    normalize : bool
        Report :math:`R(t) R(0)^{-1}`; ``response_raw_`` keeps the raw estimate.
    homogeneous : bool, optional
        Translation-average a periodic field (default: ``gfdt_homogeneous`` attribute).
    system : gfdt.systems.System, optional
        Source of the exact score when the data carry no gfdt attributes.
    batch_size, source_stride : int
        States per score evaluation; score at every ``source_stride``-th sample only.
    progress : bool, optional
        Progress bar (default: only on a terminal).
    score_options : dict, optional
        Keyword arguments of the score estimator a score name creates.
    observable : None, str or callable
        Observable :math:`A`: a callable ``(batch, *state) -> (batch, n_obs)``,
        ``"mean"`` or ``"identity"`` (default: the plain GFDT).
    perturbation : callable, array_like or Perturbation, optional
        State-dependent perturbation :math:`x \\to x + \\delta\\, u(x)`.
    divergence, autograd, n_probes, probe, fd_step
        :class:`~gfdt.Perturbation` options for a plain callable or array.
    bootstrap : bool or Bootstrap
        Block-bootstrap error bars: True, False, or :class:`~gfdt.Bootstrap` options.
    n_bootstrap, block_length : int
        Replicates and block length in samples (default block length: the
        Politis-White length of the lagged products, at least ``max_lag + 1``; see
        :class:`~gfdt.Bootstrap`).
    seed : int, optional
        Seed of the bootstrap resampling and of the Hutchinson probes.
    memory_budget : int or str, optional
        Bytes the fit may use beyond the data (e.g. ``"256MB"``); streams the data. The
        fit plans its memory before allocating (``memory_plan_``, in the log and
        :meth:`summary`) and streams or raises a ValueError naming options that fit.
        Default: half of the available memory
        (:func:`gfdt._memory.available_memory`).
    kick : {"pixel", "resolved"}
        Homogeneous plain GFDT: one grid point, or that impulse without Nyquist lines.
    stein_correction : bool
        Wrap the score in :class:`~gfdt.scores.SteinCorrected` fitted on the data.
    reduce : gfdt.EOF, optional
        The GFDT on the EOF principal components of a field (:meth:`response_to`).

    Attributes
    ----------
    response_, response_raw_ : xarray.DataArray
        Response per unit kick (normalised if asked), raw estimate: dims ``("lag",
        *state_dims)`` (fields), ``("lag", "observable", "source")`` (matrix,
        observable) or ``("lag", "observable")`` (perturbation).
    response_stderr_, response_raw_stderr_ : xarray.DataArray or None
        Their bootstrap standard errors (None with ``bootstrap=False``; NaN with fewer
        than 2 blocks; normalised replicates use their own :math:`R(0)`).
    stein_ : xarray.DataArray
        Raw response at lag 0 (the Stein sum rule, ideally the identity).
    stein_error_ : float
        Relative distance of ``stein_`` from its exact value (NaN: observable only).
    stein_expected_ : xarray.DataArray or None
        With a perturbation: the sum rule's value :math:`E[\\nabla A\\cdot u]`.
    score_model_ : ScoreEstimator
        The score used.
    mean_ : numpy.ndarray
        Mean subtracted from :math:`x(t)` (scalar for fields), or :math:`\\langle A\\rangle`.
    n_samples_, block_length_ : int
        States used; bootstrap block length (samples).
    timings_ : dict
        Seconds fitting the score and computing correlations.
    memory_plan_ : gfdt.response.MemoryPlan
        The fit's memory plan (also in the log and :meth:`summary`).
    response_kind_ : str
        ``"matrix"``, ``"homogeneous"``, ``"observable"``, ``"perturbation"``, ``"reduced"``.
    reduce_ : gfdt.EOF or None
        The fitted reduction (``response_`` dims ``("lag", "mode", "source_mode")``).

    Notes
    -----
    Bootstrap replicates use their own Gaussian covariance (a Gaussian score fitted
    here) and their own :math:`R(0)` (``normalize``); see :doc:`/error_bars`.

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
        reduce=None,
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
        self.reduce = reduce

    # the scikit-learn parameter contract, shared with the score estimators
    get_params = ScoreEstimator.get_params
    set_params = ScoreEstimator.set_params

    def __repr__(self) -> str:
        return (f"ResponseEstimator(score={self.score!r}, max_lag={self.max_lag}, "
                f"normalize={self.normalize}, homogeneous={self.homogeneous})")

    # ------------------------------------------------------------------ checks
    def _is_homogeneous(self, data: Trajectories) -> bool:
        if self.homogeneous is None:
            return bool(int(data.attrs.get("gfdt_homogeneous", 0)))
        if not isinstance(self.homogeneous, (bool, np.bool_)):
            raise TypeError(f"homogeneous must be True, False or None, got {self.homogeneous!r}")
        if self.homogeneous:
            check_periodic(data)
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
            Dims ``time``, optionally ``member``, then state; a Dataset holding one such
            variable (``u`` preferred); an array ``(time, *state)`` or a list of them
            (independent members); or a :class:`gfdt.data.Trajectories`.
        y : ignored
        """
        if self.reduce is not None:  # the GFDT on EOF principal components
            return self._fit_reduced(X)
        self.reduce_ = None
        return self._fit_data(as_trajectories(X, "X"))

    def _preflight(self, data: Trajectories) -> tuple[int, bool]:
        """Every check of the options and the data a fit makes before any work (the
        record's warnings given once); returns ``max_lag`` in samples and whether the
        field is homogeneous."""
        L = check_params(self, data)
        parse_bytes(self.memory_budget)  # a bad size fails before any work
        self._bootstrap_options()  # bad options fail before any work
        homogeneous = self._is_homogeneous(data)
        if self.kick == "resolved" and (not homogeneous or self.observable is not None
                                        or self.perturbation is not None):
            raise ValueError("kick='resolved' applies to the plain GFDT of a homogeneous "
                             "field (no observable, no perturbation)")
        check_not_constant(data, homogeneous, "X")
        check_rank(data, homogeneous, self.score)
        check_record(data, L, "X")
        return L, homogeneous

    def _fit_data(self, data: Trajectories) -> ResponseEstimator:
        L, homogeneous = self._preflight(data)
        _plan.prepare(self, data, L, homogeneous)  # the memory plan: fail before any work
        t0 = time.perf_counter()
        if self._gaussian_from_autocorrelation(data, homogeneous):
            model, streamed = GaussianScore(homogeneous=True), False  # fitted in _fit_state
        else:
            model, streamed = resolve_score(
                self.score, data, homogeneous, system=self.system,
                score_options=self.score_options, memory_budget=self.memory_budget,
                progress=self.progress)
        check_gaussian_fit(model, "X", data.n_samples)
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
        check_stein(self)
        return self

    def _gaussian_from_autocorrelation(self, data: Trajectories, homogeneous: bool) -> bool:
        """Whether the Gaussian score of a homogeneous field comes from the lag sums.

        Its sources are the targets scaled per mode (:math:`\\hat s_k = -\\hat u_k /
        S_k`), and :math:`S_k` is the lag-0 sum: one pass, no score evaluation."""
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
        _output.state_outputs(self, raw, data, homogeneous, axes, resolved)
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

    # -------------------------------------------------- observables, perturbations
    def _fit_conjugate(self, data: Trajectories, model: ScoreEstimator, L: int) -> None:
        """Response of an observable to a perturbation (or to kicks of each coordinate)."""
        if self.normalize:
            raise ValueError("normalize=True applies to the plain state response, not with "
                             "observable or perturbation")
        obs, pert = conjugate_objects(
            self.observable, self.perturbation, data, self._seed_streams(None)[1],
            divergence=self.divergence, autograd=self.autograd, n_probes=self.n_probes,
            probe=self.probe, fd_step=self.fd_step)
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

        Fits unfitted clones of this estimator (no bootstrap) to surrogates of ``X``
        (data as for :meth:`fit`) with its lag-1 autocorrelation and variance, and
        returns ``lower``, ``median``, ``upper`` (an xarray.Dataset with the layout of
        ``attribute``). Parameters: :func:`gfdt.nullmodel.surrogate_bands`.
        """
        from gfdt.nullmodel import surrogate_bands

        kw = dict(n_surrogates=n_surrogates, level=level, seed=seed, kind=kind,
                  attribute=attribute)
        if self.reduce is not None:  # the null model of the principal components
            return self._null_bands_reduced(X, **kw)
        return surrogate_bands(self, X, **kw)

    # ------------------------------------------------------------- prediction
    def predict(self, forcing, return_stderr: bool = False
                ) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
        """Mean response of the observable(s) to a time-dependent forcing.

        :math:`\\delta\\langle A\\rangle(t_n) = \\sum_{j \\le n} R(t_n - t_j)\\,
        f(t_j)\\, \\Delta t`, with :math:`\\Delta t` the lag spacing of ``response_``
        (:doc:`/response_estimator`; layouts: :func:`~gfdt.response_to_forcing`).

        Parameters
        ----------
        forcing : numpy.ndarray or xarray.DataArray
            Forcing per unit time on the fitted data's time grid, time first:
            ``(time, *state)`` (homogeneous), ``(time, source)`` (matrix) or
            ``(time,)`` (amplitude of ``perturbation``).
        return_stderr : bool
            Also return the bootstrap standard error of the prediction.

        Returns
        -------
        xarray.DataArray or (xarray.DataArray, xarray.DataArray)
            :math:`\\delta\\langle A\\rangle`, dims ``("time", ...)`` (and its error).
        """
        if getattr(self, "reduce_", None) is not None:  # pattern forcing, mapped to the grid
            return self._predict_reduced(forcing, return_stderr)
        if not hasattr(self, "response_"):
            raise NotFittedError("this ResponseEstimator is not fitted yet: call fit() first")
        return predict(self.response_, getattr(self, "_replicates", None),
                       self.response_kind_, forcing, return_stderr)

