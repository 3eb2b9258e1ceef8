"""beta-TCVAE (Chen, Li, Grosse & Duvenaud 2018, "Isolating Sources of Disentanglement in Variational
Autoencoders").

The VAE's encoder, Gaussian posterior, factorised prior N(0, I) and decoder, with the KL term of the ELBO split in
three (Chen et al. 2018, eqs. 2 and 4),

    E_p(x)[KL(q(z|x) || p(z))] = I_q(z; x) + KL(q(z) || prod_k q(z_k)) + sum_k KL(q(z_k) || p(z_k)),
    L = E_q[-log p(x|z)] + alpha I_q(z; x) + beta TC(z) + gamma sum_k KL(q(z_k) || p(z_k)),

each part estimated per example from the batch's posteriors (log q(z) and log q(z_k) by minibatch-stratified
sampling, the default, or minibatch-weighted sampling; :mod:`aekit.nn.disentangling`). The parts are per-example
terms ``mi``, ``tc`` and ``dim_kl`` computed with batch statistics; they sum, example by example, to the sampled
KL log q(z|x) - log p(z), whose mean over q is the closed-form ``kl``, logged (with the ELBO) and not minimised.
Defaults: alpha = gamma = 1 (the paper's beta-TCVAE) and beta = 6; the estimator needs N, the training set's size,
which the training loop gives the objective.
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require, require_choice, require_weight
from aekit.models.vae import VAE, VAEConfig
from aekit.nn.disentangling import ESTIMATORS
from aekit.objectives import Schedule, Term
from aekit.registry import register_model


@dataclass(frozen=True)
class BetaTCVAEConfig(VAEConfig):
    """``alpha``, ``beta`` and ``gamma``: the weights of the index-code MI, the total correlation and the
    dimension-wise KL (shorthand for ``terms.mi``, ``terms.tc`` and ``terms.dim_kl``); beta's schedule is the VAE's
    (``beta_schedule``, ``warmup_steps``, ...); ``estimator``: ``mss`` (minibatch-stratified) or ``mws``
    (minibatch-weighted)."""

    alpha: float = 1.0
    beta: float = 6.0
    gamma: float = 1.0
    estimator: str = "mss"

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.alpha, "alpha")
        require_weight(self.gamma, "gamma")
        require_choice(self.estimator, ESTIMATORS, "estimator")
        require(self.free_bits == 0, f"free_bits={self.free_bits}: beta-tcvae splits the KL it would floor; "
                "leave free_bits at 0")
        require(self.prior == "standard-normal", f"prior={self.prior!r}: the dimension-wise KL needs a factorised "
                "prior; use prior=standard-normal")


@register_model("beta-tcvae", config=BetaTCVAEConfig,
                description="beta-TCVAE: the KL split into MI, total correlation and dimension-wise KL, weighted "
                            "alpha, beta, gamma; minibatch-stratified sampling (Chen et al. 2018)")
class BetaTCVAE(VAE):
    default_objective = "tc-decomposition"

    def own_terms(self) -> dict[str, Term]:
        """``mi`` weighted alpha, ``tc`` beta(t), ``dim_kl`` gamma; the closed-form ``kl`` logged only."""
        c = self.config
        beta = Schedule(c.beta, c.beta_schedule, c.warmup_steps, c.cycle_steps, c.cycles)
        return {"recon": Term(), "kl": Term(log_only=True), "mi": Term(weight=c.alpha),
                "tc": Term(weight=beta, label="beta"), "dim_kl": Term(weight=c.gamma)}
