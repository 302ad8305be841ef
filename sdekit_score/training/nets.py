"""Score networks and discriminators, small enough to train on 8x8 digits or 2-D toys on a CPU.

Every score network has the signature ``net(x, c)``: ``x`` is a batch of data and ``c`` of shape
``(batch,)`` is the noise-level conditioning that :class:`sdekit_score.sampling.scores.ScoreModel` computes
from the time (``t``, ``999 t``, ``sigma`` or ``log sigma``). What the output means (noise, sigma
times the score, the score, a denoised image) is the score model's convention, not the network's.

The conditioning is embedded either by

- ``"sinusoidal"`` (Vaswani et al. 2017; DDPM): ``[sin(c w_k), cos(c w_k)]`` with
  ``w_k = 10000^(-k/(d/2))``. Made for large, integer-like inputs such as ``999 t``;
- ``"fourier"`` (Tancik et al. 2020; Song et al. 2021): ``[sin(2 pi c W), cos(2 pi c W)]`` with
  fixed ``W ~ N(0, scale^2)``. Made for inputs of order one such as ``t`` or ``log sigma``.

Pick the embedding that matches the score model's ``conditioning``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from sdekit.errors import InputValueError

__all__ = [
    "Discriminator",
    "FourierEmbedding",
    "MLP",
    "MLPDiscriminator",
    "SinusoidalEmbedding",
    "UNet",
]


class SinusoidalEmbedding(nn.Module):
    """``c -> [sin(c w_k), cos(c w_k)]``, ``w_k = max_period^(-k / (dim/2))``, ``k < dim/2``."""

    def __init__(self, dim: int, max_period: float = 10_000.0):
        super().__init__()
        if dim % 2:
            raise InputValueError(f"embedding dim must be even, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return _features(c, self.freqs)


def _features(c: torch.Tensor, freqs: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``[sin(scale c freqs), cos(...)]``: angles in float32 at least (999 t in bfloat16 has
    steps of 4), features in the dtype of ``freqs``, a buffer that follows the network's
    ``.to()``."""
    wide = torch.promote_types(freqs.dtype, torch.float32)
    angles = scale * c[:, None].to(wide) * freqs.to(wide)
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(freqs.dtype)


class FourierEmbedding(nn.Module):
    """``c -> [sin(2 pi c W), cos(2 pi c W)]``, fixed random ``W ~ N(0, scale^2)``."""

    def __init__(self, dim: int, scale: float = 16.0):
        super().__init__()
        if dim % 2:
            raise InputValueError(f"embedding dim must be even, got {dim}")
        self.register_buffer("W", torch.randn(dim // 2) * scale)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return _features(c, self.W, scale=2 * math.pi)


def _conditioning_mlp(embedding: str, embed_dim: int, out_dim: int) -> nn.Sequential:
    """Embedding of ``c`` followed by ``Linear -> SiLU -> Linear`` to ``out_dim`` features."""
    if embedding == "sinusoidal":
        embed = SinusoidalEmbedding(embed_dim)
    elif embedding == "fourier":
        embed = FourierEmbedding(embed_dim)
    else:
        raise InputValueError(f"embedding must be 'sinusoidal' or 'fourier', got {embedding!r}")
    return nn.Sequential(
        embed, nn.Linear(embed_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim)
    )


def _check_conditioning(c: torch.Tensor, batch: int) -> torch.Tensor:
    """Return ``c`` as shape ``(batch,)``; a 0-d ``c`` is shared by the batch."""
    if c.ndim == 0:
        return c.expand(batch)
    if c.shape != (batch,):
        raise InputValueError(
            f"conditioning c must have shape (batch,) = ({batch},) or be 0-d, got {tuple(c.shape)}"
        )
    return c


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with at most 8 groups: the widths used here stay at 4 or more channels a group."""
    return nn.GroupNorm(math.gcd(channels, 8), channels)


class ResBlock(nn.Module):
    """``x -> x + conv(SiLU(GN(conv(SiLU(GN(x))) + Linear(emb))))``.

    The skip connection is a 1x1 convolution when the widths differ.
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1 = _group_norm(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _group_norm(c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + rearrange(self.emb(emb), "b c -> b c 1 1")
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels, with a residual connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = _group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height = x.shape[2]
        q, k, v = rearrange(self.qkv(self.norm(x)), "b (n c) h w -> n b (h w) c", n=3)
        h = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(rearrange(h, "b (h w) c -> b c h w", h=height))


class UNet(nn.Module):
    """A DDPM-style U-Net score network ``net(x, c)`` for images ``(batch, channels, H, W)``.

    One resolution level per entry of ``width_mults`` (level ``i`` has
    ``base_width * width_mults[i]`` channels and ``num_res_blocks`` residual blocks); levels are
    joined by stride-2 convolutions going down and nearest-neighbour upsampling going up, with
    skip connections between them. The
    middle (lowest resolution) is ``ResBlock -> SelfAttention -> ResBlock`` (attention optional).
    The conditioning ``c`` is embedded (see the module docstring) and added in every block.

    ``H`` and ``W`` must be divisible by ``2**(len(width_mults) - 1)``. The output has the input's
    shape.
    """

    def __init__(
        self,
        channels: int = 1,
        base_width: int = 32,
        width_mults: tuple[int, ...] = (1, 2),
        num_res_blocks: int = 1,
        embed_dim: int | None = None,
        dropout: float = 0.0,
        attention: bool = True,
        embedding: str = "sinusoidal",
    ):
        super().__init__()
        if not width_mults:
            raise InputValueError("width_mults must have at least one entry (one resolution level)")
        self.channels = channels
        self.factor = 2 ** (len(width_mults) - 1)
        emb_dim = embed_dim or 4 * base_width
        self.embed = _conditioning_mlp(embedding, emb_dim, emb_dim)
        widths = [base_width * m for m in width_mults]
        last = len(widths) - 1

        self.conv_in = nn.Conv2d(channels, base_width, 3, padding=1)
        skips, width = [base_width], base_width
        self.down = nn.ModuleList()
        for level, w in enumerate(widths):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(width, w, emb_dim, dropout))
                skips.append(width := w)
            if level != last:
                self.down.append(nn.Conv2d(width, width, 3, stride=2, padding=1))
                skips.append(width)

        self.mid1 = ResBlock(width, width, emb_dim, dropout)
        self.attn = SelfAttention(width) if attention else nn.Identity()
        self.mid2 = ResBlock(width, width, emb_dim, dropout)

        self.up = nn.ModuleList()
        for level, w in reversed(list(enumerate(widths))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(width + skips.pop(), w, emb_dim, dropout))
                width = w
            if level != 0:
                self.up.append(
                    nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(w, w, 3, padding=1))
                )

        self.norm_out = _group_norm(width)
        self.conv_out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        emb = self.embed(_check_conditioning(c, x.shape[0]))
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            h = (
                layer(torch.cat([h, hs.pop()], dim=1), emb)
                if isinstance(layer, ResBlock)
                else layer(h)
            )
        return self.conv_out(F.silu(self.norm_out(h)))

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise InputValueError(
                f"UNet expects x of shape (batch, {self.channels}, H, W), got {tuple(x.shape)}"
            )
        if x.shape[2] % self.factor or x.shape[3] % self.factor:
            raise InputValueError(
                f"image size {tuple(x.shape[2:])} is not divisible by {self.factor} "
                f"= 2**(len(width_mults) - 1): pad or resize the images, or use fewer levels"
            )


class MLP(nn.Module):
    """A score network ``net(x, c)`` for low-dimensional data ``(batch, dim)``.

    ``depth`` hidden layers of width ``hidden``: ``h <- SiLU(Linear(h) + Linear(emb))``, the
    embedded conditioning entering every layer.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        depth: int = 3,
        embed_dim: int = 64,
        embedding: str = "sinusoidal",
    ):
        super().__init__()
        if depth < 1:
            raise InputValueError(f"depth must be at least 1, got {depth}")
        self.dim = dim
        self.embed = _conditioning_mlp(embedding, embed_dim, hidden)
        self.layers = nn.ModuleList(
            [nn.Linear(dim, hidden)] + [nn.Linear(hidden, hidden) for _ in range(depth - 1)]
        )
        self.film = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(depth)])
        self.out = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise InputValueError(
                f"MLP expects x of shape (batch, {self.dim}), got {tuple(x.shape)}"
            )
        emb = F.silu(self.embed(_check_conditioning(c, x.shape[0])))
        h = x
        for layer, film in zip(self.layers, self.film, strict=True):
            h = F.silu(layer(h) + film(emb))
        return self.out(h)


class Discriminator(nn.Module):
    """A spectrally normalised CNN critic ``D(x) -> (batch,)`` for images ``(batch, C, H, W)``.

    ``depth`` stride-2 convolutions (width doubling each time) with LeakyReLU(0.2), global average
    pooling and a linear output. Spectral normalisation (Miyato et al. 2018) bounds each layer's
    Lipschitz constant, as in the adversarial score matching paper's critic.
    """

    def __init__(self, channels: int = 1, base_width: int = 32, depth: int = 2):
        super().__init__()
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(channels, base_width, 3, padding=1))]
        width = base_width
        for _ in range(depth):
            layers += [
                nn.LeakyReLU(0.2),
                spectral_norm(nn.Conv2d(width, 2 * width, 4, stride=2, padding=1)),
            ]
            width *= 2
        self.features = nn.Sequential(*layers, nn.LeakyReLU(0.2))
        self.out = spectral_norm(nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise InputValueError(
                f"Discriminator expects images (batch, C, H, W), got {tuple(x.shape)}"
            )
        return self.out(self.features(x).mean(dim=(2, 3))).squeeze(1)


class MLPDiscriminator(nn.Module):
    """A spectrally normalised MLP critic ``D(x) -> (batch,)`` for data ``(batch, dim)``."""

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3):
        super().__init__()
        widths = [dim] + [hidden] * depth
        layers: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:], strict=True):
            layers += [spectral_norm(nn.Linear(a, b)), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers, spectral_norm(nn.Linear(hidden, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2:
            raise InputValueError(f"MLPDiscriminator expects (batch, dim), got {tuple(x.shape)}")
        return self.net(x).squeeze(1)
