"""What a masked image model predicts at each hidden patch: a target part ``x [B, C, H, W] -> [B, L, T]``.

- ``pixels``: the patch's pixels, channels last (He et al. 2022), normalised per patch with ``norm_pix_loss``;
- ``hog``: histograms of oriented gradients (Wei et al. 2022, MaskFeat; Dalal & Triggs 2005): per channel,
  gradients by the [-1, 0, 1] filters, each pixel's magnitude voted into ``bins`` unsigned orientation bins
  over [0, pi), summed over ``cell x cell`` cells, each patch's histograms L2-normalised together.

Features of a frozen teacher are the model's own term (``teacher=``, :mod:`aekit.models.mae`), since they need
the teacher network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.parts import PartContext, build_part, register_part


def patchify(x: torch.Tensor, patch: int) -> torch.Tensor:
    """``x [B, C, H, W] -> [B, L, p*p*C]``: patches row by row, each patch's pixels row by row, channels last."""
    b, c, height, width = x.shape
    h, w = height // patch, width // patch
    x = x.reshape(b, c, h, patch, w, patch).permute(0, 2, 4, 3, 5, 1)  # [B, h, w, p, p, C]
    return x.reshape(b, h * w, patch * patch * c)


class Target(nn.Module):
    dim: int  # T, the size of one patch's target


@register_part("targets", "pixels", "the patch's pixels, per-patch normalised with norm_pix_loss (MAE)")
class PixelTarget(Target):
    def __init__(self, patch: int, norm_pix_loss: bool = False, *, context: PartContext) -> None:
        super().__init__()
        self.patch, self.norm = patch, norm_pix_loss
        self.dim = patch * patch * context.data_shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = patchify(x, self.patch)
        if self.norm:
            t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
        return t


@register_part("targets", "hog", "histograms of oriented gradients per patch (MaskFeat)")
class HOGTarget(Target):
    def __init__(self, patch: int, norm_pix_loss: bool = False, *, context: PartContext, cell: int = 0,
                 bins: int = 9) -> None:
        super().__init__()
        channels = context.data_shape[0]
        cell = cell or min(patch, 8)
        require(patch % cell == 0, f"target.cell={cell} must divide the patch size {patch}")
        require(bins >= 2, f"target.bins={bins} must be >= 2")
        self.patch, self.cell, self.bins, self.channels = patch, cell, bins, channels
        self.dim = channels * bins * (patch // cell) ** 2
        kernel = torch.tensor([[-1.0, 0.0, 1.0]])
        self.register_buffer("kx", kernel.view(1, 1, 1, 3).repeat(channels, 1, 1, 1), persistent=False)
        self.register_buffer("ky", kernel.view(1, 1, 3, 1).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        gx = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="reflect"), self.kx, groups=c)  # [B, C, H, W]
        gy = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="reflect"), self.ky, groups=c)
        magnitude = torch.sqrt(gx**2 + gy**2)
        angle = torch.atan2(gy, gx) % math.pi  # unsigned orientation in [0, pi)
        index = (angle / math.pi * self.bins).long().clamp(max=self.bins - 1)  # [B, C, H, W]
        votes = torch.zeros(b, c, self.bins, height, width, device=x.device, dtype=x.dtype)
        votes.scatter_(2, index.unsqueeze(2), magnitude.unsqueeze(2))  # each pixel's magnitude in its bin
        cells = F.avg_pool2d(votes.view(b, c * self.bins, height, width), self.cell) * self.cell**2  # sums
        per = self.patch // self.cell
        h, w = height // self.patch, width // self.patch
        cells = cells.view(b, c, self.bins, h, per, w, per).permute(0, 3, 5, 1, 4, 6, 2)  # [B, h, w, C, per, per, n]
        hist = cells.reshape(b, h * w, self.dim)
        return hist / hist.norm(dim=-1, keepdim=True).clamp(min=1e-6)


def make_target(name: str, context: PartContext, patch: int, norm_pix_loss: bool, options: dict) -> Target:
    """The registered target ``name`` for images of ``context.data_shape``, per patch of ``patch`` pixels."""
    return build_part("targets", name, patch, norm_pix_loss, context=context, **options)
