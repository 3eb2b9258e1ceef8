"""InfoVAE (Zhao, Song & Ermon 2019, "InfoVAE: Balancing Learning and Inference in Variational Autoencoders").

The VAE's encoder, decoder, Gaussian posterior and prior, trained on the InfoVAE objective

    L = E_{p_D(x)} E_{q(z|x)}[log p(x|z)] - (1 - alpha) E_{p_D(x)} KL(q(z|x) || p(z))
        - (alpha + lambda - 1) D(q(z) || p(z)),

which weighs the mutual information between x and z (alpha) against the match of the aggregate posterior
q(z) = E_{p_D} q(z|x) to the prior (lambda). alpha = 0, lambda = 1 is the ELBO; alpha = 1 drops the per-example
KL (the MMD-VAE). The divergence D is the maximum mean discrepancy between the batch's posterior draws, one
z ~ q(z|x) per example, and as many prior draws (:mod:`aekit.nn.divergences`): the unbiased U-statistic of
MMD^2, with an RBF (default) or inverse multiquadric kernel summed over the widths C = s * 2 d sigma_z^2,
s in ``kernel_scales``. A grid of latents ``[*L, D]`` is one vector of d = prod(L) D coordinates per example.

Terms: ``recon``, ``kl`` weighted 1 - alpha and ``mmd`` weighted alpha + lambda - 1 (one value per batch); the
ELBO, -(recon + kl), is logged. ``alpha`` and ``lambda_`` are shorthand for ``terms.kl`` and ``terms.mmd``, which
win where set. The defaults, alpha = 0 and lambda = 1000, keep the ELBO's KL and add 999 times the MMD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aekit.config import require
from aekit.models.base import Autoencoder, RegularisedConfig
from aekit.nn.regularisers import MMDSettings
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class InfoVAEConfig(MMDSettings, RegularisedConfig):
    """``alpha`` (<= 1) and ``lambda_`` (> 0, alpha + lambda >= 1): the objective's two weights; ``kernel`` (rbf,
    imq), ``kernel_scales`` and ``prior_variance`` (sigma_z^2): the MMD's kernel and its widths."""

    alpha: float = 0.0
    lambda_: float = 1000.0
    kernel: str = "rbf"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(math.isfinite(self.alpha) and self.alpha <= 1, f"alpha={self.alpha} must be a finite number <= 1 "
                "(the KL's weight is 1 - alpha)")
        require(self.lambda_ > 0 and self.alpha + self.lambda_ >= 1, f"lambda_={self.lambda_} must be > 0 with "
                f"alpha + lambda_ >= 1 (the MMD's weight is alpha + lambda_ - 1 = {self.alpha + self.lambda_ - 1:g})")
        self.check_mmd()


@register_model("info-vae", config=InfoVAEConfig,
                description="InfoVAE: ELBO + (1 - alpha) KL + (alpha + lambda - 1) MMD(q(z), p(z)) (Zhao et al. 2019)")
class InfoVAE(Autoencoder):
    default_bottleneck = "gaussian"
    default_regulariser = "mmd"
    default_objective = "elbo"
    needs_prior = True
    suites = ("reconstruction", "variational", "representation")

    def own_terms(self) -> dict[str, Term]:
        """The KL weighted 1 - alpha and the MMD alpha + lambda - 1."""
        alpha, lam = self.config.alpha, self.config.lambda_
        return {"recon": Term(), "kl": Term(weight=1.0 - alpha, label="beta"),
                **self.regulariser_terms(mmd=alpha + lam - 1.0)}
