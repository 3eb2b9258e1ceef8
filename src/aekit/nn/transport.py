"""Entropic optimal transport between two discrete measures, solved by Sinkhorn's iterations in the log domain.

For source weights a ``[n]``, target weights b ``[m]`` (each summing to 1) and a cost C ``[n, m]``, the entropic
optimal transport problem with regularisation epsilon > 0 (Cuturi 2013; Peyre & Cuturi 2019, "Computational
Optimal Transport", section 4) is

    OT_eps(a, b; C) = min_{P >= 0, P 1 = a, P^T 1 = b}  <P, C> + eps KL(P || a b^T),

whose solution is P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) for the dual potentials f, g that Sinkhorn's
alternating updates find,

    f_i = -eps log sum_j b_j exp((g_j - C_ij) / eps),      g_j = -eps log sum_i a_i exp((f_i - C_ij) / eps),

and at which the value equals the dual's, <a, f> + <b, g>. In the log domain the updates are log-sum-exps, so a
cost of hundreds of nats against an eps of 1 (a negative log-likelihood of an image) does not underflow. As eps
goes to 0 the plan tends to an optimal plan of the unregularised problem; as eps grows, to the product a b^T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aekit.config import require


def check_epsilon(epsilon: float, key: str = "epsilon") -> None:
    require(math.isfinite(epsilon) and epsilon > 0, f"{key}={epsilon}: the entropic regularisation must be a "
            "finite number > 0 (smaller: closer to the unregularised transport, slower to converge)")


@dataclass
class TransportPlan:
    """plan: P ``[n, m]``; f ``[n]`` and g ``[m]``: the dual potentials; iterations: Sinkhorn updates run;
    marginal_error: max_i |(P 1)_i - a_i| at the end (the column marginals hold exactly)."""

    plan: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    iterations: int
    marginal_error: float


def uniform(n: int, like: torch.Tensor) -> torch.Tensor:
    return torch.full((n,), 1.0 / n, dtype=like.dtype, device=like.device)


@torch.no_grad()
def sinkhorn(cost: torch.Tensor, epsilon: float, a: torch.Tensor | None = None, b: torch.Tensor | None = None,
             max_iterations: int = 1000, tolerance: float = 1e-6) -> TransportPlan:
    """The entropic optimal plan of ``cost [n, m]`` between ``a [n]`` and ``b [m]`` (uniform where not given),
    by log-domain Sinkhorn updates until the row marginals are within ``tolerance`` (L-infinity, relative to a's
    largest weight) or ``max_iterations`` pass. The updates run in float64 (in float32 the marginals of a cost
    of hundreds of nats stall near 1e-5) and the plan comes back in the cost's dtype. No gradient is kept: the
    gradient of OT_eps with respect to the cost is the plan itself (envelope theorem), so a loss <P, C> with P
    held fixed has the right one."""
    check_epsilon(epsilon)
    require(cost.dim() == 2 and min(cost.shape) > 0, f"the cost must be a matrix [n, m]; got {tuple(cost.shape)}")
    n, m = cost.shape
    dtype, cost = cost.dtype, cost.double()
    a = uniform(n, cost) if a is None else a.to(cost)
    b = uniform(m, cost) if b is None else b.to(cost)
    log_a, log_b = a.log(), b.log()
    f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
    error, iteration = math.inf, 0
    for iteration in range(1, max_iterations + 1):  # noqa: B007 (the count is reported)
        f = -epsilon * torch.logsumexp(log_b[None, :] + (g[None, :] - cost) / epsilon, dim=1)  # [n]
        g = -epsilon * torch.logsumexp(log_a[:, None] + (f[:, None] - cost) / epsilon, dim=0)  # [m]
        log_plan = log_a[:, None] + log_b[None, :] + (f[:, None] + g[None, :] - cost) / epsilon  # [n, m]
        error = float((log_plan.exp().sum(1) - a).abs().max() / a.max())
        if error <= tolerance:
            break
    return TransportPlan(plan=log_plan.exp().to(dtype), f=f.to(dtype), g=g.to(dtype), iterations=iteration,
                         marginal_error=error)


def entropic_cost(plan: torch.Tensor, cost: torch.Tensor, epsilon: float, a: torch.Tensor | None = None,
                  b: torch.Tensor | None = None) -> torch.Tensor:
    """<P, C> + eps KL(P || a b^T) per source point ``[n]``, each row's share, so that their sum is the whole
    objective (0 log 0 = 0). Its gradient reaches the cost (and whatever made it) only; the plan is a constant."""
    n, m = cost.shape
    a = uniform(n, cost) if a is None else a.to(cost)
    b = uniform(m, cost) if b is None else b.to(cost)
    plan = plan.detach()
    relative = torch.xlogy(plan, plan) - plan * (a[:, None] * b[None, :]).log()  # P log (P / a b^T)  [n, m]
    return (plan * cost).sum(1) + epsilon * relative.sum(1)
