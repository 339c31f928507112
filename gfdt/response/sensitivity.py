"""SensitivityEstimator: responses of observables to parameter steps, from unperturbed data.

For a parameter :math:`\\theta` with conjugate variable :math:`B_\\theta`
(:mod:`gfdt.response.parameters`), the response of :math:`\\langle A\\rangle` to a
unit impulse of :math:`\\theta` at time 0 is the kick response
:math:`K(\\tau) = \\langle (A(x(\\tau)) - \\langle A\\rangle)\\, B_\\theta(x(0))\\rangle`,
and to a unit *step* at time 0 its running integral
:math:`R(t) = \\int_0^t K(\\tau)\\,d\\tau`. The static sensitivity
:math:`\\partial\\langle A\\rangle/\\partial\\theta = R(\\infty)` is read at a finite
window. The lag sums go through the one correlation engine
(:mod:`gfdt.response.correlate`), the error bars through its block bootstrap.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from gfdt._duration import parse_max_lag
from gfdt.conventions import attrs as cf_attrs
from gfdt.data import Trajectories, as_trajectories
from gfdt.response import _plan
from gfdt.response._checks import check_gaussian_fit, check_record, check_samples
from gfdt.response._output import lag_of
from gfdt.response._score import evaluate, resolve_score
from gfdt.response.bootstrap import Bootstrap, check_seed, replicate_stds
from gfdt.response.conjugate import Observable
from gfdt.response.correlate import LagSums, correlate
from gfdt.response.parameters import ParameterPerturbation
from gfdt.scores.base import NotFittedError, ScoreEstimator, check_flag
from gfdt.systems.base import System, system_from_attrs

__all__ = ["SensitivityEstimator", "step_response"]

logger = logging.getLogger("gfdt")

#: The automatic window is WINDOW_FACTOR times the first lag t such that the kick
#: response stays within NOISE_LEVEL standard errors over [t, WINDOW_FACTOR t] (so the
#: neglected tail is small against the error of the integral, the noise of a long empty
#: tail is not integrated, and a sign change of K is not taken for its end).
WINDOW_FACTOR = 2.0
NOISE_LEVEL = 2.0


def step_response(kick: np.ndarray, dt: float) -> np.ndarray:
    """Running trapezoid integral :math:`R(t_n) = \\Delta t\\,[K_0/2 + K_1 + \\ldots +
    K_{n-1} + K_n/2]`, :math:`R(0) = 0`, along the first axis of ``kick``."""
    out = np.zeros_like(kick)
    out[1:] = np.cumsum(0.5 * (kick[1:] + kick[:-1]), axis=0) * dt
    return out


class SensitivityEstimator:
    """Sensitivities of observables to parameters of the dynamics via the GFDT.

    Parameters
    ----------
    score : str, callable or ScoreEstimator
        As for :class:`~gfdt.ResponseEstimator` (``"gaussian"``, ``"exact"``, a learned
        score name, a callable or an estimator).
    observables : mapping or sequence
        ``{name: A}`` with ``A`` a callable ``(m, *state) -> (m,)`` (or an
        :class:`~gfdt.response.Observable`), or a sequence of callables (named after
        their ``__name__``).
    parameters : sequence, optional
        Parameter names of ``system`` (each turned into
        :meth:`ParameterPerturbation.from_system`) and/or
        :class:`~gfdt.response.ParameterPerturbation` objects. Default: every
        ``system.sensitivity_parameters``.
    system : gfdt.systems.System, optional
        The system behind the data (default: rebuilt from the data's attributes when
        needed).
    max_lag : int, float, str or timedelta
        Largest lag (samples, or a duration in the data's time units, as for
        :class:`~gfdt.ResponseEstimator`).
    window : int, float, str, timedelta or None
        Integration window of the static sensitivity (same units as ``max_lag``, at most
        ``max_lag``). None: for each observable and parameter, :math:`2t` with
        :math:`t` the first lag such that :math:`|K|` stays within two bootstrap standard
        errors on :math:`[t, 2t]` (``max_lag`` and a warning when there is no such lag),
        and the longest of these for all: relaxation times belong to the system, and a
        pair whose kick response is weak against its noise at every lag (but whose
        integral is not) would otherwise get a window that is far too short. Needs
        ``bootstrap``. The trapezoid rule needs a save interval that
        resolves the decay of :math:`K`: components decaying at rate :math:`r` are
        overestimated by a factor :math:`(r h/2)\\coth(r h/2)` for save interval
        :math:`h` (4 % at :math:`rh = 1`).
    stein_correction : bool
        Wrap the fitted score in :class:`~gfdt.scores.SteinCorrected` (fitted on the
        same data) before use.
    homogeneous : bool, optional
        Periodic translation-invariant fields (for the Gaussian fit and the Stein
        correction). Default from the data attributes.
    jacobian : {"auto", "constant", "exact", "hutchinson"}
        Trace method of the diffusion conjugate for parameters given by name (see
        :class:`~gfdt.response.ParameterPerturbation`).
    divergence : {"auto", "exact", "hutchinson"}
        Numerical divergence of :math:`\\partial F/\\partial\\theta` for parameters given
        by name when the system has no closed form.
    n_probes : int
        Probes per state of the Hutchinson estimates.
    fd_step : float, optional
        Finite-difference step (default 1e-4 times the data's standard deviation).
    batch_size, progress, score_options, source_stride
        As for :class:`~gfdt.ResponseEstimator`.
    bootstrap, n_bootstrap, block_length, seed
        Block-bootstrap options, as for :class:`~gfdt.ResponseEstimator`, except the
        floor of the default block length: ``3 (max_lag + 1)`` (the summand of a
        sensitivity at one source time spans the whole window). The window is held
        fixed in the replicates.
    memory_budget : int or str, optional
        Bytes the fit may use beyond the data (as for
        :class:`~gfdt.ResponseEstimator`; default: half of the memory available). The
        fit is planned before allocating (``memory_plan_``): bootstrap replicates in
        chunks, or a ValueError naming the options that fit.

    Attributes
    ----------
    kick_response_ : xarray.DataArray, dims ("lag", "observable", "parameter")
        :math:`K(\\tau)`, per unit parameter per time unit.
    response_ : xarray.DataArray, dims ("lag", "observable", "parameter")
        Response :math:`R(t)` to a unit parameter step at lag 0 (trapezoid rule on the
        lag grid, :math:`R(0) = 0`), in observable units per unit parameter.
    sensitivity_ : xarray.DataArray, dims ("observable", "parameter")
        :math:`R` at the integration window.
    window_ : xarray.DataArray, dims ("observable", "parameter")
        The window used (lag units; the same for all pairs); also in
        ``sensitivity_.attrs["window"]``.
    kick_response_stderr_, response_stderr_, sensitivity_stderr_ : xarray.DataArray
        Bootstrap standard errors (NaN without bootstrap); the window is held fixed in
        the replicates.
    score_model_ : ScoreEstimator
        The score used (the Stein-corrected wrapper with ``stein_correction``).
    parameters_ : list of ParameterPerturbation
        The bound perturbations.
    mean_ : numpy.ndarray, shape (n_observables,)
        :math:`\\langle A\\rangle` on the data.
    n_samples_ : int
    timings_ : dict
    """

    def __init__(self, score: str | Callable | ScoreEstimator = "gaussian",
                 observables: Mapping[str, Any] | Sequence[Any] | None = None,
                 parameters: Sequence[str | ParameterPerturbation] | None = None, *,
                 system: System | None = None, max_lag: Any = 100, window: Any = None,
                 stein_correction: bool = False, homogeneous: bool | None = None,
                 jacobian: str = "auto", divergence: str = "auto", n_probes: int = 16,
                 fd_step: float | None = None, batch_size: int = 256,
                 progress: bool | None = None, score_options: dict | None = None,
                 source_stride: int = 1, bootstrap: bool | Bootstrap = True,
                 n_bootstrap: int = 100, block_length: int | None = None,
                 seed: int | None = None, memory_budget: int | str | None = None) -> None:
        self.score = score
        self.observables = observables
        self.parameters = parameters
        self.system = system
        self.max_lag = max_lag
        self.window = window
        self.stein_correction = stein_correction
        self.homogeneous = homogeneous
        self.jacobian = jacobian
        self.divergence = divergence
        self.n_probes = n_probes
        self.fd_step = fd_step
        self.batch_size = batch_size
        self.progress = progress
        self.score_options = score_options
        self.source_stride = source_stride
        self.bootstrap = bootstrap
        self.n_bootstrap = n_bootstrap
        self.block_length = block_length
        self.seed = seed
        self.memory_budget = memory_budget

    get_params = ScoreEstimator.get_params
    set_params = ScoreEstimator.set_params

    def __repr__(self) -> str:
        return (f"SensitivityEstimator(score={self.score!r}, parameters={self.parameters!r}, "
                f"max_lag={self.max_lag!r}, window={self.window!r})")

    # ------------------------------------------------------------------ input
    def _observables(self, state_shape: tuple[int, ...]) -> tuple[list[str], list[Observable]]:
        obs = self.observables
        if obs is None:
            raise ValueError("observables must be given: {name: callable} or a list of "
                             "callables (m, *state) -> (m,)")
        if isinstance(obs, Mapping):
            items = list(obs.items())
        elif isinstance(obs, (list, tuple)):
            items = [(getattr(f, "__name__", f"A{i}"), f) for i, f in enumerate(obs)]
        elif callable(obs) or isinstance(obs, Observable):
            items = [(getattr(obs, "__name__", "A0"), obs)]
        else:
            raise TypeError(f"observables must be a mapping name -> callable or a sequence "
                            f"of callables, got {type(obs).__name__}")
        if not items:
            raise ValueError("observables is empty")
        names = [str(k) for k, _ in items]
        if len(set(names)) != len(names):
            raise ValueError(f"observables: duplicate names {names}")
        out = []
        for k, f in items:
            if isinstance(f, str) or not (callable(f) or isinstance(f, Observable)):
                raise TypeError(f"observables[{k!r}] must be a callable (m, *state) -> (m,), "
                                f"got {type(f).__name__}")
            out.append(Observable(f, state_shape, name=f"observables[{k!r}]"))
        return names, out

    def _system(self, data: Trajectories) -> System | None:
        if self.system is not None:
            if not isinstance(self.system, System):
                raise TypeError(f"system must be a gfdt System, got "
                                f"{type(self.system).__name__}")
            return self.system
        try:
            return system_from_attrs(data.attrs)
        except ValueError:
            return None

    def _perturbations(self, system: System | None) -> list[ParameterPerturbation]:
        params = self.parameters
        if params is None:
            if system is None:
                raise ValueError("parameters: give ParameterPerturbation objects, or names "
                                 "with a system (system= or data from gfdt.simulate)")
            params = list(system.sensitivity_parameters)
            if not params:
                raise ValueError(f"parameters: {type(system).__name__} has no "
                                 "sensitivity_parameters")
        if isinstance(params, (str, ParameterPerturbation)):
            params = [params]
        if not isinstance(params, (list, tuple)) or not params:
            raise TypeError("parameters must be a non-empty list of names or "
                            "ParameterPerturbation objects")
        out = []
        for p in params:
            if isinstance(p, ParameterPerturbation):
                out.append(p)
            elif isinstance(p, str):
                if system is None:
                    raise ValueError(f"parameters: the name {p!r} needs a system (system= or "
                                     "data from gfdt.simulate)")
                out.append(ParameterPerturbation.from_system(
                    system, p, jacobian=self.jacobian, divergence=self.divergence,
                    n_probes=self.n_probes, fd_step=self.fd_step))
            else:
                raise TypeError(f"parameters: each entry must be a name or a "
                                f"ParameterPerturbation, got {type(p).__name__}")
        names = [p.name for p in out]
        if len(set(names)) != len(names):
            raise ValueError(f"parameters: duplicate names {names}")
        return out

    def _bootstrap_options(self) -> Bootstrap | None:
        return Bootstrap.from_keywords(self.bootstrap, self.n_bootstrap, self.block_length)

    def _check(self, data: Trajectories) -> tuple[int, int | None]:
        check_samples(data, "X")
        L = parse_max_lag(self.max_lag, data.step)
        if L < 1 or L >= data.min_length:
            raise ValueError(f"max_lag = {L} must be >= 1 and smaller than the length of "
                             f"every time series (shortest has {data.min_length} samples)")
        W = None
        if self.window is not None:
            W = parse_max_lag(self.window, data.step)
            if W < 1 or W > L:
                raise ValueError(f"window = {self.window!r} ({W} lags) must be between 1 lag "
                                 f"and max_lag ({L} lags)")
        for name in ("batch_size", "source_stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        check_flag(self.stein_correction, "stein_correction")
        check_flag(self.homogeneous, "homogeneous", optional=True)
        check_seed(self.seed)
        opts = Bootstrap.from_keywords(self.bootstrap, self.n_bootstrap, self.block_length)
        if W is None and opts is None:
            raise ValueError("window=None chooses the window from the bootstrap errors: give "
                             "a window or keep bootstrap")
        return int(L), W

    # -------------------------------------------------------------------- fit
    def fit(self, X, y=None) -> SensitivityEstimator:
        """Estimate the sensitivities from unperturbed data ``X`` (any input
        :class:`~gfdt.ResponseEstimator` accepts).

        Returns
        -------
        SensitivityEstimator
            ``self``, fitted.
        """
        data = as_trajectories(X, "X")
        L, W = self._check(data)
        homogeneous = (bool(int(data.attrs.get("gfdt_homogeneous", 0)))
                       if self.homogeneous is None else bool(self.homogeneous))
        names, observables = self._observables(data.state_shape)
        system = self._system(data)
        perts = self._perturbations(system)
        check_record(data, L, "X")
        self._score_fit = _plan.score_fit_bytes(self.score, data, homogeneous,
                                                 self.memory_budget)
        self._plan(data, L, len(names), len(perts), 0, log=False)  # fail before any work
        t0 = time.perf_counter()
        model = self._model(data, homogeneous, system)
        t1 = time.perf_counter()
        boot_seq, probe_seq = np.random.SeedSequence(self.seed).spawn(2)
        first = np.asarray(data.members[0], dtype=float)
        sd = float(first.reshape(first.shape[0], -1).std(axis=0).mean())
        fd = (1e-4 * (sd if sd > 0 else 1.0)) if self.fd_step is None else float(self.fd_step)
        rng = np.random.default_rng(probe_seq)
        perts = [p.bind(data.state_shape, rng, fd) for p in perts]
        memo: dict = {}  # one score Jacobian per batch for every diffusion parameter
        for p in perts:
            p.jacobian_memo = memo
        A, B = self._series(data, model, observables, perts)
        mean_A = sum(a.sum(axis=0) for a in A) / data.n_samples
        # the conjugates have zero mean under the exact score; centring them removes
        # the noise a constant part (e.g. -div dF/dtheta) would add to every lag sum
        stride = int(self.source_stride)  # B is filled on the source grid only
        mean_B = (sum(b[::stride].sum(axis=0) for b in B)
                  / sum(len(b[::stride]) for b in B))
        for b in B:
            b[::stride] -= mean_B
        kick, ses = self._lag_means(data, A, B, mean_A, L, boot_seq)
        self._outputs(data, kick, ses, W, names, [p.name for p in perts])
        self.score_model_, self.parameters_ = model, perts
        self.mean_, self.n_samples_ = mean_A, data.n_samples
        self.timings_ = {"score_fit_s": t1 - t0, "correlation_s": time.perf_counter() - t1}
        logger.info("GFDT sensitivities of %d observables to %d parameters from %d states",
                    len(names), len(perts), data.n_samples)
        return self

    def _model(self, data: Trajectories, homogeneous: bool,
               system: System | None) -> ScoreEstimator:
        model, _ = resolve_score(self.score, data, homogeneous, system=system,
                                 score_options=self.score_options, memory_budget=None,
                                 progress=self.progress)
        check_gaussian_fit(model, "X")
        if (isinstance(self.score, str) and self.score.lower() == "exact"
                and system is not None and system.gaussian):
            model.affine = True  # the exact score of a Gaussian law: constant Jacobian
        if self.stein_correction:
            from gfdt.scores.stein import SteinCorrected

            model = SteinCorrected(model, homogeneous=homogeneous).fit(data)
        return model

    def _series(self, data: Trajectories, model: ScoreEstimator,
                observables: list[Observable], perts: list[ParameterPerturbation]
                ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Observables at every sample (T, p) and conjugates at the source times (T, q)."""
        stride, chunk = int(self.source_stride), int(self.batch_size)
        A, B = [], []
        for k, T in enumerate(data.lengths):
            a_parts, b_parts = [], []
            for a in range(0, T, chunk):
                xb = data.read(k, a, min(a + chunk, T))
                a_parts.append(np.concatenate([o(xb) for o in observables], axis=1))
                first = -a % stride
                src = xb[first::stride]
                bb = np.zeros((xb.shape[0], len(perts)))
                if src.shape[0]:
                    s = evaluate(model, src, chunk)
                    for j, p in enumerate(perts):
                        bb[first::stride, j] = p.conjugate(src, s, model)
                b_parts.append(bb)
            A.append(np.concatenate(a_parts))
            B.append(np.concatenate(b_parts))
        return A, B

    def _plan(self, data: Trajectories, L: int, p: int, q: int, blen: int,
              log: bool = True) -> tuple[_plan.MemoryPlan, int]:
        """Memory plan: the score fit, the observables and conjugates (``p + q``
        series), the lag sums ``(L + 1, p, q)`` and their replicates."""
        d = int(np.prod(data.state_shape))
        series = 2 * 8 * data.n_samples * (p + q)
        return _plan.plan_fit(self, data, L, d=d, shape_of=lambda L_, d_: (L_ + 1, p, q),
                              homogeneous=False, score_fit=self._score_fit[0] + series,
                              model_bytes=self._score_fit[1], blen=blen, log=log,
                              what="SensitivityEstimator.fit")

    def _lag_means(self, data: Trajectories, A: list[np.ndarray], B: list[np.ndarray],
                   mean_A: np.ndarray, L: int, boot_seq: np.random.SeedSequence
                   ) -> tuple[np.ndarray, tuple | None]:
        """Kick response (L + 1, p, q) and the bootstrap standard errors of the kick and
        the step responses with the number of replicates (None without bootstrap)."""
        shape = (L + 1, A[0].shape[1], B[0].shape[1])
        dt = float(data.dt) if data.dt is not None else 1.0

        def read(k: int, a: int, e: int, b: int) -> tuple[np.ndarray, np.ndarray]:
            return A[k][a:e] - mean_A, B[k][a:b]

        boot, blen, plan, _ = _plan.start_bootstrap(
            self, data, L, shape, float, lambda bl: self._plan(data, L, *shape[1:], bl),
            _plan.product_series(read, data.lengths, L, 4096, False,
                                 stride=int(self.source_stride)),
            floor_lag=3 * (L + 1) - 1, seed=boot_seq)
        self.block_length_ = blen or None

        def lag_sums():
            return correlate(data.lengths, read, LagSums(
                L, modes=False, shape=shape, stride=int(self.source_stride), bootstrap=boot,
                block_length=blen), plan.block, progress=False)

        kick = lag_sums().mean(release=True)
        self._n_blocks = 0 if boot is None else boot.n_blocks
        if boot is None:
            return kick, None
        ses, _ = replicate_stds(boot, [lambda m: m, lambda m: step_response(m, dt)],
                                [kick, step_response(kick, dt)], lag_sums)
        return kick, (ses[0], ses[1], boot.n_bootstrap)

    # ---------------------------------------------------------------- outputs
    def _outputs(self, data: Trajectories, kick: np.ndarray, ses: tuple | None,
                 W: int | None, names: list[str], params: list[str]) -> None:
        dt = float(data.dt) if data.dt is not None else 1.0
        resp = step_response(kick, dt)
        nan = np.full_like(kick, np.nan)
        se_kick, se_resp, n_boot = (nan, nan, 0) if ses is None else ses
        se_kick = nan if se_kick is None else se_kick
        se_resp = nan if se_resp is None else se_resp
        p, q = kick.shape[1:]
        if W is None:  # the longest of the pairs' windows (see ``window``)
            W = max(self._auto_window(kick[:, i, j], se_kick[:, i, j], names[i], params[j])
                    for i in range(p) for j in range(q))
            given = False
        else:
            given = True
        win = np.full((p, q), W, dtype=int)
        ii, jj = np.meshgrid(np.arange(p), np.arange(q), indexing="ij")
        sens = resp[win, ii, jj]
        se_sens = se_resp[win, ii, jj]
        lag = lag_of(data, kick.shape[0])
        coords = {"observable": ("observable", names), "parameter": ("parameter", params)}
        base = {"method": self._method(), "n_samples": int(data.n_samples),
                "stein_correction": int(bool(self.stein_correction)),
                **{k: v for k, v in data.attrs.items() if k.startswith("gfdt_")}}

        def arr(values, key, name, with_lag=True, **fmt):
            dims = ("lag", "observable", "parameter") if with_lag else ("observable",
                                                                         "parameter")
            c = {"lag": lag, **coords} if with_lag else coords
            return xr.DataArray(values, dims=dims, coords=c, name=name,
                                attrs={**cf_attrs(key, **fmt), **base})

        self.kick_response_ = arr(kick, "parameter_kick_response", "kick_response")
        self.response_ = arr(resp, "parameter_step_response", "response")
        self.response_.attrs["integration"] = "trapezoid"
        lag_vals = np.asarray(lag[1])
        self.window_ = xr.DataArray(lag_vals[win], dims=("observable", "parameter"),
                                    coords=coords, name="window",
                                    attrs={**cf_attrs("integration_window"),
                                           "units": lag[2].get("units", "1")})
        self.sensitivity_ = arr(sens, "sensitivity", "sensitivity", with_lag=False)
        self.sensitivity_.attrs.update({
            "integration": "trapezoid",
            "window_rule": "given" if given
            else f"largest over pairs of {WINDOW_FACTOR:g} t, t the first lag with |K| <= "
                 f"{NOISE_LEVEL:g} standard errors on [t, {WINDOW_FACTOR:g} t]",
            "window": float(lag_vals[W]),
            "window_units": lag[2].get("units", "1")})
        for attr, values, like in (("kick_response_stderr_", se_kick, self.kick_response_),
                                   ("response_stderr_", se_resp, self.response_),
                                   ("sensitivity_stderr_", se_sens, self.sensitivity_)):
            se = like.copy(data=values)
            se.name = "stderr"
            se.attrs = {**cf_attrs("stderr", what=like.attrs["long_name"]),
                        "block_length": int(self.block_length_ or 0),
                        "n_bootstrap": int(n_boot), "n_blocks": int(self._n_blocks)}
            setattr(self, attr, se)

    def _auto_window(self, k: np.ndarray, se: np.ndarray, obs: str, param: str) -> int:
        L = k.size - 1
        quiet = np.abs(k) <= NOISE_LEVEL * se
        # first lag t such that |K| stays within the noise over [t, WINDOW_FACTOR t]
        first = next((t for t in range(1, L + 1)
                      if quiet[t:min(L, int(np.ceil(WINDOW_FACTOR * t))) + 1].all()), None)
        if first is None:
            msg = (f"sensitivity of {obs!r} to {param!r}: the kick response never falls "
                   f"within {NOISE_LEVEL:g} standard errors up to max_lag = {L} lags; the "
                   "window is max_lag and the sensitivity may be truncated: increase max_lag")
            logger.warning(msg)
            warnings.warn(msg, stacklevel=4)
            return L
        return int(min(L, np.ceil(WINDOW_FACTOR * first)))

    def _method(self) -> str:
        if isinstance(self.score, str):
            return self.score.lower()
        return getattr(self.score, "name", type(self.score).__name__)

    def summary(self) -> str:
        """A plain-text account of the fit: data, score, bootstrap, memory plan."""
        from gfdt.response._summary import summary

        return summary(self)

    def _check_fitted(self) -> None:
        if not hasattr(self, "sensitivity_"):
            raise NotFittedError("this SensitivityEstimator is not fitted yet: call fit() "
                                 "first")

    def sensitivity_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """The static sensitivities and their standard errors as plain arrays
        ``(n_observables, n_parameters)`` (for :func:`gfdt.calibrate`)."""
        self._check_fitted()
        return self.sensitivity_.values.copy(), self.sensitivity_stderr_.values.copy()
