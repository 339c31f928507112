"""The one table of dims, CF attributes, global attributes and the lag coordinate.

Every writer of gfdt output (simulate, truth, the response estimator, stats) takes its
metadata from here, so a name, a unit or the conventions version changes in one place.
This module imports nothing from gfdt (it sits below every other module).

The CF conventions need little machinery for gfdt's outputs (a ``long_name`` and
``units`` per variable, an ``axis`` on the coordinate axes, a few global attributes), so
no CF library is used: a plain table is enough and keeps the import light.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

__all__ = ["CONVENTIONS", "DIMS", "attrs", "global_attrs", "history", "lag_coord", "version"]

#: CF conventions version written to every file.
CONVENTIONS = "CF-1.10"

#: Dimension names gfdt reads and writes.
DIMS = {
    "member": "member",  # independent ensemble members
    "time": "time",  # sample times of a member
    "lag": "lag",  # time lag of a response or correlation
    "observable": "observable",  # observables of a response
    "source": "source",  # kicked coordinates of a response
    "feature": "feature",  # the state of 1-D (vector) data
}

#: CF attributes of gfdt's standard variables and coordinates.
_ATTRS: dict[str, dict[str, str]] = {
    "member": {"long_name": "ensemble member"},
    "model_time": {"units": "1", "long_name": "model time", "axis": "T"},
    "lag": {"long_name": "time lag"},
    "hidden_state": {"long_name": "hidden state (not observed)", "units": "1"},
    "forcing_time": {"long_name": "time since the forcing started"},
    "truth_response": {"long_name": "dynamical response to {what}"},
    "truth_stderr": {"long_name": "standard error of the dynamical response"},
    "truth_member_mean": {"long_name": "mean dynamical response of each member"},
    "forced_change": {"long_name": "mean change under the forcing"},
    "forced_stderr": {"long_name": "standard error of the mean change"},
    "prediction": {"long_name": "linear-response prediction of the change of the mean"},
    "prediction_stderr": {"long_name": "bootstrap standard error of the prediction"},
    "stderr": {"long_name": "bootstrap standard error of the {what}"},
    "stein_expected": {"long_name": "E[grad A . u] (Stein sum rule)"},
    # simulated fields and their grid
    "state": {"long_name": "{long_name}", "units": "{units}"},
    "grid_position": {"units": "1", "long_name": "{dim} position (domain length 2 pi)",
                      "axis": "{axis}"},
    # responses
    "response": {"long_name": "response to a unit impulse{where}", "units": "1"},
    "exact_response": {"long_name": "exact response to a unit impulse at the origin",
                       "units": "1"},
    "conjugate_response": {"long_name": "response of the mean of {what} to {how}"},
    "offset": {"long_name": "offset in {dim}"},
    # parameter sensitivities
    "parameter_kick_response": {"long_name": "response of the mean of each observable to a "
                                             "unit impulse of each parameter",
                                "units": "observable units per unit parameter per time unit"},
    "parameter_step_response": {"long_name": "response of the mean of each observable to a "
                                             "unit step of each parameter at lag 0",
                                "units": "observable units per unit parameter"},
    "sensitivity": {"long_name": "static sensitivity d<A>/d(theta) of each observable to "
                                 "each parameter",
                    "units": "observable units per unit parameter"},
    "integration_window": {"long_name": "integration window of the static sensitivity"},
    "null_band_edge": {"long_name": "{edge} edge of the {level} {kind} null-model band"},
    "null_median": {"long_name": "{kind} null-model median"},
    # error metrics
    "error_l2": {"long_name": "L2 error"},
    "error_linf": {"long_name": "L-infinity error"},
    "error_l2_debiased": {"long_name": "debiased L2 error"},
    # statistics
    "wavenumber_shell": {"long_name": "wavenumber shell round(|k|)", "units": "1"},
    "shell_modes": {"long_name": "grid modes in the shell (full fft2 plane)", "units": "1"},
    "shell_sum": {"long_name": "shell sum"},
    "field_autocorrelation": {"long_name": "time {kind} of the pointwise field, averaged over "
                                           "space and members"},
}


def attrs(name: str, **fields: Any) -> dict[str, Any]:
    """CF attributes of a standard variable, as a new dict.

    Parameters
    ----------
    name : str
        A key of the table (e.g. ``"member"``, ``"lag"``, ``"truth_response"``).
    **fields
        Values of the ``{placeholders}`` in the table's strings (e.g. ``what=...``).

    Returns
    -------
    dict
    """
    try:
        entry = _ATTRS[name]
    except KeyError:
        raise ValueError(f"no conventions entry {name!r}; known: {', '.join(_ATTRS)}") from None
    return {k: v.format(**fields) if fields else v for k, v in entry.items()}


def version() -> str:
    """Installed version of gfdt (from the package metadata), or ``"unknown"``."""
    from importlib import metadata

    try:
        return metadata.version("gfdt")
    except metadata.PackageNotFoundError:
        return "unknown"


def history(what: str) -> str:
    """A CF ``history`` line: UTC time stamp and what created the data."""
    now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return f"{now} {what}"


def global_attrs(title: str | None = None) -> dict[str, str]:
    """Global attributes of every file gfdt writes: conventions and source version.

    Parameters
    ----------
    title : str, optional
        The ``title`` attribute.
    """
    out = {"Conventions": CONVENTIONS}
    if title is not None:
        out["title"] = title
    out["source"] = f"gfdt {version()}"
    return out


def lag_coord(n_lags: int, step: Any = None, units: str | None = None) -> tuple:
    """The ``lag`` coordinate of ``n_lags`` lags ``0, step, 2 step, ...`` (CF units).

    The one lag coordinate of gfdt (responses, autocorrelations).

    Parameters
    ----------
    n_lags : int
        Number of lags (``max_lag + 1``), >= 1.
    step : float, gfdt._time.TimeStep, timedelta or None
        Lag spacing in time units: a number, or a time step (anything with ``step``,
        ``units`` and ``calendar`` attributes, e.g. :func:`gfdt._time.time_step`'s
        result, whose units then apply), or a timedelta (written in the largest of
        days, hours, minutes, seconds it is a whole number of); None when the time
        step is unknown (lags are then counted in samples).
    units : str, optional
        CF time units of a numeric ``step`` (``"months"``, ``"days"``, ``"hours"``, ...).

    Returns
    -------
    tuple
        ``("lag", values, attrs)``, float64 values, ready for an xarray ``coords``
        mapping; ``attrs`` holds ``long_name``, ``units`` (``"samples"`` without a
        step, ``"1"`` for a number without units) and ``calendar`` for lags in
        calendar months or years.
    """
    if isinstance(n_lags, bool) or not isinstance(n_lags, (int, np.integer)) or n_lags < 1:
        raise ValueError(f"n_lags must be an int >= 1, got {n_lags!r}")
    lags = np.arange(int(n_lags), dtype=float)
    lag_attrs = attrs("lag")
    if step is None:
        return ("lag", lags, {**lag_attrs, "units": "samples"})
    calendar = None
    if hasattr(step, "step") and hasattr(step, "units"):  # a TimeStep
        units = step.units if units is None else units
        if units in ("months", "years"):
            calendar = getattr(step, "calendar", None)
        step = step.step
    if isinstance(step, (_dt.timedelta, np.timedelta64)):  # CF units, not timedelta64
        step, units = _fixed_units(step)
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, float, np.number)) \
            or isinstance(step, np.timedelta64) or not np.isfinite(step) or step <= 0:
        raise TypeError(f"step must be a positive number, a TimeStep or None, got {step!r}")
    lag_attrs["units"] = str(units) if units is not None else "1"
    if calendar:
        lag_attrs["calendar"] = calendar
    return ("lag", lags * float(step), lag_attrs)


def _fixed_units(td) -> tuple[float, str]:
    """A timedelta as (number, CF units): the largest of days ... seconds that divides it."""
    seconds = float(np.timedelta64(td) / np.timedelta64(1, "ns")) * 1e-9
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        q = seconds / size
        if q >= 1 and abs(q - round(q)) <= 1e-9 * q:
            return float(round(q)), unit
    return seconds, "seconds"
