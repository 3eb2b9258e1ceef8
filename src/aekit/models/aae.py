"""Adversarial autoencoder (Makhzani, Shlens, Jaitly, Goodfellow & Frey 2016).

An autoencoder whose aggregated posterior q(z) = E_x q(z|x) is matched to a prior p(z) by a discriminator D in
latent space instead of a KL term:

    reconstruction:  min_{enc,dec}  E_x[-log p(x | dec(enc(x)))]
    regularisation:  min_D  -E_{z~p}[log D(z)] - E_x[log(1 - D(enc(x)))]      (optimiser ``discriminator``)
                     min_enc -E_x[log D(enc(x))]                               (the encoder fools D)

The three phases run in one training step: the model's optimiser takes the reconstruction plus ``adv_weight``
times the encoder's adversarial term, the discriminator's optimiser takes its own loss, each reaching only its
own parameters. The encoder is deterministic by default (``bottleneck=gaussian`` gives the paper's Gaussian
posterior variant); samples decode z ~ p(z).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.models.base import Autoencoder, AutoencoderConfig, AutoencoderOutput
from aekit.nn.backbones import mlp
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class AAEConfig(AutoencoderConfig):
    """``disc_hidden``: the discriminator MLP's widths; ``adv_weight``: the encoder's adversarial term's weight."""

    disc_hidden: tuple[int, ...] = (256, 256)
    adv_weight: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(h > 0 for h in self.disc_hidden), f"disc_hidden={self.disc_hidden} must hold positive widths")
        require(self.adv_weight >= 0, f"adv_weight={self.adv_weight} must be >= 0")


class LatentDiscriminator(nn.Module):
    """D(z): the logit that z was drawn from the prior rather than from the encoder, ``[B, D] -> [B]``."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], act: str) -> None:
        super().__init__()
        self.net = mlp((latent_dim, *hidden, 1), act, last_activation=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def adversarial_terms(discriminator: nn.Module, z_q: torch.Tensor, z_prior: torch.Tensor):
    """``(adv, disc, accuracy)``: the encoder's term -log D(z_q) and the discriminator's -log D(z_p) -
    log(1 - D(z_q)) per example ``[B]`` (the discriminator's side sees z_q detached), and its accuracy."""
    d_fake = discriminator(z_q)  # [B], the encoder's side of the game
    d_fake_detached = discriminator(z_q.detach())
    d_real = discriminator(z_prior)
    adv = F.softplus(-d_fake)  # -log sigmoid(D(z_q))
    disc = F.softplus(-d_real) + F.softplus(d_fake_detached)  # -log D(z_p) - log(1 - D(z_q))
    with torch.no_grad():
        accuracy = 0.5 * ((d_real > 0).float().mean() + (d_fake_detached < 0).float().mean())
    return adv, disc, accuracy


class WithLatentDiscriminator:
    """A model with a latent discriminator D(z), ``discriminator``, of its config's ``disc_hidden`` widths, on an
    optimiser of its own (listed before the model's class among the bases)."""

    def __init__(self, config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        self.discriminator = LatentDiscriminator(math.prod(self.bottleneck.latent_shape), tuple(config.disc_hidden),
                                                 config.activation)  # a grid of latents is judged whole

    def own_optimizers(self) -> tuple[str, ...]:
        return ("discriminator",)


@register_model("aae", config=AAEConfig,
                description="Adversarial autoencoder: a latent discriminator matches q(z) to p(z) (Makhzani 2016)")
class AAE(WithLatentDiscriminator, Autoencoder):
    needs_prior = True

    def own_terms(self) -> dict[str, Term]:
        """``adv`` weighted by ``adv_weight`` in the model's loss, ``disc`` the discriminator's own loss, and a
        Gaussian encoder's KL logged only (the discriminator, not a KL, shapes q(z); ``terms.kl.log_only=false``
        keeps it)."""
        return adversarial_own_terms(self.config.adv_weight, kl_weight=0.0, batch=False)

    def forward(self, x, n_samples: int = 1, eps=None, noise=None, target=None, condition=None,
                z_prior: torch.Tensor | None = None) -> AutoencoderOutput:
        """Adds ``adv`` = -log D(enc(x)) and ``disc`` = -log D(z_p) - log(1 - D(enc(x))) per example; ``z_prior``
        passes the prior draws in (one per example)."""
        out = super().forward(x, n_samples=n_samples, eps=eps, noise=noise, target=target, condition=condition)
        z_q = out.latent.z[0].flatten(1)  # [B, D] (or [B, *L * D]): the code, a Gaussian posterior's first sample
        if z_prior is None:
            z_prior = self.bottleneck.prior.sample(z_q.shape[0], device=z_q.device).to(z_q.dtype)
        z_prior = z_prior.flatten(1)
        out.terms["adv"], out.terms["disc"], out.latent.stats["disc_accuracy"] = adversarial_terms(
            self.discriminator, z_q, z_prior)
        return out


def adversarial_own_terms(adv_weight: float, kl_weight: float, batch: bool) -> dict[str, Term]:
    """The terms of an adversarially regularised autoencoder: ``recon``; ``adv`` = -log D(enc(x)) weighted by
    ``adv_weight`` in the model's loss; ``disc``, the discriminator's cross-entropy, in its own optimiser's; a
    variational encoder's ``kl`` weighted by ``kl_weight`` (0: logged only). ``batch``: one value per batch (a
    graph) rather than per example."""
    kl = Term(weight=kl_weight, batch=batch, label="beta") if kl_weight > 0 else Term(batch=batch, log_only=True)
    return {"recon": Term(batch=batch), "adv": Term(weight=adv_weight, batch=batch),
            "disc": Term(optimizer="discriminator", batch=batch), "kl": kl}
