"""Plots in the style of the paper's Fig. 1. Every function takes ``ax`` and returns Axes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.lines import Line2D

__all__ = ["plot_errors", "plot_field", "plot_histogram", "plot_response", "plot_spectrum"]

_STYLES = ["-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]


def _as_dict(x, default: str) -> dict:
    if isinstance(x, Mapping) and not isinstance(x, xr.Dataset):  # a Dataset is one item
        return dict(x)
    return {default: x}


def _pick(r, offset: int, axis: str) -> xr.DataArray:
    if isinstance(r, xr.Dataset):
        r = r["response"]
    other = "y" if axis == "x" else "x"
    if axis not in r.dims or other not in r.dims:
        raise ValueError(f"responses need dims 'lag', 'y', 'x'; got {r.dims}")
    return r.isel({axis: offset % r.sizes[axis], other: 0})


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


def _curves(r: xr.DataArray, offsets: Sequence[int], axis: str) -> list[tuple[str, object]]:
    """(legend key, selector) of each curve: offsets of a field, or observables."""
    if set(r.dims) == {"lag", "observable"}:
        vals = r["observable"].values if "observable" in r.coords else range(r.sizes[
            "observable"])
        return [(str(v), {"observable": k}) for k, v in enumerate(vals)]
    name = "R{}1" if axis == "x" else "R1{}"
    return [(name.format(off + 1), off) for off in offsets]


def _select(r: xr.DataArray, key, axis: str) -> xr.DataArray:
    if isinstance(key, dict):
        return r.isel(key)
    return _pick(r, key, axis)


def plot_response(
    responses,
    *,
    offsets: Sequence[int] = (0, 2, 4, 6),
    axis: str = "x",
    stderr=None,
    ax: plt.Axes | None = None,
    n_sigma: float = 2.0,
) -> plt.Axes:
    """Response at a few offsets downstream of the kick against lag.

    With the default offsets these are the paper's R11, R31, R51, R71 (offsets 0, 2,
    4, 6 pixels in +x). Responses of observables (dims ``("lag", "observable")``)
    are drawn one curve per observable instead.

    Parameters
    ----------
    responses : DataArray, Dataset, ResponseEstimator or mapping of label to them
        Responses with dims ("lag", "y", "x") or ("lag", "observable"). A Dataset with
        ``stderr`` gets a band; so does a fitted :class:`gfdt.ResponseEstimator`, drawn
        from its ``response_`` with ``response_stderr_`` as band.
    offsets : sequence of int
        Offsets in grid points along ``axis``; colour encodes the offset (or the
        observable), line style the estimate.
    axis : {"x", "y"}
        Direction of the offsets.
    stderr : DataArray or mapping of label to DataArray, optional
        Standard errors drawn as +- ``n_sigma`` bands (they take precedence over those
        a Dataset or an estimator carries).
    ax : matplotlib.axes.Axes, optional
    n_sigma : float
        Half-width of the bands in standard errors (1.96 for a 95% normal band).

    Returns
    -------
    matplotlib.axes.Axes
        The band of curve ``c`` is a ``PolyCollection`` between ``c - n_sigma * se`` and
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
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    keys: list[str] = []
    title = "offset"
    for i, (label, r) in enumerate(responses.items()):
        r, se = _unpack(r, stderr.get(label))
        if not isinstance(r, xr.DataArray) or "lag" not in r.dims:
            raise TypeError(f"responses[{label!r}] must be a DataArray or Dataset with a "
                            f"'lag' dim (or a fitted ResponseEstimator), got {type(r).__name__}")
        if se is not None and (not isinstance(se, xr.DataArray) or se.sizes != r.sizes):
            raise ValueError(f"stderr[{label!r}] must be a DataArray with the dims and sizes "
                             f"of its response {dict(r.sizes)}")
        curves = _curves(r, offsets, axis)
        if not keys:
            keys = [k for k, _ in curves]
            title = "observable" if "observable" in r.dims else "offset"
        for j, (key, sel) in enumerate(curves):
            line = _select(r, sel, axis)
            lag = line["lag"].values
            ax.plot(lag, line.values, color=colors[j % len(colors)],
                    linestyle=_STYLES[i % len(_STYLES)], label=f"{label}, {key}")
            if se is not None:
                band = _select(se, sel, axis).values
                ax.fill_between(lag, line.values - n_sigma * band, line.values + n_sigma * band,
                                color=colors[j % len(colors)], alpha=0.2, linewidth=0)
    ax.set_xlabel("lag (time units)")
    ax.set_ylabel("response")
    ax.axhline(0, color="0.6", linewidth=0.5)
    # two compact legends: colour = offset (or observable), line style = estimate
    curve_handles = [Line2D([], [], color=colors[j % len(colors)], label=key)
                     for j, key in enumerate(keys)]
    meths = [Line2D([], [], color="0.2", linestyle=_STYLES[i % len(_STYLES)], label=label)
             for i, label in enumerate(responses)]
    first = ax.legend(handles=curve_handles, fontsize="small", loc="upper right", title=title)
    ax.add_artist(first)
    ax.legend(handles=meths, fontsize="small", loc="upper center", title="estimate")
    return ax


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
    if axes is not None and len(axes) != 2:
        raise ValueError(f"axes must be a pair of Axes, got {len(axes)}")
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4))
    for i, (label, e) in enumerate(errors.items()):
        ls = _STYLES[i % len(_STYLES)]
        lag = e["lag"].values if "lag" in e.coords else np.arange(e.sizes["lag"])
        axes[0].plot(lag, e["l2"].values, linestyle=ls, label=label)
        axes[1].plot(lag, e["linf"].values, linestyle=ls, label=label)
    axes[0].set_ylabel("L2 error")
    axes[1].set_ylabel("L-infinity error")
    for a in axes:
        a.set_xlabel("lag (time units)")
        a.legend(fontsize="small")
        a.set_ylim(bottom=0)
    return axes


def plot_field(field: xr.DataArray, *, ax: plt.Axes | None = None, **kwargs) -> plt.Axes:
    """Image of a 2-D field with dims ("y", "x") on a periodic grid."""
    if not isinstance(field, xr.DataArray) or set(field.dims) != {"y", "x"}:
        raise ValueError("field must be a DataArray with dims ('y', 'x')")
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
        _, ax = plt.subplots(figsize=(5, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, e) in enumerate(spectra.items()):
        if not isinstance(e, xr.DataArray) or e.dims != ("k",):
            raise ValueError(
                f"spectra[{label!r}] must be a DataArray with dims ('k',), as returned by "
                "gfdt.stats.isotropic_spectrum"
            )
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
    ax.legend(fontsize="small")
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
        range is set to 0..1.3 times the highest curve, leaving room for the legend;
        after switching to a log y scale, set the limits yourself.
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
        _, ax = plt.subplots(figsize=(5, 4))
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
    ax.set_ylim(0.0, 1.3 * top)  # headroom for the legend
    ax.legend(handles=handles, fontsize="small", loc="upper left")
    ax.set_xlabel("value")
    ax.set_ylabel("probability density" if density else "count")
    return ax
