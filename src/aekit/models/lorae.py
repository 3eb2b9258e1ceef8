"""Low-rank autoencoder, LoRAE (Mazumder, Baruah, Kumar, Sharma, Pattanaik & Rathore 2024, "Learning Low-Rank
Latent Spaces with Simple Deterministic Autoencoder: Theoretical and Empirical Insights").

A deterministic autoencoder whose batch of codes Z = [z_1; ...; z_B] ``[B, d]`` is pushed towards a low rank by
its nuclear norm, the sum of its singular values (the convex envelope of the rank on the spectral-norm ball):

    L = (1/B) sum_i -log p(x_i | dec(z_i)) + lambda * ||Z||_*,   ||Z||_* = sum_k sigma_k(Z).

The term ``nuclear`` is one value per batch (it depends on the whole batch), weighted lambda (``lambda_``,
shorthand for ``terms.nuclear``); a grid of latents is one row of d = prod(L) D coordinates per example.
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.models.base import RegularisedAutoencoder, RegularisedConfig
from aekit.registry import register_model


@dataclass(frozen=True)
class LoRAEConfig(RegularisedConfig):
    """``lambda_``: the nuclear norm's weight."""

    lambda_: float = 0.01


@register_model("lorae", config=LoRAEConfig,
                description="Low-rank autoencoder: reconstruction + lambda ||Z||_*, the batch code matrix's "
                            "nuclear norm (Mazumder et al. 2024)")
class LoRAE(RegularisedAutoencoder):
    default_regulariser = "nuclear-norm"
    lambda_term = "nuclear"
