"""Importance weighted autoencoder (Burda, Grosse & Salakhutdinov 2016).

The same encoder, decoder and Gaussian posterior as the VAE, trained on the k-sample importance weighted bound

    L_k(x) = E_{z_1..z_k ~ q(z|x)} [ log (1/k) sum_i w_i ],   w_i = p(x|z_i) p(z_i) / q(z_i|x),

which equals the ELBO at k = 1, increases with k (L_k <= L_{k+1} <= log p(x)) and tends to log p(x) as k grows.
All k samples go through the decoder in one batch ``[k, B, ...]``; the bound is a log-sum-exp over them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.objectives import Term, WeightedTerms, importance_weights
from aekit.parts import register_part
from aekit.registry import register_model


def iwae_bound(out):
    """L_k per example ``[B]``: logsumexp_i log w_i - log k over the k samples of ``out``."""
    log_w = importance_weights(out)  # [k, B]
    return log_w.logsumexp(0) - math.log(log_w.shape[0])


@register_part("objectives", "iwae", "negative k-sample importance weighted bound (k = n_samples)")
class IWAEBound(WeightedTerms):
    """The weighted terms with the term ``iwae`` = -L_k computed from the output's samples; the model's ``recon``
    and ``kl`` are logged only (for comparison with a VAE), and the bound itself as ``iwae_bound``."""

    def __init__(self, terms: dict[str, Term], model: str = "the model") -> None:
        logged = {name: dataclasses.replace(terms[name], log_only=True) for name in ("recon", "kl") if name in terms}
        super().__init__({**terms, **logged, "iwae": Term()}, model)

    def extra_terms(self, out) -> dict:
        return {"iwae": -iwae_bound(out)}

    def derived_logs(self, logs: dict) -> dict:
        return {"iwae_bound": -logs["iwae"]}


@dataclass(frozen=True)
class IWAEConfig(VAEConfig):
    """``n_samples`` is k, the number of importance samples per input (Burda et al. use k = 5 and 50)."""

    n_samples: int = 5
    objective: str = "iwae"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_samples >= 1, f"n_samples={self.n_samples}: the IWAE bound needs k >= 1 samples")


register_model("iwae", config=IWAEConfig,
               description="Importance weighted autoencoder: the k-sample bound (Burda et al. 2016)")(VAE)
