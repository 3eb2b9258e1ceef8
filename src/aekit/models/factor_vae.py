"""FactorVAE (Kim & Mnih 2018, "Disentangling by Factorising").

The VAE's parts and ELBO plus gamma times the total correlation of the aggregate posterior, estimated by a
discriminator D that tells codes z ~ q(z) from codes with each coordinate shuffled across the batch, samples of
prod_k q(z_k) (their eqs. 2 and 3, Algorithm 1):

    model:          min_{enc,dec}  E_q[-log p(x|z)] + KL(q(z|x) || p(z)) + gamma E_q(z)[log D(z) / (1 - D(z))]
    discriminator:  min_D  -E_q(z)[log D(z)] - E_prod_k q(z_k)[log(1 - D(z~))]      (optimiser ``discriminator``)

The discriminator is an MLP (the paper's: five hidden layers of 1000 units) on its own optimiser; the shuffled
codes come from the same batch as the codes (the paper draws a second batch). The TC term's gradient reaches the
encoder only, the discriminator's loss D's weights only (:func:`aekit.nn.disentangling.factor_tc_terms`).
gamma = 6.4 by default; the paper tunes it per data set (tens on 2D Shapes).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aekit.config import require, require_weight
from aekit.models.aae import WithLatentDiscriminator
from aekit.models.base import AutoencoderOutput
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.disentangling import factor_tc_terms
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class FactorVAEConfig(VAEConfig):
    """``gamma``: the total correlation's weight (shorthand for ``terms.tc``); ``disc_hidden``: the discriminator
    MLP's widths (its optimiser: ``optimizers.discriminator.*``)."""

    gamma: float = 6.4
    disc_hidden: tuple[int, ...] = (1000,) * 5

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.gamma, "gamma")
        require(all(h > 0 for h in self.disc_hidden), f"disc_hidden={self.disc_hidden} must hold positive widths")


@register_model("factor-vae", config=FactorVAEConfig,
                description="FactorVAE: ELBO + gamma TC, the TC from a discriminator on shuffled codes, its own "
                            "optimiser (Kim & Mnih 2018)")
class FactorVAE(WithLatentDiscriminator, VAE):
    def own_terms(self) -> dict[str, Term]:
        """The VAE's terms, ``tc`` weighted gamma, and ``disc``, the discriminator's own loss."""
        return {**super().own_terms(), "tc": Term(weight=self.config.gamma),
                "disc": Term(optimizer="discriminator")}

    def forward(self, x, n_samples=None, eps=None, noise=None, target=None, condition=None,
                permutation: torch.Tensor | None = None) -> AutoencoderOutput:
        """Adds ``tc`` = logit D(z) and ``disc`` per example for the first posterior sample z; ``permutation
        [B, d]`` passes in the shuffle of each coordinate (:func:`~aekit.nn.disentangling.permute_dims`)."""
        out = super().forward(x, n_samples, eps=eps, noise=noise, target=target, condition=condition)
        z = out.latent.z[0].flatten(1)  # [B, d]
        out.terms["tc"], out.terms["disc"], out.latent.stats["disc_accuracy"] = factor_tc_terms(
            self.discriminator, z, permutation)
        return out
