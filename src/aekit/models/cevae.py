"""Context-encoding variational autoencoder, ceVAE (Zimmerer, Kohl, Petersen, Isensee & Maier-Hein 2018).

A VAE and a context encoder (Pathak et al. 2016) that share one encoder and one decoder. The VAE branch scores
the clean image; the context-encoding branch hides random rectangles of it (:class:`aekit.nn.corruptions.
ContextMask`) and reconstructs the whole image from the posterior mean of the masked one:

    L_ceVAE(x) = L_VAE(x) + lambda * L_CE(x),
    L_VAE(x) = E_q(z|x)[-log p(x|z)] + beta * KL(q(z|x) || p(z)),
    L_CE(x)  = -log p(x | z = mu(x_tilde)),   x_tilde = x with rectangles replaced by noise.

Learning to inpaint makes the decoder model the image's context, not just copy it, so the reconstruction of an
anomalous region falls back to what normal tissue around it would look like. Scoring (:mod:`aekit.anomaly`)
combines the reconstruction error with the density: the pixel map |x - x_hat| * |d(-ELBO)/dx| (the paper's
``combi``), summed over pixels for a sample score; the negative ELBO alone is the density score.
StRegA (Chatterjee et al. 2022) uses this model on brain MRI.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aekit.config import require
from aekit.data.batch import Batch
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.corruptions import ContextMask
from aekit.objectives import Term
from aekit.registry import register_model

CONTEXT_FILLS = ("noise", "zero")


@dataclass(frozen=True)
class CEVAEConfig(VAEConfig):
    """``ce_weight``: lambda; ``context_size``: the largest rectangle side as a share of the image's side;
    ``context_boxes``: up to this many rectangles per image; ``context_fill``: what hides them."""

    ce_weight: float = 1.0
    context_size: float = 0.5
    context_boxes: int = 3
    context_fill: str = "noise"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.ce_weight >= 0, f"ce_weight={self.ce_weight} must be >= 0")
        require(0 < self.context_size <= 1, f"context_size={self.context_size} must lie in (0, 1]")
        require(self.context_boxes >= 1, f"context_boxes={self.context_boxes} must be >= 1")
        require(self.context_fill in CONTEXT_FILLS,
                f"context_fill={self.context_fill!r} is unknown; choose one of {', '.join(CONTEXT_FILLS)}")


@register_model("ce-vae", config=CEVAEConfig,
                description="Context-encoding VAE: a VAE that also inpaints hidden rectangles (Zimmerer et al. 2018)")
class CEVAE(VAE):
    """The ELBO's terms (beta, warm-up, free bits as the VAE's) plus ``ce`` = L_CE weighted by ``ce_weight``
    (lambda). Validation outputs carry no ``ce`` term (the model is in eval mode), so validation scores the ELBO
    alone."""

    def __init__(self, config: CEVAEConfig, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self.context = ContextMask(config.context_size, config.context_boxes, config.context_fill)

    def own_terms(self) -> dict[str, Term]:
        return {**super().own_terms(), "ce": Term(weight=self.config.ce_weight)}

    def forward(self, x, n_samples=None, eps=None, noise=None, target=None, condition=None):
        """The VAE's output on the clean x; in training (or given the context ``noise``, NaN where visible) the
        output's terms add ``ce``, the context-encoding branch's -log p(x | mu(x_tilde))."""
        if isinstance(x, Batch):
            x, condition = x.inputs, self.condition_of(x)
        out = super().forward(x, n_samples, eps=eps, target=target, condition=condition)
        if self.training or noise is not None:
            out.terms["ce"] = self.context_encoding(x, noise, condition)
        return out

    def context_encoding(self, x: torch.Tensor, noise: torch.Tensor | None = None,
                         condition: torch.Tensor | None = None) -> torch.Tensor:
        """L_CE per example ``[B]``: hide rectangles of x, encode to the posterior mean, reconstruct all of x."""
        condition = self.check_condition(condition, x.shape[0])
        x_tilde = self.context(x, noise)  # [B, *S]
        mu = self.encode(x_tilde, condition=condition).mean  # [B, D]
        params = self.decode(mu, condition)  # [B, *P]
        return self.likelihood.nll(params.unsqueeze(0), x)[0]  # [B]
