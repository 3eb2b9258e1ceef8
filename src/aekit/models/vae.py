"""Variational autoencoder (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017).

q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), and the evidence lower bound

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),

estimated with S reparameterised samples z_s = mu + sigma * eps_s. beta-VAE weighs the KL by beta (> 1
for disentangling); the weight may be warmed up or cycled, and free bits keep a KL floor per dimension. With a
capacity C > 0, beta-VAE minimises instead (Burgess et al. 2018, "Understanding disentangling in beta-VAE", eq. 8)

    L(t) = E_q(z|x)[-log p(x|z)] + gamma * |KL(q(z|x) || p(z)) - C(t)|,   C(t) = C min(1, t / capacity_steps),

the batch's mean KL held near a capacity that rises linearly from 0 to C.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from aekit.config import require, require_weight
from aekit.models.base import Autoencoder, AutoencoderConfig
from aekit.objectives import SCHEDULES, Schedule, Term
from aekit.registry import register_model


@dataclass(frozen=True)
class VAEConfig(AutoencoderConfig):
    """``beta`` and its schedule (``beta_schedule``, ``warmup_steps``, ``cycle_steps``, ``cycles``) and
    ``free_bits`` are the KL term's weight and floor: shorthand for ``terms.kl.*``, which wins where both are set."""

    n_samples: int = 1
    beta: float = 1.0
    beta_schedule: str = "constant"
    warmup_steps: int = 0
    cycle_steps: int = 1000
    cycles: int = 4
    free_bits: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_samples >= 1, f"n_samples={self.n_samples} must be >= 1")
        require(self.beta >= 0, f"beta={self.beta} must be >= 0")
        require(self.beta_schedule in SCHEDULES,
                f"beta_schedule={self.beta_schedule!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        require(self.free_bits >= 0, f"free_bits={self.free_bits} must be >= 0")

    @property
    def samples_per_input(self) -> int:
        """The posterior samples drawn per input (S in ``z [S, B, D]``)."""
        return self.n_samples


@dataclass(frozen=True)
class BetaVAEConfig(VAEConfig):
    """``capacity`` (C, nats, > 0 to use it), ``capacity_steps`` and ``gamma``: Burgess et al.'s
    gamma |KL - C(t)| in place of beta KL (shorthand for ``terms.kl.capacity``, ``terms.kl.capacity_steps`` and
    ``terms.kl``, which win where set); the paper's dSprites run: C = 25, gamma = 1000."""

    beta: float = 4.0
    capacity: float = 0.0
    capacity_steps: int = 0
    gamma: float = 1000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_weight(self.capacity, "capacity")
        require(self.capacity_steps >= 0, f"capacity_steps={self.capacity_steps} must be >= 0 (0: C from the start)")
        require_weight(self.gamma, "gamma")
        require(self.capacity == 0 or self.free_bits == 0, f"capacity={self.capacity} and free_bits={self.free_bits}"
                " are two floors on the KL; set one of them")


@register_model(
    "vae", config=VAEConfig, description="Variational autoencoder, Gaussian posterior (Kingma & Welling 2014)"
)
class VAE(Autoencoder):
    default_bottleneck = "gaussian"
    default_objective = "elbo"
    needs_prior = True
    suites = ("reconstruction", "variational", "representation")

    def own_terms(self) -> dict[str, Term]:
        """The KL weighted by beta(t) (Higgins et al. 2017), warmed up (Bowman et al. 2016) or cycled (Fu et al.
        2019), with free bits (Kingma et al. 2016)."""
        c = self.config
        beta = Schedule(c.beta, c.beta_schedule, c.warmup_steps, c.cycle_steps, c.cycles)
        return {**super().own_terms(), "kl": Term(weight=beta, free_bits=c.free_bits, label="beta")}

    def forward(self, x, n_samples=None, eps=None, noise=None, target=None, condition=None):
        return super().forward(x, n_samples or self.config.samples_per_input, eps=eps, noise=noise, target=target,
                               condition=condition)


@register_model(
    "beta-vae", config=BetaVAEConfig,
    description="beta-VAE: KL weighted by beta, warm-up, cycles, free bits (Higgins et al. 2017); capacity "
                "annealing gamma |KL - C(t)| (Burgess et al. 2018)",
)
class BetaVAE(VAE):
    def own_terms(self) -> dict[str, Term]:
        """The VAE's KL weighted by beta(t), or, with ``capacity`` > 0, gamma |KL - C(t)| (Burgess et al. 2018)."""
        terms, c = super().own_terms(), self.config
        if c.capacity > 0:
            terms["kl"] = dataclasses.replace(terms["kl"], weight=Schedule(c.gamma), capacity=c.capacity,
                                              capacity_steps=c.capacity_steps)
        return terms
