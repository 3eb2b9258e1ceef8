"""Coupled variational autoencoder, C-VAE (Hao & Shafto 2023, "Coupled Variational Autoencoder", ICML).

The C-VAE poses the VAE as an entropic optimal transport problem between the data distribution and the prior,
with the decoder's negative log-likelihood as the cost. Within a batch of n examples x_i and m draws from the
prior z~_j ~ p(z), with the uniform weights a = 1/n and b = 1/m,

    C_ij = -log p(x_i | z~_j),
    L_C-VAE = min_{P 1 = a, P^T 1 = b}  <P, C> + eps KL(P || a b^T),

the coupling P found by Sinkhorn's iterations with the decoder held fixed (:mod:`aekit.nn.transport`), and the
decoder then descends <P, C> with P fixed (the gradient of the entropic transport cost, by the envelope
theorem). The row P_i. / a_i is a posterior over the prior draws, and at eps = 1 the loss is the negative ELBO
with that posterior, sum_i a_i (E_q(z|x_i)[-log p(x_i|z)] + KL(q(z|x_i) || p^(z))), under the constraint that the
aggregate posterior is the prior (the column marginal b): the coupling leaves no hole in the prior. The paper
solves the problem in its primal (Sinkhorn within a batch, as here), dual and semi-dual forms; its code's Sinkhorn
path multiplies the mutual information by eps twice, which makes no difference at eps = 1.

The coupling is the regulariser ``coupling`` (term ``coupling``, per example: n times its row's share), and the
decoder is trained by it alone. The paper's model has no encoder; here a Gaussian encoder is fitted alongside as
an amortised posterior by the ELBO, whose gradient reaches the encoder only (the term ``posterior`` of the
``coupled`` objective, :class:`aekit.objectives.Routed`): it gives ``embed`` and ``reconstruct`` and the proposal
of the importance-sampled log-likelihood, and changes nothing in the decoder's training. ``recon``, ``kl`` and
the ELBO are logged. ``epsilon`` (1) is eps, ``prior_draws`` (128) is m.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from aekit.config import require
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.regularisers import Regulariser
from aekit.nn.transport import check_epsilon, entropic_cost, sinkhorn
from aekit.objectives import ELBO, Routed, Term, reaching
from aekit.parts import PartContext, register_part
from aekit.registry import register_model


def check_coupling(epsilon: float, prior_draws: int, sinkhorn_iterations: int) -> None:
    check_epsilon(epsilon)
    require(prior_draws >= 1, f"prior_draws={prior_draws}: the coupling needs m >= 1 draws from the prior per batch")
    require(sinkhorn_iterations >= 1, f"sinkhorn_iterations={sinkhorn_iterations} must be >= 1")


@register_part("regularisers", "coupling", "entropic OT coupling of the batch with prior draws, cost -log p(x|z) "
               "(term coupling)")
class OTCoupling(Regulariser):
    """``coupling``: n (<P, C> + eps KL(P || a b^T)) row by row, per example ``[B]``, for the entropic optimal
    plan P between the batch and ``prior_draws`` draws from the model's prior, with the decoder's negative
    log-likelihood as the cost (module docstring)."""

    terms: ClassVar[dict[str, Term]] = {"coupling": Term()}
    needs_prior = True
    part_name = "coupling"

    def __init__(self, context: PartContext, epsilon: float = 1.0, prior_draws: int = 128,
                 sinkhorn_iterations: int = 1000) -> None:
        super().__init__(context)
        check_coupling(epsilon, prior_draws, sinkhorn_iterations)
        self.epsilon, self.prior_draws, self.sinkhorn_iterations = float(epsilon), prior_draws, sinkhorn_iterations

    def cost(self, x: torch.Tensor) -> torch.Tensor:
        """C_ij = -log p(x_i | z~_j) ``[n, m]`` for m fresh prior draws z~_j."""
        model = self.model()
        prior = model.bottleneck.prior
        z = prior.sample(self.prior_draws, device=x.device).to(x.dtype)  # [m, *L, D]
        params = model.decode(z.unsqueeze(1))  # [m, 1, *P]
        params = params.expand(params.shape[0], x.shape[0], *params.shape[2:])  # [m, n, *P]
        return model.likelihood.nll(params, x).t().contiguous()  # [m, n] -> [n, m] (a copy: compiled, a view breaks)

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        require(condition is None, "regulariser=coupling couples the data with an unconditional prior; use a model "
                "without condition_dim")
        cost = self.cost(x)  # [n, m]
        plan = sinkhorn(cost.detach(), self.epsilon, max_iterations=self.sinkhorn_iterations).plan
        return {"coupling": x.shape[0] * entropic_cost(plan, cost, self.epsilon)}


@register_part("objectives", "coupled", "the coupling for the decoder; the ELBO (term posterior) for the encoder "
               "only; recon and kl logged")
class CoupledTerms(ELBO):
    """The weighted terms with ``posterior`` = -ELBO = recon + kl, reaching the inference network only; ``recon``
    and ``kl`` are logged (with the ELBO) and not minimised otherwise."""

    posterior_terms: ClassVar[dict[str, Term]] = {"posterior": Term()}

    def __init__(self, terms: dict[str, Term], model: str = "the model") -> None:
        logged = {name: dataclasses.replace(terms[name], log_only=True) for name in ("recon", "kl") if name in terms}
        own = {name: terms.get(name, default) for name, default in self.posterior_terms.items()}
        super().__init__({**terms, **logged, **own}, model)

    routes_gradients = True

    def extra_terms(self, out) -> dict[str, torch.Tensor | Routed]:
        return {"posterior": reaching(out.terms["recon"] + out.terms["kl"], "inference")}


@dataclass(frozen=True)
class CoupledVAEConfig(VAEConfig):
    """``epsilon``: the entropic regularisation eps (> 0; 1 makes the loss an ELBO over the coupling);
    ``prior_draws``: m, the prior draws coupled with each batch; ``sinkhorn_iterations``: the most Sinkhorn
    updates per batch. ``beta`` does not apply (there is no KL to weigh; ``terms.coupling`` weighs the coupling)."""

    objective: str = "coupled"
    epsilon: float = 1.0
    prior_draws: int = 128
    sinkhorn_iterations: int = 1000

    def __post_init__(self) -> None:
        check_coupling(self.epsilon, self.prior_draws, self.sinkhorn_iterations)
        require(self.condition_dim == 0, f"condition_dim={self.condition_dim}: the C-VAE couples the data with an "
                "unconditional prior; leave condition_dim at 0")
        require(math.isfinite(self.beta) and self.beta == 1.0 and self.free_bits == 0, f"beta={self.beta}, "
                f"free_bits={self.free_bits}: the C-VAE has no KL term to weigh; leave them at 1 and 0")
        super().__post_init__()


@register_model("coupled-vae", config=CoupledVAEConfig,
                description="Coupled VAE: entropic OT between the batch and prior draws, cost -log p(x|z) "
                            "(Hao & Shafto 2023)")
class CoupledVAE(VAE):
    """The VAE whose decoder learns from the entropic OT coupling with prior draws, and whose encoder is fitted to
    the decoder's posterior by the ELBO."""

    default_regulariser = "coupling"

    def own_terms(self) -> dict[str, Term]:
        return {"recon": Term(log_only=True), "kl": Term(log_only=True), "posterior": Term(),
                **self.regulariser_terms()}
