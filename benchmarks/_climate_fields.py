"""Synthetic lat-lon fields with a land mask and a known response (climate_grid benchmark).

The state lives on the ocean points of a regional lat-lon grid. It is the sum of a slow
part in ``m`` smooth, non-orthogonal patterns :math:`P` (points x m) and a fast remainder
that is orthogonal to them in the area-weighted inner product:

.. math:: x_t = P z_t + r_t, \\qquad r_{t+1} = \\rho\\, r_t + (I - \\Pi)\\, \\eta_t,

with :math:`\\Pi = P P^+`, :math:`P^+ = (P^T W P)^{-1} P^T W` (:math:`W` = cos latitude),
and :math:`\\eta_t` spatially smoothed white noise. A unit impulse with pattern :math:`f`
moves :math:`z` by :math:`P^+ f` and :math:`r` by :math:`(I - \\Pi) f`, so

.. math:: R(t) f = P\\, \\delta z(t) + \\rho^t (I - \\Pi) f .

* :class:`LinearField`: :math:`z_{t+1} = \\Phi z_t + \\xi_t` with a non-normal
  :math:`\\Phi = e^{A}` (A upper triangular: transient growth of :math:`\\|\\Phi^t\\|` to
  1.2); :math:`\\delta z(t) = \\Phi^t P^+ f` in closed form.
* :class:`DoubleWellField`: :math:`z` follows coupled double wells,
  :math:`dz = -\\nabla V(z)\\, dt / \\tau + \\sigma\\, dW`,
  :math:`V = \\sum_i (z_i^4/4 - z_i^2/2) - c \\sum_{i<j} z_i z_j`, integrated with
  Euler-Maruyama substeps; :math:`\\delta z(t)` by a paired ensemble (the same noise with
  the kick :math:`\\pm\\epsilon P^+ f`, central difference).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg as sl
import scipy.ndimage as ndi
import scipy.signal as ss
import xarray as xr

#: Bumps (lat, lon, lat radius, lon radius, sign) of the slow patterns, degrees.
_PATTERNS = [
    [(45, 30, 14, 22, 1.0)],
    [(58, 45, 8, 16, 1.0), (36, 50, 8, 16, -1.0)],
    [(32, 30, 8, 12, 1.0)],
    [(55, 12, 9, 10, 1.0), (55, 40, 9, 10, -0.7)],
]


@dataclasses.dataclass
class Grid:
    """A regional lat-lon grid (20-70 N, 0-90 E) with a continent and an island as land."""

    ny: int = 24
    nx: int = 36

    def __post_init__(self) -> None:
        self.lat = np.linspace(20.0, 70.0, self.ny)
        self.lon = np.linspace(0.0, 90.0, self.nx)
        la, lo = np.meshgrid(self.lat, self.lon, indexing="ij")
        land = ((la - 50) / 12) ** 2 + ((lo - 70) / 12) ** 2 < 1
        land |= ((la - 28) / 6) ** 2 + ((lo - 15) / 10) ** 2 < 1
        self.LA, self.LO, self.ocean = la, lo, ~land
        self.area = np.cos(np.deg2rad(la))[self.ocean]  # W on the ocean points

    @property
    def d(self) -> int:
        return int(self.ocean.sum())

    def bump(self, lat: float, lon: float, rlat: float, rlon: float) -> np.ndarray:
        return np.exp(-((self.LA - lat) / rlat) ** 2 - ((self.LO - lon) / rlon) ** 2)

    def to_grid(self, v: np.ndarray) -> np.ndarray:
        """Ocean values ``(..., d)`` on the grid ``(..., ny, nx)``, NaN on land."""
        out = np.full(v.shape[:-1] + self.ocean.shape, np.nan)
        out[..., self.ocean] = v
        return out

    def dataarray(self, v: np.ndarray, dims: tuple[str, ...], coords: dict | None = None,
                  name: str | None = None) -> xr.DataArray:
        c = dict(coords or {})
        c["lat"] = ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude"})
        c["lon"] = ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude"})
        return xr.DataArray(self.to_grid(v), dims=(*dims, "lat", "lon"), coords=c, name=name)

    def regional_pattern(self, kind: str = "patch") -> xr.DataArray:
        """The regional forcing: ``"patch"``, a smooth Gaussian patch at 43N 32E (radii
        6 x 8 degrees), or ``"box"``, the indicator of 38-48N, 25-40E."""
        if kind == "patch":
            f = self.bump(43, 32, 6, 8)
        elif kind == "box":
            f = ((self.LA >= 38) & (self.LA <= 48) & (self.LO >= 25) & (self.LO <= 40))
            f = f.astype(float)
        else:
            raise ValueError(f"kind must be 'patch' or 'box', got {kind!r}")
        return self.dataarray(f[self.ocean], (), name="forcing_pattern")


class _Field:
    """Patterns, projector and the fast remainder shared by both fields."""

    def __init__(self, grid: Grid, n_patterns: int, rho: float, fast: float,
                 smooth: float) -> None:
        self.grid, self.rho = grid, float(rho)
        # the same physical field at any resolution: the correlation length of the noise
        # is fixed in degrees, and its variance per point falls as the points per area
        # grow, as the values of the unit-norm patterns do (reference: 24 x 36)
        self.smooth = smooth * grid.ny / 24
        self.fast = float(fast) * np.sqrt(24 * 36 / (grid.ny * grid.nx))
        W = grid.area
        P = np.stack([sum(s * grid.bump(a, b, c, e) for a, b, c, e, s in spec)[grid.ocean]
                      for spec in _PATTERNS[:n_patterns]], axis=1)
        self.P = P / np.sqrt((W[:, None] * P**2).sum(axis=0))
        self.Pp = np.linalg.solve(self.P.T @ (W[:, None] * self.P), self.P.T * W)

    def _fast_part(self, n: int, rng: np.random.Generator, n_members: int) -> np.ndarray:
        """The remainder r, shape (members, n, d), stationary (50 samples of spin-up)."""
        g = self.grid
        out = np.empty((n_members, n, g.d))
        for k in range(n_members):
            eta = np.empty((n + 50, g.d))
            for a in range(0, n + 50, 512):  # blocks: no (n, ny, nx) temporary for big grids
                e = rng.standard_normal((min(512, n + 50 - a), g.ny, g.nx))
                e = ndi.gaussian_filter(e, (0, self.smooth, self.smooth), mode="nearest")
                eta[a:a + e.shape[0]] = e[:, g.ocean]
            eta *= self.fast / eta.std()
            eta -= (eta @ self.Pp.T) @ self.P.T
            out[k] = ss.lfilter([1.0], [1.0, -self.rho], eta, axis=0)[50:]
        return out

    def _pack(self, z: np.ndarray, r: np.ndarray) -> xr.DataArray:
        x = z @ self.P.T + r
        dims = ("member", "time") if x.shape[0] > 1 else ("time",)
        x = x if x.shape[0] > 1 else x[0]
        return self.grid.dataarray(x, dims, {"time": ("time", np.arange(z.shape[1], dtype=float))},
                                   name="field")

    def fast_response(self, f: np.ndarray, L: int) -> np.ndarray:
        """:math:`\\rho^t (I - \\Pi) f` on the ocean points, ``(L + 1, d)``."""
        q = f - self.P @ (self.Pp @ f)
        return self.rho ** np.arange(L + 1)[:, None] * q

    def ocean_values(self, pattern) -> np.ndarray:
        v = pattern.values if isinstance(pattern, xr.DataArray) else np.asarray(pattern)
        return np.asarray(v, dtype=float)[self.grid.ocean]


class LinearField(_Field):
    """Linear slow part: a non-normal VAR(1) in 4 pattern amplitudes (closed-form response).

    Parameters
    ----------
    grid : Grid
    tau : sequence of float
        Decay times (samples) of the pattern amplitudes.
    coupling : sequence of float
        Upper off-diagonal of the drift A (feeds pattern i+1 into pattern i).
    forcing_std : sequence of float
        Innovation standard deviation of each amplitude.
    rho : float
        Lag-1 autocorrelation of the fast remainder.
    fast : float
        Standard deviation of the remainder's innovation per point on the 24 x 36 grid
        (scaled by the square root of the point density on other grids).
    smooth : float
        Correlation length of the remainder in grid cells (at 24 x 36).
    """

    def __init__(self, grid: Grid | None = None, tau=(36.0, 24.0, 12.0, 6.0),
                 coupling=(0.1, 0.12, 0.15), forcing_std=(2.0, 3.0, 4.0, 6.0),
                 rho: float = 0.1, fast: float = 1.0, smooth: float = 1.0) -> None:
        super().__init__(grid or Grid(), len(tau), rho, fast, smooth)
        A = -np.diag(1.0 / np.asarray(tau)) + np.diag(np.asarray(coupling, dtype=float), 1)
        self.Phi = sl.expm(A)
        self.forcing_std = np.asarray(forcing_std, dtype=float)

    def simulate(self, n: int, seed: int, n_members: int = 1) -> xr.DataArray:
        """``n`` samples per member after a stationary start; NaN on land."""
        rng = np.random.default_rng(seed)
        m = self.P.shape[1]
        cov = sl.solve_discrete_lyapunov(self.Phi, np.diag(self.forcing_std**2))
        z = np.empty((n_members, n, m))
        z[:, 0] = rng.multivariate_normal(np.zeros(m), cov, size=n_members)
        xi = rng.standard_normal((n_members, n, m)) * self.forcing_std
        for t in range(1, n):
            z[:, t] = z[:, t - 1] @ self.Phi.T + xi[:, t]
        return self._pack(z, self._fast_part(n, rng, n_members))

    def response(self, pattern, L: int) -> xr.DataArray:
        """Exact :math:`R(t) f`, dims ``("lag", "lat", "lon")``, NaN on land."""
        f = self.ocean_values(pattern)
        dz = [self.Pp @ f]
        for _ in range(L):
            dz.append(self.Phi @ dz[-1])
        out = np.asarray(dz) @ self.P.T + self.fast_response(f, L)
        return self.grid.dataarray(out, ("lag",), {"lag": np.arange(L + 1.0)}, "exact")


class DoubleWellField(_Field):
    """Nonlinear slow part: coupled double wells in 3 pattern amplitudes (paired truth).

    Parameters
    ----------
    grid : Grid
    n_patterns : int
    tau : float
        Time unit of the drift in samples (intrawell relaxation about ``tau / 2``).
    sigma : float
        Noise amplitude of the amplitudes (per unit model time).
    coupling : float
        The coupling c of the potential.
    scale : float
        Field amplitude of a unit z.
    substeps : int
        Euler-Maruyama steps per sample.
    rho, fast, smooth : as for :class:`LinearField`.
    """

    def __init__(self, grid: Grid | None = None, n_patterns: int = 3, tau: float = 2.0,
                 sigma: float = 0.5, coupling: float = 0.2, scale: float = 15.0,
                 substeps: int = 10, rho: float = 0.1, fast: float = 1.0,
                 smooth: float = 1.0) -> None:
        super().__init__(grid or Grid(), n_patterns, rho, fast, smooth)
        self.tau, self.sigma, self.coupling = float(tau), float(sigma), float(coupling)
        self.scale, self.substeps = float(scale), int(substeps)

    def drift(self, z: np.ndarray) -> np.ndarray:
        """:math:`-\\nabla V(z) / \\tau` for amplitudes ``(..., m)``."""
        c = self.coupling * (z.sum(axis=-1, keepdims=True) - z)
        return (z - z**3 + c) / self.tau

    def _steps(self, z: np.ndarray, rng: np.random.Generator, n: int,
               out: np.ndarray | None = None) -> np.ndarray:
        h = 1.0 / self.substeps
        amp = self.sigma * np.sqrt(h)
        for t in range(n):
            for _ in range(self.substeps):
                z = z + h * self.drift(z) + amp * rng.standard_normal(z.shape)
            if out is not None:
                out[..., t, :] = z
        return z

    def _stationary(self, size: int, rng: np.random.Generator) -> np.ndarray:
        m = self.P.shape[1]
        z = rng.choice([-1.0, 1.0], size=(size, m))
        return self._steps(z, rng, 400)

    def simulate(self, n: int, seed: int, n_members: int = 1) -> xr.DataArray:
        rng = np.random.default_rng(seed)
        z0 = self._stationary(n_members, rng)
        z = np.empty((n_members, n, z0.shape[-1]))
        z[:, 0] = z0
        self._steps(z0, rng, n - 1, z[:, 1:])
        return self._pack(self.scale * z, self._fast_part(n, rng, n_members))

    def response(self, pattern, L: int, n_pairs: int = 40000, eps: float = 0.05,
                 seed: int = 12345, batch: int = 10000) -> tuple[xr.DataArray, xr.DataArray]:
        """Paired-ensemble :math:`R(t) f` and its standard error, dims ``("lag", "lat",
        "lon")``: kicks :math:`\\pm\\epsilon` (in units of the field) along
        :math:`P^+ f`, the same noise for both, central differences."""
        f = self.ocean_values(pattern)
        kick = self.Pp @ f / self.scale  # z units per unit field impulse
        rng = np.random.default_rng(seed)
        sums, sq, done = 0.0, 0.0, 0
        while done < n_pairs:
            b = min(batch, n_pairs - done)
            z0 = self._stationary(b, rng)
            seq = np.random.SeedSequence(int(rng.integers(2**63)))
            paths = []
            for sign in (1.0, -1.0):
                r = np.random.default_rng(seq)
                out = np.empty((b, L, z0.shape[-1]))
                self._steps(z0 + sign * eps * kick, r, L, out)
                paths.append(np.concatenate([(z0 + sign * eps * kick)[:, None], out], axis=1))
            d = (paths[0] - paths[1]) / (2 * eps)  # (b, L + 1, m) per unit kick, z units
            sums = sums + d.sum(axis=0)
            sq = sq + (d**2).sum(axis=0)
            done += b
        mean = sums / done
        se = np.sqrt(np.clip(sq / done - mean**2, 0, None) / done)
        out = self.scale * mean @ self.P.T + self.fast_response(f, L)
        err = self.scale * np.sqrt((se**2) @ (self.P.T**2))
        coords = {"lag": np.arange(L + 1.0)}
        return (self.grid.dataarray(out, ("lag",), coords, "paired_truth"),
                self.grid.dataarray(err, ("lag",), coords, "paired_truth_stderr"))


def relative_error(estimate: xr.DataArray, truth: xr.DataArray, lags=range(1, 13)) -> float:
    """Area-weighted relative L2 error over ``lags`` and the ocean points:
    :math:`\\sqrt{\\sum (\\hat R - R)^2 \\cos\\varphi / \\sum R^2 \\cos\\varphi}`."""
    lags = list(lags)
    e = estimate.sel(lag=lags).values
    t = truth.sel(lag=lags).values
    w = np.cos(np.deg2rad(truth["lat"].values))[:, None] * np.ones(truth.sizes["lon"])
    ok = np.isfinite(t[0])
    num = ((e - t) ** 2 * w)[:, ok].sum()
    den = (t**2 * w)[:, ok].sum()
    return float(np.sqrt(num / den))
