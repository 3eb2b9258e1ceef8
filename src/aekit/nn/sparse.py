"""Sparse dictionary parts: a sparse autoencoder is the one ``Autoencoder`` with these parts.

- backbone ``dictionary``: the encoder passes the input through as a vector (the bottleneck holds the encoder's
  one linear map) and the decoder is a dictionary x_hat = W_dec z + b_dec whose D columns (atoms) have unit norm.
  Two step hooks keep them so: before the optimiser step the gradient's component parallel to each column is
  removed, after it (and after weight averaging) the columns are renormalised (Bricken et al. 2023; Gao et al.
  2024, Sec. 2.1).
- bottleneck ``topk``: z = ReLU(TopK_k(W_enc (x - b_pre) + b_enc)), the k largest pre-activations of each row kept
  and the others set to 0 (Gao et al. 2024, "Scaling and evaluating sparse autoencoders", Eq. 1-2). Over a
  ``dictionary`` decoder, b_pre is the decoder's bias b_dec (subtracted before encoding, added back by the
  decoder) and the encoder starts as the decoder's transpose, W_enc = W_dec^T (Sec. 2.1), tied when the model is
  built (``bind``). Its ``l0`` term (logged, not trained) is each row's number of active latents.

    aekit train ae --data acts.npy backbone=dictionary bottleneck=topk bottleneck.k=32 latent_dim=4096 \\
        likelihood=gaussian
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part


class VectorInput(nn.Module):
    """``x [B, *S] -> [B, prod(S)]``: the input as one vector, for a bottleneck that holds the encoder."""

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.out_features = math.prod(data_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class Dictionary(nn.Module):
    """``z [N, D] -> x_hat [N, *S]`` = W_dec z + b_dec with unit-norm columns of ``weight`` ``[X, D]`` (X the
    data's size), kept by the step hooks (module docstring)."""

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.data_shape = tuple(data_shape)
        size = math.prod(self.data_shape)
        self.weight = nn.Parameter(F.normalize(torch.randn(size, latent_dim), dim=0))  # [X, D]
        self.bias = nn.Parameter(torch.zeros(size))  # b_dec [X]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.weight, self.bias).view(-1, *self.data_shape)

    @torch.no_grad()
    def before_optimizer_step(self, ctx) -> None:
        """Remove from each column's gradient its component along the column: g_d <- g_d - (w_d . g_d) w_d."""
        w, g = self.weight, self.weight.grad
        if g is not None:
            g.sub_(w * (w * g).sum(0, keepdim=True))

    @torch.no_grad()
    def after_optimizer_step(self, ctx) -> None:
        self.after_average()

    @torch.no_grad()
    def after_average(self) -> None:
        """Columns back to unit norm."""
        self.weight.div_(self.weight.norm(dim=0, keepdim=True).clamp_min(1e-12))


@register_part("backbones", "dictionary", "the input as a vector, and a decoder of unit-norm atoms x_hat = W z + b "
               "(sparse autoencoders)")
def dictionary_backbone(hidden, channels, act, *, context: PartContext) -> tuple[nn.Module, nn.Module]:
    if context.n_params != 1:
        raise ConfigError("backbone=dictionary decodes one value per input element; choose a likelihood with a fixed "
                          "scale (likelihood=gaussian, the sparse autoencoder's squared error)")
    if context.condition_dim:
        raise ConfigError("backbone=dictionary takes no condition; drop condition_dim")
    return VectorInput(context.data_shape), Dictionary(context.latent_dim, context.data_shape)


@register_part("bottlenecks", "topk", "TopK sparse code: the k largest pre-activations of each row, the rest 0 "
               "(Gao et al. 2024)")
class TopK(Bottleneck):
    """z = ReLU(TopK_k(W_enc (h - b_pre) + b_enc)) (module docstring); ``k``: the active latents of each row."""

    terms = {"l0": Term(log_only=True)}

    def __init__(self, context: PartContext, prior=None, k: int = 32) -> None:
        super().__init__(context)
        require(isinstance(k, int) and 1 <= k <= self.latent_dim,
                f"bottleneck.k={k} must be a whole number from 1 to latent_dim={self.latent_dim}")
        self.k = k
        self.proj = nn.Linear(self.in_features, self.latent_dim)  # W_enc, b_enc
        self.model = None

    def bind(self, model) -> None:
        """Over a dictionary decoder of the input's size: the encoder starts as its transpose, b_enc = 0."""
        decoder = getattr(model, "decoder", None)
        if isinstance(decoder, Dictionary) and tuple(decoder.weight.shape) == (self.in_features, self.latent_dim):
            self.model = ModelRef(model)
            with torch.no_grad():
                self.proj.weight.copy_(decoder.weight.t())
                self.proj.bias.zero_()

    def pre_activations(self, h: torch.Tensor) -> torch.Tensor:
        """W_enc (h - b_pre) + b_enc, ``[B, D]``; b_pre is the dictionary's bias where the decoder is one."""
        if self.model is not None:
            h = h - self.model().decoder.bias
        return self.proj(h)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        pre = self.pre_activations(h)  # [B, D]
        top = pre.topk(self.k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z,
                                terms={"l0": (z != 0).sum(-1).to(z.dtype)})
