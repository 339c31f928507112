"""Plots in the style of the paper's Fig. 1. Every function takes ``ax`` and returns Axes.

Legends sit outside the axes (to their right), never on the curves; lag axes name their
units in words (:func:`lag_label`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

from gfdt import _plot_maps as _maps

__all__ = ["lag_label", "legend_outside", "plot_errors", "plot_field", "plot_histogram",
           "plot_response", "plot_spectrum"]

_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]

#: CF unit strings of a dimensionless time: gfdt's systems count time in model units.
_MODEL_TIME_UNITS = ("1", "", "none", "dimensionless")


def lag_label(units: str | None, name: str = "lag") -> str:
    """Axis label of a lag (or time) axis with CF ``units``, the units in words.

    The CF unit ``"1"`` of a dimensionless (model) time reads ``"lag (model time
    units)"``; any other unit is kept (``"lag (days)"``, ``"lag (samples)"``); None gives
    the bare ``name``.

    Parameters
    ----------
    units : str or None
        The ``units`` attribute of the axis's coordinate.
    name : str
        What the axis shows (``"lag"``, ``"time"``).

    Returns
    -------
    str

    Examples
    --------
    >>> lag_label("1"), lag_label("days"), lag_label(None, "time")
    ('lag (model time units)', 'lag (days)', 'time')
    """
    if units is None:
        return name
    if not isinstance(units, str):
        raise TypeError(f"units must be a string or None, got {type(units).__name__}")
    if units.strip().lower() in _MODEL_TIME_UNITS:
        return f"{name} (model time units)"
    return f"{name} ({units.strip()})"


def legend_outside(ax: plt.Axes, *, where: str = "upper", **kwargs):
    """A legend just right of ``ax``, off the data; ``where`` is ``"upper"`` or ``"lower"``.

    ``kwargs`` go to :meth:`matplotlib.axes.Axes.legend` (``handles``, ``title``, ...;
    default font size ``"small"``). ``tight_layout`` and constrained layout make room
    for it. Returns the :class:`matplotlib.legend.Legend`.
    """
    if where not in ("upper", "lower"):
        raise ValueError(f"where must be 'upper' or 'lower', got {where!r}")
    kwargs.setdefault("fontsize", "small")
    return ax.legend(loc=f"{where} left", bbox_to_anchor=(1.02, 1.0 if where == "upper"
                                                          else 0.0),
                     borderaxespad=0.0, **kwargs)


def _as_dict(x, default: str) -> dict:
    if isinstance(x, Mapping) and not isinstance(x, xr.Dataset):  # a Dataset is one item
        return dict(x)
    return {default: x}


def _unpack(r, se):
    """(response, stderr) from a DataArray, a Dataset with ``stderr`` or a fitted
    :class:`gfdt.ResponseEstimator` (its ``response_`` and ``response_stderr_``)."""
    if not isinstance(r, (xr.DataArray, xr.Dataset)) and hasattr(r, "response_"):
        if se is None:
            se = getattr(r, "response_stderr_", None)
        r = r.response_
    if se is None and isinstance(r, xr.Dataset) and "stderr" in r:
        se = r["stderr"]
    if isinstance(r, xr.Dataset):
        r = r["response"]
    if isinstance(se, xr.Dataset):
        se = se["stderr"]
    return r, se


_LAYOUTS = ("('lag',) for an index, ('lag', 'observable') or ('lag', <dim>) for a few "
            "observables, ('lag', 'observable', 'source') for a matrix, ('lag', 'y', 'x') "
            "or ('lag', 'x') for a field")


def _labels(r: xr.DataArray, dim: str) -> list[str]:
    vals = r[dim].values if dim in r.coords else range(r.sizes[dim])
    return [str(v) for v in vals]


def _resolve_pair(r: xr.DataArray, pair, dims=("observable", "source")) -> dict:
    try:
        i, j = pair
    except (TypeError, ValueError):
        raise TypeError(f"pairs must be (observable, source) pairs, got {pair!r}") from None
    sel = {}
    for dim, v in zip(dims, (i, j), strict=True):
        labels = _labels(r, dim)
        if isinstance(v, (int, np.integer)) and not isinstance(v, bool) \
                and -len(labels) <= v < len(labels):
            sel[dim] = int(v) % len(labels)
        elif str(v) in labels:
            sel[dim] = labels.index(str(v))
        else:
            raise ValueError(f"pairs: {v!r} is neither a position nor a label of {dim!r} "
                             f"({labels})")
    return sel


def _curves(r: xr.DataArray, offsets: Sequence[int], axis: str,
            pairs) -> tuple[str, list[tuple[str, dict]]]:
    """(legend title, [(curve key, isel selector)]) for the layout of ``r``."""
    other = [d for d in r.dims if d != "lag"]
    if not other:
        return "response", [(str(r.name or "response"), {})]
    if set(other) == {"observable", "source"}:
        if pairs is None:
            pairs = [(i, j) for i in range(r.sizes["observable"])
                     for j in range(r.sizes["source"])]
        obs, src = _labels(r, "observable"), _labels(r, "source")
        out = []
        for p in pairs:
            sel = _resolve_pair(r, p)
            out.append((f"R[{obs[sel['observable']]}, {src[sel['source']]}]", sel))
        return "observable, source", out
    if pairs is not None:
        raise ValueError("pairs applies to matrix responses (dims 'lag', 'observable', "
                         f"'source') only; got dims {r.dims}")
    if set(other) == {"y", "x"}:
        o = "y" if axis == "x" else "x"
        name = "R{}1" if axis == "x" else "R1{}"
        return "offset", [(name.format(off + 1), {axis: off % r.sizes[axis], o: 0})
                          for off in offsets]
    if len(other) == 1 and other[0] in ("x", "y"):
        d = other[0]
        return "offset", [(f"R{off + 1}", {d: off % r.sizes[d]}) for off in offsets]
    if len(other) == 1:
        d = other[0]
        return d, [(v, {d: k}) for k, v in enumerate(_labels(r, d))]
    raise ValueError(f"responses have dims {r.dims}; plot_response draws {_LAYOUTS}")


def _lag_label(r: xr.DataArray) -> str:
    return lag_label(r["lag"].attrs.get("units") if "lag" in r.coords else None)


def _top_right(panels: list) -> plt.Axes:
    """The panel at the top right of a grid (where a shared legend goes, outside)."""
    pos = [a.get_position() for a in panels]
    return panels[max(range(len(panels)), key=lambda i: (round(pos[i].y1, 6), pos[i].x1))]


def _axes_list(ax, n_curves: int, matrix_shape: tuple[int, int] | None):
    """(list of Axes, one per curve or a single one, the object returned)."""
    if ax is None:
        if matrix_shape is not None and n_curves > 1:
            n_o, n_s = matrix_shape
            if n_o * n_s > 36:
                raise ValueError(f"a {n_o} x {n_s} grid of panels is too many: pass pairs "
                                 "(a few (observable, source) pairs) or ax")
            _, grid = plt.subplots(n_o, n_s, figsize=(2.6 * n_s + 2, 2.2 * n_o + 0.8),
                                     sharex=True, squeeze=False, layout="constrained")
            return list(grid.ravel()), grid
        _, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
        return [ax], ax
    if isinstance(ax, plt.Axes):
        return [ax], ax
    arr = np.asarray(ax, dtype=object)
    flat = list(arr.ravel())
    if not flat or not all(isinstance(a, plt.Axes) for a in flat):
        raise TypeError(f"ax must be a matplotlib Axes or an array of Axes, got "
                        f"{type(ax).__name__}")
    if len(flat) < n_curves:
        raise ValueError(f"ax holds {len(flat)} Axes for {n_curves} curves: give one Axes "
                         "per curve (or a single Axes for all)")
    return flat[:n_curves], arr


def _draw(panels: list, drawn: list, curves: list, n_sigma: float) -> None:
    """Each estimate's curves (and bands) into one Axes, or one curve per panel."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(panels) == 1
    for i, (label, r, se) in enumerate(drawn):
        for j, (key, sel) in enumerate(curves):
            target = panels[0] if single else panels[j]
            color = colors[j % len(colors)] if single else colors[0]
            line = r.isel(sel)
            lag = line["lag"].values if "lag" in line.coords else np.arange(line.sizes["lag"])
            target.plot(lag, line.values, color=color, linestyle=_STYLES[i % len(_STYLES)],
                        label=f"{label}, {key}")
            if se is not None:  # NaN entries draw no band
                band = se.isel(sel).values
                target.fill_between(lag, line.values - n_sigma * band,
                                    line.values + n_sigma * band, color=color, alpha=0.2,
                                    linewidth=0, where=~np.isnan(band))


def _decorate(panels: list, curves: list, labels: list[str], title: str,
              xlabel: str) -> None:
    """Zero lines, axis labels, panel titles and the legends."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = len(panels) == 1
    meths = [Line2D([], [], color="0.2", linestyle=_STYLES[i % len(_STYLES)], label=label)
             for i, label in enumerate(labels)]
    for j, target in enumerate(panels):
        target.axhline(0, color="0.6", linewidth=0.5)
        target.set_xlabel(xlabel)
        if single:
            target.set_ylabel("response")
        else:
            target.set_title(curves[j][0], fontsize="small")
    if single:
        # two compact legends right of the axes: colour = curve, line style = estimate
        handles = [Line2D([], [], color=colors[j % len(colors)], label=key)
                   for j, (key, _) in enumerate(curves)]
        first = legend_outside(panels[0], handles=handles, title=title)
        panels[0].add_artist(first)
        legend_outside(panels[0], where="lower", handles=meths, title="estimate")
    elif len(meths) > 1:
        legend_outside(_top_right(panels), handles=meths, fontsize="x-small",
                       title="estimate")


def plot_response(
    responses,
    *,
    offsets: Sequence[int] = (0, 2, 4, 6),
    axis: str = "x",
    pairs: Sequence[tuple] | None = None,
    stderr=None,
    ax=None,
    n_sigma: float = 2.0,
    lags: Sequence | None = None,
):
    """Responses against lag, for any layout: index, observables, matrix, field or map.

    * index, dims ``("lag",)``: one curve;
    * observables, dims ``("lag", "observable")`` (or any one non-spatial dim): one
      curve per observable;
    * matrix, dims ``("lag", "observable", "source")``: one curve per (observable,
      source) pair: without ``pairs`` and ``ax``, every pair on a grid of small panels
      (rows observables, columns sources); the selected ``pairs`` in one Axes;
    * field, dims ``("lag", "y", "x")`` (or ``("lag", "x")``): the response at a few
      ``offsets`` downstream of the kick, by default the paper's R11, R31, R51, R71
      (offsets 0, 2, 4, 6 pixels in +x);
    * map, dims ``("lag", lat, lon)`` (two dims with latitude and longitude coordinates,
      or the Dataset of :meth:`gfdt.ResponseEstimator.response_to` on any grid): one
      ``pcolormesh`` map per
      chosen lag, NaN (land) blank, points within ``n_sigma`` standard errors of zero
      stippled;
    * heat map: the mode-space matrix, dims ``("lag", "mode", "source_mode")``, or a
      matrix of more than 36 pairs without ``pairs`` or ``ax``: an image per chosen lag.

    Parameters
    ----------
    responses : DataArray, Dataset, ResponseEstimator or mapping of label to them
        All with the same layout. A Dataset with ``stderr`` gets a band; so does a
        fitted :class:`gfdt.ResponseEstimator`, drawn from its ``response_`` with
        ``response_stderr_`` as band.
    offsets : sequence of int
        Field layouts: offsets in grid points along ``axis`` (periodic).
    axis : {"x", "y"}
        Direction of the offsets.
    pairs : sequence of (observable, source), optional
        Matrix layout: the pairs to draw, as positions or coordinate labels (default
        all).
    stderr : DataArray or mapping of label to DataArray, optional
        Standard errors drawn as +- ``n_sigma`` bands (they take precedence over those
        a Dataset or an estimator carries). NaN entries (no error could be estimated,
        e.g. from one bootstrap block) draw no band there.
    ax : matplotlib.axes.Axes or array of Axes, optional
        One Axes: every curve in it (colour = curve, line style = estimate). An array
        of Axes (e.g. from ``plt.subplots(2, 2)``): one curve per panel, in order.
    n_sigma : float
        Half-width of the bands in standard errors (1.96 for a 95% normal band).
    lags : sequence, optional
        Maps and heat maps: the lags drawn (labels of the ``lag`` coordinate; default
        four spread over the range). One response at a time.

    Returns
    -------
    matplotlib.axes.Axes or numpy.ndarray of Axes
        What was drawn into: the single Axes, or the array of panels. The x label
        carries the lag's units in words (``"lag (months)"``; :func:`lag_label`). The
        band of curve ``c`` is a ``PolyCollection`` between ``c - n_sigma * se`` and
        ``c + n_sigma * se``.
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    if isinstance(n_sigma, bool) or not isinstance(n_sigma, (int, float, np.number)) \
            or not np.isfinite(n_sigma) or n_sigma < 0:
        raise ValueError(f"n_sigma must be a finite number >= 0, got {n_sigma!r}")
    try:
        offsets = list(offsets)
    except TypeError:
        raise TypeError(f"offsets must be a sequence of ints, got {offsets!r}") from None
    if isinstance(offsets, str) or not all(
            isinstance(o, (int, np.integer)) and not isinstance(o, bool) for o in offsets):
        raise TypeError(f"offsets must be a sequence of ints, got {offsets!r}")
    responses = _as_dict(responses, "response")
    if not responses:
        raise ValueError("responses is empty: pass at least one response")
    stderr = _as_dict(stderr, next(iter(responses))) if stderr is not None else {}
    first = next(iter(responses))
    r0, se0 = _unpack(responses[first], stderr.get(first))
    kind = _maps.layout(r0, pairs, ax) if isinstance(r0, xr.DataArray) else None
    if kind is not None:
        if len(responses) > 1:
            raise ValueError(f"a {kind} draws one response at a time; got {len(responses)}")
        if kind == "map":
            return _maps.draw_maps(r0, se0, lags, ax, float(n_sigma))
        return _maps.draw_heatmaps(r0, lags, ax)
    drawn = []
    for label, r in responses.items():
        r, se = _unpack(r, stderr.get(label))
        if not isinstance(r, xr.DataArray) or "lag" not in r.dims:
            raise TypeError(f"responses[{label!r}] must be a DataArray or Dataset with a "
                            f"'lag' dim (or a fitted ResponseEstimator), got {type(r).__name__}")
        if se is not None and (not isinstance(se, xr.DataArray) or se.sizes != r.sizes):
            raise ValueError(f"stderr[{label!r}] must be a DataArray with the dims and sizes "
                             f"of its response {dict(r.sizes)}")
        if not np.issubdtype(r.dtype, np.number) or not np.all(np.isfinite(r.values)):
            raise ValueError(f"responses[{label!r}] must hold finite numbers")
        if se is not None:  # NaN: no error could be estimated (e.g. one bootstrap block)
            vals = se.values
            if np.any(~np.isnan(vals) & ~(np.isfinite(vals) & (vals >= 0))):
                raise ValueError(f"stderr[{label!r}] must be finite and >= 0 (or NaN where "
                                 "no error was estimated)")
            if np.all(np.isnan(vals)):
                se = None  # no band, not a band of zero width
        drawn.append((label, r, se))
    dims0 = set(drawn[0][1].dims)
    units0 = _lag_label(drawn[0][1])
    for label, r, _ in drawn[1:]:
        if set(r.dims) != dims0:
            raise ValueError(f"responses[{label!r}] has dims {r.dims}, the first response "
                             f"{tuple(drawn[0][1].dims)}: draw one layout at a time")
        if _lag_label(r) != units0 and units0 != "lag" and _lag_label(r) != "lag":
            raise ValueError(f"responses[{label!r}] has its {_lag_label(r)}, the first "
                             f"response its {units0}: convert the lags to one unit")
    title, curves = _curves(drawn[0][1], offsets, axis, pairs)
    r0 = drawn[0][1]
    matrix = (r0.sizes["observable"], r0.sizes["source"]) \
        if dims0 == {"lag", "observable", "source"} and pairs is None else None
    panels, returned = _axes_list(ax, len(curves), matrix)
    _draw(panels, drawn, curves, n_sigma)
    _decorate(panels, curves, list(responses), title, _lag_label(r0))
    return returned


def plot_errors(errors, *, axes: Sequence[plt.Axes] | None = None) -> Sequence[plt.Axes]:
    """L2 and L-infinity errors against lag, one line per estimate.

    Parameters
    ----------
    errors : xarray.Dataset or mapping of label to Dataset
        Outputs of :func:`gfdt.metrics.response_error`.
    axes : pair of Axes, optional

    Returns
    -------
    (Axes, Axes)
    """
    errors = _as_dict(errors, "estimate")
    if not errors:
        raise ValueError("errors is empty: pass at least one Dataset of errors")
    for label, e in errors.items():
        if not isinstance(e, xr.Dataset) or not {"l2", "linf"} <= set(e.data_vars) \
                or "lag" not in e.dims:
            raise TypeError(f"errors[{label!r}] must be a Dataset from "
                            "gfdt.metrics.response_error (l2, linf against lag)")
        if not all(np.all(np.isfinite(e[v].values)) for v in ("l2", "linf")):
            raise ValueError(f"errors[{label!r}] contains NaN or inf")
    if axes is not None and len(axes) != 2:
        raise ValueError(f"axes must be a pair of Axes, got {len(axes)}")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for i, (label, e) in enumerate(errors.items()):
        ls = _STYLES[i % len(_STYLES)]
        lag = e["lag"].values if "lag" in e.coords else np.arange(e.sizes["lag"])
        xlabel = _lag_label(e)
        axes[0].plot(lag, e["l2"].values, linestyle=ls, label=label)
        axes[1].plot(lag, e["linf"].values, linestyle=ls, label=label)
    axes[0].set_ylabel("L2 error")
    axes[1].set_ylabel("L-infinity error")
    for a in axes:
        a.set_xlabel(xlabel)
        a.set_ylim(bottom=0)
    legend_outside(axes[1])  # one legend for both panels, right of the second
    return axes


def plot_field(field: xr.DataArray, *, ax: plt.Axes | None = None, **kwargs) -> plt.Axes:
    """Image of a 2-D field with dims ("y", "x") on a periodic grid."""
    if not isinstance(field, xr.DataArray) or set(field.dims) != {"y", "x"}:
        raise ValueError("field must be a DataArray with dims ('y', 'x')")
    if not np.issubdtype(field.dtype, np.number) or not np.all(np.isfinite(field.values)):
        raise ValueError("field must hold finite numbers")
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    field.transpose("y", "x").plot.imshow(ax=ax, origin="lower", **kwargs)
    ax.set_aspect("equal")
    return ax


def plot_spectrum(spectra, *, ax: plt.Axes | None = None, k_max: int | None = None) -> plt.Axes:
    """Isotropic spectra against wavenumber on log-log axes.

    Parameters
    ----------
    spectra : xarray.DataArray or mapping of label to DataArray
        Outputs of :func:`gfdt.stats.isotropic_spectrum` (or
        :func:`gfdt.stats.shell_sum`), dims ("k",). The shell ``k = 0`` (the squared
        mean) cannot be shown on a log axis and is left out.
    ax : matplotlib.axes.Axes, optional
    k_max : int, optional
        Largest shell drawn. Default: the spectrum's ``k_nyquist`` attribute (``n/2``,
        the last complete shell) when present, else every shell.

    Returns
    -------
    matplotlib.axes.Axes
        One line per spectrum; the i-th spectrum gets the i-th colour and line style.
    """
    spectra = _as_dict(spectra, "spectrum")
    if k_max is not None and (isinstance(k_max, bool) or not isinstance(k_max, (int, np.integer))
                              or k_max < 1):
        raise ValueError(f"k_max must be an int >= 1 or None, got {k_max!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, e) in enumerate(spectra.items()):
        if not isinstance(e, xr.DataArray) or e.dims != ("k",):
            raise ValueError(
                f"spectra[{label!r}] must be a DataArray with dims ('k',), as returned by "
                "gfdt.stats.isotropic_spectrum"
            )
        if not np.all(np.isfinite(e.values)) or np.any(e.values < 0):
            raise ValueError(f"spectra[{label!r}] must be finite and >= 0")
        top = k_max if k_max is not None else e.attrs.get("k_nyquist")
        keep = e["k"].values >= 1
        if top is not None:
            keep &= e["k"].values <= top
        line = e.isel(k=np.flatnonzero(keep))
        ax.plot(line["k"].values, line.values, color=colors[i % len(colors)],
                linestyle=_STYLES[i % len(_STYLES)], label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("wavenumber shell k")
    ax.set_ylabel("E(k)")
    legend_outside(ax)
    return ax


def plot_histogram(fields, *, bins: int | Sequence[float] = 60, ax: plt.Axes | None = None,
                   density: bool = True) -> plt.Axes:
    """Marginal histograms of fields, each with the Gaussian of the same mean and variance.

    Parameters
    ----------
    fields : xarray.DataArray, numpy.ndarray or mapping of label to them
        Values pooled over all dims (members, times, grid points).
    bins : int or sequence of float
        Number of bins over the common range of all fields, or the bin edges. All
        fields share the same edges.
    ax : matplotlib.axes.Axes, optional
    density : bool
        Normalise to a probability density (default) or show counts.

    Returns
    -------
    matplotlib.axes.Axes
        Per field: a step histogram (a :class:`matplotlib.patches.StepPatch`, with
        ``get_data()`` giving the heights and edges) and a dashed line of the same colour,
        the Gaussian density with the field's mean and variance (with
        ``density=False``: times the number of values and the mean bin width, the
        expected counts per bin), evaluated on 400 points across the bin range. The y
        range is set to 0..1.3 times the highest curve; after switching to a log y
        scale, set the limits yourself. The legend sits right of the axes.
    """
    from gfdt.stats import marginal_moments

    fields = _as_dict(fields, "field")
    if not fields:
        raise ValueError("fields is empty: pass at least one field")
    if not isinstance(density, (bool, np.bool_)):
        raise TypeError(f"density must be True or False, got {density!r}")
    values = {}
    for label, f in fields.items():
        if isinstance(f, xr.Dataset):
            raise TypeError(f"fields[{label!r}] is a Dataset; pass one variable, e.g. ds.u")
        raw = np.asarray(f.values if isinstance(f, xr.DataArray) else f)
        if not np.issubdtype(raw.dtype, np.number) or np.issubdtype(raw.dtype,
                                                                     np.complexfloating):
            raise TypeError(f"fields[{label!r}] must hold real numbers, got dtype {raw.dtype}")
        arr = raw.astype(float).ravel()
        if arr.size == 0 or not np.all(np.isfinite(arr)):
            raise ValueError(f"fields[{label!r}] must be non-empty and finite")
        values[label] = arr
    if isinstance(bins, (int, np.integer)) and not isinstance(bins, bool):
        if bins < 1:
            raise ValueError(f"bins must be >= 1, got {bins}")
        lo = min(v.min() for v in values.values())
        hi = max(v.max() for v in values.values())
        edges = np.histogram_bin_edges(np.array([lo, hi]), bins=int(bins))
    else:
        try:
            edges = np.asarray(bins, dtype=float)
        except (TypeError, ValueError):
            raise TypeError(f"bins must be an int or a sequence of edges, got {bins!r}") from None
        if edges.ndim != 1 or edges.size < 2 or not np.all(np.isfinite(edges)) \
                or np.any(np.diff(edges) <= 0):
            raise ValueError("bins must be an int or a strictly increasing sequence of edges")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xs = np.linspace(edges[0], edges[-1], 400)
    top = 0.0
    for i, (label, arr) in enumerate(values.items()):
        color = colors[i % len(colors)]
        heights, _ = np.histogram(arr, bins=edges, density=density)
        ax.stairs(heights, edges, color=color, label=label)
        top = max(top, float(heights.max()))
        mom = marginal_moments(arr)
        var = mom["variance"]
        if var > 0:
            pdf = np.exp(-0.5 * (xs - mom["mean"]) ** 2 / var) / np.sqrt(2 * np.pi * var)
            if not density:
                pdf = pdf * arr.size * np.diff(edges).mean()
            ax.plot(xs, pdf, color=color, linestyle="--", linewidth=1.0)
            top = max(top, float(pdf.max()))
    handles, _ = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], color="0.3", linestyle="--",
                          label="Gaussian, same mean and variance"))
    ax.set_ylim(0.0, 1.3 * top)
    legend_outside(ax, handles=handles)
    ax.set_xlabel("value")
    ax.set_ylabel("probability density" if density else "count")
    return ax
