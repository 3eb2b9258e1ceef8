"""Entropic optimal transport by Sinkhorn's iterations: a 2 x 2 plan in closed form, the marginals, the limits in
eps, the dual value and the envelope gradient."""

import itertools
import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.transport import entropic_cost, sinkhorn


def test_two_by_two_plan_in_closed_form():
    """Uniform marginals: P = [[p, 1/2 - p], [1/2 - p, p]] and the optimality condition P11 P22 / (P12 P21) =
    exp(-(C11 + C22 - C12 - C21) / eps) give p = r / (2 (1 + r)), r = exp(-(C11 + C22 - C12 - C21) / (2 eps))."""
    cost = torch.tensor([[0.0, 2.0], [1.0, 0.5]], dtype=torch.float64)
    eps = 0.7
    r = math.exp(-(0.0 + 0.5 - 2.0 - 1.0) / (2 * eps))
    p = r / (2 * (1 + r))
    expected = torch.tensor([[p, 0.5 - p], [0.5 - p, p]], dtype=torch.float64)
    assert torch.allclose(sinkhorn(cost, eps).plan, expected, atol=1e-7)


def test_marginals_hold_for_a_cost_of_hundreds_of_nats():
    torch.manual_seed(0)
    cost = torch.rand(6, 9, dtype=torch.float64) * 400  # negative log-likelihoods of images, eps = 1
    a = torch.softmax(torch.randn(6, dtype=torch.float64), 0)
    result = sinkhorn(cost, 1.0, a=a)
    assert torch.isfinite(result.plan).all() and result.marginal_error < 1e-6
    assert torch.allclose(result.plan.sum(1), a, atol=1e-6)
    assert torch.allclose(result.plan.sum(0), torch.full((9,), 1 / 9, dtype=torch.float64), atol=1e-9)


def test_small_eps_gives_the_optimal_assignment_and_large_eps_the_product():
    """eps -> 0: n P tends to the permutation of least cost (found by brute force over all 5! assignments);
    eps -> infinity: P tends to a b^T."""
    torch.manual_seed(1)
    cost = torch.rand(5, 5, dtype=torch.float64)
    best = min(itertools.permutations(range(5)), key=lambda s: sum(float(cost[i, j]) for i, j in enumerate(s)))
    plan = sinkhorn(cost, 1e-3, max_iterations=20_000).plan
    assert torch.allclose(5 * plan, torch.eye(5, dtype=torch.float64)[list(best)], atol=1e-3)
    assert torch.allclose(sinkhorn(cost, 1e4).plan, torch.full((5, 5), 1 / 25, dtype=torch.float64), atol=1e-5)


def test_primal_value_is_the_dual_value_and_its_gradient_is_the_plan():
    """At the optimum <P, C> + eps KL(P || a b^T) = <a, f> + <b, g>, and d OT_eps / d C_ij = P_ij (a central
    finite difference of the optimal value)."""
    torch.manual_seed(2)
    cost, eps = torch.rand(3, 4, dtype=torch.float64) * 3, 0.5
    result = sinkhorn(cost, eps, tolerance=1e-12)
    value = entropic_cost(result.plan, cost, eps).sum()
    assert math.isclose(float(value), float(result.f.mean() + result.g.mean()), rel_tol=1e-9)

    def optimal_value(c):
        return float(entropic_cost(sinkhorn(c, eps, tolerance=1e-12).plan, c, eps).sum())

    h, bump = 1e-5, torch.zeros_like(cost)
    bump[1, 2] = h
    derivative = (optimal_value(cost + bump) - optimal_value(cost - bump)) / (2 * h)
    assert math.isclose(derivative, float(result.plan[1, 2]), rel_tol=1e-5)


@pytest.mark.parametrize("eps", [0.0, -1.0, math.nan, math.inf])
def test_bad_eps_is_a_one_line_error(eps):
    with pytest.raises(ConfigError, match="epsilon") as error:
        sinkhorn(torch.zeros(2, 2), eps)
    assert "\n" not in str(error.value)
