"""Sparse (masked) convolution for pre-training a CNN by masking (Tian et al. 2023, SparK).

A masked image is a sparse set of visible patches. SparK emulates submanifold sparse convolution with dense
operations: after every convolution the positions of hidden patches are set to zero again, so that they never
fill in from their visible neighbours and the network sees only the visible pixels at every scale; and batch
normalisation takes its statistics over the visible positions only. ``active [B, 1, h, w]`` (1 = visible) is the
patch-level mask; at a feature map of stride s it is repeated ``patch / s`` times along each axis.

With ``active=None`` every position is visible and the layers are an ordinary CNN (what a fine-tuned or probed
encoder runs).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def active_at(active: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
    """The patch-level mask ``[B, 1, h, w]`` at a feature map of ``size = (H', W')`` (a multiple of ``(h, w)``)."""
    if active is None:
        return None
    h, w = active.shape[-2:]
    return active.repeat_interleave(size[0] // h, -2).repeat_interleave(size[1] // w, -1)  # [B, 1, H', W']


class SparseBatchNorm2d(nn.BatchNorm2d):
    """Batch normalisation over the visible positions only; hidden positions stay zero."""

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        if active is None:
            return super().forward(x)
        mask = active_at(active, x.shape[-2:])  # [B, 1, H, W]
        if self.training:  # statistics of the visible positions: sums over the mask, no gather
            n = mask.sum()
            mean = (x * mask).sum((0, 2, 3)) / n  # [C]
            var = ((x - mean.view(1, -1, 1, 1)).pow(2) * mask).sum((0, 2, 3)) / n  # [C], biased as in training
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * n / (n - 1).clamp(min=1), self.momentum)
                self.num_batches_tracked.add_(1)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * (var + self.eps).rsqrt()  # [C]
        out = x * scale.view(1, -1, 1, 1) + (self.bias - mean * scale).view(1, -1, 1, 1)
        return out * mask  # hidden positions stay zero


class SparseConvBN(nn.Module):
    """Convolution, then sparse batch norm (which zeroes the hidden positions again), then optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, relu: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.norm = SparseBatchNorm2d(cout)
        self.relu = relu

    def forward(self, x: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        h = self.norm(self.conv(x), active)  # the sparse norm zeroes the hidden positions; ReLU keeps them zero
        return F.relu(h) if self.relu else h


class SparseResBlock(nn.Module):
    """A basic residual block (He et al. 2016) of two 3 x 3 sparse convolutions, the first with ``stride``."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = SparseConvBN(cin, cout, 3, stride)
        self.conv2 = SparseConvBN(cout, cout, 3, 1, relu=False)
        self.shortcut = SparseConvBN(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
        h = self.conv2(self.conv1(x, active), active)
        skip = x if self.shortcut is None else self.shortcut(x, active)
        return F.relu(h + skip)  # both zero at hidden positions


class SparseResNet(nn.Module):
    """A ResNet of ``len(widths)`` stages: a 3 x 3 stem, then per stage ``blocks`` residual blocks, each stage after
    the first halving the resolution. ``forward`` returns every stage's feature map, finest first; stage i has
    stride 2^i, so the masking patch is 2^(stages - 1) pixels (the deepest map has one position per patch)."""

    def __init__(self, channels: int, widths: tuple[int, ...], blocks: int = 1) -> None:
        super().__init__()
        self.widths = tuple(widths)
        self.stem = SparseConvBN(channels, widths[0], 3, 1)
        self.stages = nn.ModuleList()
        for i, width in enumerate(widths):
            cin = widths[max(i - 1, 0)]
            layers = [SparseResBlock(cin, width, 1 if i == 0 else 2)]
            layers += [SparseResBlock(width, width) for _ in range(blocks - 1)]
            self.stages.append(nn.ModuleList(layers))

    @property
    def patch(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> list[torch.Tensor]:
        h = self.stem(x, active)
        features = []
        for stage in self.stages:
            for block in stage:
                h = block(h, active)
            features.append(h)  # [B, widths[i], H / 2^i, W / 2^i]
        return features


class LightDecoder(nn.Module):
    """SparK's hierarchical decoder (a light U-Net). Each encoder map is densified: its hidden positions are
    filled with a learned [MASK] embedding of that scale, then projected (3 x 3 convolution) to the decoder's
    width there. From the deepest scale up, the decoder upsamples by 2 (transposed convolution), adds the
    densified map of that scale and refines with a 3 x 3 convolution block; a 1 x 1 convolution gives the
    prediction ``[B, out, H, W]`` at the image's resolution."""

    def __init__(self, widths: tuple[int, ...], width: int, out_channels: int) -> None:
        super().__init__()
        n = len(widths)
        self.dims = [max(width // 2 ** (n - 1 - i), 8) for i in range(n)]  # decoder width per scale, finest first
        self.mask_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, w, 1, 1)) for w in widths)
        self.densify = nn.ModuleList(nn.Conv2d(w, d, 3, padding=1) for w, d in zip(widths, self.dims, strict=True))
        self.up = nn.ModuleList(nn.ConvTranspose2d(self.dims[i + 1], self.dims[i], 2, 2) for i in range(n - 1))
        self.refine = nn.ModuleList(
            nn.Sequential(nn.Conv2d(d, d, 3, padding=1, bias=False), nn.BatchNorm2d(d), nn.ReLU(inplace=True))
            for d in self.dims[:-1])
        self.head = nn.Conv2d(self.dims[0], out_channels, 1)
        for token in self.mask_tokens:
            nn.init.trunc_normal_(token, std=0.02)

    def densified(self, i: int, feature: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        mask = active_at(active, feature.shape[-2:])  # [B, 1, H', W']
        return self.densify[i](feature * mask + self.mask_tokens[i] * (1 - mask))

    def forward(self, features: list[torch.Tensor], active: torch.Tensor) -> torch.Tensor:
        n = len(features)
        d = self.densified(n - 1, features[-1], active)  # the deepest scale
        for i in range(n - 2, -1, -1):
            d = self.refine[i](self.up[i](d) + self.densified(i, features[i], active))
        return self.head(d)  # [B, out, H, W]
