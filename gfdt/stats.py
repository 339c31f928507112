"""Statistics of simulated fields: isotropic spectra, marginal moments, autocorrelation.

These are the diagnostics one looks at before estimating a response: whether the
field is near Gaussian (marginal moments, histograms), how its variance is spread over
scales (the isotropic spectrum) and how long it stays correlated in time (the
autocorrelation, which sets how many lags the GFDT needs). All computations use
float64.

Conventions
-----------
Fields live on the doubly periodic square :math:`[0, 2\\pi)^2` sampled on an
:math:`n \\times n` grid, so wavenumbers are integers. Fourier coefficients use
numpy's unscaled forward transform, :math:`\\hat u_k = \\sum_x u(x)\\, e^{-i k \\cdot
x}`, for which Parseval's identity reads :math:`\\sum_k |\\hat u_k|^2 = n^2 \\sum_x
u(x)^2`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from gfdt.conventions import attrs as cf_attrs
from gfdt.conventions import lag_coord
from gfdt.data import _finite, as_series

__all__ = ["autocorrelation", "isotropic_spectrum", "marginal_moments", "shell_sum"]

#: Samples (2-D fields) transformed together in :func:`isotropic_spectrum`.
_FIELD_CHUNK = 256
#: Values reduced together in :func:`marginal_moments`.
_VALUE_CHUNK = 2**20
#: Bytes of complex workspace per block of series in :func:`autocorrelation`.
_ACF_CHUNK_BYTES = 64 * 2**20


# ------------------------------------------------------------------ helpers
def _unwrap(u, name: str):
    """A Dataset becomes its ``u`` variable (or its only variable)."""
    if isinstance(u, xr.Dataset):
        names = list(u.data_vars)
        if "u" in u.data_vars:
            return u["u"]
        if len(names) == 1:
            return u[names[0]]
        raise ValueError(f"{name} is a Dataset with variables {names}; pass one DataArray")
    return u


def _real_array(values, name: str) -> np.ndarray:
    """``values`` as a finite float64 array, with errors that name the argument."""
    try:
        arr = np.asarray(values)
    except Exception:
        raise TypeError(f"{name} must be an array or an xarray DataArray") from None
    if arr.dtype == object:
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return _finite(arr, name)


def _shell_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Shell of every mode in rfft2 layout and the weight of that column.

    Returns
    -------
    shell : numpy.ndarray of int, shape (n, n//2+1)
        :math:`\\mathrm{round}(|k|)` with integer wavenumbers ``ky`` (``fftfreq``
        order, the Nyquist row carries ``-n/2``) and ``kx = 0..n//2``.
    weight : numpy.ndarray of float, shape (1, n//2+1)
        How many modes of the full ``fft2`` plane each column stands for: 1 for
        ``kx = 0`` and, for even ``n``, the Nyquist column ``kx = n/2``; 2 for the
        others (the conjugate mode ``-k`` is not stored).
    """
    ky = np.fft.fftfreq(n, d=1.0 / n).reshape(n, 1)
    kx = np.fft.rfftfreq(n, d=1.0 / n).reshape(1, n // 2 + 1)
    # |k| is never a half-integer (m^2 + m + 1/4 is not an integer): no rounding ties
    shell = np.rint(np.sqrt(ky**2 + kx**2)).astype(np.int64)
    weight = np.full((1, n // 2 + 1), 2.0)
    weight[0, 0] = 1.0
    if n % 2 == 0:
        weight[0, -1] = 1.0
    return shell, weight


def _spectrum_array(values: np.ndarray, n: int, attrs: dict[str, Any]) -> xr.DataArray:
    shell, weight = _shell_index(n)
    n_shells = int(shell.max()) + 1
    counts = np.bincount(shell.ravel(), weights=np.broadcast_to(weight, shell.shape).ravel(),
                         minlength=n_shells)
    k = np.arange(n_shells)
    return xr.DataArray(
        values,
        dims=("k",),
        coords={
            "k": ("k", k, cf_attrs("wavenumber_shell")),
            "n_modes": ("k", counts.astype(np.int64), cf_attrs("shell_modes")),
        },
        name="spectrum",
        attrs={"k_nyquist": n // 2, **attrs},
    )


# ------------------------------------------------------------------ spectra
def shell_sum(modal, n: int | None = None) -> xr.DataArray:
    """Sum a per-mode quantity over the wavenumber shells of :func:`isotropic_spectrum`.

    Use it to put a closed-form spectrum on the same footing as an estimated one:
    ``shell_sum(ou.exact_spectrum() / ou.n**2)`` is the exact isotropic spectrum of
    the OU system (:meth:`gfdt.systems.OrnsteinUhlenbeck.exact_spectrum` is
    :math:`E|\\hat u_k|^2 / n^2`).

    Parameters
    ----------
    modal : array_like, shape (n, n//2+1) or (n, n)
        Real values per Fourier mode, in :func:`numpy.fft.rfft2` layout (rows ``ky``
        in ``fftfreq`` order, columns ``kx = 0..n//2``) or in the full
        :func:`numpy.fft.fft2` layout. In rfft2 layout the values of ``-k`` are taken
        equal to those of ``k`` (true for the spectrum of any real field).
    n : int, optional
        Grid size; inferred from the first axis.

    Returns
    -------
    xarray.DataArray, dims ("k",)
        :math:`\\sum_{\\mathrm{round}(|k|) = K} \\mathrm{modal}_k` for shells
        ``K = 0..round(n/sqrt(2))``, with the coordinate ``n_modes`` as in
        :func:`isotropic_spectrum`.
    """
    arr = _real_array(modal, "modal")
    if arr.ndim != 2:
        raise ValueError(f"modal must be 2-D, shape (n, n//2+1) or (n, n); got {arr.shape}")
    n_in = arr.shape[0]
    if n is None:
        n = n_in
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an int >= 2, got {n!r}")
    n = int(n)
    if n_in != n:
        raise ValueError(f"modal has {n_in} rows but n = {n}")
    if arr.shape == (n, n) and n // 2 + 1 != n:
        arr = _fold(arr)
    elif arr.shape != (n, n // 2 + 1):
        raise ValueError(
            f"modal must have shape ({n}, {n // 2 + 1}) (rfft2 layout) or ({n}, {n}) "
            f"(fft2 layout); got {arr.shape}"
        )
    shell, weight = _shell_index(n)
    vals = np.bincount(shell.ravel(), weights=(arr * weight).ravel(),
                       minlength=int(shell.max()) + 1)
    return _spectrum_array(vals, n, cf_attrs("shell_sum"))


def _fold(full: np.ndarray) -> np.ndarray:
    """Full-plane values to rfft2 layout, averaging ``k`` and ``-k`` (weights double)."""
    n = full.shape[0]
    flipped = np.roll(full[::-1, ::-1], 1, axis=(0, 1))
    return (0.5 * (full + flipped))[:, : n // 2 + 1]


def isotropic_spectrum(u) -> xr.DataArray:
    """Radially averaged (shell-summed) power spectrum of periodic 2-D fields.

    Definition (numpy's unscaled FFT, :math:`\\hat u_k = \\sum_x u(x) e^{-ik\\cdot x}`):

    .. math::

        E(K) = \\Big\\langle \\frac{1}{n^4} \\sum_{k:\\ \\mathrm{round}(|k|) = K}
               |\\hat u_k|^2 \\Big\\rangle ,
        \\qquad K = 0, 1, \\ldots, \\mathrm{round}(n/\\sqrt{2}),

    where :math:`k = (k_y, k_x)` runs over the full ``fft2`` plane of integer
    wavenumbers and :math:`\\langle\\cdot\\rangle` averages over all samples (every
    leading index: members, times, ...). With this normalisation Parseval's identity
    gives :math:`\\sum_K E(K) = \\langle \\overline{u^2} \\rangle`, the mean square of
    the field over all grid points and samples; :math:`E(0)` is the squared spatial
    mean. The mean is *not* removed.

    Shells :math:`K \\le n/2` are complete circles; shells :math:`n/2 < K \\le
    n/\\sqrt{2}` only hold the corner modes of the square grid (see the ``n_modes``
    coordinate) and are kept so that Parseval holds exactly. Attribute ``k_nyquist``
    is :math:`n/2`; plot ``E.sel(k=slice(1, E.k_nyquist))`` for the resolved range.

    Parameters
    ----------
    u : xarray.DataArray or numpy.ndarray
        DataArray with dims ``(..., "y", "x")`` (any other dims, in any order, are
        averaged over; a Dataset is replaced by its ``u`` variable), or an array of
        shape ``(..., n, n)``. The grid must be square.

    Returns
    -------
    xarray.DataArray, dims ("k",)
        ``E(k)`` in (field units)², coordinate ``k`` (integer shell, wavenumber in
        units of the inverse domain length over 2 pi) and ``n_modes`` (number of grid
        modes in each shell; for white noise of variance :math:`\\sigma^2`,
        :math:`E(k) = \\sigma^2 n_{modes}(k) / n^2`). Attributes: ``n_samples``,
        ``k_nyquist``, ``units``.

    Examples
    --------
    >>> import numpy as np
    >>> from gfdt.stats import isotropic_spectrum
    >>> x = 2 * np.pi * np.arange(16) / 16
    >>> E = isotropic_spectrum(np.cos(3 * x)[None, :] * np.ones((16, 1)))
    >>> float(E.sel(k=3)), float(E.sum())
    (0.5, 0.5)
    """
    u = _unwrap(u, "u")
    units = None
    if isinstance(u, xr.DataArray):
        missing = [d for d in ("y", "x") if d not in u.dims]
        if missing:
            raise ValueError(
                f"u must have dims (..., 'y', 'x'); {missing} missing from {u.dims}. "
                "Rename yours, e.g. u.rename({'lat': 'y', 'lon': 'x'})"
            )
        units = u.attrs.get("units")
        u = u.transpose(..., "y", "x").values
    arr = _real_array(u, "u")
    if arr.ndim < 2:
        raise ValueError(f"u must have shape (..., n, n), got {arr.shape}")
    n = arr.shape[-1]
    if arr.shape[-2] != n:
        raise ValueError(f"u must be square in its last two axes (n, n), got {arr.shape}")
    if n < 2:
        raise ValueError(f"u must have at least 2 x 2 points, got {arr.shape}")
    fields = arr.reshape(-1, n, n)
    power = np.zeros((n, n // 2 + 1))
    for a in range(0, fields.shape[0], _FIELD_CHUNK):
        uh = np.fft.rfft2(fields[a:a + _FIELD_CHUNK])
        power += (uh.real**2 + uh.imag**2).sum(axis=0)
    n_samples = fields.shape[0]
    spec = shell_sum(power / (n_samples * float(n) ** 4), n)
    return spec.assign_attrs(
        long_name="isotropic power spectrum (shell sum of |u_k|^2 / n^4)",
        units="1" if units in (None, "", "1") else f"({units})^2",
        n_samples=int(n_samples),
    )


# ------------------------------------------------------------------ moments
def marginal_moments(u) -> dict[str, float]:
    """Mean, variance, skewness and kurtosis of all values of ``u`` pooled together.

    Population (biased, divide-by-N) moments about the pooled mean :math:`m`:

    .. math::

        \\sigma^2 = \\overline{(u - m)^2}, \\quad
        \\text{skewness} = \\overline{(u - m)^3} / \\sigma^3, \\quad
        \\text{kurtosis} = \\overline{(u - m)^4} / \\sigma^4 .

    The kurtosis is the plain (not excess) kurtosis: 3 for a Gaussian, 1 for a
    symmetric two-point distribution, 1.8 for a uniform one; values below 3 with a
    bimodal histogram are the signature of Allen-Cahn statistics.

    Parameters
    ----------
    u : xarray.DataArray or numpy.ndarray, any shape
        Values pooled over every dim (members, times, grid points). A Dataset is
        replaced by its ``u`` variable.

    Returns
    -------
    dict of str to float
        ``"mean"`` (field units), ``"variance"`` (field units²), ``"skewness"`` and
        ``"kurtosis"`` (dimensionless). For a constant field the last two are NaN.
    """
    u = _unwrap(u, "u")
    if isinstance(u, xr.DataArray):
        u = u.values
    flat = _real_array(u, "u").ravel()
    N = flat.size
    total = 0.0
    for a in range(0, N, _VALUE_CHUNK):
        total += float(flat[a:a + _VALUE_CHUNK].sum())
    mean = total / N
    s2 = s3 = s4 = 0.0
    for a in range(0, N, _VALUE_CHUNK):
        d = flat[a:a + _VALUE_CHUNK] - mean
        d2 = d * d
        s2 += float(d2.sum())
        s3 += float((d2 * d).sum())
        s4 += float((d2 * d2).sum())
    var = s2 / N
    if var > 0:
        skew = (s3 / N) / var**1.5
        kurt = (s4 / N) / var**2
    else:
        skew = kurt = float("nan")
    return {"mean": mean, "variance": var, "skewness": skew, "kurtosis": kurt}


# ------------------------------------------------------------------ time
def autocorrelation(u, max_lag: int, *, normalize: bool = True) -> xr.DataArray:
    """Time autocorrelation of the pointwise field, averaged over space and members.

    .. math::

        C(\\tau) = \\frac{\\sum_{m, x} \\sum_{t=0}^{T_m - 1 - \\tau}
                   (u_m(x, t + \\tau) - \\mu)(u_m(x, t) - \\mu)}
                   {\\sum_{m, x} (T_m - \\tau)},
        \\qquad \\rho(\\tau) = C(\\tau) / C(0),

    with :math:`\\mu` the mean over all members, times and points: *unbiased* lag
    means (each lag divided by its own number of pairs, no circular wrap), pooled over
    members :math:`m` of lengths :math:`T_m` and over all state points :math:`x`. The
    sums are computed with zero-padded FFTs in time.

    Parameters
    ----------
    u : xarray.DataArray, xarray.Dataset, numpy.ndarray or list of arrays
        As accepted by :meth:`gfdt.ResponseEstimator.fit`: a DataArray with a
        ``time`` dim and optionally ``member`` (every other dim is space), a Dataset
        holding ``u``, an array of shape ``(time, *space)`` (one member), or a list of
        such arrays (independent members, lengths may differ).
    max_lag : int
        Largest lag in samples; must be smaller than the shortest member.
    normalize : bool
        Return :math:`\\rho(\\tau) = C(\\tau)/C(0)` (default) or the autocovariance
        :math:`C(\\tau)` in (field units)².

    Returns
    -------
    xarray.DataArray, dims ("lag",)
        Lags ``0..max_lag``; the ``lag`` coordinate is in time units when ``u`` has an
        evenly spaced ``time`` coordinate, else in samples.

    Examples
    --------
    >>> import numpy as np
    >>> from gfdt.stats import autocorrelation
    >>> x = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    >>> autocorrelation(x, 2).values
    array([ 1., -1.,  1.])
    """
    if isinstance(max_lag, bool) or not isinstance(max_lag, (int, np.integer)):
        raise TypeError(f"max_lag must be an int, got {type(max_lag).__name__}")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    if not isinstance(normalize, (bool, np.bool_)):
        raise TypeError(f"normalize must be True or False, got {normalize!r}")
    series = as_series(u, "u")
    L = int(max_lag)
    if L >= series.min_length:
        raise ValueError(
            f"max_lag = {L} must be smaller than the length of every time series "
            f"(shortest has {series.min_length} samples)"
        )
    mean = sum(float(m.sum()) for m in series.members) / sum(m.size for m in series.members)
    acc = np.zeros(L + 1)
    pairs = np.zeros(L + 1)
    for m in series.members:
        T = m.shape[0]
        flat = m.reshape(T, -1)
        pairs += (T - np.arange(L + 1)) * flat.shape[1]
        nfft = _fast_len(T + L)
        cols = max(1, _ACF_CHUNK_BYTES // (16 * nfft))
        for a in range(0, flat.shape[1], cols):
            d = flat[:, a:a + cols] - mean
            f = np.fft.rfft(d, n=nfft, axis=0)
            acc += np.fft.irfft(f.real**2 + f.imag**2, n=nfft, axis=0)[: L + 1].sum(axis=1)
    cov = acc / pairs
    if normalize:
        if cov[0] <= 0:
            raise ValueError("u is constant: its autocorrelation is undefined "
                             "(use normalize=False for the autocovariance)")
        values = cov / cov[0]
    else:
        values = cov
    lag = lag_coord(L + 1, series.step)
    return xr.DataArray(
        values,
        dims=("lag",),
        coords={"lag": lag},
        name="autocorrelation" if normalize else "autocovariance",
        attrs={
            **cf_attrs("field_autocorrelation",
                       kind="autocorrelation" if normalize else "autocovariance"),
            "units": "1" if normalize else "field units squared",
            "mean": mean,
            "n_samples": int(series.n_samples),
        },
    )


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (an FFT-friendly length)."""
    import scipy.fft

    return int(scipy.fft.next_fast_len(n, real=True))
