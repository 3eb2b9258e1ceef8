"""DIP-VAE (Kumar, Sattigeri & Balakrishnan 2018, "Variational Inference of Disentangled Latent Concepts from
Unlabeled Observations").

The VAE's parts and ELBO, plus a penalty that matches a covariance of the codes to the identity (their eqs. 6, 7):

    L = -ELBO + lambda_od sum_{i != j} [Cov]_ij^2 + lambda_d sum_i ([Cov]_ii - 1)^2,

with Cov = Cov_p(x)[mu(x)], the posterior means' covariance, for DIP-VAE-I, and Cov = Cov_q(z)[z] = E_p(x)[Sigma(x)]
+ Cov_p(x)[mu(x)], the aggregate posterior's, for DIP-VAE-II, each over the batch. The penalty is the ``dip``
regulariser (:class:`aekit.nn.disentangling.DIPPenalty`): terms ``dip_od`` and ``dip_d``, one value per batch.
Defaults: lambda_od = 10, and lambda_d = 10 lambda_od for I, lambda_od for II (the paper's ratios).
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require_choice, require_weight
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.disentangling import DIP_TYPES
from aekit.objectives import Term
from aekit.registry import register_model


@dataclass(frozen=True)
class DIPVAEConfig(VAEConfig):
    """``dip_type``: I or II; ``lambda_od`` and ``lambda_d``: the off-diagonal and diagonal penalties' weights
    (shorthand for ``terms.dip_od`` and ``terms.dip_d``); ``lambda_d = 0`` takes the paper's, 10 lambda_od for I
    and lambda_od for II (``terms.dip_d=0`` drops the diagonal penalty)."""

    dip_type: str = "I"
    lambda_od: float = 10.0
    lambda_d: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_choice(self.dip_type, DIP_TYPES, "dip_type")
        require_weight(self.lambda_od, "lambda_od")
        require_weight(self.lambda_d, "lambda_d")

    @property
    def diagonal_weight(self) -> float:
        if self.lambda_d > 0:
            return self.lambda_d
        return self.lambda_od * (10.0 if self.dip_type == "I" else 1.0)


@register_model("dip-vae", config=DIPVAEConfig,
                description="DIP-VAE I/II: ELBO + the codes' covariance pushed to the identity (Kumar et al. 2018)")
class DIPVAE(VAE):
    default_regulariser = "dip"

    def own_terms(self) -> dict[str, Term]:
        """The VAE's terms, ``dip_od`` weighted lambda_od and ``dip_d`` lambda_d."""
        c = self.config
        return {**super().own_terms(), **self.regulariser_terms(dip_od=c.lambda_od, dip_d=c.diagonal_weight)}
