"""Variational autoencoder (Kingma & Welling 2014) and beta-VAE (Higgins et al. 2017).

q(z|x) = N(mu(x), diag sigma^2(x)), p(z) = N(0, I), and the evidence lower bound

    log p(x) >= ELBO(x) = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),

estimated with S reparameterised samples z_s = mu + sigma * eps_s. beta-VAE weighs the KL by beta (> 1
for disentangling); the weight may be warmed up or cycled, and free bits keep a KL floor per dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

from aekit.config import require
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
    beta: float = 4.0


@register_model(
    "vae", config=VAEConfig, description="Variational autoencoder, Gaussian posterior (Kingma & Welling 2014)"
)
@register_model(
    "beta-vae", config=BetaVAEConfig,
    description="beta-VAE: KL weighted by beta, warm-up, cycles, free bits (Higgins et al. 2017)",
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
