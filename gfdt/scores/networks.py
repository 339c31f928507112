"""Noise-conditional networks for score models (PyTorch).

Every network maps ``(x, log_sigma)`` with ``x`` of shape ``(batch, *state)`` and
``log_sigma`` of shape ``(batch,)`` to an output of the shape of ``x``.

* :class:`MLP` for vector data;
* :class:`PeriodicCNN`: a small, translation-equivariant, fully convolutional network
  with circular padding, sized for the local scores of gfdt's SPDEs (pointwise terms
  plus a small stencil): the CPU default for fields;
* :class:`PeriodicUNet`: the paper's periodic U-Net (channels 32-64-128-256, three
  stride-2 downsamplings, residual blocks), for GPU use.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MLP", "GaussianFourierEmbedding", "PeriodicCNN", "PeriodicUNet", "default_network"]


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
    """

    def __init__(self, channels: int = 16, depth: int = 3, emb: int = 32,
                 size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.embed = GaussianFourierEmbedding(emb)
        self.inp = nn.Conv2d(3, channels, 3, padding=1, padding_mode="circular")
        self.convs = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, padding_mode="circular")
            for _ in range(depth - 1)
        )
        self.films = nn.ModuleList(nn.Linear(emb, 2 * channels) for _ in range(depth))
        self.out = nn.Conv2d(channels, 1, 1)
        self.poly = nn.Conv2d(3, 1, 1)
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
        feats = torch.cat([v, v * v, v * v * v], dim=1)
        h = self.inp(feats)
        for i, film in enumerate(self.films):
            if i > 0:
                h = self.convs[i - 1](h)
            scale, shift = film(e)[:, :, None, None].chunk(2, dim=1)
            h = self.act(h * (1 + scale) + shift)
        out = (self.out(h) + self.poly(feats))[:, 0]
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
    ``"cnn"``, ``"unet"`` or ``"mlp"`` choose explicitly.
    """
    if kind == "auto":
        kind = "cnn" if len(state_shape) == 2 else "mlp"
    if kind == "cnn":
        if len(state_shape) != 2:
            raise ValueError(f"network='cnn' needs 2-D fields, got state shape {state_shape}")
        return PeriodicCNN(size=state_shape)
    if kind == "unet":
        if len(state_shape) != 2:
            raise ValueError(f"network='unet' needs 2-D fields, got state shape {state_shape}")
        return PeriodicUNet()
    if kind == "mlp":
        return MLP(int(math.prod(state_shape)))
    raise ValueError(f"unknown network {kind!r}; choose 'auto', 'cnn', 'unet' or 'mlp'")
