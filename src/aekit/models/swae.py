"""Sliced-Wasserstein autoencoder (Kolouri, Pope, Martin & Rohde 2019, "Sliced Wasserstein Auto-Encoders").

A deterministic autoencoder whose codes are matched to a prior p(z) by the sliced Wasserstein distance between
the batch's codes z_1..z_B and as many prior draws z~_1..z~_B, estimated over L random directions theta_l drawn
uniformly on the unit sphere at every step:

    L = E_x[-log p(x | dec(enc(x)))] + lambda * SW_2^2(q(z), p(z)),
    SW_2^2 ~ (1/L) sum_l (1/B) sum_i (sort(theta_l . z)_i - sort(theta_l . z~)_i)^2,

each direction's term the exact squared 2-Wasserstein distance between the two projected sets (in one dimension
the optimal coupling matches the sorted values; :mod:`aekit.nn.divergences`). The prior is any that can sample
(``prior=NAME``): the distance needs only its draws, never its density. ``projections`` is L (50 by default);
``lambda_`` weighs the term ``swd``, one value per batch (shorthand for ``terms.swd``). A grid of latents is one
vector per example. Samples decode z ~ p(z).
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.models.base import ProjectedConfig, RegularisedAutoencoder
from aekit.registry import register_model


@dataclass(frozen=True)
class SWAEConfig(ProjectedConfig):
    """``lambda_``: the sliced Wasserstein term's weight; ``projections``: L, the random directions per step."""

    lambda_: float = 10.0
    projections: int = 50


@register_model("swae", config=SWAEConfig,
                description="Sliced-Wasserstein autoencoder: reconstruction + lambda SW_2^2(q(z), p(z)) "
                            "(Kolouri et al. 2019)")
class SWAE(RegularisedAutoencoder):
    default_regulariser = "sliced-wasserstein"
    lambda_term = "swd"
    needs_prior = True
