"""The Gaussian-mixture mathematics of :mod:`gfdt.scores.kernel`: bases in which a
precision is diagonal (pixels, orthonormal Fourier modes), mixture statistics (log
density, score, :math:`\\Delta\\hat\\pi/\\hat\\pi`) for diagonal and full precisions, the
precision network and the heat-flow evolution of the precisions.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from gfdt.scores.networks import PlainMLP
from gfdt.systems._spectral import rfft_weights


# ------------------------------------------------------------------ structures
def _symmetrize(lam: torch.Tensor, state_shape: tuple[int, ...]) -> torch.Tensor:
    """Make a spectrum on the rfftn grid even, :math:`\\lambda(k) = \\lambda(-k)`.

    ``lam`` has shape ``(..., *rshape)``. Only the self-conjugate slices of the last axis
    (index 0, and ``n/2`` for even ``n``) hold both ``k`` and ``-k``; they are averaged
    with their reflection so that the operator :math:`x \\mapsto
    \\mathrm{irfftn}(\\lambda \\hat x)` is symmetric.
    """
    nd = len(state_shape)
    other = tuple(range(lam.ndim - nd, lam.ndim - 1))
    if other:
        refl = torch.roll(torch.flip(lam, dims=other), shifts=(1,) * len(other), dims=other)
    else:
        refl = lam
    special = torch.zeros(lam.shape[-1], dtype=torch.bool, device=lam.device)
    special[0] = True
    if state_shape[-1] % 2 == 0:
        special[-1] = True
    return torch.where(special, 0.5 * (lam + refl), lam)


class _Basis:
    """Real feature coordinates in which diagonal/Fourier precisions are diagonal.

    ``diagonal``: the pixels themselves. ``fourier``: real and imaginary parts of the
    orthonormal rfftn coefficients, each weighted by its multiplicity ``w`` so that
    Euclidean norms are preserved. A precision is a positive spectrum ``lam`` on ``K``
    modes; ``expand(lam)`` gives its value on the ``P`` features.
    """

    def __init__(self, kind: str, state_shape: tuple[int, ...]) -> None:
        self.kind = kind
        self.state_shape = tuple(state_shape)
        self.dims = tuple(range(1, len(state_shape) + 1))
        if kind == "fourier":
            w = rfft_weights(self.state_shape)
            self.rshape = w.shape
            self.w = torch.tensor(w.reshape(-1), dtype=torch.float64)
            self.wP = torch.cat([self.w, self.w])
        else:
            d = int(np.prod(state_shape))
            self.rshape = (d,)
            self.w = torch.ones(d, dtype=torch.float64)
            self.wP = self.w
        self.K = int(np.prod(self.rshape))

    def to(self, device) -> _Basis:
        self.w = self.w.to(device)
        self.wP = self.wP.to(device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        if self.kind != "fourier":
            return x.reshape(b, -1)
        xh = torch.fft.rfftn(x, dim=self.dims, norm="ortho").reshape(b, -1)
        return torch.cat([xh.real, xh.imag], dim=1)

    def adjoint(self, g: torch.Tensor) -> torch.Tensor:
        b = g.shape[0]
        if self.kind != "fourier":
            return g.reshape(b, *self.state_shape)
        gh = torch.complex(g[:, : self.K], g[:, self.K:]).reshape(b, *self.rshape)
        return torch.fft.irfftn(gh, s=self.state_shape, dim=self.dims, norm="ortho")

    def expand(self, lam: torch.Tensor) -> torch.Tensor:
        lam = lam.reshape(lam.shape[0], -1)
        return torch.cat([lam, lam], dim=1) if self.kind == "fourier" else lam


# ------------------------------------------------------------ mixture formulas
def _diag_mixture(u, c, lamP, wP, logdet, trace, mask=None):
    """Mixture statistics for precisions diagonal in feature space (float64 torch).

    Parameters
    ----------
    u : (B, P) features of the points; c : (M, P) features of the centres;
    lamP : (M, P) precisions on the features; wP : (P,) feature weights;
    logdet, trace : (M,) log-determinant and trace of each precision;
    mask : (B, M) bool, optional: components left out (True) for each point.

    Returns
    -------
    lse : (B,) ``logsumexp_i(-Q_i/2 + logdet_i/2)``;
    g : (B, P) features of :math:`\\nabla\\log\\hat\\pi`;
    lap : (B,) :math:`\\Delta\\hat\\pi/\\hat\\pi`;
    g2 : (B,) :math:`\\|\\nabla\\log\\hat\\pi\\|^2`.

    Notes
    -----
    Quadratic forms are expanded, :math:`\\sum_j w_j\\lambda_{ij}(u_j - c_{ij})^2 =
    u^2\\cdot(w\\lambda_i) - 2u\\cdot(w\\lambda_i c_i) + \\sum_j w_j\\lambda_{ij}c_{ij}^2`,
    so memory is O(B M + (B + M) P), not O(B M P).
    """
    wl = wP * lamP
    uu = u * u
    Q = uu @ wl.T - 2.0 * (u @ (wl * c).T) + (wl * c * c).sum(1)
    logits = -0.5 * Q + 0.5 * logdet
    if mask is not None:
        logits = logits.masked_fill(mask, -math.inf)
    lse = torch.logsumexp(logits, dim=1)
    r = torch.exp(logits - lse[:, None])
    g = -(u * (r @ lamP) - r @ (lamP * c))
    wl2 = wl * lamP
    G2 = uu @ wl2.T - 2.0 * (u @ (wl2 * c).T) + (wl2 * c * c).sum(1)
    lap = (r * (G2 - trace)).sum(1)
    g2 = (wP * g * g).sum(1)
    return lse, g, lap, g2


def _full_mixture(x, Z, G, logdet, trace, mask=None):
    r"""Mixture statistics for full precisions (float64 torch), cost O(B M d^2).

    ``x`` (B, d), ``Z`` (M, d), ``G`` (M, d, d) symmetric positive definite; other
    arguments and returns as in :func:`_diag_mixture` (``g`` has shape (B, d)). The
    quadratic forms are expanded as there, with :math:`x^T\Gamma_i x =
    (x\otimes x)\cdot\Gamma_i`, so everything is a matrix product and memory is
    O(B M + B d^2 + M d^2).
    """
    b, d = x.shape
    m = Z.shape[0]
    xx = (x[:, :, None] * x[:, None, :]).reshape(b, d * d)
    Gf = G.reshape(m, d * d)
    GZ = torch.einsum("mij,mj->mi", G, Z)
    Q = xx @ Gf.T - 2.0 * (x @ GZ.T) + (Z * GZ).sum(1)
    logits = -0.5 * Q + 0.5 * logdet
    if mask is not None:
        logits = logits.masked_fill(mask, -math.inf)
    lse = torch.logsumexp(logits, dim=1)
    r = torch.exp(logits - lse[:, None])
    Gbar = (r @ Gf).reshape(b, d, d)
    g = -(torch.einsum("bij,bj->bi", Gbar, x) - r @ GZ)
    G2 = G @ G
    G2Z = torch.einsum("mij,mj->mi", G2, Z)
    N2 = xx @ G2.reshape(m, d * d).T - 2.0 * (x @ G2Z.T) + (Z * G2Z).sum(1)
    lap = (r * (N2 - trace)).sum(1)
    return lse, g, lap, (g * g).sum(1)


# ---------------------------------------------------------------- the network
class _PrecisionModule(nn.Module):
    """Centre -> local precision: an MLP of the (standardised) centre.

    ``full``: :math:`\\Gamma = L L^T + \\epsilon I` with :math:`L = L_0 T`, ``T``
    lower-triangular with positive (exponentiated) diagonal from the MLP, :math:`L_0` the
    Cholesky factor of the initial precision. ``diagonal``: :math:`\\lambda =
    \\lambda_0 e^{a} + \\epsilon` per coordinate. ``fourier``: :math:`\\lambda_k =
    e^{\\phi_k + a_k} + \\epsilon`, with a learned shared log-spectrum :math:`\\phi` and
    the MLP's per-centre correction ``a`` (one number per mode, or one per centre with
    ``shared_spectrum``), made even in ``k``. The last layer starts at zero, so training
    starts from the initial precision for every centre.
    """

    def __init__(self, kind: str, d: int, init: np.ndarray, state_shape, hidden: int,
                 depth: int, reg: float, shared_spectrum: bool) -> None:
        super().__init__()
        self.kind = kind
        self.d = d
        self.reg = reg
        self.state_shape = tuple(state_shape)
        if kind == "full":
            n_out = d * (d + 1) // 2
            self.register_buffer("L0", torch.tensor(init, dtype=torch.float64))
            tri = torch.tril_indices(d, d)
            self.register_buffer("tri", tri)
        elif kind == "diagonal":
            n_out = d
            self.register_buffer("lam0", torch.tensor(init.reshape(-1), dtype=torch.float64))
        else:
            n_out = 1 if shared_spectrum else int(np.prod(init.shape))
            self.phi = nn.Parameter(torch.tensor(np.log(init), dtype=torch.float64))
        self.mlp = PlainMLP(d, n_out, hidden, depth, act=nn.GELU, zero_last=True)

    def forward(self, Zs: torch.Tensor) -> torch.Tensor:
        """Precisions of centres ``Zs`` (M, d) float32: (M, d, d) or (M, *rshape) float64."""
        a = self.mlp(Zs).double()
        m = a.shape[0]
        if self.kind == "full":
            d = self.d
            T = torch.zeros(m, d, d, dtype=torch.float64, device=a.device)
            T[:, self.tri[0], self.tri[1]] = a
            diag = torch.diagonal(T, dim1=1, dim2=2)
            T = T - torch.diag_embed(diag) + torch.diag_embed(torch.exp(diag))
            L = self.L0 @ T
            eye = torch.eye(d, dtype=torch.float64, device=a.device)
            return L @ L.transpose(1, 2) + self.reg * eye
        if self.kind == "diagonal":
            return self.lam0 * torch.exp(a) + self.reg
        shape = (m, *([1] * self.phi.ndim)) if a.shape[1] == 1 else (m, *self.phi.shape)
        lam = torch.exp(self.phi + a.reshape(shape)) + self.reg
        return _symmetrize(lam, self.state_shape)


def _precision_terms(kind: str, prec: torch.Tensor, basis: _Basis | None, c: float = 0.0,
                     reg: float = 0.0):
    """(precision at time ``c = beta^2 t``, logdet, trace) in float64 torch.

    ``reg`` (full only) is a lower bound of the eigenvalues, used against rounding.
    """
    if kind == "full":
        if c == 0.0:
            # eigenvalues, not a Cholesky factor: L L^T + reg I is positive definite in
            # exact arithmetic, but rounding can break a factorisation when L is large
            e = torch.linalg.eigvalsh(prec)
            logdet = torch.log(torch.clamp(e, min=reg)).sum(1)
            return prec, logdet, torch.diagonal(prec, dim1=1, dim2=2).sum(1)
        e, V = torch.linalg.eigh(prec)
        e = torch.clamp(e, min=reg)
        et = e / (1.0 + c * e)
        G = (V * et[:, None, :]) @ V.transpose(1, 2)
        return G, torch.log(et).sum(1), et.sum(1)
    lam = prec.reshape(prec.shape[0], -1)
    if c != 0.0:
        lam = lam / (1.0 + c * lam)
    return lam, (basis.w * torch.log(lam)).sum(1), (basis.w * lam).sum(1)


def _silverman_precision(stat: np.ndarray, kind: str, M: int, d: int) -> np.ndarray:
    """Silverman-type start: kernel covariance :math:`h^2 C` (``stat``: the data's
    covariance, or its power spectrum for ``"fourier"``, standardised units)."""
    h2 = ((4.0 / (d + 2)) ** (1.0 / (d + 4)) * M ** (-1.0 / (d + 4))) ** 2
    if kind == "full":
        C = np.atleast_2d(stat) + 1e-6 * np.trace(np.atleast_2d(stat)) / d * np.eye(d)
        return np.linalg.cholesky(np.linalg.inv(h2 * C))
    if kind == "diagonal":
        var = np.diag(np.atleast_2d(stat))
        return 1.0 / (h2 * np.maximum(var, 1e-6 * var.mean()))
    return 1.0 / (h2 * np.maximum(stat, 1e-6 * stat.max()))
