"""VAE-GAN (Larsen, Sonderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned similarity
metric").

A VAE whose reconstruction is scored in the feature space of a GAN's discriminator Dis instead of pixel space.
With z ~ q(z|x) = Enc(x), x~ = Dec(z), z_p ~ p(z) and Dis_l the discriminator's l-th (last hidden) layer:

    L_prior = KL(q(z|x) || p(z))
    L_llike^Dis_l = -E_q(z|x)[log N(Dis_l(x); Dis_l(x~), I)] = E_q[ ||Dis_l(x) - Dis_l(x~)||^2 / 2 ] + const (eqs. 5-6)
    L_GAN = log Dis(x) + log(1 - Dis(Dec(z_p))) + log(1 - Dis(x~))                                      (eq. 4)

with Dis(x) the probability that x is data. Algorithm 1 takes the three gradients from one forward pass and
updates each network by its own loss:

    Enc:  L_prior + L_llike^Dis_l
    Dec:  gamma L_llike^Dis_l + [log(1 - Dis(x~)) + log(1 - Dis(Dec(z_p)))]      (the decoder fools Dis)
    Dis:  -L_GAN                                                                 (optimiser ``discriminator``)

The paper prints the decoder's step as gamma L_llike - L_GAN and the discriminator's as L_GAN, consistent only
when Dis gives the probability of a fake; with eq. 4's Dis the signs are the ones above, so that the decoder is
never trained to help the discriminator. ``generator_loss=non-saturating`` replaces the decoder's bracket by
-log Dis(x~) - log Dis(Dec(z_p)) (Goodfellow et al. 2014's heuristic). The constant of the Gaussian is dropped.

Terms: ``kl``; ``llike`` and ``gan`` (the decoder's bracket), logged and routed by the ``vae-gan`` objective:
``enc_llike`` reaches the inference network only, ``dec_llike`` (weight gamma) and ``dec_gan`` the generative one
only (:class:`~aekit.objectives.Routed`); ``disc`` = -L_GAN per example, on the discriminator's optimiser, sees
x~ and Dec(z_p) detached; ``recon``, the pixel likelihood, weighted 0 (``terms.recon`` adds it). Dis is the
config's backbone's encoder (its last hidden layer is Dis_l) and a linear head to one logit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice, require_weight
from aekit.data.batch import Batch
from aekit.models.base import AutoencoderOutput, feature_shape
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.backbones import make_backbone
from aekit.objectives import ELBO, Routed, Term, reaching
from aekit.parts import PartContext, register_part
from aekit.registry import register_model

GENERATOR_LOSSES = ("minimax", "non-saturating")


@dataclass(frozen=True)
class VAEGANConfig(VAEConfig):
    """``gamma``: the weight of L_llike in the decoder's loss (shorthand for ``terms.dec_llike``);
    ``generator_loss``: the decoder's adversarial term, ``minimax`` (the paper's) or ``non-saturating``; the
    discriminator's body is the config's backbone (its optimiser: ``optimizers.discriminator.*``)."""

    gamma: float = 1.0
    generator_loss: str = "minimax"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.gamma, "gamma")
        require_choice(self.generator_loss, GENERATOR_LOSSES, "generator_loss")
        require(self.n_samples == 1, f"n_samples={self.n_samples}: vae-gan scores one posterior sample x~ per "
                "example; set n_samples=1")


class Discriminator(nn.Module):
    """Dis: ``x [B, *S] -> (Dis_l(x) [B, F], logit [B])``, the backbone's encoder then a linear head."""

    def __init__(self, context: PartContext, config: VAEGANConfig) -> None:
        super().__init__()
        self.body, _ = make_backbone(config.backbone, context, config.hidden, config.channels, config.activation,
                                     **config.options.get("backbone", {}))
        features = feature_shape(self.body) or (1,)
        self.head = nn.Linear(int(torch.Size(features).numel()), 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x).flatten(1)  # [B, F] (a feature map [B, F, h, w] -> [B, F h w])
        return h, self.head(h).squeeze(-1)


def gan_terms(dis: Discriminator, x: torch.Tensor, x_tilde: torch.Tensor, x_p: torch.Tensor,
              generator_loss: str = "minimax") -> dict[str, torch.Tensor]:
    """Per example ``[B]``: ``llike`` = ||Dis_l(x) - Dis_l(x~)||^2 / 2, the decoder's ``gan`` term and the
    discriminator's ``disc`` = -L_GAN, which sees x~ and x_p detached (no gradient to the encoder or decoder)."""
    h_x, logit_x = dis(x)
    h_tilde, logit_tilde = dis(x_tilde)
    _, logit_p = dis(x_p)
    llike = 0.5 * (h_x - h_tilde).pow(2).sum(-1)
    if generator_loss == "minimax":  # log(1 - Dis(x~)) + log(1 - Dis(x_p)), log(1 - sigmoid(a)) = -softplus(a)
        gan = -F.softplus(logit_tilde) - F.softplus(logit_p)
    else:  # -log Dis(x~) - log Dis(x_p)
        gan = F.softplus(-logit_tilde) + F.softplus(-logit_p)
    _, fake_logits = dis(torch.cat([x_tilde, x_p]).detach())  # [2B]
    logit_tilde_d, logit_p_d = fake_logits.chunk(2)
    disc = F.softplus(-logit_x) + F.softplus(logit_tilde_d) + F.softplus(logit_p_d)  # -L_GAN
    return {"llike": llike, "gan": gan, "disc": disc}


@register_model("vae-gan", config=VAEGANConfig,
                description="VAE-GAN: reconstruction in a discriminator's feature space, three updates as Algorithm 1 "
                            "(Larsen et al. 2016)")
class VAEGAN(VAE):
    default_objective = "vae-gan"

    def __init__(self, config: VAEGANConfig, name: str = "vae-gan", **parts) -> None:
        super().__init__(config, name, **parts)
        self.discriminator = Discriminator(self.context, config)

    def own_optimizers(self) -> tuple[str, ...]:
        return ("discriminator",)

    def own_terms(self) -> dict[str, Term]:
        """L_prior as the VAE's ``kl`` (beta), the routed L_llike and decoder's GAN term, and ``disc``."""
        return {**super().own_terms(), "recon": Term(weight=0.0), "llike": Term(log_only=True),
                "gan": Term(log_only=True), "enc_llike": Term(), "dec_llike": Term(weight=self.config.gamma),
                "dec_gan": Term(), "disc": Term(optimizer="discriminator")}

    def forward(self, x, n_samples=None, eps=None, noise=None, target=None, condition=None,
                z_prior: torch.Tensor | None = None) -> AutoencoderOutput:
        """The VAE's output with ``llike``, ``gan`` and ``disc`` (module docstring); ``z_prior [B, *L, D]``
        passes in the prior draws z_p."""
        if isinstance(x, Batch):
            target = x.target if target is None else target
            x, condition = x.inputs, self.condition_of(x)
        out = super().forward(x, n_samples, eps=eps, noise=noise, target=target, condition=condition)
        x_real = x if target is None else target  # [B, *S]
        condition = self.check_condition(condition, x_real.shape[0])
        if z_prior is None:
            z_prior = self.bottleneck.prior.sample(x_real.shape[0], device=x_real.device).to(out.latent.z.dtype)
        x_tilde = self.likelihood.mean(out.x_params[0])  # [B, *S], the reconstruction of the one sample
        x_p = self.likelihood.mean(self.decode(z_prior, condition))  # [B, *S]
        out.terms.update(gan_terms(self.discriminator, x_real, x_tilde, x_p, self.config.generator_loss))
        return out


@register_part("objectives", "vae-gan", "VAE-GAN's updates (Algorithm 1): L_llike to the encoder, gamma L_llike "
               "and the GAN term to the decoder only")
class VAEGANUpdates(ELBO):
    """The weighted terms with ``llike`` and ``gan`` routed: ``enc_llike`` to the inference network,
    ``dec_llike`` and ``dec_gan`` to the generative one."""

    routes_gradients = True

    def extra_terms(self, out) -> dict[str, torch.Tensor | Routed]:
        llike = out.terms["llike"]
        return {"enc_llike": reaching(llike, "inference"), "dec_llike": reaching(llike, "generative"),
                "dec_gan": reaching(out.terms["gan"], "generative")}
