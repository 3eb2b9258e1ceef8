"""Wasserstein autoencoders (Tolstikhin, Bousquet, Gelly & Schoelkopf 2018).

A WAE minimises a relaxation of the optimal transport cost W_c(P_X, P_G) between the data and the model, with a
deterministic encoder (or a Gaussian one, ``bottleneck=gaussian``) whose aggregate posterior Q_Z = E_{P_X} Q(Z|X)
is pushed towards the prior P_Z by a penalty on the whole distribution of codes, not on each example's:

    D_WAE = inf_Q E_{P_X} E_{Q(Z|X)} [c(X, G(Z))] + lambda * D_Z(Q_Z, P_Z).

The cost c is the likelihood's -log p(x | G(z)) (squared error up to scale for ``likelihood=gaussian``, the
paper's c(x, y) = ||x - y||^2). Two penalties D_Z, two models:

- ``wae-mmd`` (Algorithm 2): the maximum mean discrepancy between the batch's codes and as many prior draws, the
  unbiased U-statistic with the inverse multiquadric kernel k(x, y) = C / (C + ||x - y||^2) (default; ``kernel=rbf``
  for a Gaussian one) summed over C = s * 2 d sigma_z^2, s in ``kernel_scales`` (:mod:`aekit.nn.divergences`);
  the term ``mmd``, one value per batch, weighted lambda (``lambda_``, 10 by default).
- ``wae-gan`` (Algorithm 1): a discriminator D in latent space on its own optimiser, as the adversarial
  autoencoder's (:mod:`aekit.models.aae`): the encoder's term ``adv`` = -log D(z~) weighted lambda (``lambda_``,
  1 by default), the discriminator's ``disc`` = -log D(z) - log(1 - D(z~)) for z ~ P_Z, z~ the codes, which reaches
  the discriminator's weights only.

A grid of latents is one vector per example (d = prod(L) D coordinates). Samples decode z ~ P_Z.
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require
from aekit.models.aae import AAE, adversarial_own_terms
from aekit.models.base import RegularisedAutoencoder, RegularisedConfig
from aekit.nn.regularisers import MMDSettings
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class WAEMMDConfig(MMDSettings, RegularisedConfig):
    """``lambda_``: the MMD's weight (shorthand for ``terms.mmd``); ``kernel`` (imq, rbf), ``kernel_scales`` and
    ``prior_variance`` (sigma_z^2): the kernel and its widths."""

    lambda_: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_mmd()


@register_model("wae-mmd", config=WAEMMDConfig,
                description="WAE-MMD: reconstruction + lambda MMD(q(z), p(z)), IMQ kernel (Tolstikhin et al. 2018)")
class WAE(RegularisedAutoencoder):
    default_regulariser = "mmd"
    lambda_term = "mmd"
    needs_prior = True


@dataclass(frozen=True)
class WAEGANConfig(RegularisedConfig):
    """``lambda_``: the encoder's adversarial term's weight (shorthand for ``terms.adv``); ``disc_hidden``: the
    discriminator MLP's widths (its optimiser: ``optimizers.discriminator.*``)."""

    lambda_: float = 1.0
    disc_hidden: tuple[int, ...] = (256, 256)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(all(h > 0 for h in self.disc_hidden), f"disc_hidden={self.disc_hidden} must hold positive widths")


@register_model("wae-gan", config=WAEGANConfig,
                description="WAE-GAN: reconstruction + lambda latent-GAN penalty, a discriminator on its own "
                            "optimiser (Tolstikhin et al. 2018)")
class WAEGAN(AAE):
    """The adversarial autoencoder's discriminator and its game, weighted lambda."""

    def own_terms(self) -> dict[str, Term]:
        return adversarial_own_terms(self.config.lambda_, kl_weight=0.0, batch=False)
