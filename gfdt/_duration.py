"""Durations in a time axis's units, and maximal lags given as samples or durations.

Built on :mod:`gfdt._time` (one way: :mod:`gfdt._time` does not import this module).
"""

from __future__ import annotations

import datetime
import re

import numpy as np

from gfdt._time import _ALIASES, TimeStep, _unit_family

__all__ = ["duration_in_units", "parse_max_lag"]


def duration_in_units(duration, units: str | None, name: str = "duration") -> float:
    """A duration expressed in ``units`` (a float).

    Parameters
    ----------
    duration : str, datetime.timedelta, numpy.timedelta64 or pandas.Timedelta
        A string ``"<number> <unit>"`` (``"12 months"``, ``"1.5 years"``, ``"30 days"``,
        ``"6 h"``) or a timedelta (fixed units only: a timedelta is not a whole number
        of calendar months).
    units : str or None
        Target units (a :attr:`TimeStep.units`). Years and months convert into each
        other, as do days, hours, minutes and seconds; other units only to themselves.
    name : str
        Argument name for errors.

    Returns
    -------
    float
    """
    if isinstance(duration, str):
        m = re.fullmatch(r"\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*?)?\s*",
                         duration)
        if m is None or m[2] is None:
            raise ValueError(f"{name} = {duration!r}: give a number and a unit, e.g. "
                             f"'12 months', '30 days', '6 hours'")
        value = float(m[1])
        unit = _ALIASES.get(m[2].lower(), m[2])
    elif isinstance(duration, (datetime.timedelta, np.timedelta64)):
        td = np.timedelta64(duration) if isinstance(duration, datetime.timedelta) \
            else duration
        if np.isnat(td):
            raise ValueError(f"{name} is NaT")
        unit_code, _ = np.datetime_data(td.dtype)
        if unit_code in ("Y", "M"):
            value = float(td.astype(int)) * (12 if unit_code == "Y" else 1)
            unit = "months"
        else:
            value = float(td / np.timedelta64(1, "ns")) * 1e-9
            unit = "seconds"
    else:
        raise TypeError(f"{name} must be a string such as '12 months' or a timedelta, got "
                        f"{type(duration).__name__}")
    if unit == units:
        return value
    fam = _unit_family(unit)
    if fam is not None and fam is _unit_family(units):
        return value * fam[unit] / fam[units]
    target = units if units is not None else "samples (the data have no time units)"
    raise ValueError(f"{name} = {duration!r} is in {unit}, which cannot be converted to the "
                     f"data's time units, {target}"
                     + ("; calendar months and years have no fixed length in days"
                        if fam is not None else ""))


def parse_max_lag(max_lag, step: TimeStep | None = None, name: str = "max_lag") -> int:
    """A maximal lag in samples, from samples or a duration.

    Parameters
    ----------
    max_lag : int, float, str, timedelta
        An int counts samples. A float is a duration in the data's units
        (``step.units``; samples without a step). A string ``"12 months"`` or a
        timedelta (numpy, pandas, datetime) is a duration in its own units, converted
        to the data's. A duration must be a whole number of steps (to 1e-6).
    step : TimeStep, optional
        The data's step.
    name : str
        Argument name for errors.

    Returns
    -------
    int
        Number of samples, >= 0.
    """
    if isinstance(max_lag, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int (samples), a float (in the data's time "
                        f"units), a string such as '12 months' or a timedelta, got {max_lag!r}")
    if isinstance(max_lag, (int, np.integer)) and not isinstance(max_lag, np.timedelta64):
        if max_lag < 0:
            raise ValueError(f"{name} must be >= 0, got {max_lag}")
        return int(max_lag)
    units = step.units if step is not None else None
    size = float(step.step) if step is not None else 1.0
    if isinstance(max_lag, (float, np.floating)):
        value = float(max_lag)
        shown = f"{max_lag!r} {units}" if units else repr(max_lag)
    elif isinstance(max_lag, (str, datetime.timedelta, np.timedelta64)):
        value = duration_in_units(max_lag, units, name)
        shown = f"{max_lag!r} ({value:g} {units or 'samples'})"
    else:
        raise TypeError(f"{name} must be an int (samples), a float (in the data's time "
                        f"units), a string such as '12 months' or a timedelta, got "
                        f"{type(max_lag).__name__}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite duration >= 0, got {shown}")
    n = value / size
    k = round(n)
    if abs(n - k) > 1e-9 * max(n, k):  # exact for integers; 0 only for 0
        step_txt = str(step) if step is not None else "1 sample"
        raise ValueError(f"{name} = {shown} is not a whole number of time steps ({step_txt}): "
                         f"it is {n:.6g} steps; use {int(np.floor(n))} or {int(np.ceil(n))} "
                         "samples (an int) or a multiple of the step")
    return int(k)
