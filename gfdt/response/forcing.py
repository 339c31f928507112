"""Linear-response prediction under a time-dependent forcing: a causal convolution."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft as sfft
import xarray as xr

from gfdt.conventions import attrs as cf_attrs
from gfdt.response._checks import check_coords_agree

__all__ = ["response_to_forcing"]

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
    if not np.all(np.isfinite(R)):
        raise ValueError(f"response contains {int((~np.isfinite(R)).sum())} NaN or inf values")
    L = R.shape[0] - 1
    dt = _forcing_time_step(response, time_step)
    if kind is None:
        kind = response.attrs.get("response_kind")
    F, tcoord = _forcing_values(response, forcing, dt)
    if kind is None:
        if "source" in response.dims:
            kind = "matrix"
        elif F.ndim == 1:
            kind = "perturbation"
        else:
            kind = "homogeneous"
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    out, dims = _convolve(R, F, kind, response.dims)
    out *= dt
    N = F.shape[0]
    coords: dict[str, Any] = {}
    if tcoord is not None:
        coords["time"] = tcoord
    else:
        lag_attrs = dict(response["lag"].attrs) if "lag" in response.coords else {}
        coords["time"] = ("time", np.arange(N) * dt,
                          {**cf_attrs("forcing_time"),
                           **{k: v for k, v in lag_attrs.items() if k == "units"}})
    for dim in dims[1:]:
        if dim in response.coords:
            coords[dim] = response[dim]
    attrs = {**cf_attrs("prediction"), "time_step": float(dt), "kind": kind, "max_lag": int(L)}
    return xr.DataArray(out, dims=dims, coords=coords, name="predicted_response", attrs=attrs)


def _forcing_values(response: xr.DataArray, forcing, dt: float) -> tuple[np.ndarray, Any]:
    """The forcing as a real array, time first (dims in the response's order), and its
    time coordinate (None for an array)."""
    tcoord = None
    if isinstance(forcing, xr.DataArray):
        if "time" not in forcing.dims:
            raise ValueError(f"forcing must have a 'time' dimension, got dims {forcing.dims}")
        other = [dm for dm in forcing.dims if dm != "time"]
        order = ["time"] + [dm for dm in response.dims[1:] if dm in other]
        order += [dm for dm in other if dm not in order]
        fda = forcing.transpose(*order)
        check_coords_agree(response, forcing, response.dims[1:])
        if "time" in forcing.coords:
            tv = forcing["time"].values
            lag_attrs = response["lag"].attrs if "lag" in response.coords else {}
            if tv.size > 1 and not np.issubdtype(tv.dtype, np.number):  # dates
                from gfdt._time import TimeStep, forcing_times

                forcing_times(forcing["time"], TimeStep(dt, lag_attrs.get("units"),
                                                        lag_attrs.get("calendar")), "forcing")
            elif tv.size > 1:
                _check_units(forcing["time"].attrs.get("units"), lag_attrs.get("units"))
                steps = np.diff(tv.astype(float))
                if np.any(np.abs(steps - dt) > 1e-6 * dt):
                    raise ValueError(
                        f"forcing's time coordinate must have the response's lag spacing "
                        f"{dt:g} (got steps {steps.min():g} .. {steps.max():g})"
                    )
            tcoord = forcing["time"]
        F = np.asarray(fda.values)
    else:
        F = np.asarray(forcing)
    if F.dtype == object or not np.issubdtype(F.dtype, np.number) \
            or np.issubdtype(F.dtype, np.complexfloating):
        raise TypeError("forcing must be a real numeric array")
    F = F.astype(float)
    if F.ndim < 1 or F.shape[0] < 1:
        raise ValueError("forcing must have at least one time sample (axis 0)")
    if not np.all(np.isfinite(F)):
        raise ValueError("forcing contains NaN or inf")
    return F, tcoord


def _convolve(R: np.ndarray, F: np.ndarray, kind: str, rdims: tuple
              ) -> tuple[np.ndarray, tuple]:
    """:math:`\\sum_{j \\le n} R(n - j) F(j)` for the layout ``kind`` (zero-padded FFTs in
    time; periodic in space for ``"homogeneous"``), and the result's dims."""
    N, L = F.shape[0], R.shape[0] - 1
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
        out = sfft.irfftn(conv, s=R.shape[1:], axes=axes) if axes else conv.real
        return out, ("time", *rdims[1:])
    if kind in ("matrix", "observable"):
        if R.ndim != 3:
            raise ValueError(f"a {kind} response needs dims (lag, observable, source), got "
                             f"{rdims}")
        if F.shape[1:] != (R.shape[2],):
            raise ValueError(f"forcing must have shape (time, {R.shape[2]}) for this response, "
                             f"got {F.shape}")
        fr = sfft.rfft(R, n=nfft, axis=0)
        ff = sfft.rfft(F, n=nfft, axis=0)
        return (sfft.irfft(np.einsum("fpq,fq->fp", fr, ff), n=nfft, axis=0)[:N],
                ("time", rdims[1]))
    if F.ndim != 1:  # perturbation
        raise ValueError(f"forcing of a perturbation response is an amplitude, shape "
                         f"(time,), got {F.shape}")
    fr = sfft.rfft(R, n=nfft, axis=0)
    ff = sfft.rfft(F, n=nfft)
    return (sfft.irfft(fr * ff.reshape(-1, *([1] * (R.ndim - 1))), n=nfft, axis=0)[:N],
            ("time", *rdims[1:]))


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


def predict(response: xr.DataArray, reps: np.ndarray | None, kind: str, forcing,
            return_stderr: bool) -> xr.DataArray | tuple[xr.DataArray, xr.DataArray]:
    """:meth:`gfdt.ResponseEstimator.predict` of a fitted ``response`` of ``kind``.

    ``reps`` holds the bootstrap replicates of ``response`` (lag first), or None.
    """
    scalar = response.dims == ("lag",) and kind == "matrix"
    if scalar:  # a single series: a (lag, 1, 1) matrix, forcing (time,) or (time, 1)
        response = response.expand_dims(("observable", "source"), axis=(1, 2))
        reps = None if reps is None else reps.reshape(*reps.shape, 1, 1)
        forcing = scalar_forcing(forcing)
    pred = response_to_forcing(response, forcing, kind=kind)
    if not return_stderr:
        return pred.squeeze("observable", drop=False) if scalar else pred
    se = prediction_stderr(response, reps, forcing, kind, pred)
    if scalar:
        return pred.squeeze("observable"), se.squeeze("observable")
    return pred, se


def prediction_stderr(response: xr.DataArray, replicates: np.ndarray | None, forcing,
                      kind: str, pred: xr.DataArray) -> xr.DataArray:
    """Standard error of a prediction: the spread of the replicates' predictions."""
    if replicates is None:
        raise ValueError("return_stderr=True needs the bootstrap replicates: fit with "
                         "bootstrap=True (kept only when n_bootstrap x the response "
                         "size takes at most 64 MiB and fits the fit's memory plan)")
    preds = np.stack([response_to_forcing(response.copy(data=r), forcing, kind=kind).values
                      for r in replicates])
    se = pred.copy(data=preds.std(axis=0, ddof=1))
    se.name = "stderr"
    se.attrs.update(cf_attrs("prediction_stderr"))
    return se


def scalar_forcing(forcing):
    """The forcing of a single series as ``(time, 1)`` (from ``(time,)`` or ``(time, 1)``)."""
    if isinstance(forcing, xr.DataArray):
        if forcing.dims == ("time",):
            return forcing.expand_dims("source", axis=1)
        return forcing
    arr = np.asarray(forcing)
    return arr[:, None] if arr.ndim == 1 else arr


def _check_units(forcing_units, lag_units) -> None:
    """A numeric forcing time axis in other units than the response's lags is an error."""
    if forcing_units is None or lag_units in (None, "samples", "1"):
        return
    from gfdt._time import _parse_units

    own, _ = _parse_units(forcing_units)
    if own != lag_units:
        raise ValueError(f"forcing's time coordinate is in {forcing_units!r}, the response's "
                         f"lags in {lag_units!r}: convert the forcing's time axis")
