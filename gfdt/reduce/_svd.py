"""Leading singular vectors of area-weighted anomalies, never as a dense grid x grid matrix.

With anomalies :math:`X` (samples x valid points) and weights :math:`w`, the weighted
anomalies are :math:`Y = X \\operatorname{diag}(w) = U S V^T`. Three routes give the
leading modes, chosen by the sizes (``solver="auto"``):

* ``"gram"``: the eigenvectors of the samples x samples Gram matrix :math:`Y Y^T`
  (in-memory data with fewer samples than points; built over column chunks);
* ``"covariance"``: the eigenvectors of :math:`Y^T Y` (at most a few thousand points;
  built over time blocks, so Dask-backed data are read block by block);
* ``"randomized"``: the randomized range finder with power iterations (Halko,
  Martinsson and Tropp 2011, Alg. 4.4 and 5.1), which only multiplies :math:`Y` and
  :math:`Y^T` by thin matrices: two reads of the data per iteration.

Every route returns the field patterns :math:`P = X^T U S^{-1}` computed from the
unweighted anomalies, so that :math:`V = \\operatorname{diag}(w) P` and the map back to
the grid never divides by a weight (points of zero weight, such as a pole row, keep a
finite pattern).
"""

from __future__ import annotations

import logging

import numpy as np

from gfdt.reduce._field import Field

__all__ = ["EXACT_LIMIT", "check_memory", "leading_modes", "route_bytes"]

logger = logging.getLogger("gfdt")

#: Largest side of the dense matrix an exact route eigendecomposes.
EXACT_LIMIT = 3000
#: Power iterations and extra columns of the randomized route.
N_POWER, MIN_OVERSAMPLE = 5, 10
#: Modes with singular values below this fraction of the largest are not resolved.
RANK_RTOL = 1e-6


class Anomalies:
    """Weighted anomalies :math:`Y` of the valid points, read from ``field`` on demand."""

    def __init__(self, field: Field, cols: np.ndarray, mean: np.ndarray, w: np.ndarray):
        self.field, self.cols, self.mean, self.w = field, cols, mean, w
        self.n, self.d = field.n_samples, int(cols.size)
        self.offsets = np.concatenate([[0], np.cumsum(field.lengths)])

    def rows(self):
        """``(start, X)``: unweighted anomalies of consecutive time blocks, all members."""
        rows = max(1, (16 * 2**20) // (8 * max(self.field.n_space, 1)))
        for k, a, block in self.field.blocks(rows):
            yield int(self.offsets[k]) + a, block[:, self.cols] - self.mean

    def columns(self):
        """``(slice, X)``: unweighted anomalies of column chunks, all samples (in memory)."""
        width = max(1, (16 * 2**20) // (8 * self.n))
        flat = [np.asarray(m).reshape(m.shape[0], -1) for m in self.field.members]
        for a in range(0, self.d, width):
            sl = slice(a, min(a + width, self.d))
            idx = self.cols[sl]
            yield sl, np.concatenate([f[:, idx] for f in flat], axis=0) - self.mean[sl]


def _top_eigh(C: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest eigenpairs of a symmetric matrix, decreasing."""
    import scipy.linalg

    n = C.shape[0]
    k = min(k, n)
    ev, vec = scipy.linalg.eigh(C, subset_by_index=[n - k, n - 1], check_finite=False)
    return ev[::-1], vec[:, ::-1]


def _gram(Y: Anomalies, k: int):
    G = np.zeros((Y.n, Y.n))
    for sl, X in Y.columns():
        Yc = X * Y.w[sl]
        G += Yc @ Yc.T
    ev, U = _top_eigh(G, k)
    s = np.sqrt(np.clip(ev, 0.0, None))
    keep = s > RANK_RTOL * max(s[0], 1e-300)
    s, U = s[keep], U[:, keep]
    P = np.empty((Y.d, s.size))
    for sl, X in Y.columns():
        P[sl] = (X.T @ U) / s
    return s, U * s, P


def _covariance(Y: Anomalies, k: int):
    C = np.zeros((Y.d, Y.d))
    for _, X in Y.rows():
        Yb = X * Y.w
        C += Yb.T @ Yb
    ev, V = _top_eigh(C, k)
    s = np.sqrt(np.clip(ev, 0.0, None))
    keep = s > RANK_RTOL * max(s[0], 1e-300)
    s, V = s[keep], V[:, keep]
    A = np.empty((Y.n, s.size))
    XtA = np.zeros((Y.d, s.size))
    for a, X in Y.rows():
        A[a:a + X.shape[0]] = (X * Y.w) @ V
        XtA += X.T @ A[a:a + X.shape[0]]
    return s, A, XtA / s**2


def _randomized(Y: Anomalies, k: int, seed: int):
    p = min(Y.n, Y.d, k + max(MIN_OVERSAMPLE, k // 2))
    rng = np.random.default_rng(seed)
    by_rows = Y.field.lazy  # Dask-backed data are read by time blocks, arrays by columns

    def times(M: np.ndarray) -> np.ndarray:  # Y @ M, (n, p)
        if by_rows:
            out = np.empty((Y.n, M.shape[1]))
            for a, X in Y.rows():
                out[a:a + X.shape[0]] = (X * Y.w) @ M
            return out
        out = np.zeros((Y.n, M.shape[1]))
        for sl, X in Y.columns():
            out += (X * Y.w[sl]) @ M[sl]
        return out

    def times_t(Q: np.ndarray) -> np.ndarray:  # X^T @ Q (unweighted), (d, p)
        if by_rows:
            raw = np.zeros((Y.d, Q.shape[1]))
            for a, X in Y.rows():
                raw += X.T @ Q[a:a + X.shape[0]]
            return raw
        raw = np.empty((Y.d, Q.shape[1]))
        for sl, X in Y.columns():
            raw[sl] = X.T @ Q
        return raw

    # subspace iteration, orthonormalised on the samples side (p columns) every step
    Q = np.linalg.qr(times(rng.standard_normal((Y.d, p))))[0]
    for _ in range(N_POWER):
        Q = np.linalg.qr(times(times_t(Q) * Y.w[:, None]))[0]
    Zx = times_t(Q)  # X^T Q; Y^T Q = w X^T Q = V S Ub^T
    Zw = Zx * Y.w[:, None]
    ev, Ub = _top_eigh(Zw.T @ Zw, min(k, p))  # Ub S^2 Ub^T: the small side
    s = np.sqrt(np.clip(ev, 0.0, None))
    keep = s > RANK_RTOL * max(s[0], 1e-300)
    s, Ub = s[keep], Ub[:, keep]
    U = Q @ Ub
    return s, U * s, (Zx @ Ub) / s


def choose_solver(solver: str, n: int, d: int, lazy: bool) -> str:
    """The route for ``n`` samples and ``d`` valid points (see the module docstring)."""
    if solver == "auto":
        if not lazy and min(n, d) <= EXACT_LIMIT:
            return "gram" if n < d else "covariance"
        return "covariance" if d <= EXACT_LIMIT else "randomized"
    if solver == "exact":
        if (n < d or d > EXACT_LIMIT) and not lazy and n <= EXACT_LIMIT:
            return "gram"
        if d <= EXACT_LIMIT:
            return "covariance"
        raise ValueError(f"solver='exact' needs at most {EXACT_LIMIT} valid points (or, for "
                         f"data in memory, samples); here {d} points and {n} samples: use "
                         "solver='randomized' (or 'auto')")
    return solver


def route_bytes(route: str, n: int, d: int, k: int) -> int:
    """Bytes a route allocates beyond the data (dense matrices with their eigensolver
    work space, thin matrices, time blocks or column chunks of at most 16 MiB)."""
    chunks = 3 * 16 * 2**20
    thin = 8 * k * (2 * n + 2 * d)  # PCs, patterns and their temporaries
    if route == "gram":
        return 8 * 3 * n * n + thin + chunks
    if route == "covariance":
        return 8 * 3 * d * d + thin + chunks
    p = min(n, d, k + max(MIN_OVERSAMPLE, k // 2))
    return 8 * p * (3 * n + 4 * d) + thin + chunks


def check_memory(route: str, n: int, d: int, k: int) -> int:
    """Raise ValueError before allocating when a route needs more than the default budget
    (half of the memory available, :func:`gfdt._memory.default_budget`); return the bytes."""
    from gfdt._memory import default_budget, format_bytes

    need = route_bytes(route, n, d, k)
    budget, label = default_budget()
    if need > budget:
        raise ValueError(f"EOF: the {route} route for {n} samples x {d} points and {k} modes "
                         f"needs about {format_bytes(need)}, more than the budget "
                         f"{format_bytes(budget)} ({label}); use solver='randomized' (thin "
                         "matrices only), fewer max_modes, or fewer points")
    return need


def leading_modes(Y: Anomalies, k: int, solver: str, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The leading ``k`` (at most) resolved modes of the weighted anomalies.

    Returns
    -------
    s : numpy.ndarray, shape ``(m,)``
        Singular values, decreasing (``m <= k``: unresolved modes are dropped).
    pcs : numpy.ndarray, shape ``(n, m)``
        Principal components :math:`U S`, samples of all members in order.
    patterns : numpy.ndarray, shape ``(d, m)``
        :math:`P = X^T U S^{-1}`; the components are :math:`V = w P`.
    route : str
        The route used.
    """
    route = choose_solver(solver, Y.n, Y.d, Y.field.lazy)
    need = check_memory(route, Y.n, Y.d, k)
    logger.info("EOF: %d samples x %d valid points, %d modes by the %s route (about %.3g MB "
                "beyond the data)", Y.n, Y.d, k, route, need / 1e6)
    if route == "gram":
        s, pcs, P = _gram(Y, k)
    elif route == "covariance":
        s, pcs, P = _covariance(Y, k)
    else:
        s, pcs, P = _randomized(Y, k, seed)
    # a deterministic sign: the largest entry of each component is positive
    V = P * Y.w[:, None]
    sign = np.sign(V[np.abs(V).argmax(axis=0), np.arange(V.shape[1])])
    sign[sign == 0] = 1.0
    return s, pcs * sign, P * sign, route
