"""Multiply importance weighted autoencoder, MIWAE (Rainforth, Kosiorek, Le, Maddison, Igl, Wood & Teh 2018,
"Tighter Variational Bounds are Not Necessarily Better").

A tighter bound is not a better target for the inference network: the signal-to-noise ratio of the IWAE bound's
gradient for the inference network falls as O(sqrt(M / K)) while the generative network's rises as O(sqrt(M K)),
with M independent bounds of K importance samples each. MIWAE spends M K samples per input on the mean of M
independent IWAE bounds of K samples,

    ELBO_MIWAE(x) = (1/M) sum_{m=1..M} log (1/K) sum_{k=1..K} w_{m,k},   w_{m,k} = p(x, z_{m,k}) / q(z_{m,k}|x),

which is the IWAE bound at M = 1 and the M-sample ELBO at K = 1. The M K samples are drawn as one batch
``[M K, B, D]`` and grouped ``[M, K, B]`` (:func:`aekit.models.iwae.grouped`). The defaults, M = K = 8, spend
64 samples per input. Any of the gradient estimators of :mod:`aekit.models.iwae` applies (``gradient_estimator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.config import require
from aekit.models.iwae import ImportanceWeighted, IWAEConfig, bound_term
from aekit.models.vae import VAE
from aekit.objectives import Routed, Term
from aekit.parts import register_part
from aekit.registry import register_model


@register_part("objectives", "miwae", "negative mean of M IWAE bounds of K samples each (M = n_bounds)")
class MIWAEBound(ImportanceWeighted):
    """The term ``miwae`` = -ELBO_MIWAE(M, K) over the output's M K samples."""

    bound_terms: ClassVar[dict[str, Term]] = {"miwae": Term()}

    def __init__(self, terms, model: str = "the model", gradient_estimator: str = "reparam", n_bounds: int = 1) -> None:
        super().__init__(terms, model, gradient_estimator)
        self.n_bounds = n_bounds

    def bounds(self, out) -> dict[str, torch.Tensor | Routed]:
        return {"miwae": bound_term(out, self.n_bounds, self.estimator)}


@dataclass(frozen=True)
class MIWAEConfig(IWAEConfig):
    """``n_bounds`` is M, the independent bounds per input, and ``n_samples`` is K, each bound's importance
    samples: the model draws M K samples per input."""

    n_bounds: int = 8
    n_samples: int = 8
    objective: str = "miwae"

    def __post_init__(self) -> None:
        require(self.n_bounds >= 1, f"n_bounds={self.n_bounds}: M, the number of bounds, must be >= 1")
        require(self.n_samples >= 1, f"n_samples={self.n_samples}: K, each bound's samples, must be >= 1")
        super().__post_init__()

    @property
    def samples_per_input(self) -> int:
        return self.n_bounds * self.n_samples


register_model("miwae", config=MIWAEConfig,
               description="MIWAE: the mean of M IWAE bounds of K samples (Rainforth et al. 2018)")(VAE)
