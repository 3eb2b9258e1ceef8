"""Vision Transformer parts (Dosovitskiy et al. 2021) for masked image models.

An image ``x [B, C, H, W]`` is cut into ``L = (H / p) * (W / p)`` patches of ``p x p`` pixels, in row-major
order (patch ``i * w + j`` is at row i, column j of the ``h x w`` grid). Each patch is embedded linearly, a fixed
2-D sine-cosine position embedding is added, and pre-norm Transformer blocks

    x <- x + Attn(LN(x)),    x <- x + MLP(LN(x))

run on the tokens; attention is ``torch.nn.functional.scaled_dot_product_attention`` (its fused kernels), with
one fused projection for queries, keys and values. Any channel count and any image size divisible by the patch
work, square or not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError, ShapeConfigError


def sincos_position_embedding(h: int, w: int, dim: int, order: str = "hw", temperature: float = 10000.0
                              ) -> torch.Tensor:
    """Fixed 2-D position embedding ``[h * w, dim]`` (Vaswani et al. 2017, per axis): a quarter of the channels
    each for sin and cos of the row index, and for sin and cos of the column index, at frequencies
    ``temperature ** (-k / (dim / 4))``.

    ``order="hw"`` lays the channels out ``[sin_row | cos_row | sin_col | cos_col]``; ``"wh"`` puts the column
    half first, as the official MAE code (and so Hugging Face ViTMAE) does, for weights trained that way."""
    if dim % 4:
        raise ConfigError(f"width={dim}: a 2-D sine-cosine position embedding needs a width divisible by 4")
    if order not in ("hw", "wh"):
        raise ConfigError(f"pos_order={order!r} is unknown; choose hw (rows first) or wh (columns first, MAE's)")
    omega = 1.0 / temperature ** (torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))  # [D/4]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")  # [h, w] each
    by_row = rows.flatten().outer(omega)  # [L, D/4]
    by_col = cols.flatten().outer(omega)  # [L, D/4]
    halves = [torch.cat([by_row.sin(), by_row.cos()], 1), torch.cat([by_col.sin(), by_col.cos()], 1)]
    if order == "wh":
        halves.reverse()
    return torch.cat(halves, 1).float()  # [L, D]


class PatchEmbed(nn.Module):
    """``x [B, C, H, W] -> tokens [B, L, D]``: a linear map of each ``p x p`` patch (a strided convolution)."""

    def __init__(self, channels: int, patch: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(channels, width, kernel_size=patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # [B, D, h, w] -> [B, L, D]


# Up to this many tokens, attention on a CPU is two batched products and a softmax (measured faster than the
# flash kernel there: benchmarks/mae_step.py); longer sequences and GPUs use scaled_dot_product_attention.
SHORT_SEQUENCE = 256


class Attention(nn.Module):
    """Multi-head self-attention: one ``[D, 3D]`` projection to q, k, v, then scaled dot-product attention;
    ``causal``: token i attends to tokens j <= i only (an autoregressive model)."""

    def __init__(self, width: int, heads: int, qkv_bias: bool = True, causal: bool = False) -> None:
        super().__init__()
        if width % heads:
            raise ConfigError(f"width={width} is not divisible by heads={heads}; choose a width that is")
        self.heads, self.causal = heads, causal
        self.qkv = nn.Linear(width, 3 * width, bias=qkv_bias)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = (t.transpose(1, 2) for t in self.qkv(x).view(b, n, 3, self.heads, d // self.heads).unbind(2))
        if x.device.type == "cpu" and n <= SHORT_SEQUENCE:  # q, k, v: [B, H, N, d/H]
            # softmax(q k^T / sqrt(d_h)) v written out: on a CPU, faster than the fused kernels for short sequences
            scores = (q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5  # [B, H, N, N]
            if self.causal:
                scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool, device=x.device).triu(1), -torch.inf)
            out = scores.softmax(-1) @ v  # [B, H, N, d/H]
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)  # [B, H, N, d/H]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))  # [B, N, D]


class Block(nn.Module):
    """Pre-norm Transformer block: attention and a GELU MLP of ``mlp_ratio * width``, each in a residual."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6,
                 causal: bool = False) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.norm1 = nn.LayerNorm(width, eps=eps)
        self.attn = Attention(width, heads, qkv_bias, causal)
        self.norm2 = nn.LayerNorm(width, eps=eps)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_weights(module: nn.Module) -> None:
    """MAE's initialisation: Xavier-uniform linear layers (the patch projection as one), zero biases, unit norms."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, PatchEmbed):
        w = module.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(module.proj.bias)


def patch_grid(data_shape: Sequence[int], patch: int) -> tuple[int, int]:
    """The ``(h, w)`` patch grid of images ``(C, H, W)``; a size the patch does not divide is an error."""
    if len(data_shape) != 3:
        raise ShapeConfigError(f"a Vision Transformer takes images [C, H, W], got data shape {tuple(data_shape)}; "
                          "use a model with an mlp backbone for vectors")
    _, height, width = data_shape
    if patch < 1 or height % patch or width % patch:
        raise ShapeConfigError(f"image size {height}x{width} is not divisible by patch_size={patch}; choose a patch "
                          f"that divides both (e.g. {math.gcd(height, width)}) or crop the images")
    return height // patch, width // patch


class ViTEncoder(nn.Module):
    """Patch embedding + position embedding, an optional class token, ``depth`` blocks and a final norm.

    ``patch_tokens(x)`` gives the embedded patches ``[B, L, D]`` (position added); ``forward(tokens)`` runs the
    blocks on any subset of them ``[B, K, D]`` (the visible ones, for MAE) and returns ``[B, 1 + K, D]`` with
    the class token first (``[B, K, D]`` without one)."""

    def __init__(self, data_shape: Sequence[int], patch: int, width: int, depth: int, heads: int,
                 mlp_ratio: float = 4.0, class_token: bool = True, qkv_bias: bool = True, eps: float = 1e-6,
                 pos_order: str = "hw") -> None:
        super().__init__()
        self.grid = patch_grid(data_shape, patch)
        self.patch, self.width = patch, width
        self.patch_embed = PatchEmbed(data_shape[0], patch, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width)) if class_token else None
        self.register_buffer("pos_embed", sincos_position_embedding(*self.grid, width, pos_order)[None],
                             persistent=False)  # [1, L, D], rebuilt from the config: not in the weights
        self.blocks = nn.ModuleList(Block(width, heads, mlp_ratio, qkv_bias, eps) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=eps)
        self.apply(init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=0.02)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    def patch_tokens(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x) + self.pos_embed  # [B, L, D]

    def with_class_token(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.cls_token is None:
            return tokens
        return torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)  # [B, 1 + K, D]

    def forward(self, tokens: torch.Tensor, keep_layer: int = 0):
        """The encoded tokens ``[B, (1 +) K, D]``; with ``keep_layer=j`` also block j's output (before the final
        norm), as ``(encoded, hidden_j)``."""
        tokens, kept = self.with_class_token(tokens), None  # the class token's position embedding is zero
        for j, block in enumerate(self.blocks, 1):
            tokens = block(tokens)
            if j == keep_layer:
                kept = tokens
        return self.norm(tokens) if not keep_layer else (self.norm(tokens), kept)

    def first_blocks(self, tokens: torch.Tensor, depth: int) -> torch.Tensor:
        """The output of the first ``depth`` blocks ``[B, (1 +) K, D]``, the rest not run (an intermediate
        feature)."""
        tokens = self.with_class_token(tokens)
        for block in self.blocks[:depth]:
            tokens = block(tokens)
        return tokens


@dataclass(frozen=True)
class ViTConfig:
    """The ViT encoder's settings, shared by the configs of the models built on it (``mae``, ``classifier``).
    ``patch_size=0``: :func:`default_patch`; ``pool``: what the model's features are, the ``cls`` token or the
    ``mean`` patch token (default: cls where there is a class token)."""

    data_shape: tuple[int, ...] = (3, 32, 32)
    patch_size: int = 0
    width: int = 192
    depth: int = 12
    heads: int = 3
    mlp_ratio: float = 4.0
    class_token: bool = True
    qkv_bias: bool = True
    norm_eps: float = 1e-6
    pos_order: str = "hw"
    pool: str = ""

    def __post_init__(self) -> None:
        if self.patch_size == 0:  # frozen: filled once, so the saved config holds it
            object.__setattr__(self, "patch_size", default_patch(self.data_shape))
        if not self.pool:
            object.__setattr__(self, "pool", "cls" if self.class_token else "mean")
        patch_grid(self.data_shape, self.patch_size)  # images divisible by the patch, or a clear error
        require(self.mlp_ratio > 0, f"mlp_ratio={self.mlp_ratio} must be positive")
        require(self.pool in ("cls", "mean"), f"pool={self.pool!r} is unknown; choose cls or mean")
        require(self.pool == "mean" or self.class_token, "pool=cls needs class_token=true; use pool=mean")

    @property
    def grid(self) -> tuple[int, int]:
        return patch_grid(self.data_shape, self.patch_size)

    def encoder(self) -> ViTEncoder:
        return ViTEncoder(self.data_shape, self.patch_size, self.width, self.depth, self.heads, self.mlp_ratio,
                          self.class_token, self.qkv_bias, self.norm_eps, self.pos_order)


def pooled(h: torch.Tensor, pool: str, class_token: bool) -> torch.Tensor:
    """Features ``[B, D]`` of encoded tokens ``h [B, (1 +) L, D]``: the class token, or the mean patch token."""
    if pool == "cls":
        return h[:, 0]
    return h[:, 1:].mean(1) if class_token else h.mean(1)


@dataclass(frozen=True)
class ViTPreset:
    width: int
    depth: int
    heads: int
    decoder_width: int
    decoder_depth: int
    decoder_heads: int


# Encoder sizes of Touvron et al. 2021 (DeiT tiny, small) and Dosovitskiy et al. 2021 (base); MAE's decoder for
# base (512 wide, 8 deep), and lighter ones, in proportion, for the smaller encoders.
PRESETS = {
    "tiny": ViTPreset(192, 12, 3, 128, 2, 4),
    "small": ViTPreset(384, 12, 6, 256, 4, 8),
    "base": ViTPreset(768, 12, 12, 512, 8, 16),
}


def default_patch(data_shape: Sequence[int]) -> int:
    """The patch when none is chosen: 16 for images of 128 pixels a side or more (224 -> 14 x 14), else 4
    (28 -> 7 x 7, 32 -> 8 x 8)."""
    return 16 if len(data_shape) == 3 and min(data_shape[1:]) >= 128 else 4


def block_flops(tokens: int, width: int, mlp_ratio: float) -> int:
    """Multiply-adds x 2 of one block's matrix products on ``tokens`` tokens: q/k/v and output projections
    (4 N D^2), the attention scores and their weighted sum (2 N^2 D) and the MLP (2 r N D^2)."""
    n, d = tokens, width
    return 2 * (4 * n * d * d + 2 * n * n * d + 2 * int(mlp_ratio * d) * n * d)
