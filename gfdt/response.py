"""ResponseEstimator: responses from the generalized fluctuation-dissipation theorem."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.fft as sfft
import xarray as xr
from tqdm.auto import tqdm

from gfdt._data import Series, as_series
from gfdt.scores.analytic import AnalyticScore
from gfdt.scores.base import ScoreEstimator
from gfdt.scores.gaussian import GaussianScore
from gfdt.systems.base import System, system_from_attrs

__all__ = ["SCORE_NAMES", "ResponseEstimator"]

logger = logging.getLogger("gfdt")

#: Names accepted by ``ResponseEstimator(score=...)``.
SCORE_NAMES = ("gaussian", "exact", "dsm")

_MODE_CHUNK_BYTES = 64 * 2**20


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
        :class:`~gfdt.scores.DenoisingScoreModel` with its defaults), ``"exact"`` (the
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
        :class:`~gfdt.scores.DenoisingScoreModel`).

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
        norm of :math:`R(r, 0) - \\delta_r` over the field).
    score_model_ : ScoreEstimator
        The score used.
    mean_ : numpy.ndarray
        Data mean subtracted from :math:`x(t)` (scalar for homogeneous fields).
    n_samples_ : int
        Number of states used.
    timings_ : dict
        Seconds spent fitting the score and computing correlations.

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
    ) -> None:
        self.score = score
        self.max_lag = max_lag
        self.normalize = normalize
        self.homogeneous = homogeneous
        self.system = system
        self.batch_size = batch_size
        self.progress = progress
        self.score_options = score_options

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
        return int(L)

    def _is_homogeneous(self, series: Series) -> bool:
        if self.homogeneous is None:
            return bool(int(series.attrs.get("gfdt_homogeneous", 0)))
        if not isinstance(self.homogeneous, (bool, np.bool_)):
            raise TypeError(f"homogeneous must be True, False or None, got {self.homogeneous!r}")
        return bool(self.homogeneous)

    def _resolve_score(self, series: Series, homogeneous: bool) -> ScoreEstimator:
        s = self.score
        if isinstance(s, str):
            name = s.lower()
            if name == "gaussian":
                return GaussianScore(homogeneous=homogeneous).fit(series.samples())
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
            if name == "dsm":
                from gfdt.scores.dsm import DenoisingScoreModel

                opts = {"homogeneous": homogeneous, "progress": self.progress,
                        **(self.score_options or {})}
                return DenoisingScoreModel(**opts).fit(series.samples())
            raise ValueError(
                f"unknown score {s!r}; choose one of {', '.join(SCORE_NAMES)}, "
                "or pass a callable or a score estimator"
            )
        if isinstance(s, ScoreEstimator):
            return s if s.is_fitted else s.fit(series.samples())
        if callable(s):
            return AnalyticScore(s, name=getattr(s, "__name__", "callable")).fit()
        raise TypeError(
            f"score must be a name ({', '.join(SCORE_NAMES)}), a callable or a ScoreEstimator, "
            f"got {type(s).__name__}"
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
        homogeneous = self._is_homogeneous(series)
        t0 = time.perf_counter()
        model = self._resolve_score(series, homogeneous)
        t1 = time.perf_counter()
        state_shape = series.state_shape
        d = int(np.prod(state_shape))
        if homogeneous:
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
        block = max(4 * L, 2048)
        bar = tqdm(total=series.n_samples, desc="GFDT", unit="state", unit_scale=True,
                   disable=None if self.progress is None else not self.progress, leave=False)
        try:
            for x in series.members:
                T = x.shape[0]
                counts += T - np.arange(L + 1)
                for a in range(0, T, block):
                    b = min(a + block, T)
                    e = min(b + L, T)
                    s = self._scores(model, x[a:b])
                    u = x[a:e] - self.mean_
                    if homogeneous:
                        sh = np.fft.rfftn(s, axes=axes).reshape(b - a, -1)
                        uh = np.fft.rfftn(u, axes=axes).reshape(e - a, -1)
                        acc += _lagged_cross(uh, sh, L)
                    else:
                        sf = s.reshape(b - a, d)
                        uf = u.reshape(e - a, d)
                        for lag in range(L + 1):
                            n = min(b, T - lag) - a
                            if n > 0:
                                acc[lag] += uf[lag:lag + n].T @ sf[:n]
                    bar.update(b - a)
        finally:
            bar.close()
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
        logger.info("GFDT response from %d states: Stein error %.3g", self.n_samples_,
                    self.stein_error_)
        return self

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


def _lagged_cross(uh: np.ndarray, sh: np.ndarray, L: int) -> np.ndarray:
    """:math:`c[\\tau, k] = \\sum_t u_k(t + \\tau) \\overline{s_k(t)}`, tau = 0..L.

    ``uh`` (Tu, M) covers the targets, ``sh`` (Ts, M) the sources, with
    ``Tu <= Ts + L``; zero padding to ``nfft >= Ts + L`` removes circular wrap.
    """
    Ts, M = sh.shape
    nfft = sfft.next_fast_len(Ts + L)
    chunk = max(1, _MODE_CHUNK_BYTES // (16 * nfft * 3))
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
