"""Training objectives: they weigh a model output's loss terms into the numbers that are minimised.

Loss convention: per example, sum over data dimensions; mean over the batch (weighted by the batch's per-example
``weights`` when it has them); in nats. An objective returns one loss per named optimiser (``Loss.losses``:
``model``, and e.g. ``discriminator`` for adversarial regularisers).

One objective serves every model, :class:`WeightedTerms`: a model's forward gives named terms, per example ``[B]``
or, declared as such, one per batch ``[]`` (an MMD between the batch's codes and the prior's draws), and the
objective sums them,

    L_opt(t) = sum_{k: optimiser(k) = opt} w_k(t) * penalty_k(mean_batch term_k),

with each term's weight w_k a number or a schedule (warm-up, cycles), and its penalty the term itself, the term
with free bits (a floor per latent dimension) or a capacity |term - C(t)|. Every term a model can give is declared
by the part that makes it (:class:`Term`, a part's ``terms``) with its default weight; a config sets them by name
(``terms.kl=4``, ``terms.kl.schedule=linear``, ``terms.kl.capacity=25``). A term the model gives that is neither
weighted nor declared log-only is an error naming it, and so is a weight for a term the model does not have.
The ELBO and the IWAE bound are thin special cases (a logged ELBO; a bound computed from the samples).

A term may reach only some of the model's parameters (:class:`Routed`): its value counts in the loss as any
term's, and its gradient goes, network by network (:meth:`~aekit.models.base.Model.networks`: ``inference`` and
``generative`` for an autoencoder), only to that network's parameters, each from an estimator of its own. The
gradient estimators of the importance-weighted bounds and the separate bounds of PIWAE are such terms.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from aekit.config import _scalar, require
from aekit.errors import ConfigError
from aekit.parts import register_alias, register_part

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
        require(self.kind in SCHEDULES, f"schedule={self.kind!r} is unknown; choose one of {', '.join(SCHEDULES)}")
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


TERM_SETTINGS = ("weight", "schedule", "warmup_steps", "period", "cycles", "free_bits", "capacity", "capacity_steps",
                 "log_only")


@dataclass(frozen=True)
class Term:
    """How the objective counts one of a model's terms.

    ``weight``: a :class:`Schedule` (a number is a constant one); ``optimizer``: the named optimiser whose loss
    takes it; ``log_only``: logged and reported, never minimised (an accuracy, a perplexity, a bound's parts);
    ``batch``: one value per batch ``[]`` rather than per example ``[B]`` (its value depends on the batch, so
    evaluation scores it at a stated batch size); ``free_bits = lambda``: the term's batch mean per latent
    dimension (the output's ``stats[NAME_per_dim]``) below lambda is not penalised, sum_d max(lambda,
    E_batch[term_d]) (Kingma et al. 2016); ``capacity = C > 0``: the penalty is |term - C(t)| with C(t) rising
    linearly from 0 to C over ``capacity_steps`` (Burgess et al. 2018); ``label``: the name a scheduled weight is
    logged under (``beta`` for the KL)."""

    weight: Schedule = field(default_factory=Schedule)
    optimizer: str = "model"
    log_only: bool = False
    batch: bool = False
    free_bits: float = 0.0
    capacity: float = 0.0
    capacity_steps: int = 0
    label: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.weight, Schedule):
            object.__setattr__(self, "weight", Schedule(float(self.weight)))
        require(self.weight.value >= 0, f"a term's weight must be >= 0, got {self.weight.value}")
        require(self.free_bits >= 0, f"free_bits={self.free_bits} must be >= 0")
        require(self.capacity >= 0 and self.capacity_steps >= 0, f"capacity={self.capacity} and capacity_steps="
                f"{self.capacity_steps} must be >= 0 (capacity 0: no capacity)")

    def capacity_at(self, step: int | None) -> float:
        if step is None or self.capacity_steps == 0:
            return self.capacity
        return self.capacity * min(1.0, step / self.capacity_steps)

    def logs_weight(self) -> bool:
        """Whether the weight is worth a log column: it changes over the run."""
        return self.weight.kind != "constant" and not self.log_only


def configured_terms(declared: dict[str, Term], settings: dict[str, Any], model: str = "the model") -> dict[str, Term]:
    """``declared`` with a config's ``terms`` applied: ``{"kl": 4}`` sets a weight, ``{"kl": {"schedule": "linear",
    "warmup_steps": 500}}`` any of :data:`TERM_SETTINGS`. A name the model does not give, or a setting that does not
    exist, is a ConfigError listing what does."""
    terms = dict(declared)
    for name, value in (settings or {}).items():
        if name not in terms:
            raise ConfigError(f"terms.{name}: {model} has no term {name!r}; its terms are {', '.join(terms)}")
        value = value if isinstance(value, dict) else {"weight": value}
        unknown = sorted(set(value) - set(TERM_SETTINGS))
        if unknown:
            raise ConfigError(f"terms.{name}.{unknown[0]} is not a term setting; choose from "
                              f"{', '.join(TERM_SETTINGS)}")
        term, schedule = terms[name], terms[name].weight
        try:
            schedule = Schedule(float(value.get("weight", schedule.value)), str(value.get("schedule", schedule.kind)),
                                int(value.get("warmup_steps", schedule.warmup_steps)),
                                int(value.get("period", schedule.period)), int(value.get("cycles", schedule.cycles)))
            terms[name] = dataclasses.replace(
                term, weight=schedule, free_bits=float(value.get("free_bits", term.free_bits)),
                capacity=float(value.get("capacity", term.capacity)),
                capacity_steps=int(value.get("capacity_steps", term.capacity_steps)),
                log_only=_scalar(value.get("log_only", term.log_only), bool, f"terms.{name}.log_only"))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"terms.{name}={value}: {exc}; weights and settings are numbers "
                              "(schedule: constant, linear or cyclical)") from None
    return terms


@dataclass(frozen=True)
class Routed:
    """A term whose gradient reaches each named network from a tensor of its own.

    ``by_network`` maps a network of the model (``inference``: q(z|x); ``generative``: p(x, z)) to a tensor that
    holds the term's value (per example ``[B]``, or ``[]`` for a term declared per batch) and whose gradient is the
    one that network's parameters should receive; the parameters of a network not named receive none of the term's
    gradient. One bound with a gradient estimator of its own per network (DReG, Tucker et al. 2019), or a bound
    meant for one network only (PIWAE, Rainforth et al. 2018), is such a term. Every tensor must carry the same
    value: the objective logs it once."""

    by_network: dict[str, torch.Tensor]

    @property
    def value(self) -> torch.Tensor:
        """The term's value, without gradient."""
        return next(iter(self.by_network.values())).detach()


def reaching(term: torch.Tensor | Routed, network: str) -> Routed:
    """``term`` with its gradient for ``network``'s parameters only (a routed term keeps that network's own)."""
    if isinstance(term, Routed):
        require(network in term.by_network, f"this term has no gradient for the {network} network; it has one for "
                f"{', '.join(term.by_network)}")
        return Routed({network: term.by_network[network]})
    return Routed({network: term})


# The ELBO's terms, and the vMF posterior's correction of its gradient in kappa (aekit.nn.spherical): what a bound
# over the samples logs instead of minimising.
ELBO_TERMS = ("recon", "kl", "vmf_correction")


def with_gradient_of(value: torch.Tensor, surrogate: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, the gradient of ``surrogate`` in the backward: a gradient estimator that
    leaves the logged value alone."""
    return value.detach() + (surrogate - surrogate.detach())


class Objective:
    """Weighs a model output's terms at training ``step``. ``step=None`` gives the objective the schedules end
    on (every warm-up or cycle finished): what validation scores, so that validation losses taken during a
    warm-up compare with those taken after it (model selection, early stopping). ``dataset_size``: the number of
    training examples, set by the training loop (for objectives whose estimators need it). ``networks``: the
    model's trainable parameters by network (:meth:`~aekit.models.base.Model.networks`), set by the model that
    builds the objective, for its :class:`Routed` terms."""

    dataset_size: int | None = None
    networks: Callable[[], dict[str, list[torch.Tensor]]] | None = None

    @property
    def routes_gradients(self) -> bool:
        """Whether the objective may give :class:`Routed` terms: their gradients are taken inside the call, one
        backward pass per network over the step's forward, which the compiled step then keeps the buffers for."""
        return False

    def __call__(self, out, step: int | None, batch=None) -> Loss:
        raise NotImplementedError


class WeightedTerms(Objective):
    """The sum of a model's terms with their weights, one loss per optimiser (module docstring). Logs ``loss``
    (the model optimiser's), each term's batch mean, each weight that changes over the run, and the output's 0-dim
    statistics."""

    def __init__(self, terms: dict[str, Term], model: str = "the model") -> None:
        self.terms, self.model = dict(terms), model

    def term_of(self, name: str, value: torch.Tensor) -> Term:
        term = self.terms.get(name)
        if term is None:
            raise ConfigError(f"{self.model} gives a term {name!r} that is neither weighted nor log-only; the part "
                              f"that makes it must declare it (its `terms`); declared: {', '.join(self.terms)}")
        if (value.dim() == 0) != term.batch:
            kind = "one value per batch []" if term.batch else "one value per example [B]"
            raise ConfigError(f"term {name!r} of {self.model} is declared as {kind} but has shape "
                              f"{tuple(value.shape)}; declare it with Term(batch={value.dim() == 0})")
        return term

    def penalty(self, name: str, term: Term, mean: torch.Tensor, out, step: int | None) -> torch.Tensor:
        """What the weight multiplies: the term, its free-bits form, or its distance from the capacity."""
        if term.free_bits > 0:
            per_dim = out.stats.get(f"{name}_per_dim")
            require(per_dim is not None, f"terms.{name}.free_bits needs the term per latent dimension "
                    f"({name}_per_dim); this part gives none (a prior without a closed-form KL)")
            return per_dim.mean(0).clamp(min=term.free_bits).sum()
        if term.capacity > 0:
            return (mean - term.capacity_at(step)).abs()
        return mean

    def extra_terms(self, out) -> dict[str, torch.Tensor | Routed]:
        """Terms the objective computes from the output itself (a bound over the samples)."""
        return {}

    def __call__(self, out, step: int | None, batch=None) -> Loss:
        losses: dict[str, torch.Tensor] = {}
        routed: dict[tuple[str, str], torch.Tensor] = {}  # (optimiser, network): what that network's gradient is of
        logs: dict[str, torch.Tensor | float] = {}
        weights: dict[str, float] = {}
        for name, value in {**out.terms, **self.extra_terms(out)}.items():
            by_network = value.by_network if isinstance(value, Routed) else {}
            value = value.value if isinstance(value, Routed) else value  # a routed term's value has no gradient
            term = self.term_of(name, value)
            logs[name] = mean = value if term.batch else batch_mean(value, batch)
            if term.log_only:
                continue
            weight = term.weight(step)
            if term.logs_weight():
                weights[term.label or f"{name}_weight"] = weight
            _add(losses, term.optimizer, weight * self.penalty(name, term, mean, out, step))
            for network, tensor in by_network.items():
                network_mean = tensor if term.batch else batch_mean(tensor, batch)
                _add(routed, (term.optimizer, network), weight * self.penalty(name, term, network_mean, out, step))
        for (optimizer, network), loss in routed.items():
            _add(losses, optimizer, self.network_gradient(network, loss))
        if "model" not in losses:
            raise ConfigError(f"no term of {self.model} is weighted for the model's optimiser; terms: "
                              f"{', '.join(out.terms)}")
        return Loss(losses=losses, logs={"loss": losses["model"], **logs, **self.derived_logs(logs), **weights,
                                         **scalar_stats(out)})

    def network_gradient(self, network: str, loss: torch.Tensor) -> torch.Tensor:
        """A zero whose gradient, for the parameters of ``network``, is that of ``loss``, and for every other
        parameter none: sum_p <g_p, p> - sg(...) with g_p = d loss / d p taken now (the graph kept for the rest)."""
        if not (torch.is_grad_enabled() and loss.requires_grad):
            return loss.new_zeros(())
        networks = self.networks() if self.networks is not None else {}
        if network not in networks:
            raise ConfigError(f"{self.model} gives a term for its {network} network, but its networks are "
                              f"{', '.join(networks) or 'unknown'}; build the objective with the model's objective()")
        params = networks[network]
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True) if params else ()
        linear = sum(((g * p).sum() for g, p in zip(grads, params, strict=True) if g is not None), loss.new_zeros(()))
        return linear - linear.detach()

    def derived_logs(self, logs: dict[str, Any]) -> dict[str, Any]:
        return {}


class ELBO(WeightedTerms):
    """The negative evidence lower bound with a weight on the KL (Higgins et al. 2017, beta-VAE),

        L = E_q[-log p(x|z)] + beta(t) * KL(q(z|x) || p(z)),

    the weighted terms with the ELBO itself logged, -(recon + kl), whatever beta is."""

    def derived_logs(self, logs: dict[str, Any]) -> dict[str, Any]:
        return {"elbo": -(logs["recon"] + logs["kl"])} if "recon" in logs and "kl" in logs else {}


register_part("objectives", "terms", "the model's terms, each with its weight or schedule (terms.NAME=...)")(
    WeightedTerms)
register_part("objectives", "elbo", "negative ELBO: the weighted terms (beta on the KL), the ELBO logged")(ELBO)
for _old in ("reconstruction", "adversarial", "context-elbo", "masked", "classification"):
    register_alias("objectives", _old, "terms")


def _add(losses: dict, key: Any, contribution: torch.Tensor) -> None:
    previous = losses.get(key)
    losses[key] = contribution if previous is None else previous + contribution


def importance_weights(out, path: bool = False) -> torch.Tensor:
    """log w_s = log p(x|z_s) + log p(z_s) - log q(z_s|x) for each of the S posterior samples: ``[S, B]``.
    ``path``: log q with the posterior's parameters held fixed, so that the encoder's gradient is the path
    derivative through z_s only (Roeder et al. 2017); the values are the same."""
    latent = out.latent
    require(latent.log_q is not None and latent.log_p is not None,
            "this bound needs a stochastic bottleneck that reports log q(z|x) and log p(z)")
    require(getattr(latent, "sample_weights", None) is None, "this bound needs draws from q(z|x), and the "
            "bottleneck gives weighted sigma points; use bottleneck.sampling=random")
    log_q = latent.log_q_path if path else latent.log_q
    require(log_q is not None, "the stl and dreg gradient estimators need a bottleneck that evaluates log q(z|x) "
            "with its parameters held fixed (gaussian); use gradient_estimator=reparam")
    return out.log_px_z + latent.log_p - log_q


def is_finite(value: torch.Tensor | float) -> bool:
    return math.isfinite(float(value))
