"""Partially importance weighted autoencoder, PIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018,
"Tighter Variational Bounds are Not Necessarily Better", section 5).

A tighter bound helps the generative network theta (the signal-to-noise ratio of its gradient grows as
O(sqrt(M K))) and hurts the inference network phi (O(sqrt(M / K))). PIWAE gives each network its own target,
from the same M K samples per input: the generative network ascends the IWAE bound of all M K samples and the
inference network the MIWAE bound of M groups of K,

    Delta theta  ~  d/d theta ELBO_IWAE(x; M K) = d/d theta log (1/(M K)) sum_{m,k} w_{m,k},
    Delta phi    ~  d/d phi ELBO_MIWAE(x; M, K) = d/d phi (1/M) sum_m log (1/K) sum_k w_{m,k}.

Both are terms of one objective, each reaching only its network's parameters (:class:`aekit.objectives.Routed`):
``iwae`` the decoder, likelihood and prior, ``miwae`` the encoder and posterior. The logged loss is their sum, and
each bound is logged as ``iwae_bound`` and ``miwae_bound``. The defaults, M = K = 8, spend 64 samples per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.models.iwae import bound_term
from aekit.models.miwae import MIWAEBound, MIWAEConfig
from aekit.models.vae import VAE
from aekit.objectives import Routed, Term, reaching
from aekit.parts import register_part
from aekit.registry import register_model


@register_part("objectives", "piwae", "the MIWAE(M, K) bound for the encoder, IWAE(M K) for the decoder")
class PIWAEBounds(MIWAEBound):
    """The term ``miwae`` = -ELBO_MIWAE(M, K) for the inference network and ``iwae`` = -ELBO_IWAE(M K) for the
    generative network, over the output's M K samples."""

    bound_terms: ClassVar[dict[str, Term]] = {"miwae": Term(), "iwae": Term()}
    routes_gradients = True

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        return {"miwae": reaching(bound_term(out, self.n_bounds, self.estimator), "inference"),
                "iwae": reaching(bound_term(out, 1, self.estimator), "generative")}


@dataclass(frozen=True)
class PIWAEConfig(MIWAEConfig):
    """``n_bounds`` is M and ``n_samples`` K: the inference network's M bounds of K samples; the generative
    network's one bound of all M K."""

    objective: str = "piwae"


register_model("piwae", config=PIWAEConfig,
               description="PIWAE: IWAE(M K) for the decoder, MIWAE(M, K) for the encoder (Rainforth et al. 2018)")(VAE)
