"""Poincaré VAE, P^c-VAE (Mathieu, Le Lan, Maddison, Tomioka & Teh 2019, "Continuous Hierarchical Representations
with Poincaré Variational Auto-Encoders").

The latent lives on the Poincaré ball B_c^d of curvature -c, whose volume grows exponentially with the radius, as a
tree's nodes do with depth. The posterior and the prior are wrapped normals (:mod:`aekit.nn.poincare`),

    q(z|x) = N^W_c(exp_0(mu(x)), diag sigma^2(x)),   p(z) = N^W_c(0, I),
    log N^W_c(z | mu, sigma^2) = log N(lambda_mu log_mu(z); 0, sigma^2) - (d - 1) log(sinh(sqrt(c) r) / (sqrt(c) r)),
    r = d_c(mu, z),

and the bound is the VAE's with the KL estimated over the samples (their eq. 6):

    ELBO(x) = E_q[log p(x|z) + log N^W_c(z | 0, I) - log N^W_c(z | mu, sigma^2)].

The decoder reads z in the ball's coordinates, or through a first layer of gyroplanes, the signed geodesic
distances to learnt hyperplanes of the ball (``backbone=gyroplane-mlp``; their eq. 7).

``poincare-vae``: ``curvature`` c = 1 (Pythae 0.1.2's default), ``latent_dim`` 2 (the paper's MNIST runs use d = 2
to 10). The posterior is the bottleneck's (``bottleneck=poincare``), so any variational model takes it, and
``curvature`` is a shorthand for ``bottleneck.curvature``, ``prior.curvature`` and, with the gyroplane layer,
``backbone.curvature``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aekit.models.vae import VAE, VAEConfig
from aekit.nn.poincare import check_curvature
from aekit.registry import register_model


@dataclass(frozen=True)
class PoincareVAEConfig(VAEConfig):
    """``curvature`` = c > 0: the ball B_c^d of radius 1 / sqrt(c), shared by the posterior and the prior."""

    bottleneck: str = "poincare"
    prior: str = "wrapped-normal"
    latent_dim: int = 2
    curvature: float = 1.0
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {"curvature": ("bottleneck", "curvature")}

    def __post_init__(self) -> None:
        check_curvature(self.curvature, "curvature")
        super().__post_init__()
        curvature = self.options["bottleneck"]["curvature"]
        options = dict(self.options)  # the prior and a gyroplane layer on the posterior's ball
        if self.prior == "wrapped-normal":  # (another prior is refused by the bottleneck)
            options["prior"] = {"curvature": curvature, **options.get("prior", {})}
        if self.backbone == "gyroplane-mlp":
            options["backbone"] = {"curvature": curvature, **options.get("backbone", {})}
        object.__setattr__(self, "options", options)


register_model("poincare-vae", config=PoincareVAEConfig,
               description="Poincaré VAE: wrapped normal posterior and prior on the Poincaré ball of curvature -c "
                           "(Mathieu et al. 2019)")(VAE)
