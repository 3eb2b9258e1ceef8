"""Training objectives: they weigh a model output's loss terms into the number that is minimised.

Loss convention: per example, sum over data dimensions; mean over the batch; in nats. Weights and their
schedules (beta, KL warm-up, free bits) live here, not in the models, so that a schedule can change them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from aekit.config import require

SCHEDULES = ("constant", "linear", "cyclical")


@dataclass(frozen=True)
class Schedule:
    """A weight over training steps.

    constant: ``value``; linear: warm-up from 0 to ``value`` over ``warmup_steps`` (Bowman et al. 2016);
    cyclical: ``cycles`` repeats of a ramp over the first half of each cycle of ``period`` steps, then
    ``value`` (Fu et al. 2019).
    """

    value: float = 1.0
    kind: str = "constant"
    warmup_steps: int = 0
    period: int = 1000
    cycles: int = 4

    def __post_init__(self) -> None:
        require(self.kind in SCHEDULES, f"beta_schedule={self.kind!r} is unknown; choose one of {', '.join(SCHEDULES)}")
        require(self.warmup_steps >= 0, f"warmup_steps={self.warmup_steps} must be >= 0")
        require(self.period > 0 and self.cycles > 0, "period and cycles must be positive")

    def __call__(self, step: int | None) -> float:
        """The weight at ``step``; None: the weight every ramp ends on (``value``)."""
        if step is None:
            return self.value
        if self.kind == "linear" and self.warmup_steps > 0:
            return self.value * min(1.0, step / self.warmup_steps)
        if self.kind == "cyclical" and step < self.period * self.cycles:
            phase = (step % self.period) / self.period
            return self.value * min(1.0, 2.0 * phase)
        return self.value


@dataclass
class Loss:
    """total: what the optimiser minimises (per named optimiser in ``losses``); logs: floats to record."""

    losses: dict[str, torch.Tensor]
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return self.losses["model"]


class Objective:
    """Weighs a model output's terms at training ``step``. ``step=None`` gives the objective the schedules end
    on (every warm-up or cycle finished): what validation scores, so that validation losses taken during a
    warm-up compare with those taken after it (model selection, early stopping)."""

    def __call__(self, out, step: int | None) -> Loss:
        raise NotImplementedError


class Reconstruction(Objective):
    """E_batch[-log p(x | z)]: the deterministic and denoising autoencoders' loss."""

    def __call__(self, out, step: int | None) -> Loss:
        recon = out.terms["recon"].mean()
        return Loss(losses={"model": recon}, logs={"loss": recon, "recon": recon})


@dataclass
class ELBO(Objective):
    """Negative evidence lower bound, with a weight on the KL (Higgins et al. 2017, beta-VAE):

        L = E_q[-log p(x|z)] + beta(t) * KL(q(z|x) || p(z)).

    With ``free_bits = lambda > 0`` each latent dimension's batch-mean KL below lambda is not penalised
    (Kingma et al. 2016): KL_fb = sum_d max(lambda, E_batch[KL_d]).
    """

    beta: Schedule = field(default_factory=Schedule)
    free_bits: float = 0.0

    def __call__(self, out, step: int | None) -> Loss:
        recon = out.terms["recon"].mean()
        kl = out.terms["kl"].mean()
        beta = self.beta(step)
        kl_term = kl
        if self.free_bits > 0:
            kl_term = out.latent.stats["kl_per_dim"].mean(0).clamp(min=self.free_bits).sum()
        loss = recon + beta * kl_term
        return Loss(
            losses={"model": loss},
            logs={"loss": loss, "recon": recon, "kl": kl, "elbo": -(recon + kl), "beta": beta},
        )


def is_finite(value: torch.Tensor | float) -> bool:
    return math.isfinite(float(value))
