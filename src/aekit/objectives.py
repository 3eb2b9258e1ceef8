"""Training objectives: they weigh a model output's loss terms into the numbers that are minimised.

Loss convention: per example, sum over data dimensions; mean over the batch (weighted by the batch's per-example
``weights`` when it has them); in nats. Weights and their schedules (beta, KL warm-up, free bits) live here, not in
the models, so that a schedule can change them. An objective returns one loss per named optimiser
(``Loss.losses``: ``model``, and e.g. ``discriminator`` for adversarial regularisers).

Objectives are parts (``objective=iwae``): each registered factory builds one from a model's config.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from aekit.config import require
from aekit.parts import register_part

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
    """losses: what each named optimiser minimises; logs: floats to record (``loss`` first)."""

    losses: dict[str, torch.Tensor]
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)

    @property
    def total(self) -> torch.Tensor:
        return self.losses["model"]


def batch_mean(term: torch.Tensor, batch=None) -> torch.Tensor:
    """The mean of a per-example term ``[B]`` over the batch, weighted by ``batch.weights`` when given."""
    weights = getattr(batch, "weights", None)
    if weights is None:
        return term.mean()
    weights = weights.to(term.dtype)
    return (term * weights).sum() / weights.sum().clamp(min=torch.finfo(term.dtype).tiny)


def scalar_stats(out) -> dict[str, torch.Tensor]:
    """The output's 0-dim statistics (codebook perplexity, sparsity, mask ratio, ...), to be logged."""
    return {k: v for k, v in out.stats.items() if torch.is_tensor(v) and v.dim() == 0}


class Objective:
    """Weighs a model output's terms at training ``step``. ``step=None`` gives the objective the schedules end
    on (every warm-up or cycle finished): what validation scores, so that validation losses taken during a
    warm-up compare with those taken after it (model selection, early stopping). ``dataset_size``: the number of
    training examples, set by the training loop (for objectives whose estimators need it)."""

    dataset_size: int | None = None

    def __call__(self, out, step: int | None, batch=None) -> Loss:
        raise NotImplementedError


@register_part("objectives", "reconstruction", "E[-log p(x|z)]: deterministic and denoising autoencoders")
class Reconstruction(Objective):
    """E_batch[-log p(x | z)]: the deterministic and denoising autoencoders' loss."""

    def __init__(self, config=None) -> None:
        pass

    def __call__(self, out, step: int | None, batch=None) -> Loss:
        recon = batch_mean(out.terms["recon"], batch)
        return Loss(losses={"model": recon}, logs={"loss": recon, "recon": recon, **scalar_stats(out)})


@dataclass
class ELBO(Objective):
    """Negative evidence lower bound, with a weight on the KL (Higgins et al. 2017, beta-VAE):

        L = E_q[-log p(x|z)] + beta(t) * KL(q(z|x) || p(z)).

    With ``free_bits = lambda > 0`` each latent dimension's batch-mean KL below lambda is not penalised
    (Kingma et al. 2016): KL_fb = sum_d max(lambda, E_batch[KL_d]).
    """

    beta: Schedule = field(default_factory=Schedule)
    free_bits: float = 0.0

    @classmethod
    def from_config(cls, config) -> ELBO:
        schedule = Schedule(getattr(config, "beta", 1.0), getattr(config, "beta_schedule", "constant"),
                            getattr(config, "warmup_steps", 0), getattr(config, "cycle_steps", 1000),
                            getattr(config, "cycles", 4))
        return cls(beta=schedule, free_bits=getattr(config, "free_bits", 0.0))

    def __call__(self, out, step: int | None, batch=None) -> Loss:
        recon = batch_mean(out.terms["recon"], batch)
        kl = batch_mean(out.terms["kl"], batch)
        beta = self.beta(step)
        kl_term = kl
        if self.free_bits > 0:
            kl_per_dim = out.stats.get("kl_per_dim")
            require(kl_per_dim is not None, "free_bits needs a closed-form KL per dimension; this prior has none")
            kl_term = kl_per_dim.mean(0).clamp(min=self.free_bits).sum()
        loss = recon + beta * kl_term
        return Loss(
            losses={"model": loss},
            logs={"loss": loss, "recon": recon, "kl": kl, "elbo": -(recon + kl), "beta": beta, **scalar_stats(out)},
        )


register_part("objectives", "elbo", "negative ELBO with beta (constant, warm-up, cyclical) and free bits")(
    ELBO.from_config
)


def importance_weights(out) -> torch.Tensor:
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) for each of the S posterior samples: ``[S, B]``."""
    latent = out.latent
    require(latent.log_q is not None and latent.log_p is not None,
            "this bound needs a stochastic bottleneck that reports log q(z|x) and log p(z)")
    return out.log_px_z + latent.log_p - latent.log_q


def is_finite(value: torch.Tensor | float) -> bool:
    return math.isfinite(float(value))
