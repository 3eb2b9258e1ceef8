"""Combination importance weighted autoencoder, CIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018,
"Tighter Variational Bounds are Not Necessarily Better").

The IWAE bound's gradient for the inference network loses its signal as K grows, the ELBO's does not; CIWAE
trains both networks on a convex combination of the two, from the same K samples per input,

    ELBO_CIWAE(x) = beta ELBO_VAE(x) + (1 - beta) ELBO_IWAE(x),
    ELBO_VAE = (1/K) sum_k log w_k,   ELBO_IWAE = log (1/K) sum_k w_k,   beta in [0, 1],

a bound between the two (the ELBO at beta = 1, IWAE at beta = 0). It is the weighted sum of two terms: ``vae``
= -ELBO_VAE with weight beta and ``iwae`` = -ELBO_IWAE with weight 1 - beta, so the logged loss is -ELBO_CIWAE;
each bound is logged as ``vae_bound`` and ``iwae_bound``, and the combination as ``ciwae_bound``. The defaults,
beta = 0.5 and K = 64, weigh the two bounds equally over 64 samples per input.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.config import require
from aekit.models.iwae import ImportanceWeighted, IWAEConfig, bound_term
from aekit.models.vae import VAE
from aekit.objectives import Routed, Term
from aekit.parts import register_part
from aekit.registry import register_model


@register_part("objectives", "ciwae", "beta ELBO + (1 - beta) IWAE over the same k samples (terms vae, iwae)")
class CIWAEBounds(ImportanceWeighted):
    """The terms ``vae`` = -ELBO_VAE and ``iwae`` = -ELBO_IWAE over the output's K samples, weighted beta and
    1 - beta by the model (:class:`CIWAE`; 0.5 each where no model weighs them)."""

    bound_terms: ClassVar[dict[str, Term]] = {"vae": Term(weight=0.5), "iwae": Term(weight=0.5)}

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        n_samples = out.log_px_z.shape[0]  # ELBO_VAE: K bounds of one sample each
        return {"vae": bound_term(out, n_samples, self.estimator), "iwae": bound_term(out, 1, self.estimator)}

    def derived_logs(self, logs: dict) -> dict:
        bounds = super().derived_logs(logs)
        beta, one_minus_beta = (self.terms[name].weight(None) for name in ("vae", "iwae"))
        return {**bounds, "ciwae_bound": beta * bounds["vae_bound"] + one_minus_beta * bounds["iwae_bound"]}


@dataclass(frozen=True)
class CIWAEConfig(IWAEConfig):
    """``beta`` weighs the ELBO against the IWAE bound, in [0, 1] (shorthand for ``terms.vae=beta
    terms.iwae=1-beta``); ``n_samples`` is K, the samples both bounds share."""

    beta: float = 0.5
    n_samples: int = 64
    objective: str = "ciwae"

    def __post_init__(self) -> None:
        require(math.isfinite(self.beta) and 0 <= self.beta <= 1,
                f"beta={self.beta}: CIWAE's beta mixes the ELBO and the IWAE bound; give a number in [0, 1]")
        require(self.beta_schedule == "constant", f"beta_schedule={self.beta_schedule!r}: CIWAE's beta is a "
                "constant mix of two bounds; set terms.vae and terms.iwae to weigh them otherwise")
        require(self.n_samples >= 1, f"n_samples={self.n_samples}: K, the samples both bounds share, must be >= 1")
        super().__post_init__()


@register_model("ciwae", config=CIWAEConfig,
                description="CIWAE: beta ELBO + (1 - beta) IWAE from the same K samples (Rainforth et al. 2018)")
class CIWAE(VAE):
    """The VAE with beta on the two bounds rather than on the KL, which an importance-weighted objective only logs."""

    def own_terms(self) -> dict[str, Term]:
        beta = self.config.beta
        return {"recon": Term(), "kl": Term(), "vae": Term(weight=beta), "iwae": Term(weight=1.0 - beta)}
