"""AutoGen (Mansbridge, Fierimonte, Feige & Barber 2018, "Improving latent variable descriptiveness with AutoGen").

A VAE tied to an autoencoder that must reconstruct x from the same latent code: its lower bound is the ELBO with
a pre-factor m on the reconstruction term,

    ELBO_m(x) = m E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),   m >= 1,

so that the code must describe x more fully; m = 1 is the VAE's ELBO. It is the VAE's weighted terms with the
weight m on ``recon`` (beta, its schedule and free bits on the KL as the VAE's); the logged ``elbo`` stays the
ordinary ELBO, -(recon + kl), whatever m is. The paper's m counts reconstructions of x, whole numbers; here m is
any finite number >= 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class AutoGenConfig(VAEConfig):
    """``m``: the copies of x the reconstruction term counts, the weight on ``recon`` (shorthand for
    ``terms.recon=m``, which wins where both are set); m = 1 is the VAE."""

    m: float = 2.0

    def __post_init__(self) -> None:
        require(math.isfinite(self.m) and self.m >= 1, f"m={self.m}: AutoGen counts the reconstruction term m "
                "times; give a finite number >= 1 (m = 1 is the VAE)")
        super().__post_init__()


@register_model("autogen", config=AutoGenConfig,
                description="AutoGen: the reconstruction term taken m times, m E_q[log p(x|z)] - KL "
                            "(Mansbridge et al. 2018)")
class AutoGen(VAE):
    """The VAE with the weight m on its reconstruction term."""

    def own_terms(self) -> dict[str, Term]:
        return {**super().own_terms(), "recon": Term(weight=self.config.m)}
