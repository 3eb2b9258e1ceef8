"""Sparse codes kept sparse by a penalty rather than a count: ReLU with L1, gated, JumpReLU.

Each penalty is written for the data divided by its norm n (:class:`~aekit.nn.sparse.SparseCode`'s
``data_norm``: unit mean squared norm, as Rajamanoharan et al. normalise) and put in the units of the
reconstruction term ||x - x_hat||^2 / 2, so that the weight ``terms.sparsity`` (the papers' lambda) does not depend on
how the activations are scaled:

    sparsity = n^2 / 2 * P(z / n).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from aekit.config import require
from aekit.nn.bottlenecks import BottleneckOutput
from aekit.nn.sparse import Code, SparseCode
from aekit.objectives import Term
from aekit.parts import PartContext, register_part

PENALISED = {"l0": Term(log_only=True), "sparsity": Term(weight=1.0)}


@register_part("bottlenecks", "relu-l1", "ReLU code with the decoder-norm-weighted L1 penalty (Bricken et al. 2023; "
               "Conerly et al. 2024)")
class ReLUL1(SparseCode):
    """z = ReLU(W_enc (h - b_pre) + b_enc) with the L1 penalty weighted by each atom's norm,
    P(z) = sum_i z_i ||W_dec,i||_2 (Bricken et al. 2023, "Towards Monosemanticity"; the weighting of Conerly et al.
    2024, which keeps the penalty honest where the atoms' norms are free: ``backbone.unit_norm=false``)."""

    terms: ClassVar[dict[str, Term]] = PENALISED

    def code(self, pre: torch.Tensor, batch=None) -> Code:
        return Code(pre.relu())

    def code_terms(self, pre: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sparsity": self.penalty_scale(1) * (z * self.atom_norms()).flatten(1).sum(-1)}


@register_part("bottlenecks", "gated", "gated code: a gate chooses the latents, a magnitude path sizes them "
               "(Rajamanoharan et al. 2024)")
class Gated(SparseCode):
    """Gated SAE (Rajamanoharan et al. 2024, "Improving Dictionary Learning with Gated Sparse Autoencoders", Eq. 6-9):
    with the shared W_gate (the encoder) and x' = x - b_pre,

        pi_gate = W_gate x' + b_gate,   pi_mag = exp(r_mag) * (W_gate x') + b_mag,
        z = 1[pi_gate > 0] * ReLU(pi_mag);

    the gate is trained by the penalty P = sum_i ReLU(pi_gate)_i ||W_dec,i|| (``sparsity``) and by ``gate_recon``,
    the reconstruction -log p(x | x_hat_frozen(ReLU(pi_gate))) through a copy of the decoder that takes no gradient
    (weight 1)."""

    terms: ClassVar[dict[str, Term]] = {**PENALISED, "gate_recon": Term(weight=1.0)}

    def __init__(self, context: PartContext, prior=None, dead_tokens: int = 10_000_000) -> None:
        super().__init__(context, dead_tokens=dead_tokens)
        self.r_mag = nn.Parameter(torch.zeros(self.latent_dim))
        self.b_mag = nn.Parameter(torch.zeros(self.latent_dim))

    def code(self, pre: torch.Tensor, batch=None) -> Code:
        pi_mag = self.r_mag.exp() * (pre - self.proj.bias) + self.b_mag  # pre = pi_gate = W_gate x' + b_gate
        return Code((pre > 0).to(pre.dtype) * pi_mag.relu())

    def code_terms(self, pre: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"sparsity": self.penalty_scale(1) * (pre.relu() * self.atom_norms()).flatten(1).sum(-1)}

    def reconstruction_terms(self, latent: BottleneckOutput, x_params: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        model = self.model()
        frozen = {name: p.detach() for name, p in model.decoder.named_parameters()}
        gate = latent.params["pre"].relu()  # [B, *L, D]
        params = torch.func.functional_call(model.decoder, frozen, (gate,))  # [B, *P]
        return {"gate_recon": model.likelihood.nll(params.unsqueeze(0), target)[0]}


class _JumpReLU(torch.autograd.Function):
    """z = pre * H(pre - theta); dz/dpre = H(pre - theta), and the pseudo-derivative
    dz/dtheta = -(theta / eps) K((pre - theta) / eps) with the rectangle kernel K(u) = 1[|u| < 1/2]."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        near = ((pre - theta).abs() < ctx.eps / 2).to(grad.dtype)
        d_theta = -(theta / ctx.eps) * near * grad
        return grad * (pre > theta), d_theta.reshape(-1, theta.shape[-1]).sum(0), None


class _Step(torch.autograd.Function):
    """H(pre - theta); no gradient to pre, and the pseudo-derivative dH/dtheta = -(1 / eps) K((pre - theta) / eps)."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, theta = ctx.saved_tensors
        near = ((pre - theta).abs() < ctx.eps / 2).to(grad.dtype)
        return None, (-(1 / ctx.eps) * near * grad).reshape(-1, theta.shape[-1]).sum(0), None


@register_part("bottlenecks", "jumprelu", "JumpReLU code: a learned threshold per latent, an L0 penalty trained "
               "through straight-through pseudo-derivatives (Rajamanoharan et al. 2024)")
class JumpReLU(SparseCode):
    """JumpReLU SAE (Rajamanoharan et al. 2024, "Jumping Ahead", Eq. 3-4, 10-12): z = pre * H(pre - theta) with a
    threshold theta_i = exp(t_i) per latent, and the penalty P = ||z||_0 = sum_i H(pre_i - theta_i), whose
    derivative in theta is the kernel estimate of the pseudo-derivative (rectangle kernel, bandwidth eps). theta
    starts at ``threshold`` and eps is ``bandwidth``, both in units of the data's norm n (0.001 each in the paper,
    whose data have unit mean squared norm)."""

    terms: ClassVar[dict[str, Term]] = PENALISED

    def __init__(self, context: PartContext, prior=None, dead_tokens: int = 10_000_000, threshold: float = 0.001,
                 bandwidth: float = 0.001) -> None:
        super().__init__(context, dead_tokens=dead_tokens)
        require(threshold > 0, f"bottleneck.threshold={threshold} must be > 0 (the starting threshold, in units of "
                "the data's norm)")
        require(bandwidth > 0, f"bottleneck.bandwidth={bandwidth} must be > 0")
        self.initial_threshold, self.bandwidth = threshold, bandwidth
        self.log_threshold = nn.Parameter(torch.full((self.latent_dim,), float(torch.tensor(threshold).log())))

    @torch.no_grad()
    def start_from_data(self) -> None:
        self.log_threshold.fill_(float((self.initial_threshold * self.data_norm).log()))

    @property
    def theta(self) -> torch.Tensor:
        return self.log_threshold.exp()

    def code(self, pre: torch.Tensor, batch=None) -> Code:
        return Code(_JumpReLU.apply(pre, self.theta, float(self.bandwidth * self.data_norm)))

    def code_terms(self, pre: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        step = _Step.apply(pre, self.theta, float(self.bandwidth * self.data_norm))
        return {"sparsity": self.penalty_scale(0) * step.flatten(1).sum(-1)}
