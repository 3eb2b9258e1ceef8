"""Regularisers: penalties on the code, or on the networks around it, beside the bottleneck's own terms.

A regulariser is the part that makes a deterministic or variational autoencoder a WAE, an InfoVAE, a SWAE, an
RAE, a contractive or a low-rank autoencoder. The model builds the one its config names (``regulariser=mmd``;
empty: the model's own choice) with its :class:`~aekit.parts.PartContext`, binds it to the built model (for the
encoder, the decoder and the prior), and calls it after the decoder:

    terms.update(regulariser(latent, x, condition))      # latent: the bottleneck's output; x: the encoder's input

It returns named terms, per example ``[B]`` or, declared with ``Term(batch=True)``, one per batch ``[]`` (an MMD
between the batch's codes and as many prior draws), each declared in its ``terms`` with a default weight that the
model's config may set (a paper's lambda) and ``terms.NAME=...`` overrides. A regulariser that compares the codes
with the prior sets ``needs_prior``, and the model's bottleneck is then built with its config's ``prior``. Its
settings are its factory's keyword parameters, taken from the model config's fields of the same name and from
``options["regulariser"]`` (``regulariser.kernel=rbf``), which wins.

The code of an example is the bottleneck's first sample ``z[0]`` (the code itself for a deterministic bottleneck,
one draw of q(z|x) for a stochastic one), a grid of latents flattened to one vector (:func:`flat_codes`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from aekit.config import require, require_choice
from aekit.errors import ConfigError
from aekit.nn.bottlenecks import BottleneckOutput, Deterministic
from aekit.nn.divergences import (
    KERNEL_SCALES,
    check_kernel,
    flat_codes,
    kernel_widths,
    mmd,
    random_directions,
    sliced_wasserstein,
)
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part

JACOBIAN_ESTIMATORS = ("auto", "closed-form", "exact", "hutchinson")
DECODER_PENALTIES = ("l2", "gradient")


def check_projections(projections: int) -> None:
    require(projections >= 1, f"projections={projections} must be >= 1 (the random directions or probe vectors "
            "each estimate draws)")


@dataclass(frozen=True)
class MMDSettings:
    """The MMD regulariser's settings as fields of a model's config (a mixin, listed first among its bases):
    ``kernel`` (imq, rbf), ``kernel_scales`` (the widths, each times 2 d ``prior_variance``) and
    ``prior_variance`` (sigma_z^2)."""

    kernel: str = "imq"
    kernel_scales: tuple[float, ...] = KERNEL_SCALES
    prior_variance: float = 1.0

    def check_mmd(self) -> None:
        check_kernel(self.kernel, self.kernel_scales, self.prior_variance)


class Regulariser(nn.Module):
    """A penalty built from its context and bound to the built model (module docstring). ``terms``: the terms it
    gives, with their default weights; ``needs_prior``: it draws from the model's prior."""

    terms: ClassVar[dict[str, Term]] = {}
    needs_prior: ClassVar[bool] = False
    part_name: ClassVar[str] = "regulariser"

    def __init__(self, context: PartContext) -> None:
        super().__init__()
        self.context = context
        self.model: ModelRef | None = None

    @property
    def code_dim(self) -> int:
        """d, the coordinates of one example's code (every position of a grid)."""
        return math.prod(self.context.latent_shape)

    def bind(self, model) -> None:
        self.model = ModelRef(model)

    def prior_draws(self, z: torch.Tensor) -> torch.Tensor:
        """As many draws from the model's prior as there are codes ``z [n, d]``: ``[n, d]``."""
        model = self.model()
        prior = getattr(model.bottleneck, "prior", None)
        if prior is None:
            raise ConfigError(f"regulariser={self.part_name} matches the codes to a prior, and {model.name}'s "
                              "bottleneck has none; build the model with a bottleneck that holds one")
        return flat_codes(prior.sample(z.shape[0], device=z.device).to(z.dtype))

    def forward(self, latent: BottleneckOutput, x: torch.Tensor,
                condition: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError


class ProjectedPenalty(Regulariser):
    """A penalty estimated from ``projections`` random vectors at each call (directions, probe vectors)."""

    def __init__(self, context: PartContext, projections: int) -> None:
        super().__init__(context)
        check_projections(projections)
        self.projections = projections


@register_part("regularisers", "mmd", "MMD between the batch's codes and as many prior draws (imq or rbf kernel)")
class MMDPenalty(Regulariser):
    """``mmd``: the unbiased MMD^2 between the batch's codes and as many draws from the prior, with ``kernel``
    (imq, rbf) summed over the widths ``kernel_scales`` times 2 d ``prior_variance``
    (:mod:`aekit.nn.divergences`)."""

    terms: ClassVar[dict[str, Term]] = {"mmd": Term(batch=True)}
    needs_prior = True
    part_name = "mmd"

    def __init__(self, context: PartContext, kernel: str = "imq", kernel_scales: Sequence[float] = KERNEL_SCALES,
                 prior_variance: float = 1.0) -> None:
        super().__init__(context)
        check_kernel(kernel, tuple(kernel_scales), prior_variance)
        self.kernel = kernel
        self.widths = kernel_widths(tuple(kernel_scales), self.code_dim, prior_variance)

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        z = flat_codes(latent.z[0])  # [B, d]
        return {"mmd": mmd(z, self.prior_draws(z), self.kernel, self.widths)}


@register_part("regularisers", "sliced-wasserstein",
               "squared sliced Wasserstein distance between the batch's codes and as many prior draws")
class SlicedWassersteinPenalty(ProjectedPenalty):
    """``swd``: SW_2^2 between the batch's codes and as many draws from the prior, over ``projections`` directions
    drawn afresh at every call, uniformly on the unit sphere (:mod:`aekit.nn.divergences`)."""

    terms: ClassVar[dict[str, Term]] = {"swd": Term(batch=True)}
    needs_prior = True
    part_name = "sliced-wasserstein"

    def __init__(self, context: PartContext, projections: int = 50) -> None:
        super().__init__(context, projections)

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        z = flat_codes(latent.z[0])  # [B, d]
        theta = random_directions(self.projections, z.shape[1], device=z.device, dtype=z.dtype)  # [L, d]
        return {"swd": sliced_wasserstein(z, self.prior_draws(z), theta)}


@register_part("regularisers", "nuclear-norm", "the nuclear norm of the batch's code matrix (sum of singular values)")
class NuclearNormPenalty(Regulariser):
    """``nuclear``: ||Z||_* = sum_i sigma_i(Z), the sum of the singular values of the batch's code matrix
    ``Z [B, d]``, a convex surrogate of its rank."""

    terms: ClassVar[dict[str, Term]] = {"nuclear": Term(batch=True)}
    part_name = "nuclear-norm"

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        return {"nuclear": torch.linalg.svdvals(flat_codes(latent.z[0])).sum()}


@torch.compiler.disable  # eager: its graph is differentiated twice, which torch.compile's graphs cannot be
def jacobian_norm_sq(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, projections: int = 1,
                     exact: bool = False, probes: torch.Tensor | None = None) -> torch.Tensor:
    """||J_f(x)||_F^2 per example ``[B]`` for a map ``f: [B, *in] -> [B, *out]`` that treats the examples
    independently (no batch statistics), by vector-Jacobian products, one backward pass each:

    - ``exact``: sum_m ||J^T e_m||^2 over the M output coordinates, M backward passes;
    - otherwise Hutchinson's estimator, (1/P) sum_p ||J^T v_p||^2 with P = ``projections`` Rademacher vectors v_p
      (E[v v^T] = I, so E ||J^T v||^2 = tr(J J^T) = ||J||_F^2), unbiased; ``probes [P, B, *out]`` passes them in.

    Under grad the result carries the graph (a penalty to train on); without it, a value only. It runs eagerly
    under ``compile=true``: its inputs are detached, so the compiled graphs around it are never differentiated
    twice."""
    graph = torch.is_grad_enabled()
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        y = f(x)  # [B, *out]
        if exact:
            eye = torch.eye(y[0].numel(), device=y.device, dtype=y.dtype)  # [M, M]
            vectors = [row.view(1, *y.shape[1:]).expand_as(y) for row in eye]
        else:
            if probes is None:
                probes = torch.randint(0, 2, (projections, *y.shape), device=y.device).to(y.dtype) * 2 - 1
            vectors = list(probes)
        total = x.new_zeros(x.shape[0])
        for v in vectors:
            (g,) = torch.autograd.grad(y, x, v, retain_graph=True, create_graph=graph)  # J^T v [B, *in]
            total = total + g.flatten(1).pow(2).sum(1)
    total = total if exact else total / len(vectors)
    return total if graph else total.detach()


def sigmoid_code_jacobian_norm_sq(h: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """||J_h(x)||_F^2 = sum_j (h_j (1 - h_j))^2 ||W_j||^2 per example ``[B]`` for the code h = sigmoid(W x + b),
    ``h [B, D]``, ``W [D, F]`` (Rifai et al. 2011): J = diag(h (1 - h)) W."""
    return ((h * (1.0 - h)).pow(2) * weight.pow(2).sum(1)).sum(-1)


@register_part("regularisers", "contractive", "||J_f(x)||_F^2, the squared Frobenius norm of the encoder's Jacobian")
class ContractivePenalty(ProjectedPenalty):
    """``contractive``: ||J_f(x)||_F^2 per example for the map f from the encoder's input to the code (the
    posterior mean of a stochastic bottleneck). ``jacobian`` chooses how:

    - ``closed-form``: sum_j (h_j (1 - h_j))^2 ||W_j||^2, for the one-layer sigmoid code h = sigmoid(W x + b) of
      Rifai et al. (an MLP encoder with ``hidden=()`` and ``bottleneck.activation=sigmoid``), from the forward's own
      code: no extra pass;
    - ``exact``: one backward pass per code coordinate, over a second forward of the encoder;
    - ``hutchinson``: ``projections`` Rademacher probes, one backward pass each (:func:`jacobian_norm_sq`);
    - ``auto``: the closed form where it holds, else exact where the code has no more coordinates than
      ``projections`` (no dearer than the estimate), else Hutchinson.
    """

    terms: ClassVar[dict[str, Term]] = {"contractive": Term()}
    part_name = "contractive"

    def __init__(self, context: PartContext, jacobian: str = "auto", projections: int = 1) -> None:
        super().__init__(context, projections)
        require_choice(jacobian, JACOBIAN_ESTIMATORS, "jacobian")
        self.jacobian, self.closed_form = jacobian, False

    def bind(self, model) -> None:
        super().bind(model)
        self.closed_form = closed_form_holds(model) and self.jacobian in ("auto", "closed-form")
        if self.jacobian == "closed-form" and not self.closed_form:
            raise ConfigError("jacobian=closed-form holds for the one-layer sigmoid code of Rifai et al. only: "
                              "backbone=mlp hidden=() bottleneck=deterministic bottleneck.activation=sigmoid, "
                              "unconditional; choose jacobian=auto, exact or hutchinson")

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        model = self.model()
        if self.closed_form:
            return {"contractive": sigmoid_code_jacobian_norm_sq(latent.mean, model.bottleneck.proj.weight)}
        exact = self.jacobian == "exact" or (self.jacobian == "auto" and self.code_dim <= self.projections)

        def code(inputs: torch.Tensor) -> torch.Tensor:  # [B, *S] -> [B, *L, D]
            return model.encode(inputs, condition=condition).mean

        return {"contractive": jacobian_norm_sq(code, x, self.projections, exact)}


def closed_form_holds(model) -> bool:
    """Whether the model's code is h = sigmoid(W x + b) of its flattened input (Rifai et al.'s encoder)."""
    bottleneck = model.bottleneck
    return (getattr(model.encoder, "flattens_only", False) and isinstance(bottleneck, Deterministic)
            and bottleneck.activation == "sigmoid" and len(bottleneck.latent_shape) == 1
            and model.config.condition_dim == 0)


@register_part("regularisers", "rae", "RAE: 1/2 ||z||^2 on the code, and an L2 or gradient penalty on the decoder")
class RAEPenalty(ProjectedPenalty):
    """``code``: 1/2 ||z||^2 per example; ``decoder``, by ``decoder_penalty``:

    - ``l2``: ||theta_dec||^2, the squared L2 norm of every decoder parameter (weight decay), one value per batch;
    - ``gradient``: ||d dec(z) / dz||_F^2 per example, the Jacobian of the decoder's output (the likelihood's
      parameters) at the code, by Hutchinson's estimator with ``projections`` Rademacher probes, one backward pass
      each (:func:`jacobian_norm_sq`); the code is held fixed, so the penalty's gradient reaches the decoder only.
    """

    part_name = "rae"

    def __init__(self, context: PartContext, decoder_penalty: str = "l2", projections: int = 1) -> None:
        super().__init__(context, projections)
        require_choice(decoder_penalty, DECODER_PENALTIES, "decoder_penalty")
        self.decoder_penalty = decoder_penalty
        self.terms = {"code": Term(), "decoder": Term(batch=decoder_penalty == "l2")}

    def forward(self, latent, x, condition=None) -> dict[str, torch.Tensor]:
        model = self.model()
        z = latent.z[0]  # [B, *L, D]
        terms = {"code": 0.5 * flat_codes(z).pow(2).sum(1)}
        if self.decoder_penalty == "l2":
            terms["decoder"] = sum(p.pow(2).sum() for p in model.decoder.parameters())
        else:
            terms["decoder"] = jacobian_norm_sq(lambda code: model.decode(code, condition), z, self.projections)
        return terms
