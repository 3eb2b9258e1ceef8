"""Hierarchical VAEs: several stochastic layers, the VAE or IWAE objective through all of them.

The generative model is a chain from the top, p(x, z_1..L) = p(x | z_1) p(z_1 | z_2) ... p(z_{L-1} | z_L) p(z_L),
p(z_L) = N(0, I), each conditional a diagonal Gaussian from an MLP. The bound is the VAE's or the IWAE's over the
whole chain,

    ELBO(x) = E_q[log p(x | z_1)] - sum_l E_q[KL(q(z_l | .) || p(z_l | z_{l+1}))],
    L_k(x) = E[log (1/k) sum_i p(x | z_1^i) p(z_1..L^i) / q(z_1..L^i | x)],

with the per-layer KLs logged (``kl_layer1``, ``kl_layer2``, ...). The two inference networks
(:mod:`aekit.nn.hierarchical`):

- ``hierarchical-vae`` / ``hierarchical-iwae``: bottom-up, q(z_1 | x) q(z_2 | z_1) ... (Burda, Grosse &
  Salakhutdinov 2016, the two-stochastic-layer models of their Table 1: latent_dim=100, upper_latents=[50],
  hidden=[200, 200], transition_hidden=[100, 100], activation=tanh).
- ``ladder-vae``: the Ladder VAE (Sonderby, Raiko, Maaloe, Sonderby & Winther 2016), a deterministic bottom-up
  pass whose estimates are merged top-down with p(z_l | z_{l+1}) by precision,
  sigma_q^2 = 1 / (sigma^^-2 + sigma_p^-2), mu_q = (mu^ sigma^^-2 + mu_p sigma_p^-2) sigma_q^2. The paper warms the
  KL up (``beta_schedule=linear warmup_steps=...``).

The layers are the bottleneck's (``bottleneck=hierarchical`` or ``ladder``), so any variational model takes them
(``aekit train iwae bottleneck=hierarchical bottleneck.layers=[50]``); these entries name the usual recipes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from aekit.config import require
from aekit.models.iwae import IWAEConfig
from aekit.models.vae import VAE, VAEConfig
from aekit.registry import register_model


@dataclass(frozen=True)
class HierarchicalVAEConfig(VAEConfig):
    """``latent_dim`` is z_1's size (what the decoder reads), ``upper_latents`` the sizes of the layers above it
    (at least one), ``transition_hidden`` the hidden widths of the MLP between two layers (each q(z_{l+1} | z_l) or
    ladder step, and each p(z_l | z_{l+1})), with the model's ``activation``: shorthands for
    ``bottleneck.layers``, ``bottleneck.hidden`` and ``bottleneck.activation``."""

    latent_dim: int = 32
    bottleneck: str = "hierarchical"
    upper_latents: tuple[int, ...] = (16,)
    transition_hidden: tuple[int, ...] = (64, 64)
    shorthands: ClassVar[dict[str, tuple[str, str]]] = {
        "upper_latents": ("bottleneck", "layers"), "transition_hidden": ("bottleneck", "hidden"),
        "activation": ("bottleneck", "activation")}

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.upper_latents) >= 1, "upper_latents=[]: a hierarchical VAE needs at least 2 stochastic "
                "layers; give the sizes of the layers above the first, e.g. upper_latents=[16] (or use vae)")
        require(all(d >= 1 for d in self.upper_latents), f"upper_latents={list(self.upper_latents)} must hold "
                "positive sizes")
        require(all(w >= 1 for w in self.transition_hidden), f"transition_hidden={list(self.transition_hidden)} "
                "must hold positive widths")


@dataclass(frozen=True)
class LadderVAEConfig(HierarchicalVAEConfig):
    bottleneck: str = "ladder"


@dataclass(frozen=True)
class HierarchicalIWAEConfig(HierarchicalVAEConfig, IWAEConfig):
    """The hierarchical VAE trained on the k-sample bound (``n_samples`` = k, ``gradient_estimator``)."""

    n_samples: int = 5
    objective: str = "iwae"


register_model("hierarchical-vae", config=HierarchicalVAEConfig,
               description="VAE with stacked stochastic layers, bottom-up inference (Burda et al. 2016)")(VAE)
register_model("hierarchical-iwae", config=HierarchicalIWAEConfig,
               description="IWAE with stacked stochastic layers: the two-layer model of Burda et al. 2016")(VAE)
register_model("ladder-vae", config=LadderVAEConfig,
               description="Ladder VAE: bottom-up estimates merged with the top-down prior (Sonderby et al. 2016)")(VAE)
