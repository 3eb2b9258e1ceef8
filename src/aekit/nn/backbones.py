"""Encoder and decoder backbones.

An encoder maps inputs ``x [B, *S]`` to features ``h [B, F]`` (``out_features = F``), or to a feature map
``h [B, F, *L]`` (``out_shape = (F, *L)``), which gives a grid of latents ``[*L, D]``; a decoder maps latents
``z [N, D]`` (or ``[N, *L, D]``) to likelihood parameters ``[N, C * m, H, W]`` (or ``[N, D_x * m]`` for tables),
where m is the likelihood's number of parameters per data dimension. Any ``nn.Module`` with this contract can
stand in. A backbone factory is built with its :class:`~aekit.parts.PartContext`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError
from aekit.nn.inverse_lipschitz import InverseLipschitzDecoder
from aekit.parts import PartContext, build_part, register_part

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "elu": nn.ELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation={name!r} is unknown; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def mlp(sizes: Sequence[int], act: str, last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2 or last_activation:
            layers.append(activation(act))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """Flatten, then fully connected layers: ``x [B, *S] -> h [B, hidden[-1]]``. With ``hidden=()`` it only
    flattens, ``h [B, prod(S)]``: the bottleneck's projection is then the encoder's one layer (a shallow
    autoencoder, ``flattens_only``)."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int] = (512, 256), act: str = "relu") -> None:
        super().__init__()
        self.net = mlp([math.prod(data_shape), *hidden], act, last_activation=True)
        self.out_features = hidden[-1] if hidden else math.prod(data_shape)
        self.flattens_only = not hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))  # [B, prod(S)] -> [B, F]


class MLPDecoder(nn.Module):
    """``z [N, D] -> params [N, C * m, H, W]``, the mirror of :class:`MLPEncoder`."""

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        hidden: Sequence[int] = (256, 512),
        act: str = "relu",
        param_multiplier: int = 1,
    ) -> None:
        super().__init__()
        self.out_shape = (data_shape[0] * param_multiplier, *data_shape[1:])
        self.net = mlp([latent_dim, *hidden, math.prod(self.out_shape)], act, last_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, *self.out_shape)  # [N, prod] -> [N, C*m, H, W]


def _downsampled_sizes(height: int, width: int, max_levels: int) -> list[tuple[int, int]]:
    """Spatial sizes after each stride-2 level, stopping at 4x4 or smaller: 28 -> 14 -> 7 -> 4."""
    sizes = [(height, width)]
    while len(sizes) <= max_levels and max(sizes[-1]) > 4:
        h, w = sizes[-1]
        sizes.append(((h + 1) // 2, (w + 1) // 2))
    return sizes


def _check_image_shape(data_shape: Sequence[int]) -> None:
    if len(data_shape) != 3:
        raise ConfigError(
            f"the conv backbone needs images [C, H, W], got data shape {tuple(data_shape)}; use backbone=mlp, or for "
            "windows of a series [T, C] seq-conv, gru, lstm or transformer"
        )


def upsampling(sizes: list[tuple[int, int]], widths: list[int], c_out: int, act: str) -> nn.Sequential:
    """Stride-2 3x3 transposed convolutions from the deepest of an encoder's ``sizes`` (with ``widths[-1]``
    channels) back through each of its levels to ``c_out`` channels at the input size; each output padding lands
    exactly on the encoder's odd or even size."""
    layers: list[nn.Module] = []
    levels = len(sizes) - 1
    c_in = widths[levels - 1]
    for level, c in zip(range(levels, 0, -1), [*reversed(widths[: levels - 1]), c_out], strict=True):
        (h_in, w_in), (h_out, w_out) = sizes[level], sizes[level - 1]
        pad = (h_out - 2 * h_in + 1, w_out - 2 * w_in + 1)  # 0 or 1
        layers.append(nn.ConvTranspose2d(c_in, c, 3, stride=2, padding=1, output_padding=pad))
        if level > 1:
            layers.append(activation(act))
        c_in = c
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """Stride-2 3x3 convolutions down to about 4x4, then a linear layer: ``x [B, C, H, W] -> h [B, F]``.

    Any channel count and any height/width (8x8, 28x28, 32x32, odd sizes): each level halves the size, rounding up.
    """

    def __init__(
        self,
        data_shape: Sequence[int],
        channels: Sequence[int] = (32, 64, 128),
        hidden: int = 256,
        act: str = "relu",
    ) -> None:
        super().__init__()
        _check_image_shape(data_shape)
        c_in, height, width = data_shape
        self.sizes = _downsampled_sizes(height, width, len(channels))
        levels = max(len(self.sizes) - 1, 1)
        if len(self.sizes) == 1:  # already 4x4 or smaller: one level anyway
            self.sizes.append(((height + 1) // 2, (width + 1) // 2))
        layers: list[nn.Module] = []
        for c_out in channels[:levels]:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), activation(act)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        h_last, w_last = self.sizes[-1]
        self.fc = nn.Sequential(nn.Linear(c_in * h_last * w_last, hidden), activation(act))
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x).flatten(1))  # [B, C, H, W] -> [B, c, h, w] -> [B, F]


class ConvDecoder(nn.Module):
    """The mirror of :class:`ConvEncoder`: ``z [N, D] -> params [N, C * m, H, W]``, with transposed
    convolutions whose output padding lands exactly on each encoder size."""

    def __init__(
        self,
        latent_dim: int,
        data_shape: Sequence[int],
        channels: Sequence[int] = (32, 64, 128),
        hidden: int = 256,
        act: str = "relu",
        param_multiplier: int = 1,
    ) -> None:
        super().__init__()
        _check_image_shape(data_shape)
        c_out, height, width = data_shape
        sizes = ConvEncoder(data_shape, channels, hidden, act).sizes
        levels = len(sizes) - 1
        widths = list(channels[:levels])
        self.start_shape = (widths[-1], *sizes[-1])
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            activation(act),
            nn.Linear(hidden, math.prod(self.start_shape)),
            activation(act),
        )
        self.deconvs = upsampling(sizes, widths, c_out * param_multiplier, act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z).view(-1, *self.start_shape)  # [N, D] -> [N, c, h, w]
        return self.deconvs(h)  # -> [N, C*m, H, W]


class ConvGridEncoder(nn.Module):
    """Stride-2 3x3 convolutions, one level per width of ``channels``, stopping at the feature map:
    ``x [B, C, H, W] -> h [B, F, h, w]`` with F = channels[-1] and each level halving the size, rounding up (28 ->
    14 -> 7 with two widths). The latents then form an h x w grid (VQ-VAE, spatial VAEs)."""

    def __init__(self, data_shape: Sequence[int], channels: Sequence[int] = (32, 64), act: str = "relu") -> None:
        super().__init__()
        _check_image_shape(data_shape)
        if not channels:
            raise ConfigError("channels=() leaves the conv-grid encoder with no level; give at least one width")
        c_in, height, width = data_shape
        self.sizes = [(height, width)]
        layers: list[nn.Module] = []
        for i, c_out in enumerate(channels):
            h, w = self.sizes[-1]
            self.sizes.append(((h + 1) // 2, (w + 1) // 2))
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)]
            layers += [activation(act)] if i < len(channels) - 1 else []
            c_in = c_out
        self.convs = nn.Sequential(*layers, activation(act))
        self.out_shape = (c_in, *self.sizes[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x)  # [B, C, H, W] -> [B, F, h, w]


class ConvGridDecoder(nn.Module):
    """The mirror of :class:`ConvGridEncoder`: ``z [N, h, w, D]`` (channels last, as the bottleneck gives it) ->
    a 3x3 convolution to the deepest width, then transposed convolutions landing exactly on each encoder size ->
    ``params [N, C * m, H, W]``."""

    def __init__(self, latent_dim: int, data_shape: Sequence[int], channels: Sequence[int] = (32, 64),
                 act: str = "relu", param_multiplier: int = 1) -> None:
        super().__init__()
        sizes = ConvGridEncoder(data_shape, channels, act).sizes
        self.grid = sizes[-1]
        self.inp = nn.Sequential(nn.Conv2d(latent_dim, channels[-1], 3, padding=1), activation(act))
        self.deconvs = upsampling(sizes, list(channels), data_shape[0] * param_multiplier, act)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if tuple(z.shape[1:3]) != tuple(self.grid):
            raise ConfigError(f"the conv-grid decoder takes latents on a {self.grid[0]}x{self.grid[1]} grid, got "
                              f"{tuple(z.shape[1:])}")
        h = self.inp(z.movedim(-1, 1))  # [N, h, w, D] -> [N, F, h, w]
        return self.deconvs(h)  # -> [N, C*m, H, W]


@register_part("backbones", "mlp", "fully connected encoder and decoder (`hidden` widths)")
def mlp_backbone(hidden, channels, act, *, context: PartContext) -> tuple[nn.Module, nn.Module]:
    return (
        MLPEncoder(context.data_shape, hidden, act),
        MLPDecoder(decoder_inputs(context), context.data_shape, tuple(reversed(hidden)), act, context.n_params),
    )


@register_part("backbones", "conv", "stride-2 3x3 convolutions for any channel count and image size (`channels`)")
def conv_backbone(hidden, channels, act, *, context: PartContext) -> tuple[nn.Module, nn.Module]:
    width = hidden[-1] if hidden else 256
    return (
        ConvEncoder(context.data_shape, channels, width, act),
        ConvDecoder(decoder_inputs(context), context.data_shape, channels, width, act, context.n_params),
    )


@register_part("backbones", "conv-grid", "stride-2 3x3 convolutions to a feature map: an h x w grid of latents "
               "(one level per width of `channels`)")
def conv_grid_backbone(hidden, channels, act, *, context: PartContext) -> tuple[nn.Module, nn.Module]:
    return (
        ConvGridEncoder(context.data_shape, channels, act),
        ConvGridDecoder(decoder_inputs(context), context.data_shape, channels, act, context.n_params),
    )


@register_part("backbones", "inverse-lipschitz", "another backbone's encoder (`encoder`, mlp) and a decoder that is "
               "L-inverse Lipschitz by construction, L = `inverse_lipschitz` (Kinoshita et al. 2023)")
def inverse_lipschitz_backbone(hidden, channels, act, *, context: PartContext, inverse_lipschitz: float = 1.0,
                               encoder: str = "mlp", icnn_width: int = 256, icnn_depth: int = 2,
                               embedding: str = "orthonormal") -> tuple[nn.Module, nn.Module]:
    """The encoder of backbone ``encoder`` and :class:`~aekit.nn.inverse_lipschitz.InverseLipschitzDecoder`:
    ||f(z_1) - f(z_2)|| >= L ||z_1 - z_2|| from the code to the likelihood's parameters, the control on posterior
    collapse of Kinoshita, Oono, Fukumizu, Yoshida & Maeda (2023); each of its two Brenier maps takes an
    input-convex network of ``icnn_depth`` layers of ``icnn_width``; ``embedding`` (orthonormal, or pad as in the
    paper's main text) lifts the code to the output's size between them."""
    require(encoder != "inverse-lipschitz", "backbone.encoder=inverse-lipschitz: name the backbone whose encoder to "
            "take, e.g. mlp or conv")
    inner, _ = make_backbone(encoder, context, hidden, channels, act)
    require(len(getattr(inner, "out_shape", ())) <= 1, f"backbone.encoder={encoder} gives a grid of latents; the "
            "inverse-Lipschitz decoder takes one code vector per example (encoder=mlp or conv)")
    out_shape = (context.data_shape[0] * context.n_params, *context.data_shape[1:])
    return inner, InverseLipschitzDecoder(decoder_inputs(context), out_shape, float(inverse_lipschitz),
                                          int(icnn_width), int(icnn_depth), str(embedding))


def decoder_inputs(context: PartContext) -> int:
    """The width of one decoder input vector: the latent's, plus the condition's that a conditional model
    concatenates to it."""
    return context.latent_dim + context.condition_dim


def make_backbone(
    name: str,
    context: PartContext,
    hidden: Sequence[int],
    channels: Sequence[int],
    act: str,
    **options,
) -> tuple[nn.Module, nn.Module]:
    """Encoder and decoder of the registered backbone ``name`` for ``context`` (the data's shape, the latent's,
    the condition's size and the likelihood's parameters per data dimension)."""
    return build_part("backbones", name, hidden, channels, act, context=context, **options)
