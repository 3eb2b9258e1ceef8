"""Hyperspherical VAE, S-VAE (Davidson, Falorsi, De Cao, Kipf & Tomczak 2018, "Hyperspherical Variational
Auto-Encoders"), with the Power Spherical posterior as an option (De Cao & Aziz 2020).

The latent lives on the unit sphere S^{d-1} in R^d, the prior is uniform on it, and the posterior is a von
Mises-Fisher distribution q(z|x) = C_d(kappa) exp(kappa mu^T z), mu = mu(x) of unit norm, kappa = kappa(x) >= 1
(:mod:`aekit.nn.spherical`). The bound is the VAE's with the analytic KL (Davidson et al., eq. 5-6):

    ELBO(x) = E_q[log p(x|z)] - KL(vMF(mu, kappa) || U(S^{d-1})),
    KL = kappa I_{d/2}(kappa) / I_{d/2-1}(kappa) + log C_d(kappa) + log |S^{d-1}|.

``distribution=power-spherical`` puts the Power Spherical distribution q(z|x) proportional to (1 + mu^T z)^kappa in
its place: sampled without rejection and reparameterised exactly, the vMF's recommended replacement at high
dimension (De Cao & Aziz 2020).

``svae``: ``latent_dim`` 10 (Davidson et al. train d in {2, 5, 10, 20, 40} on MNIST), ``distribution`` vmf;
``prior`` uniform-sphere. The posterior is the bottleneck's (``bottleneck=spherical``), so any variational model takes
it (``aekit train iwae bottleneck=spherical prior=uniform-sphere``); ``distribution`` is a shorthand for
``bottleneck.distribution``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aekit.models.vae import VAE, VAEConfig
from aekit.nn.spherical import check_spherical
from aekit.registry import register_model


@dataclass(frozen=True)
class SVAEConfig(VAEConfig):
    """``distribution``: ``vmf`` (the default) or ``power-spherical``; ``latent_dim`` = d >= 2, the sphere S^{d-1}
    in R^d."""

    bottleneck: str = "spherical"
    prior: str = "uniform-sphere"
    latent_dim: int = 10
    distribution: str = "vmf"
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"distribution": ("bottleneck", "distribution")}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_spherical(self.distribution, self.latent_dim, "distribution")


register_model("svae", config=SVAEConfig,
               description="Hyperspherical VAE: a von Mises-Fisher posterior and a uniform prior on the sphere "
                           "(Davidson et al. 2018); distribution=power-spherical (De Cao & Aziz 2020)")(VAE)
