"""Multi-scale residual quantisation of a latent grid (Tian et al. 2024, VAR: "Visual Autoregressive Modeling",
Algorithm 1): one shared codebook quantises the grid at a rising series of resolutions, each scale what the coarser
ones left,

    r_1 = f;   for k = 1..K:   q_k = Q(down(r_k, s_k)),   z_k = phi_k(up(e(q_k), h x w)),   r_{k+1} = r_k - z_k,
    f_hat = sum_k z_k,

with ``down`` area interpolation to s_k x s_k (the last scale the grid itself), ``up`` bicubic interpolation
back, and phi_k a 3 x 3 convolution mixed half and half with its input (VAR's quant_resi = 0.5). The code of an
example is its sum_k s_k^2 tokens, coarse to fine, so a prior over codes predicts the next scale from the coarser
ones. f_hat passes on with the straight-through gradient; the commitment term is the mean over scales of
||f - sg(f_hat_k)||^2 (f_hat_k the sum up to scale k) and the ``codebook`` term the mean of ||sg(f) - f_hat_k||^2,
which trains the phi_k (and the entries, without EMA).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.nn.priors import Prior
from aekit.nn.quantize.base import Quantized, straight_through
from aekit.nn.quantize.codebook import CHUNK
from aekit.nn.quantize.vq import CodebookQuantizer
from aekit.objectives import Term
from aekit.parts import PartContext, register_part


def default_scales(height: int, width: int) -> list[tuple[int, int]]:
    """1, 2, 4, ... up to the grid, then the grid: (1, 1), (2, 2), (4, 4), (7, 7) for a 7 x 7 grid."""
    scales, side = [], 1
    while side < max(height, width):
        scales.append((min(side, height), min(side, width)))
        side *= 2
    return [*dict.fromkeys(scales), (height, width)]


@register_part("bottlenecks", "msvq", "multi-scale residual VQ over a latent grid: one codebook, coarse to fine "
               "scales, each on the residual (Tian et al. 2024, VAR)")
class MultiScaleVQ(CodebookQuantizer):
    """``scales``: the side of each scale's grid, coarse to fine (default 1, 2, 4, ... and the grid's own; a scale
    beyond the grid is clipped to it); ``phi``: the weight of each scale's convolution (0: none). The codebook's
    settings are :class:`~aekit.nn.quantize.vq.VectorQuantizer`'s."""

    terms: ClassVar[dict[str, Term]] = {"commit": Term(weight=0.25), "codebook": Term(weight=1.0)}

    def __init__(self, context: PartContext, prior: Prior | None = None, scales: tuple[int, ...] = (),
                 phi: float = 0.5, codebook_size: int = 512, codebook_dim: int = 0, ema: bool = True,
                 decay: float = 0.99, cosine: bool = False, kmeans_iters: int = 10, dead_after: int = 20,
                 gradient: str = "ste", chunk: int = CHUNK) -> None:
        require(len(context.latent_shape) == 3, f"bottleneck=msvq quantises a grid of latents (h, w, D), but the "
                f"encoder gives {tuple(context.latent_shape)}; use the conv-grid backbone or a quantiser of vectors "
                "(vq, rvq, fsq, lfq)")
        require(0 <= phi <= 1, f"bottleneck.phi={phi} must lie in [0, 1]")
        height, width = context.latent_shape[:2]
        sides = [(min(s, height), min(s, width)) for s in scales] if scales else default_scales(height, width)
        require(all(s >= 1 for side in sides for s in side), f"bottleneck.scales={list(scales)} must be >= 1")
        self.sides = [*dict.fromkeys(sides)] if sides[-1] == (height, width) else [*dict.fromkeys(sides),
                                                                                    (height, width)]
        super().__init__(context, 1, codebook_size, codebook_dim, 1, ema, decay, cosine, kmeans_iters, dead_after,
                         0.0, gradient, chunk)
        self.phi_weight = phi
        self.phi = nn.ModuleList(nn.Conv2d(self.code_width, self.code_width, 3, padding=1) for _ in self.sides)

    @property
    def code_shape(self) -> tuple[int, ...]:
        return (sum(h * w for h, w in self.sides), 1)  # every scale's tokens, coarse to fine, one column

    def refine(self, e: torch.Tensor, k: int, size: tuple[int, int]) -> torch.Tensor:
        """phi_k(up(e)): scale k's entries ``e [B, c, s, s]`` on the grid, ``[B, c, h, w]``."""
        up = F.interpolate(e, size=size, mode="bicubic", align_corners=False) if e.shape[-2:] != size else e
        return (1 - self.phi_weight) * up + self.phi_weight * self.phi[k](up) if self.phi_weight else up

    def quantize_grid(self, z_e: torch.Tensor) -> Quantized:
        f = self.normalise(z_e).movedim(-1, 1)  # [B, c, h, w]
        size = tuple(f.shape[-2:])
        codebook = self.codebooks[0]
        r, f_hat = f, torch.zeros_like(f)
        codes, inputs, commit, learn = [], [], 0, 0
        for k, side in enumerate(self.sides):
            r_k = F.interpolate(r, size=side, mode="area") if side != size else r  # [B, c, s, s]
            rows = r_k.detach().movedim(1, -1).reshape(-1, 1, self.code_width)  # [B s s, 1, c]
            q = codebook(rows)  # [B s s, 1]
            e = codebook.lookup(q).view(len(f), *side, self.code_width).movedim(-1, 1)  # [B, c, s, s]
            z_k = self.refine(e, k, size)
            f_hat = f_hat + z_k
            r = r - z_k.detach()
            codes.append(q.view(len(f), -1))  # [B, s s]
            inputs.append(rows.view(len(f), -1, self.code_width))  # [B, s s, c]
            commit = commit + (f - f_hat.detach()).pow(2).flatten(1).sum(-1)
            learn = learn + (f.detach() - f_hat).pow(2).flatten(1).sum(-1)
        z = straight_through(f.movedim(1, -1), f_hat.movedim(1, -1), self.gradient)  # [B, h, w, c]
        return Quantized(z=z.reshape(-1, self.code_width), codes=torch.cat(codes, 1).view(-1, 1),
                         terms={"commit": commit / len(self.sides), "codebook": learn / len(self.sides)},
                         hook={"inputs": torch.cat(inputs, 1).reshape(-1, self.code_width)})  # as the codes

    def lookup_grid(self, codes: torch.Tensor) -> torch.Tensor:
        height, width = self.latent_shape[:2]
        tokens = codes.view(len(codes), -1)  # [B, T]
        f_hat, start = 0, 0
        for k, side in enumerate(self.sides):
            count = side[0] * side[1]
            e = self.codebooks[0].lookup(tokens[:, start:start + count].reshape(-1, 1))  # [B s s, 1, c]
            f_hat = f_hat + self.refine(e.view(len(codes), *side, -1).movedim(-1, 1), k, (height, width))
            start += count
        return f_hat.movedim(1, -1)  # [B, h, w, c]

    def update_codebooks(self, rows: dict[str, torch.Tensor], ctx) -> None:
        self.codebooks[0].update(rows["inputs"].unsqueeze(1), rows["codes"], ctx)

    def init_codebooks(self, rows: torch.Tensor, generator: torch.Generator) -> None:
        """k-means on the finest scale's vectors (the grid's own)."""
        self.codebooks[0].init_kmeans(self.normalise(rows).unsqueeze(1), generator)
