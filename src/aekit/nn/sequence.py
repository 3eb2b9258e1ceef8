"""Sequence backbones: encoders and decoders for windows of a multivariate series ``x [B, T, C]``.

They keep the backbone contract of :mod:`aekit.nn.backbones`, so every autoencoder (``ae``, ``dae``, ``vae``,
``beta-vae``, ``iwae``, ...) takes them with ``backbone=``: an encoder maps ``[B, T, C]`` to features
``[B, F]``; a decoder maps latents ``[N, D]`` to likelihood parameters ``[N, m * T, C]`` (the ``m`` parameters
per value stacked along the first data axis, as a likelihood splits them).

- ``seq-conv``: stride-2 1-D convolutions over time (kernel 5) down to about 4 steps, then a linear layer; the
  decoder mirrors it with transposed convolutions that land exactly on each length;
- ``gru`` / ``lstm``: a recurrent encoder whose last hidden state (of the top layer) is the feature; the decoder
  feeds the latent, mapped to the hidden size, at every step (Srivastava et al. 2015's unconditioned decoder)
  and reads each step's output through a linear layer;
- ``transformer``: the values of each step embedded linearly with a fixed sine-cosine position embedding, pre-norm
  Transformer blocks, mean over time; the decoder adds the latent to every position's embedding, runs blocks and
  reads each step linearly.

``hidden`` sets the widths (its last entry for the recurrent and transformer backbones, which also take
``backbone.layers`` and, for the transformer, ``backbone.heads``); ``channels`` the convolution widths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from aekit.errors import ConfigError
from aekit.nn.backbones import activation, decoder_inputs
from aekit.parts import PartContext, register_part


def _check_sequence_shape(data_shape: Sequence[int], name: str) -> tuple[int, int]:
    if len(data_shape) != 2:
        raise ConfigError(f"backbone={name} takes windows of a series [T, C], got data shape {tuple(data_shape)}; "
                          "use backbone=mlp or conv, or cut the series into windows (aekit.data.WindowDataset)")
    return int(data_shape[0]), int(data_shape[1])


def _stacked(out: torch.Tensor, m: int) -> torch.Tensor:
    """``[N, T, C * m]`` (each step's m parameter sets side by side) -> ``[N, m * T, C]``."""
    n, t, cm = out.shape
    return out.view(n, t, m, cm // m).permute(0, 2, 1, 3).reshape(n, m * t, cm // m)


def _lengths(t: int, levels: int) -> list[int]:
    """Lengths after each stride-2 level, stopping at 4 or fewer: 64 -> 32 -> 16 -> 8 -> 4."""
    sizes = [t]
    while len(sizes) <= levels and sizes[-1] > 4:
        sizes.append((sizes[-1] + 1) // 2)
    if len(sizes) == 1:
        sizes.append((t + 1) // 2)
    return sizes


class Conv1dEncoder(nn.Module):
    def __init__(self, data_shape, channels: Sequence[int], hidden: int, act: str) -> None:
        super().__init__()
        t, c_in = _check_sequence_shape(data_shape, "seq-conv")
        self.lengths = _lengths(t, len(channels))
        layers: list[nn.Module] = []
        for c_out in channels[: len(self.lengths) - 1]:
            layers += [nn.Conv1d(c_in, c_out, 5, stride=2, padding=2), activation(act)]
            c_in = c_out
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Linear(c_in * self.lengths[-1], hidden), activation(act))
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x.transpose(1, 2)).flatten(1))  # [B, T, C] -> [B, C, T] -> [B, c, t] -> [B, F]


class Conv1dDecoder(nn.Module):
    def __init__(self, latent_dim: int, data_shape, channels: Sequence[int], hidden: int, act: str, m: int) -> None:
        super().__init__()
        t, c_out = _check_sequence_shape(data_shape, "seq-conv")
        lengths = _lengths(t, len(channels))
        widths = list(channels[: len(lengths) - 1])
        self.start = (widths[-1], lengths[-1])
        self.fc = nn.Sequential(nn.Linear(latent_dim, hidden), activation(act),
                                nn.Linear(hidden, math.prod(self.start)), activation(act))
        layers: list[nn.Module] = []
        outs, c_in = [*reversed(widths[:-1]), c_out * m], widths[-1]
        for level, c in zip(range(len(lengths) - 1, 0, -1), outs, strict=True):
            pad = lengths[level - 1] - 2 * lengths[level] + 1  # 0 or 1: lands on the odd or even length
            layers.append(nn.ConvTranspose1d(c_in, c, 5, stride=2, padding=2, output_padding=pad))
            if level > 1:
                layers.append(activation(act))
            c_in = c
        self.deconvs = nn.Sequential(*layers)
        self.m = m

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.deconvs(self.fc(z).view(-1, *self.start))  # [N, C * m, T]
        return _stacked(h.transpose(1, 2), self.m)  # [N, m * T, C]


class RNNEncoder(nn.Module):
    def __init__(self, data_shape, hidden: int, cell: str, layers: int) -> None:
        super().__init__()
        _, c = _check_sequence_shape(data_shape, cell)
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(c, hidden, layers, batch_first=True)
        self.out_features = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, state = self.rnn(x)  # h: [layers, B, H] (an LSTM's state is (h, c))
        h = state[0] if isinstance(state, tuple) else state
        return h[-1]  # [B, H], the top layer's last state


class RNNDecoder(nn.Module):
    def __init__(self, latent_dim: int, data_shape, hidden: int, cell: str, layers: int, m: int) -> None:
        super().__init__()
        self.t, c = _check_sequence_shape(data_shape, cell)
        self.inp = nn.Linear(latent_dim, hidden)
        self.rnn = (nn.GRU if cell == "gru" else nn.LSTM)(hidden, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, c * m)
        self.m = m

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        steps = self.inp(z).unsqueeze(1).expand(-1, self.t, -1)  # [N, T, H]: the latent at every step
        h, _ = self.rnn(steps)  # [N, T, H]
        return _stacked(self.out(h), self.m)  # [N, m * T, C]


def _positions(t: int, width: int) -> torch.Tensor:
    """Fixed 1-D sine-cosine position embedding ``[T, width]`` (Vaswani et al. 2017)."""
    omega = 1.0 / 10000.0 ** (torch.arange(width // 2, dtype=torch.float64) / max(width // 2, 1))
    angles = torch.arange(t, dtype=torch.float64).outer(omega)
    table = torch.cat([angles.sin(), angles.cos()], 1)
    return torch.nn.functional.pad(table, (0, width - table.shape[1])).float()  # odd widths: one zero channel


class TransformerEncoder(nn.Module):
    def __init__(self, data_shape, width: int, layers: int, heads: int) -> None:
        super().__init__()
        from aekit.nn.vit import Block

        t, c = _check_sequence_shape(data_shape, "transformer")
        if width % heads:
            raise ConfigError(f"hidden width {width} is not divisible by backbone.heads={heads}; choose one that is")
        self.embed = nn.Linear(c, width)
        self.register_buffer("pos", _positions(t, width)[None], persistent=False)  # [1, T, W]
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out_features = width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos  # [B, T, W]
        for block in self.blocks:
            h = block(h)
        return self.norm(h).mean(1)  # [B, W]


class TransformerDecoder(nn.Module):
    def __init__(self, latent_dim: int, data_shape, width: int, layers: int, heads: int, m: int) -> None:
        super().__init__()
        from aekit.nn.vit import Block

        t, c = _check_sequence_shape(data_shape, "transformer")
        self.inp = nn.Linear(latent_dim, width)
        self.register_buffer("pos", _positions(t, width)[None], persistent=False)  # [1, T, W]
        self.blocks = nn.ModuleList(Block(width, heads) for _ in range(layers))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, c * m)
        self.m = m

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.inp(z).unsqueeze(1) + self.pos  # [N, T, W]: the latent at every position
        for block in self.blocks:
            h = block(h)
        return _stacked(self.out(self.norm(h)), self.m)  # [N, m * T, C]


def _width(hidden: Sequence[int]) -> int:
    return hidden[-1] if hidden else 64


@register_part("backbones", "seq-conv", "1-D convolutions over time for windows [T, C] (`channels`, `hidden`)")
def seq_conv_backbone(hidden, channels, act, *, context: PartContext):
    width = _width(hidden)
    return (Conv1dEncoder(context.data_shape, channels, width, act),
            Conv1dDecoder(decoder_inputs(context), context.data_shape, channels, width, act, context.n_params))


def _recurrent(cell: str):
    def backbone(hidden, channels, act, *, context: PartContext, layers: int = 1):
        if layers < 1:
            raise ConfigError(f"backbone.layers={layers} must be >= 1")
        width = _width(hidden)
        return (RNNEncoder(context.data_shape, width, cell, layers),
                RNNDecoder(decoder_inputs(context), context.data_shape, width, cell, layers, context.n_params))

    return backbone


register_part("backbones", "gru", "GRU encoder and decoder for windows [T, C] (`hidden`, `backbone.layers`)")(
    _recurrent("gru"))
register_part("backbones", "lstm", "LSTM encoder and decoder for windows [T, C] (`hidden`, `backbone.layers`)")(
    _recurrent("lstm"))


@register_part("backbones", "transformer",
               "Transformer encoder and decoder for windows [T, C] (`hidden`, `backbone.layers`, `backbone.heads`)")
def transformer_backbone(hidden, channels, act, *, context: PartContext, layers: int = 2,
                         heads: int = 4):
    if layers < 1 or heads < 1:
        raise ConfigError(f"backbone.layers={layers} and backbone.heads={heads} must be >= 1")
    width = _width(hidden)
    return (TransformerEncoder(context.data_shape, width, layers, heads),
            TransformerDecoder(decoder_inputs(context), context.data_shape, width, layers, heads, context.n_params))
