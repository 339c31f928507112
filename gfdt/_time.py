"""Time axes as climate data have them: steps, CF units, lags and durations.

Pure functions, no state. A time coordinate may be

* numpy ``datetime64`` at any storage resolution (s, ms, us, ns, ...) or a pandas
  ``DatetimeIndex``: the step does not depend on the resolution;
* ``cftime`` objects on any calendar (standard, proleptic_gregorian, julian, noleap,
  all_leap, 360_day), e.g. an xarray ``CFTimeIndex``;
* Python ``datetime`` objects, ``timedelta64`` offsets;
* numbers, with an optional CF ``units`` attribute (``"days since 1950-01-01"``,
  ``"hours"``, or any other unit string, kept as it is).

:func:`time_step` finds the sampling step and its CF units. Axes evenly spaced in
calendar months (monthly means stamped at the start, middle or end of each month have
gaps of 28 to 31 days) get units ``"months"``, whole years ``"years"``; fixed steps get
``"days"``, ``"hours"``, ``"minutes"`` or ``"seconds"``, the largest unit the step is a
whole number of. The ``lag`` coordinate in those units is
:func:`gfdt.conventions.lag_coord`; :func:`gfdt._duration.parse_max_lag` (built on
this module, which does not import it) turns a maximal lag given in samples, in the
data's units, as a timedelta or as a string such as ``"12 months"`` into samples, and
:func:`forcing_times` reads a forcing's time axis in the data's units.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from fractions import Fraction
from typing import Any

import numpy as np
import xarray as xr

__all__ = [
    "TimeStep",
    "elapsed",
    "forcing_times",
    "time_step",
]

#: Seconds per fixed unit, largest first.
_FIXED = {"days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
#: Calendar units in months.
_CALENDAR = {"years": 12, "months": 1}
_ALIASES = {
    "d": "days", "day": "days", "days": "days",
    "h": "hours", "hr": "hours", "hrs": "hours", "hour": "hours", "hours": "hours",
    "min": "minutes", "mins": "minutes", "minute": "minutes", "minutes": "minutes",
    "s": "seconds", "sec": "seconds", "secs": "seconds", "second": "seconds",
    "seconds": "seconds",
    "mon": "months", "month": "months", "months": "months",
    "yr": "years", "yrs": "years", "year": "years", "years": "years",
    "a": "years",
}
#: Seconds per tick of numpy's datetime64/timedelta64 units.
_TICK = {"D": Fraction(86400), "h": Fraction(3600), "m": Fraction(60), "s": Fraction(1),
         "ms": Fraction(1, 10**3), "us": Fraction(1, 10**6), "ns": Fraction(1, 10**9),
         "ps": Fraction(1, 10**12), "fs": Fraction(1, 10**15), "as": Fraction(1, 10**18)}
#: Relative tolerance on steps (float time stamps carry rounding).
_RTOL = 1e-6
#: Largest spread of the position within the month (as a fraction of the month) that
#: still counts as "the same day of every month": mid-month stamps vary by ~0.05.
_MONTH_SPREAD = 0.1


@dataclasses.dataclass(frozen=True)
class TimeStep:
    """The sampling step of a time axis.

    Attributes
    ----------
    step : float
        Step in ``units`` (> 0).
    units : str or None
        CF units of the step: ``"years"``, ``"months"`` (calendar units), ``"days"``,
        ``"hours"``, ``"minutes"``, ``"seconds"``, the ``units`` of a numeric coordinate,
        or None for numbers without units.
    calendar : str or None
        CF calendar of a date axis (``"proleptic_gregorian"`` for numpy datetimes),
        None for numbers without a reference date.
    """

    step: float
    units: str | None
    calendar: str | None = None

    @property
    def is_calendar(self) -> bool:
        """Whether the units are calendar months or years (not a fixed duration)."""
        return self.units in _CALENDAR

    @property
    def seconds(self) -> float | None:
        """The step in seconds for fixed units, else None."""
        return self.step * _FIXED[self.units] if self.units in _FIXED else None

    def __str__(self) -> str:
        return f"{self.step:g} {self.units}" if self.units else f"{self.step:g}"


# ----------------------------------------------------------------- reading stamps
@dataclasses.dataclass
class _Stamps:
    """Dates as integer ticks since the first one, plus calendar months."""

    ticks: np.ndarray  # int64 (or float for decoded numbers), since the first stamp
    tick: Fraction  # seconds per tick
    month: np.ndarray | None  # months since year 0 (None: no calendar)
    frac: np.ndarray | None  # position within the month, 0 <= frac < 1
    calendar: str | None
    labels: Any  # index -> str


def _values_attrs(coord) -> tuple[np.ndarray, dict]:
    attrs: dict = {}
    if isinstance(coord, (xr.DataArray, xr.Variable)):
        attrs = {**coord.encoding, **coord.attrs}
        vals = coord.values
    elif hasattr(coord, "to_numpy") and hasattr(coord, "dtype"):  # pandas objects
        if getattr(coord, "tz", None) is not None:
            coord = coord.tz_convert("UTC").tz_localize(None)
        vals = coord.to_numpy()
    else:
        vals = np.asarray(coord)
    return np.asarray(vals), attrs


def _is_cftime(v) -> bool:
    return hasattr(v, "calendar") and hasattr(v, "daysinmonth")


def _nat_check(bad: np.ndarray, vals, name: str) -> None:
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: time stamp {i} is missing (NaT/NaN; {int(bad.sum())} of "
                         f"{len(vals)} stamps are); drop or fill them first")


def _from_datetime64(vals: np.ndarray, calendar: str, name: str) -> _Stamps:
    _nat_check(np.isnat(vals), vals, name)
    unit, count = np.datetime_data(vals.dtype)
    if unit in ("Y", "M", "W", "generic"):
        vals = vals.astype("datetime64[s]")
        unit, count = "s", 1
    raw = vals.view("int64")
    start = vals.astype("datetime64[M]")
    m0 = start.astype(vals.dtype)
    m1 = (start + np.timedelta64(1, "M")).astype(vals.dtype)
    frac = (vals - m0).view("int64") / (m1 - m0).view("int64")
    month = start.view("int64") + 1970 * 12
    return _Stamps(raw - raw[0], _TICK[unit] * count, month, frac, calendar,
                   lambda i: str(vals[i]))


def _from_cftime(vals: np.ndarray, name: str) -> _Stamps:
    _nat_check(np.array([not _is_cftime(v) for v in vals]), vals, name)
    calendars = {v.calendar for v in vals}
    if len(calendars) > 1:
        raise ValueError(f"{name}: time stamps on several calendars {sorted(calendars)}")
    first = vals[0]
    ticks = np.empty(len(vals), dtype=np.int64)
    for i, v in enumerate(vals):
        d = v - first
        ticks[i] = (d.days * 86400 + d.seconds) * 10**6 + d.microseconds
    month = np.array([v.year * 12 + v.month - 1 for v in vals], dtype=np.int64)
    frac = np.array([(v.day - 1 + (v.hour * 3600 + v.minute * 60 + v.second
                                   + v.microsecond / 1e6) / 86400) / v.daysinmonth
                     for v in vals])
    return _Stamps(ticks, Fraction(1, 10**6), month, frac, calendars.pop(),
                   lambda i: vals[i].isoformat())


def _stamps(coord, name: str) -> _Stamps | tuple[np.ndarray, dict]:
    """Dates as :class:`_Stamps`; numbers as (float values, attrs)."""
    vals, attrs = _values_attrs(coord)
    if vals.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {vals.shape}")
    if len(vals) < 2:
        raise ValueError(f"{name} needs at least 2 time stamps to have a step, got "
                         f"{len(vals)}")
    if np.issubdtype(vals.dtype, np.datetime64):
        return _from_datetime64(vals, attrs.get("calendar", "proleptic_gregorian"), name)
    if np.issubdtype(vals.dtype, np.timedelta64):
        _nat_check(np.isnat(vals), vals, name)
        if np.datetime_data(vals.dtype)[0] in ("Y", "M", "W", "generic"):
            vals = vals.astype("timedelta64[s]")
        unit, count = np.datetime_data(vals.dtype)
        per = _TICK[unit] * count
        raw = vals.view("int64")
        return _Stamps(raw - raw[0], per, None, None, None, lambda i: str(vals[i]))
    if vals.dtype == object:
        if any(_is_cftime(v) for v in vals):
            return _from_cftime(vals, name)
        if all(isinstance(v, (datetime.datetime, datetime.date)) for v in vals):
            return _from_datetime64(np.array(vals, dtype="datetime64[us]"),
                                    "proleptic_gregorian", name)
        try:
            vals = vals.astype(float)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must hold dates (datetime64, cftime) or numbers, got "
                            f"{type(vals[0]).__name__}") from None
    if vals.dtype == bool or not np.issubdtype(vals.dtype, np.number) \
            or np.issubdtype(vals.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold dates (datetime64, cftime) or real numbers, got "
                        f"dtype {vals.dtype}")
    vals = vals.astype(float)
    _nat_check(~np.isfinite(vals), vals, name)
    return vals, attrs


# ----------------------------------------------------------------- steps
def _parse_units(units) -> tuple[str | None, bool]:
    """(units of the step, whether the attribute had a reference date)."""
    if units is None:
        return None, False
    units = str(units).strip()
    m = re.fullmatch(r"(\w+)\s+since\s+.*", units, flags=re.IGNORECASE)
    if m:
        return _ALIASES.get(m[1].lower(), m[1]), True
    return _ALIASES.get(units.lower(), units), False


def _describe(d: np.ndarray, fmt) -> str:
    vals, counts = np.unique(d, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:6]
    parts = [f"{fmt(vals[k])} (x{counts[k]})" for k in order]
    more = f" and {len(vals) - len(order)} other steps" if len(vals) > len(order) else ""
    return ", ".join(parts) + more


def _gaps(d: np.ndarray, ref: float, label, name: str, fmt) -> None:
    """Raise the gap error when every uneven step is a whole multiple of ``ref``."""
    ratio = d / ref
    whole = np.abs(ratio - np.round(ratio)) <= 1e-3 * np.maximum(ratio, 1)
    gaps = np.flatnonzero(np.round(ratio) >= 2)
    if not gaps.size or not np.all(whole[gaps]):
        return
    i = int(gaps[0])
    missing = int(np.round(ratio[i])) - 1
    more = (f"; {gaps.size} gaps in all ({int(np.sum(np.round(ratio[gaps]) - 1))} samples "
            "missing)" if gaps.size > 1 else "")
    pieces = ", ".join([f"X.isel(time=slice({a}, {b}))" for a, b in zip(
        [0, *(int(g) + 1 for g in gaps[:2])], [*(int(g) + 1 for g in gaps[:2]), None],
        strict=True)])
    hint = ("" if "forcing" in name else
            " The pieces on either side of a gap are separate records: pass them as a list "
            f"of members, e.g. [{pieces}{', ...' if gaps.size > 2 else ''}] (or fill the gap "
            "first)")
    raise ValueError(
        f"{name} is not evenly spaced: steps found {_describe(d, fmt)}; it has a gap of "
        f"{missing} missing sample{'s' if missing > 1 else ''}: the step from stamp {i} "
        f"({label(i)}) to {i + 1} ({label(i + 1)}) is {fmt(d[i])} where the others are "
        f"{fmt(ref)}{more}.{hint}")


def _check_even(d: np.ndarray, fmt, label, name: str, hint: str = "") -> float:
    """The common step of differences ``d``; errors say which steps were found (and
    where a gap is, when the uneven steps are whole multiples of the common one)."""
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0]) + 1
        raise ValueError(f"{name} must be strictly increasing: stamp {i} ({label(i)}) is not "
                         f"after stamp {i - 1} ({label(i - 1)}); sort it (X.sortby('time')) "
                         "and drop duplicates")
    vals, counts = np.unique(d, return_counts=True)
    ref = vals[np.argmax(counts)]
    off = np.abs(d - ref) > _RTOL * abs(ref)
    if off.any():
        _gaps(d.astype(float), float(ref), label, name, fmt)
        i = int(np.flatnonzero(off)[0])
        raise ValueError(f"{name} is not evenly spaced: steps found {_describe(d, fmt)}; the "
                         f"first step that differs from {fmt(ref)} is from stamp {i} "
                         f"({label(i)}) to {i + 1} ({label(i + 1)}){hint}")
    return float(np.mean(d))


def _pretty_seconds(seconds: float) -> str:
    for unit, size in _FIXED.items():
        q = seconds / size
        if q >= 1 and abs(q - round(q)) <= _RTOL * q:
            return f"{round(q)} {unit}"
    return f"{seconds:g} seconds"


def _fixed_step(seconds: float, calendar: str | None) -> TimeStep:
    for unit, size in _FIXED.items():
        q = seconds / size
        if q >= 1 - _RTOL and abs(q - round(q)) <= _RTOL * q:
            return TimeStep(float(round(q)), unit, calendar)
    return TimeStep(float(seconds), "seconds", calendar)


def _monthly(s: _Stamps) -> int | None:
    """Months per step if the stamps are evenly spaced in calendar months."""
    if s.month is None:
        return None
    dm = np.diff(s.month)
    if dm[0] < 1 or np.any(dm != dm[0]):
        return None
    if float(np.ptp(s.frac)) > _MONTH_SPREAD:
        return None
    return int(dm[0])


def time_step(coord, name: str = "time") -> TimeStep:
    """The sampling step of a time coordinate and its CF units.

    Parameters
    ----------
    coord : xarray.DataArray, pandas.Index, numpy.ndarray or sequence, shape ``(n,)``
        Time stamps, ``n >= 2``: datetime64 (any resolution), cftime or datetime
        objects, timedelta64, or numbers (a DataArray's ``units`` and ``calendar``
        attributes, or its encoding's after decoding, are read).
    name : str
        Name of the argument in error messages.

    Returns
    -------
    TimeStep
        ``"months"`` or ``"years"`` for axes evenly spaced in calendar months (the same
        position in every month: the first, the middle or the last day), else a fixed
        step in the largest of days, hours, minutes, seconds that divides it; numbers
        get their ``units`` attribute (the unit before ``since`` for CF reference
        units) or None.

    Raises
    ------
    ValueError
        Fewer than 2 stamps, a NaT/NaN stamp (its index is named), stamps not strictly
        increasing, or uneven steps (the distinct steps found with their counts and the
        first offending stamps are named).
    TypeError
        Stamps that are neither dates nor real numbers.
    """
    s = _stamps(coord, name)
    if isinstance(s, tuple):
        vals, attrs = s
        units, since = _parse_units(attrs.get("units"))
        hint = (" (the coordinate is encoded as numbers; decode it with xarray.decode_cf to "
                "get calendar months)" if since else "")
        unit_txt = f" {units}" if units else ""
        step = _check_even(np.diff(vals), lambda v: f"{v:g}{unit_txt}",
                           lambda i: f"{vals[i]:g}", name, hint)
        calendar = attrs.get("calendar", "standard") if since else attrs.get("calendar")
        return TimeStep(step, units, calendar)
    months = _monthly(s)
    if months is None and s.month is not None and len(s.month) > 2 \
            and float(np.ptp(s.frac)) <= _MONTH_SPREAD:  # calendar months with gaps?
        dm = np.diff(s.month)
        step_m = int(np.bincount(dm[dm > 0]).argmax()) if np.any(dm > 0) else 0
        if step_m >= 1 and np.all(dm > 0):
            _gaps(dm.astype(float), float(step_m), s.labels, name,
                  lambda v: f"{round(v)} month{'s' if round(v) != 1 else ''}")
    if months is not None:
        if months % 12 == 0:
            return TimeStep(float(months // 12), "years", s.calendar)
        return TimeStep(float(months), "months", s.calendar)
    d = np.diff(s.ticks)
    tick = float(s.tick)
    mean = _check_even(d, lambda v: _pretty_seconds(float(v) * tick), s.labels, name)
    return _fixed_step(mean * tick, s.calendar)


# ----------------------------------------------------------------- durations
def _unit_family(units: str | None) -> dict | None:
    if units in _FIXED:
        return _FIXED
    if units in _CALENDAR:
        return _CALENDAR
    return None


def elapsed(coord, step: TimeStep, name: str = "time") -> np.ndarray:
    """Time since the first stamp of ``coord``, in the units of ``step``.

    Calendar units count calendar months (plus the difference of the positions within
    the month); fixed units use the exact durations, whatever the storage resolution.

    Parameters
    ----------
    coord : array_like of dates or numbers, shape ``(n,)``
    step : TimeStep
        Gives the units (and, for numbers, must match the coordinate's own units).
    name : str

    Returns
    -------
    numpy.ndarray of float64, shape ``(n,)``
    """
    if not isinstance(step, TimeStep):
        raise TypeError(f"step must be a TimeStep, got {type(step).__name__}")
    s = _stamps(coord, name)
    if isinstance(s, tuple):
        vals, attrs = s
        units, _ = _parse_units(attrs.get("units"))
        if units is None or units == step.units:
            return vals - vals[0]
        fam = _unit_family(units)
        if fam is not None and fam is _unit_family(step.units):
            return (vals - vals[0]) * fam[units] / fam[step.units]
        raise ValueError(f"{name} is in {units}, the data in {step.units}")
    if step.is_calendar:
        if s.month is None:
            raise ValueError(f"{name} holds time offsets, which have no calendar months; the "
                             f"data are in {step.units}")
        months = (s.month - s.month[0]) + (s.frac - s.frac[0])
        return months / _CALENDAR[step.units]
    if step.units not in _FIXED:
        raise ValueError(f"{name} holds dates, the data are in {step.units or 'samples'}")
    return s.ticks.astype(float) / float(Fraction(_FIXED[step.units]) / s.tick)


def forcing_times(coord, step: TimeStep, name: str = "forcing") -> np.ndarray:
    """A forcing's time axis in the data's units, checked against the data's step.

    Parameters
    ----------
    coord : array_like of dates or numbers, shape ``(n,)``
        The forcing's time coordinate (``n >= 2``; a single stamp gives ``[0.0]``).
    step : TimeStep
        The fitted data's step.
    name : str

    Returns
    -------
    numpy.ndarray of float64, shape ``(n,)``
        ``0, step.step, 2 step.step, ...``: time since the forcing's first stamp in
        ``step.units``, the same whether the dates are stored in s or ns.

    Raises
    ------
    ValueError
        If the forcing's step differs from the data's (both are named).
    """
    vals, _ = _values_attrs(coord)
    if vals.ndim == 1 and len(vals) == 1:
        _stamps(np.concatenate([vals, vals]), name)  # NaT and type checks only
        return np.zeros(1)
    own = time_step(coord, f"{name}'s time coordinate")
    if own.units != step.units and _unit_family(own.units) is not None \
            and _unit_family(own.units) is _unit_family(step.units):
        fam = _unit_family(own.units)
        own = TimeStep(own.step * fam[own.units] / fam[step.units], step.units, own.calendar)
    if own.units != step.units or abs(own.step - step.step) > _RTOL * step.step:
        raise ValueError(f"{name}'s time step is {own}, the data's is {step}: resample the "
                         "forcing to the data's time step")
    return np.arange(len(vals)) * float(step.step)
