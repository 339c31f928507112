"""Noise-conditional networks for score models (PyTorch).

Every network maps ``(x, log_sigma)`` with ``x`` of shape ``(batch, *state)`` and
``log_sigma`` of shape ``(batch,)`` to an output of the shape of ``x``.

* :class:`MLP` for vector data;
* :class:`PeriodicCNN`: a small, translation-equivariant, fully convolutional network
  with circular padding, sized for the local scores of gfdt's SPDEs (pointwise terms
  plus a small stencil): the CPU default for fields;
* :class:`PeriodicUNet`: the paper's periodic U-Net (channels 32-64-128-256, three
  stride-2 downsamplings, residual blocks), for GPU use.

Building blocks the estimators share: :class:`PlainMLP` (no noise conditioning),
:class:`VectorField` (an MLP of the flattened state), :class:`FixedNoise` (a
noise-conditional network at one noise level), :class:`TimeScaled` (HSM's velocity
predictor :math:`t\\,\\mathrm{net}(x, t/T)`), :class:`AugmentedMLP` (HOLD's network of
the augmented state) and :class:`GaussianModes` (the score of a Gaussian fit, in its
eigen- or Fourier modes).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

__all__ = ["MLP", "AugmentedMLP", "CoordinateMLP", "FixedNoise", "GaussianFourierEmbedding",
           "GaussianModes", "PeriodicCNN", "PeriodicUNet", "PlainMLP", "TimeScaled",
           "VectorField", "default_network", "zero_last_layer"]


class GaussianFourierEmbedding(nn.Module):
    """Random Fourier features of ``log sigma`` followed by a small MLP.

    Parameters
    ----------
    dim : int
        Output size.
    scale : float
        Standard deviation of the (fixed) random frequencies.
    seed : int
        Seed of the frequencies (they are a buffer, saved with the model).
    """

    def __init__(self, dim: int = 64, scale: float = 4.0, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, log_sigma: torch.Tensor) -> torch.Tensor:
        a = log_sigma[:, None] * self.freqs[None, :] * 2 * math.pi
        return self.mlp(torch.cat([torch.sin(a), torch.cos(a)], dim=1))


class MLP(nn.Module):
    """Noise-conditional MLP for vector data of dimension ``dim``.

    Parameters
    ----------
    dim : int
        Data dimension.
    hidden : int
        Width of the hidden layers.
    depth : int
        Number of hidden layers.
    emb : int
        Size of the noise embedding.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, emb: int = 32) -> None:
        super().__init__()
        self.embed = GaussianFourierEmbedding(emb)
        self.inp = nn.Linear(dim, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth - 1))
        self.films = nn.ModuleList(nn.Linear(emb, 2 * hidden) for _ in range(depth))
        self.out = nn.Linear(hidden, dim)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        e = self.embed(log_sigma)
        h = self.inp(x.reshape(x.shape[0], -1))
        for i in range(len(self.films)):
            if i > 0:
                h = self.layers[i - 1](h)
            scale, shift = self.films[i](e).chunk(2, dim=1)
            h = self.act(h * (1 + scale) + shift)
        return self.out(h).reshape(x.shape)


class CoordinateMLP(nn.Module):
    """Noise-conditional network for vectors: mixed coordinate features plus an MLP.

    :math:`F(x, \\sigma) = W\\,\\phi(x, \\sigma) + b + \\mathrm{MLP}(x, \\sigma)` with
    :math:`\\phi_{ik} = g_k(x_i, \\log\\sigma)`, one shared MLP :math:`g` of
    ``feature_hidden`` SiLU units and ``features`` outputs, and :math:`W` of shape
    ``(dim, dim * features)``. The mixing layer and the MLP's output layer start at zero,
    so a residual score model starts at its Gaussian part.

    Parameters
    ----------
    dim : int
        Number of coordinates.
    features : int
        Learned features per coordinate.
    feature_hidden : int
        Hidden units of the shared feature network.
    hidden, depth, emb : int
        Width, hidden layers and noise-embedding size of the MLP.

    Notes
    -----
    Why not the plain :class:`MLP`: its hidden units start as random projections of the
    whole state, and gradient descent aligns them with single coordinates one after
    another, each after a plateau, so the time to learn every coordinate grows with the
    dimension. On a 16-coordinate non-reversible double-well ring
    (``benchmarks/_chains.py``) the MLP after 4000 steps had learned 86 % of the
    non-Gaussian score in its best coordinate and 0 % in the kicked one (whose response
    was then the Gaussian's); this network learns every coordinate evenly (relative
    Fisher error 0.07 after 1000 steps against the MLP's 0.60). The model class stays
    generic: any sum of functions of single coordinates with any mixing, plus the MLP.
    """

    def __init__(self, dim: int, features: int = 16, feature_hidden: int = 32,
                 hidden: int = 128, depth: int = 3, emb: int = 32) -> None:
        super().__init__()
        self.dim, self.features = int(dim), int(features)
        self.feat_in = nn.Linear(2, feature_hidden)
        self.feat_out = nn.Linear(feature_hidden, features)
        self.mix = nn.Linear(self.dim * self.features, self.dim)
        self.mlp = MLP(self.dim, hidden, depth, emb)
        self.act = nn.SiLU()
        for layer in (self.mix, self.mlp.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        """``x`` of shape ``(batch, *state)`` with ``dim`` entries per state, ``log_sigma``
        of shape ``(batch,)``; output of the shape of ``x``."""
        b = x.shape[0]
        flat = x.reshape(b, -1)
        if flat.shape[1] != self.dim:
            raise ValueError(f"CoordinateMLP was built for {self.dim} coordinates, got "
                             f"states of shape {tuple(x.shape[1:])}")
        inp = torch.stack([flat, log_sigma[:, None].expand_as(flat)], dim=-1)
        phi = self.feat_out(self.act(self.feat_in(inp)))  # (batch, dim, features)
        out = self.mix(phi.reshape(b, -1)) + self.mlp(flat, log_sigma)
        return out.reshape(x.shape)


class PeriodicCNN(nn.Module):
    r"""Translation-equivariant CNN with circular padding for periodic 2-D fields.

    ``depth`` 3x3 convolutions (receptive field ``2 depth + 1`` points) with FiLM
    noise conditioning, a pointwise (1x1) polynomial branch ``[x, x^2, x^3]`` so
    that pointwise nonlinearities such as Allen-Cahn's :math:`u(1-u^2)` are
    represented exactly from the start, and (when ``size`` is given) a learned linear
    operator diagonal in Fourier space (one weight per mode: any translation-invariant,
    reflection-symmetric linear term, e.g. :math:`\kappa(\Delta - \Delta^2)`, however
    non-local). Shifting the input shifts the output.

    Parameters
    ----------
    channels : int
        Hidden channels.
    depth : int
        Number of 3x3 convolution layers.
    emb : int
        Size of the noise embedding.
    size : (int, int), optional
        Field shape; enables the learned Fourier-diagonal linear operator (which
        then only accepts fields of this shape).
    pointwise : {"cubic", "mlp"}
        The pointwise branch: ``"cubic"``, the features ``[x, x^2, x^3]`` (a linear map
        of them, also the input of the 3x3 stack: holds Allen-Cahn's local force
        exactly); ``"mlp"``, a generic local nonlinearity, a noise-conditioned MLP of
        the value at each point (1x1 convolutions, ``channels`` wide, two layers; the
        3x3 stack then sees the value alone). ``"mlp"`` carries no polynomial in its
        model class (periodic tanh field: response error 0.039 against 0.038 for
        ``"cubic"``).
    """

    def __init__(self, channels: int = 16, depth: int = 3, emb: int = 32,
                 size: tuple[int, int] | None = None, pointwise: str = "cubic") -> None:
        super().__init__()
        if pointwise not in ("cubic", "mlp"):
            raise ValueError(f"pointwise must be 'cubic' or 'mlp', got {pointwise!r}")
        self.pointwise = pointwise
        self.embed = GaussianFourierEmbedding(emb)
        n_in = 3 if pointwise == "cubic" else 1
        self.inp = nn.Conv2d(n_in, channels, 3, padding=1, padding_mode="circular")
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular")
            for _ in range(depth - 1)
        )
        self.films = nn.ModuleList(nn.Linear(emb, 2 * channels) for _ in range(depth))
        self.out = nn.Conv2d(channels, 1, 1)
        if pointwise == "cubic":
            self.poly = nn.Conv2d(3, 1, 1)
        else:  # value -> hidden -> hidden -> 1, FiLM-conditioned on the noise
            self.point = nn.ModuleList([nn.Conv2d(1, channels, 1),
                                        nn.Conv2d(channels, channels, 1)])
            self.point_films = nn.ModuleList(nn.Linear(emb, 2 * channels) for _ in range(2))
            self.poly = nn.Conv2d(channels, 1, 1)
        self.act = nn.SiLU()
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        nn.init.zeros_(self.poly.weight)
        nn.init.zeros_(self.poly.bias)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.filt = (nn.Parameter(torch.zeros(self.size[0], self.size[1] // 2 + 1))
                     if self.size is not None else None)

    def forward(self, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3:
            raise ValueError(f"PeriodicCNN expects x of shape (batch, y, x), got {tuple(x.shape)}")
        e = self.embed(log_sigma)
        v = x[:, None]
        if getattr(self, "pointwise", "cubic") == "cubic":
            feats = torch.cat([v, v * v, v * v * v], dim=1)
            h, local = self.inp(feats), feats
        else:
            h, local = self.inp(v), v
            for conv, film in zip(self.point, self.point_films, strict=True):
                scale, shift = film(e)[:, :, None, None].chunk(2, dim=1)
                local = self.act(conv(local) * (1 + scale) + shift)
        for i, film in enumerate(self.films):
            if i > 0:
                h = self.convs[i - 1](h)
            scale, shift = film(e)[:, :, None, None].chunk(2, dim=1)
            h = self.act(h * (1 + scale) + shift)
        out = (self.out(h) + self.poly(local))[:, 0]
        if self.filt is not None:
            out = out + self._linear(x)
        return out

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        """The learned translation-invariant linear operator, one real weight per mode."""
        if tuple(x.shape[1:]) != self.size:
            raise ValueError(f"PeriodicCNN was built for fields of shape {self.size}, "
                             f"got {tuple(x.shape[1:])}")
        xh = torch.fft.rfft2(x)
        return torch.fft.irfft2(xh * self.filt, s=x.shape[1:])


class _ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(min(8, cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1, padding_mode="circular")
        self.e = nn.Linear(emb, cout)
        self.n2 = nn.GroupNorm(min(8, cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1, padding_mode="circular")
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = self.c1(self.act(self.n1(x))) + self.e(e)[:, :, None, None]
        h = self.c2(self.act(self.n2(h)))
        return h + self.skip(x)


class PeriodicUNet(nn.Module):
    """The paper's periodic U-Net: circular convolutions, stride-2 downsampling.

    Parameters
    ----------
    channels : sequence of int
        Channels per resolution (paper: 32, 64, 128, 256; three downsamplings).
    n_bottleneck : int
        Residual blocks at the coarsest resolution (paper: 8).
    emb : int
        Size of the noise embedding.

    Notes
    -----
    The input size must be divisible by ``2 ** (len(channels) - 1)``. Stride-2
    convolutions make the network equivariant to shifts by multiples of that factor
    only; use :class:`PeriodicCNN` where exact translation equivariance matters.
    """

    def __init__(self, channels=(32, 64, 128, 256), n_bottleneck: int = 8,
                 emb: int = 64) -> None:
        super().__init__()
        self.embed = GaussianFourierEmbedding(emb)
        ch = list(channels)
        self.inp = nn.Conv2d(1, ch[0], 3, padding=1, padding_mode="circular")
        self.down_blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i in range(len(ch) - 1):
            self.down_blocks.append(_ResBlock(ch[i], ch[i], emb))
            self.downs.append(nn.Conv2d(ch[i], ch[i + 1], 3, stride=2, padding=1,
                                        padding_mode="circular"))
        self.mid = nn.ModuleList(_ResBlock(ch[-1], ch[-1], emb) for _ in range(n_bottleneck))
        self.ups = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        for i in reversed(range(len(ch) - 1)):
            self.ups.append(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2))
            self.up_blocks.append(_ResBlock(2 * ch[i], ch[i], emb))
        self.out = nn.Conv2d(ch[0], 1, 3, padding=1, padding_mode="circular")
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.factor = 2 ** (len(ch) - 1)

    def forward(self, x: torch.Tensor, log_sigma: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] % self.factor or x.shape[2] % self.factor:
            raise ValueError(
                f"PeriodicUNet expects (batch, y, x) with sizes divisible by {self.factor}, "
                f"got {tuple(x.shape)}"
            )
        e = self.embed(log_sigma)
        h = self.inp(x[:, None])
        skips = []
        for blk, down in zip(self.down_blocks, self.downs, strict=True):
            h = blk(h, e)
            skips.append(h)
            h = down(h)
        for blk in self.mid:
            h = blk(h, e)
        for up, blk in zip(self.ups, self.up_blocks, strict=True):
            h = up(h)
            h = blk(torch.cat([h, skips.pop()], dim=1), e)
        return self.out(h)[:, 0]


def default_network(state_shape: tuple[int, ...], kind: str = "auto") -> nn.Module:
    """The network gfdt uses for data of ``state_shape``.

    ``kind="auto"``: :class:`PeriodicCNN` for 2-D fields, :class:`MLP` otherwise;
    ``"cnn"``, ``"local"`` (:class:`PeriodicCNN` with the generic pointwise MLP),
    ``"unet"``, ``"mlp"`` or ``"coordinate"``
    (:class:`~gfdt.scores.networks.CoordinateMLP`, DSM's default for vectors) choose
    explicitly.
    """
    if kind == "auto":
        kind = "cnn" if len(state_shape) == 2 else "mlp"
    if kind in ("cnn", "local"):
        if len(state_shape) != 2:
            raise ValueError(f"network={kind!r} needs 2-D fields, got state shape "
                             f"{state_shape}")
        return PeriodicCNN(size=state_shape, pointwise="cubic" if kind == "cnn" else "mlp")
    if kind == "unet":
        if len(state_shape) != 2:
            raise ValueError(f"network='unet' needs 2-D fields, got state shape {state_shape}")
        return PeriodicUNet()
    if kind == "mlp":
        return MLP(int(math.prod(state_shape)))
    if kind == "coordinate":
        return CoordinateMLP(int(math.prod(state_shape)))
    raise ValueError(f"unknown network {kind!r}; choose 'auto', 'cnn', 'local', 'unet', "
                     "'mlp' or 'coordinate'")


# ------------------------------------------------------------------ building blocks
class PlainMLP(nn.Module):
    """``depth`` hidden layers of width ``hidden`` with activation ``act``, then a linear
    output layer (zero-initialised with ``zero_last``).

    Parameters
    ----------
    d_in, d_out : int
        Input and output sizes.
    hidden, depth : int
        Width and number of hidden layers.
    act : type of torch.nn.Module
        Activation (default SiLU).
    zero_last : bool
        Start the output layer at zero (a residual model starts at its prior).
    """

    def __init__(self, d_in: int, d_out: int, hidden: int, depth: int,
                 act: type[nn.Module] = nn.SiLU, zero_last: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        w = d_in
        for _ in range(depth):
            layers += [nn.Linear(w, hidden), act()]
            w = hidden
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(w, d_out)
        if zero_last:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(h))


class VectorField(nn.Module):
    """:math:`F(x) = \\mathrm{MLP}(x)` on the flattened state, output in the state shape."""

    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.mlp = PlainMLP(d, d, hidden, depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x.reshape(len(x), -1)).reshape(x.shape)


class FixedNoise(nn.Module):
    """A noise-conditional network ``net(x, log_sigma)`` at ``log_sigma = 0``: a plain
    field ``F(x)`` (HSM's force on 2-D fields is a :class:`PeriodicCNN` this way)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.cnn = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cnn(x, torch.zeros(len(x), dtype=x.dtype, device=x.device))


class TimeScaled(nn.Module):
    """:math:`V(x, t) = t\\, \\mathrm{net}(x, t/T)`, zero at ``t = 0`` (HSM's velocity).

    ``net`` is ``"mlp"`` (an MLP of ``[x, t/T]``, vectors of size ``d``) or a
    noise-conditional module such as :class:`PeriodicCNN` (called as ``net(x, t/T)``).
    """

    def __init__(self, net: nn.Module | None, T: float, d: int = 0, hidden: int = 128,
                 depth: int = 2) -> None:
        super().__init__()
        self.mlp = PlainMLP(d + 1, d, hidden, depth) if net is None else None
        self.cnn = net
        self.T = T

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (x.ndim - 1)
        if self.mlp is not None:
            h = torch.cat([x.reshape(len(x), -1), (t / self.T)[:, None]], dim=1)
            return (t[:, None] * self.mlp(h)).reshape(x.shape)
        return t.reshape(shape) * self.cnn(x, t / self.T)


class AugmentedMLP(nn.Module):
    """``net(u, log sigma_eff)`` on HOLD's augmented state ``u`` of shape
    ``(batch, 3, d)``; output ``(batch, d)``."""

    def __init__(self, d: int, hidden: int, depth: int) -> None:
        super().__init__()
        self.mlp = PlainMLP(3 * d + 1, d, hidden, depth)

    def forward(self, u: torch.Tensor, log_sig: torch.Tensor) -> torch.Tensor:
        h = torch.cat([u.reshape(len(u), -1), log_sig[:, None] / 5], dim=1)
        return self.mlp(h).reshape(u.shape[0], *u.shape[2:])


def zero_last_layer(net: nn.Module) -> None:
    """Set the last Linear or Conv2d layer of ``net`` to zero (weights and bias)."""
    last = None
    for m in net.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            last = m
    if last is not None:
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


class GaussianModes(nn.Module):
    """The Gaussian fit of standardised data, in its modes: the score
    :math:`-(C + \\sigma^2 I)^{-1} x` and any function of :math:`C` applied to a state.

    Homogeneous fields: ``C`` is diagonal in Fourier space; ``stat`` is the power
    spectrum (rfftn layout, buffer ``spec``). Vectors: ``stat`` is the covariance, kept
    as its eigendecomposition (buffers ``lam``, ``vec``). Variances are floored at
    ``floor`` times the largest.

    Parameters
    ----------
    stat : numpy.ndarray
        Power spectrum (shape of ``rfftn`` of a state) or covariance ``(d, d)``.
    homogeneous : bool
    floor : float
        Relative floor of the variances (0: only negative values are clipped).
    dtype : torch.dtype
    """

    def __init__(self, stat: np.ndarray, homogeneous: bool, floor: float = 0.0,
                 dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.homogeneous = homogeneous
        if homogeneous:
            spec = np.maximum(stat, floor * stat.max())
            self.register_buffer("spec", torch.tensor(spec, dtype=dtype))
        else:
            lam, vec = np.linalg.eigh(np.atleast_2d(stat))
            lam = np.maximum(lam, max(floor * lam.max(), 0.0))
            self.register_buffer("lam", torch.tensor(lam, dtype=dtype))
            self.register_buffer("vec", torch.tensor(vec, dtype=dtype))

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | None = None) -> torch.Tensor:
        """:math:`-(C + \\sigma^2)^{-1} x`, ``x`` of shape ``(batch, *state)``,
        ``sigma`` of shape ``(batch,)`` (None: the clean score :math:`-C^{-1} x`)."""
        b = x.shape[0]
        if self.homogeneous:
            dims = tuple(range(1, x.ndim))
            xh = torch.fft.rfftn(x, dim=dims)
            if sigma is None:
                return -torch.fft.irfftn(xh / self.spec, s=x.shape[1:], dim=dims)
            s2 = (sigma**2).reshape(b, *([1] * (x.ndim - 1)))
            return -torch.fft.irfftn(xh / (self.spec + s2), s=x.shape[1:], dim=dims)
        xf = x.reshape(b, -1)
        c = xf @ self.vec
        c = c / self.lam[None, :] if sigma is None else \
            c / (self.lam[None, :] + (sigma**2)[:, None])
        return -(c @ self.vec.T).reshape(x.shape)

    def apply(self, x: torch.Tensor, gain) -> torch.Tensor:
        """:math:`g(C)\\, x` for ``gain(variances)`` broadcast per sample: ``gain`` maps the
        variances (shape of ``spec``, or ``(1, d)`` for vectors) to factors."""
        b = x.shape[0]
        if self.homogeneous:
            dims = tuple(range(1, x.ndim))
            xh = torch.fft.rfftn(x, dim=dims)
            return torch.fft.irfftn(xh * gain(self.spec), s=x.shape[1:], dim=dims)
        c = x.reshape(b, -1) @ self.vec
        return ((c * gain(self.lam[None, :])) @ self.vec.T).reshape(x.shape)
