"""Unscented Autoencoder, UAE (Janjos, Rosenbaum, Dolgov & Zoellner 2023, "Unscented Autoencoder", ICML).

The decoder maps the Gaussian posterior q(z|x) = N(mu, Sigma), Sigma = diag sigma^2, to a distribution over x;
the UAE represents q by the deterministic sigma points of the unscented transform (Julier & Uhlmann 1997) rather
than by random draws. Over the d coordinates of an example's code,

    chi_0 = mu,   chi_i = mu + sqrt(d + kappa) sigma_i e_i,   chi_{d+i} = mu - sqrt(d + kappa) sigma_i e_i,
    w_0 = kappa / (d + kappa),   w_i = w_{d+i} = 1 / (2 (d + kappa)),   i = 1..d,

2d + 1 points whose weighted mean and covariance are mu and Sigma exactly. The KL is replaced by a regulariser
on the posterior's moments, a Wasserstein-style distance of N(mu, Sigma) from N(0, I) in norms:

    L_UAE(x) = sum_{i=0..2d} w_i [-log p(x | chi_i)] + beta (||Sigma^{1/2} - I||_F + ||mu||_2).

(The squared 2-Wasserstein distance of the two Gaussians is ||mu||_2^2 + ||Sigma^{1/2} - I||_F^2; the authors'
released code penalises the sum of the two norms, unsquared, as here.) The sigma points are a sampling mode of the
Gaussian bottleneck (``bottleneck.sampling=sigma_points``, :func:`aekit.nn.bottlenecks.unscented_sigma_points`),
whose weights the reconstruction term takes; the regulariser is the term ``frobenius`` of the ``unscented``
objective, and the KL is logged only (with the ELBO it gives, for comparison with a VAE). A forward decodes
2d + 1 points per input: 33 at the default d = 16.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.bottlenecks import check_kappa
from aekit.objectives import ELBO, Term
from aekit.parts import register_part
from aekit.registry import register_model


def frobenius_regulariser(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """||Sigma^{1/2} - I||_F + ||mu||_2 per example ``[B]`` for q = N(mu, diag exp(logvar)), from ``mu, logvar
    [B, *L, D]`` (every coordinate of an example's code)."""
    sigma = torch.exp(0.5 * logvar).flatten(1)  # [B, d]
    return torch.linalg.vector_norm(sigma - 1.0, dim=-1) + torch.linalg.vector_norm(mu.flatten(1), dim=-1)


@register_part("objectives", "unscented", "the UAE's: reconstruction + ||Sigma^1/2 - I||_F + ||mu||_2 (term "
               "frobenius), the KL logged only")
class UnscentedTerms(ELBO):
    """The weighted terms with ``frobenius`` (:func:`frobenius_regulariser`) computed from the posterior's
    parameters in the output, in place of the KL, which is logged (with the ELBO) and not minimised."""

    regulariser_terms: ClassVar[dict[str, Term]] = {"frobenius": Term(label="beta")}

    def __init__(self, terms: dict[str, Term], model: str = "the model") -> None:
        logged = {"kl": dataclasses.replace(terms["kl"], log_only=True)} if "kl" in terms else {}
        own = {name: terms.get(name, default) for name, default in self.regulariser_terms.items()}
        super().__init__({**terms, **logged, **own}, model)

    def extra_terms(self, out) -> dict[str, torch.Tensor]:
        params = out.latent.params
        require("mu" in params and "logvar" in params, f"objective=unscented regularises a Gaussian posterior's "
                f"mu and logvar; {self.model}'s bottleneck gives {', '.join(params) or 'none'}; use "
                "bottleneck=gaussian")
        return {"frobenius": frobenius_regulariser(params["mu"], params["logvar"])}


@dataclass(frozen=True)
class UnscentedAEConfig(VAEConfig):
    """``kappa`` spreads the sigma points, sqrt(d + kappa) posterior standard deviations from the mean, and sets
    the mean point's weight kappa / (d + kappa); d + kappa > 0 (the default, 1e-3, is the authors' code's).
    ``beta`` and its schedule weigh the regulariser ``frobenius`` that replaces the KL (shorthand for
    ``terms.frobenius``). ``n_samples`` does not apply: the sigma points are 2d + 1 per input."""

    objective: str = "unscented"
    kappa: float = 1e-3

    def __post_init__(self) -> None:
        check_kappa(self.kappa, self.latent_dim)
        require(self.free_bits == 0, f"free_bits={self.free_bits}: the UAE's regulariser is not a sum over latent "
                "dimensions, so it has no floor per dimension; leave free_bits at 0")
        options: dict[str, dict[str, Any]] = {kind: dict(values) for kind, values in self.options.items()}
        bottleneck = options.setdefault("bottleneck", {})
        bottleneck.setdefault("sampling", "sigma_points")
        bottleneck.setdefault("kappa", self.kappa)
        object.__setattr__(self, "options", options)
        super().__post_init__()
        require(math.isfinite(self.beta), f"beta={self.beta} must be a finite number >= 0")


@register_model("unscented-ae", config=UnscentedAEConfig,
                description="Unscented autoencoder: sigma points of q, ||Sigma^1/2 - I||_F + ||mu||_2 for the KL "
                            "(Janjos et al. 2023)")
class UnscentedAE(VAE):
    """The VAE with the sigma points of its posterior for samples and beta on the moment regulariser; its KL is
    logged only."""

    def own_terms(self) -> dict[str, Term]:
        beta = super().own_terms()["kl"].weight  # the VAE's beta(t), on the regulariser that replaces the KL
        return {"recon": Term(), "kl": Term(log_only=True), "frobenius": Term(weight=beta, label="beta")}
