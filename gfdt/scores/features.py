r"""Scores linear in a library of nonlinear field features, fitted in closed form.

For a periodic field :math:`x` on an :math:`n_y \times n_x` grid the model is

.. math:: \hat s_k(x) = \sum_j c_j(k)\, \hat\phi_j(x)_k ,

one complex coefficient per feature and Fourier mode :math:`k`, where the features
:math:`\phi_j` are fields computed from :math:`x` (the field itself, products of its
derivatives, advection terms, ...). In real space each term is a translation-invariant
filter applied to a feature field, so the score is translation equivariant and the
Gaussian score of a homogeneous field is the special case of the single feature
:math:`\phi_0 = x`.

The coefficients minimise the implicit (Hyvärinen) score-matching objective
:math:`E[\tfrac12 \|s\|^2 + \nabla\cdot s]`, which for a model linear in its
coefficients is a quadratic: per mode,

.. math:: c(k) = -M(k)^{-1} D(k), \quad M_{jl}(k) = E[\overline{\hat\phi_j(k)}\,
   \hat\phi_l(k)], \quad D_j(k) = E\Big[\sum_{l,m} e^{ik\cdot(l-m)}
   \frac{\partial \phi_{j,l}}{\partial x_m}\Big] ,

no noise level, no network, no training loop: one pass over the data for :math:`M`
and Jacobian-vector products along plane waves for :math:`D` (exact for the linear
feature, :math:`D_0 = n_y n_x`).

Why: on 2-D turbulence the part of the score the Gaussian misses is the *slaving* of
the small scales to the large ones (a small-scale pattern that the large-scale flow has
advected and strained into being is likely; the same pattern on its own is not). A
kick at a small scale is not slaved and decays by eddy damping, while the correlation
of the slaved field lasts as long as the large scales do, so the Gaussian GFDT
overestimates the response there. The ``"vorticity"`` library carries the advection
term :math:`J = u(x)\cdot\nabla x` and its iterates up to third order in the field
(:math:`u(x) = \nabla^\perp \Delta^{-1} x`, the velocity of the vorticity :math:`x`):
the leading terms of the slaved field as a functional of the large scales. See the
Navier-Stokes ablation in the benchmark page.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable

import numpy as np
import scipy.fft as sfft

from gfdt._progress import tqdm
from gfdt.scores.base import ScoreEstimator, as_samples, check_number, register_score
from gfdt.scores.quality import ScoreQualityWarning, _user_stacklevel
from gfdt.systems._spectral import rfft_weights

__all__ = ["FeatureLibrary", "FeatureScore", "SpectralOps", "feature_library"]

logger = logging.getLogger("gfdt.scores")


class SpectralOps:
    """Spectral operators on an ``(ny, nx)`` periodic grid of the square ``[0, 2 pi)^2``.

    Odd derivatives are zero on the Nyquist lines (gfdt's convention); the inverse
    Laplacian is zero at :math:`k = 0`.

    Parameters
    ----------
    shape : (int, int)
        Grid shape.
    """

    def __init__(self, shape: tuple[int, int]) -> None:
        ny, nx = (int(v) for v in shape)
        self.shape = (ny, nx)
        ky = np.fft.fftfreq(ny, 1.0 / ny)[:, None]
        kx = np.fft.rfftfreq(nx, 1.0 / nx)[None, :]
        odd = np.ones((ny, nx // 2 + 1))
        if ny % 2 == 0:
            odd[ny // 2, :] = 0
        if nx % 2 == 0:
            odd[:, nx // 2] = 0
        self.ikx = 1j * kx * odd
        self.iky = 1j * ky * odd
        k2 = kx**2 + ky**2
        self.inv_lap = np.where(k2 > 0, -1.0 / np.where(k2 > 0, k2, 1.0), 0.0)

    def fwd(self, x: np.ndarray) -> np.ndarray:
        """rfft2 over the last two axes."""
        return sfft.rfft2(x, axes=(-2, -1))

    def inv(self, h: np.ndarray) -> np.ndarray:
        """irfft2 over the last two axes, back to the grid shape."""
        return sfft.irfft2(h, s=self.shape, axes=(-2, -1))

    def gradient(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`(\\partial_x x, \\partial_y x)`."""
        h = self.fwd(x)
        return self.inv(h * self.ikx), self.inv(h * self.iky)

    def velocity(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:math:`(u, v) = (-\\partial_y, \\partial_x)\\Delta^{-1} x`, velocity of vorticity x."""
        h = self.fwd(x) * self.inv_lap
        return self.inv(-h * self.iky), self.inv(h * self.ikx)

    def advect(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """:math:`u(a)\\cdot\\nabla b`: ``b`` advected by the velocity of vorticity ``a``."""
        u, v = self.velocity(a)
        bx, by = self.gradient(b)
        return u * bx + v * by


_CHANNELS: dict[str, Callable[[SpectralOps], np.ndarray]] = {
    "x": lambda o: np.ones_like(o.inv_lap, dtype=complex),
    "dx": lambda o: o.ikx,
    "dy": lambda o: o.iky,
    "u": lambda o: -o.iky * o.inv_lap,
    "v": lambda o: o.ikx * o.inv_lap,
}


class FeatureLibrary:
    r"""Features of a periodic field: products of linear channels, plus nested terms.

    Feature 0 is always the field itself. Then every product in ``products`` of the
    linear channels (fields :math:`L_a x` given by their Fourier symbols): their
    divergence term is exact, :math:`D(k) = n_y n_x \sum_i \overline{\hat L_i(k)}\,
    E[\prod_{j \ne i} L_j x]`, from moments over all training samples. Then the
    fields of ``nested(ops, x)``, whose divergence term is computed by
    Jacobian-vector products along plane waves (central differences: exact for
    polynomials of degree up to 3 in the field, to round-off).

    Parameters
    ----------
    channels : list of str
        Linear channels among ``"x"`` (the field), ``"dx"``, ``"dy"`` (its gradient),
        ``"u"``, ``"v"`` (the velocity :math:`\nabla^\perp\Delta^{-1}x` of a vorticity
        field).
    products : list of tuple of str
        Products of 2 or 3 channels.
    nested : callable, optional
        ``nested(ops, x) -> (list of fields, list of names)`` for a batch ``x`` of
        shape ``(batch, ny, nx)``; polynomials of degree <= 3 in ``x``.
    name : str
    """

    def __init__(self, channels: list[str], products: list[tuple[str, ...]],
                 nested: Callable | None = None, name: str = "custom") -> None:
        unknown = [c for c in channels if c not in _CHANNELS]
        if unknown:
            raise ValueError(f"unknown channels {unknown}; choose from {sorted(_CHANNELS)}")
        for p in products:
            if not 2 <= len(p) <= 3 or any(c not in channels for c in p):
                raise ValueError(f"each product must name 2 or 3 of the channels "
                                 f"{channels}, got {p!r}")
        self.channels, self.products, self.nested, self.name = (
            list(channels), [tuple(p) for p in products], nested, name)

    def names(self, ops: SpectralOps) -> list[str]:
        """Names of the features, field first."""
        extra = self.nested(ops, np.zeros((1, *ops.shape)))[1] if self.nested else []
        return ["x"] + ["*".join(p) for p in self.products] + list(extra)

    def channel_fields(self, ops: SpectralOps, x: np.ndarray) -> dict[str, np.ndarray]:
        """Every channel of a batch, on the grid."""
        h = ops.fwd(x)
        return {c: (x if c == "x" else ops.inv(h * _CHANNELS[c](ops))) for c in self.channels}

    def __call__(self, ops: SpectralOps, x: np.ndarray,
                 channels: dict[str, np.ndarray] | None = None) -> list[np.ndarray]:
        """Feature fields of a batch ``x`` (batch, ny, nx), field first (``channels``:
        :meth:`channel_fields` of ``x`` when already computed)."""
        ch = self.channel_fields(ops, x) if channels is None else channels
        feats = [x] + [np.prod([ch[c] for c in p], axis=0) for p in self.products]
        if self.nested is not None:
            feats += list(self.nested(ops, x)[0])
        return feats


def _advection_iterates(ops: SpectralOps, x: np.ndarray) -> tuple[list, list[str]]:
    """The advection term J(x) = u(x).grad x iterated to third order in the field."""
    j1 = ops.advect(x, x)
    j2 = ops.advect(x, j1)  # u(x).grad J
    k2 = ops.advect(j1, x)  # u(J).grad x
    more = {"u.grad(J)": j2, "u(J).grad(x)": k2, "u.grad(u.grad(J))": ops.advect(x, j2),
            "u.grad(u(J).grad(x))": ops.advect(x, k2), "u(J).grad(J)": ops.advect(j1, j1),
            "u(u.grad(J)).grad(x)": ops.advect(j2, x),
            "u(u(J).grad(x)).grad(x)": ops.advect(k2, x)}
    return list(more.values()), list(more)


def _pairs(channels: list[str]) -> list[tuple[str, ...]]:
    return list(itertools.combinations_with_replacement(channels, 2))


_LIBRARIES: dict[str, Callable[[], FeatureLibrary]] = {
    "polynomial": lambda: FeatureLibrary(
        ["x", "dx", "dy"], [*_pairs(["x", "dx", "dy"]), ("x", "x", "x")], name="polynomial"),
    "vorticity": lambda: FeatureLibrary(
        ["x", "dx", "dy", "u", "v"], [*_pairs(["x", "dx", "dy", "u", "v"]), ("x", "x", "x")],
        _advection_iterates, name="vorticity"),
}


def feature_library(name: str) -> FeatureLibrary:
    """A built-in feature library by name (``"polynomial"``, ``"vorticity"``)."""
    try:
        return _LIBRARIES[name]()
    except KeyError:
        raise ValueError(f"features must be one of {sorted(_LIBRARIES)} or a "
                         f"FeatureLibrary, got {name!r}") from None


@register_score("features")
class FeatureScore(ScoreEstimator):
    r"""Score of a periodic 2-D field, linear in a feature library, fitted in closed form.

    See the module docstring for the model and the objective.

    Parameters
    ----------
    features : {"vorticity", "polynomial"} or FeatureLibrary
        ``"vorticity"`` (default): a 2-D vorticity field; the field, the products of
        pairs of (field, its gradient, its velocity), its cube, and the advection term
        :math:`u\cdot\nabla x` iterated to third order (24 features).
        ``"polynomial"``: the field, the products of pairs of (field, its gradient)
        and the cube (8 features; holds the Allen-Cahn score).
        A :class:`FeatureLibrary` for other physics.
    ridge : float
        Tikhonov regularisation of each per-mode system, relative to its (Jacobi
        scaled) diagonal.
    n_divergence : int
        Training snapshots over which the divergence term :math:`D` is averaged (each
        already averages over every grid point).
    validation : float
        Fraction of the samples held out for the quality report (0: none).
    batch_size : int
        Snapshots per batch.
    seed : int
        Seed of the held-out split and of the snapshots chosen for :math:`D`.
    progress : bool, optional
        Progress bar (default: only on a terminal).

    Attributes
    ----------
    coef_ : numpy.ndarray, complex, shape (ny, nx // 2 + 1, n_features)
        Coefficients per rfft2 mode (zero on modes without variance, e.g. Nyquist lines
        removed from the data).
    feature_names_ : list of str
    quality_ : dict
        Held-out implicit score-matching objective per grid point of the fit
        (``heldout_objective``), of the linear-only (Gaussian) fit
        (``gaussian_objective``), their difference ``gain`` (Fisher units, positive is
        better) and its standard error ``gain_stderr``.

    Notes
    -----
    Cost: one pass of feature evaluations over the data and
    ``4 n_divergence (ny nx / 2)`` more for :math:`D`; memory: the per-mode Gram
    matrices, ``16 ny nx / 2 n_features^2`` bytes. Fields only; the data should be
    (close to) statistically homogeneous.
    """

    #: fits 2-D periodic fields only
    fields_only = True

    def __init__(self, features: str | FeatureLibrary = "vorticity", ridge: float = 1e-8,
                 n_divergence: int = 16, validation: float = 0.2, batch_size: int = 256,
                 seed: int = 0, progress: bool | None = None) -> None:
        self.features = features
        self.ridge = ridge
        self.n_divergence = n_divergence
        self.validation = validation
        self.batch_size = batch_size
        self.seed = seed
        self.progress = progress

    # ------------------------------------------------------------------ features
    def _library(self) -> FeatureLibrary:
        if isinstance(self.features, FeatureLibrary):
            return self.features
        if not isinstance(self.features, str):
            raise TypeError(f"features must be a library name or a FeatureLibrary, got "
                            f"{type(self.features).__name__}")
        return feature_library(self.features)

    def _feature_modes(self, x: np.ndarray) -> np.ndarray:
        """Features of a batch in Fourier space, shape (batch, n_features, ny, nx//2+1)."""
        return self.ops_.fwd(np.stack(self.library_(self.ops_, x), axis=1))

    def _bar(self, total: int, desc: str):
        disable = None if self.progress is None else not self.progress
        return tqdm(total=total, desc=desc, unit="modes" if "div" in desc else "fields",
                    disable=disable, leave=False)

    # ----------------------------------------------------------------------- fit
    def fit(self, X) -> FeatureScore:
        """Fit on fields ``X`` of shape ``(n_samples, ny, nx)`` (or Trajectories)."""
        X = as_samples(X)
        if X.ndim != 3:
            raise ValueError(f"FeatureScore needs 2-D fields, X of shape (n_samples, ny, nx); "
                             f"got shape {X.shape}")
        check_number(self.ridge, "ridge", low=0.0)
        check_number(self.validation, "validation", low=0.0, high=0.9)
        for name in ("n_divergence", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        self.library_ = self._library()
        self.state_shape_ = X.shape[1:]
        self.ops_ = SpectralOps(self.state_shape_)
        names = self.library_.names(self.ops_)
        self.feature_names_ = list(names)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(X))
        n_val = round(float(self.validation) * len(X))
        if len(X) - n_val < 2 * len(names):
            raise ValueError(f"{len(X) - n_val} training samples are too few for "
                             f"{len(names)} features (need at least {2 * len(names)})")
        train, held = np.sort(order[n_val:]), np.sort(order[:n_val])
        gram, means = self._gram(X, train)
        div = self._product_divergence(means)
        if self.library_.nested is not None:
            pick = rng.choice(train, min(int(self.n_divergence), len(train)), replace=False)
            div[..., 1 + len(self.library_.products):] = self._nested_divergence(X[pick])
        diag = np.real(gram[..., 0, 0])
        self.active_ = diag > 1e-12 * diag.max()  # modes with variance (not removed lines)
        div[~self.active_] = 0.0
        self.coef_ = _solve_modes(gram, div, float(self.ridge), self.active_)
        self.divergence_ = div
        self.n_samples_ = len(train)
        self.quality_ = self._quality(X[held], gram, div) if n_val >= 2 else {}
        return self

    def _moment_keys(self) -> set[tuple[str, ...]]:
        """Channel products whose means the exact divergence terms need: every product
        of the library with one factor left out."""
        return {tuple(sorted(p[:i] + p[i + 1:])) for p in self.library_.products
                for i in range(len(p))}

    def _gram(self, X: np.ndarray, rows: np.ndarray
              ) -> tuple[np.ndarray, dict[tuple[str, ...], float]]:
        """:math:`M(k)`, shape (ny, nx//2+1, m, m), and the channel-product means of
        :meth:`_moment_keys`, averaged over ``rows`` of X (one pass over the data)."""
        lib, ops = self.library_, self.ops_
        cells = int(np.prod(self.state_shape_))
        means = dict.fromkeys(self._moment_keys(), 0.0)
        gram = None
        bs = int(self.batch_size)
        with self._bar(len(rows), "feature score: Gram matrices") as bar:
            for i in range(0, len(rows), bs):
                xb = X[rows[i: i + bs]]
                ch = lib.channel_fields(ops, xb)
                for key in means:
                    means[key] += float(np.prod([ch[c] for c in key], axis=0).sum()) / cells
                fh = ops.fwd(np.stack(lib(ops, xb, ch), axis=1))
                fm = np.moveaxis(fh, (0, 1), (-2, -1))  # (ny, nk, batch, m)
                g = np.matmul(np.conj(np.swapaxes(fm, -1, -2)), fm)
                gram = g if gram is None else gram + g
                bar.update(len(fh))
        return gram / len(rows), {key: v / len(rows) for key, v in means.items()}

    def _product_divergence(self, means: dict[tuple[str, ...], float]) -> np.ndarray:
        """:math:`D(k)` of the field and the channel products (exact from the moments
        ``means``), shape (ny, nx//2+1, m); the nested features' entries are zero."""
        lib, ops = self.library_, self.ops_
        ny, nx = self.state_shape_
        div = np.zeros((ny, nx // 2 + 1, len(self.feature_names_)), dtype=complex)
        div[..., 0] = ny * nx
        for j, p in enumerate(lib.products, start=1):
            for i, c in enumerate(p):
                rest = tuple(sorted(p[:i] + p[i + 1:]))
                div[..., j] += ny * nx * np.conj(_CHANNELS[c](ops)) * means[rest]
        return div

    def _nested_divergence(self, Xd: np.ndarray) -> np.ndarray:
        """:math:`D(k)` of the nested features: JVPs along each plane wave, averaged
        over the snapshots ``Xd``; shape (ny, nx//2+1, n_nested)."""
        ny, nx = self.state_shape_
        iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        ky = np.fft.fftfreq(ny, 1.0 / ny)
        nested = self.library_.nested
        n_nested = len(nested(self.ops_, Xd[:1])[1])
        div = np.zeros((ny, nx // 2 + 1, n_nested), dtype=complex)
        eps = 1e-4 * max(float(np.std(Xd)), 1e-300)
        bar = self._bar(ny * (nx // 2 + 1), "feature score: divergence")
        for a in range(ny):
            bar.update(nx // 2 + 1)
            for b in range(nx // 2 + 1):
                phase = 2 * np.pi * (ky[a] * iy / ny + b * ix / nx)
                y = np.zeros((n_nested, ny, nx), dtype=complex)
                # w = exp(-i k.r) = cos - i sin, so J w = J cos - i J sin
                for coeff, wave in ((1.0, np.cos(phase)), (-1j, np.sin(phase))):
                    plus = np.stack(nested(self.ops_, Xd + eps * wave)[0], 1)
                    minus = np.stack(nested(self.ops_, Xd - eps * wave)[0], 1)
                    y += coeff * (plus - minus).mean(0) / (2 * eps)
                div[a, b] = (y * np.exp(1j * phase)).sum(axis=(1, 2))  # sum_l e^{ik.l} (Jw)_l
        bar.close()
        return div

    def _objective(self, X: np.ndarray, coef: np.ndarray, div: np.ndarray) -> np.ndarray:
        """Implicit score-matching objective per sample and grid point, shape (n,)."""
        ny, nx = self.state_shape_
        weight = rfft_weights(self.state_shape_)
        lin = float((weight * np.einsum("abj,abj->ab", coef, np.conj(div)).real).sum())
        out = []
        for i in range(0, len(X), int(self.batch_size)):
            sh = np.einsum("nj...,...j->n...", self._feature_modes(X[i: i + int(
                self.batch_size)]), coef)
            out.append(0.5 * (weight * np.abs(sh) ** 2).sum(axis=(1, 2)))
        return (np.concatenate(out) + lin) / (ny * nx) ** 2

    def _quality(self, Xh: np.ndarray, gram: np.ndarray, div: np.ndarray) -> dict:
        """Held-out objective of the fit against the linear-only (Gaussian) fit."""
        gauss = np.zeros_like(self.coef_)
        on = self.active_
        gauss[on, 0] = -div[on, 0] / gram[on, 0, 0].real
        full = self._objective(Xh, self.coef_, div)
        base = self._objective(Xh, gauss, div)
        diff = base - full
        q = {"heldout_objective": float(full.mean()), "gaussian_objective": float(base.mean()),
             "gain": float(diff.mean()),
             "gain_stderr": float(diff.std(ddof=1) / np.sqrt(len(diff)))}
        logger.info("feature score: held-out objective %.4g (Gaussian %.4g), gain %.3g "
                    "+- %.2g", q["heldout_objective"], q["gaussian_objective"], q["gain"],
                    q["gain_stderr"])
        if not q["gain"] > 2 * q["gain_stderr"]:
            warnings.warn(f"FeatureScore is no better than the Gaussian score on held-out "
                          f"data (gain {q['gain']:.3g} +- {q['gain_stderr']:.2g})",
                          ScoreQualityWarning, stacklevel=_user_stacklevel())
        return q

    # --------------------------------------------------------------------- score
    def score(self, x) -> np.ndarray:
        """Score of fields ``x``, shape ``(batch, ny, nx)`` or one ``(ny, nx)``."""
        self._check_fitted()
        arr, single = self._check_input(x, self.state_shape_)
        out = np.empty(arr.shape)
        bs = int(self.batch_size)
        for i in range(0, len(arr), bs):
            sh = np.einsum("nj...,...j->n...", self._feature_modes(arr[i: i + bs]), self.coef_)
            out[i: i + bs] = self.ops_.inv(sh)
        return out[0] if single else out


def _solve_modes(gram: np.ndarray, div: np.ndarray, ridge: float,
                 ok: np.ndarray) -> np.ndarray:
    """Per mode :math:`c = -M^{-1} D` with Jacobi scaling and relative ridge.

    Only the modes ``ok`` (with field variance) are solved; the others (e.g. removed
    Nyquist lines) get zero coefficients. A feature whose power at a mode is below
    ``1e-24`` of its largest over the modes is zero there up to round-off (e.g. the
    spatial mean of an advection term) and is left out of that mode's system.
    """
    coef = np.zeros(div.shape, dtype=complex)
    diag = np.real(np.diagonal(gram, axis1=-2, axis2=-1))
    live = (diag > 1e-24 * diag.max(axis=(0, 1)))[ok]  # (modes, m)
    scale = np.sqrt(np.where(live, diag[ok], 1.0))
    g = gram[ok] / (scale[:, :, None] * scale[:, None, :])
    both = live[:, :, None] & live[:, None, :]
    eye = np.eye(g.shape[-1])
    g = np.where(both, g, 0.0) + np.where(live[:, :, None], ridge * eye, eye)
    rhs = np.where(live, div[ok] / scale, 0.0)
    coef[ok] = -np.linalg.solve(g, rhs[..., None])[..., 0] / scale
    return coef
