"""Likelihoods against hand-computed closed forms (per example: sum over dims, in nats)."""

import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.likelihoods import Bernoulli, DiscretizedLogistic, Gaussian, Likelihood, make_likelihood


def test_bernoulli_nll_matches_hand_computation():
    logits = torch.tensor([[0.0, 2.0], [-1.0, 3.0]])
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.sigmoid(logits)
    expected = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    got = Bernoulli((2,)).nll(logits, x)
    assert torch.allclose(got, expected, atol=1e-6)
    # one value by hand: x=1, logit 0 -> log 2; x=0, logit 2 -> log(1 + e^2)
    assert got[0].item() == pytest.approx(math.log(2) + math.log(1 + math.e**2), abs=1e-6)


def test_gaussian_fixed_sigma_closed_form():
    mu, x, sigma = torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[1.0, 0.0, 2.0]]), 0.5
    expected = sum(0.5 * ((a - b) / sigma) ** 2 + math.log(sigma) + 0.5 * math.log(2 * math.pi)
                   for a, b in zip(x[0].tolist(), mu[0].tolist(), strict=True))
    assert Gaussian((3,), sigma=sigma).nll(mu, x).item() == pytest.approx(expected, rel=1e-6)


def test_gaussian_learned_sigma_is_a_parameter_and_has_gradient():
    lik = make_likelihood("gaussian-learned", (1, 2, 2))
    assert any(p is lik.log_sigma for p in lik.parameters())
    lik.nll(torch.zeros(3, 1, 2, 2), torch.full((3, 1, 2, 2), 2.0)).sum().backward()
    assert lik.log_sigma.grad is not None and lik.log_sigma.grad.abs().sum() > 0


def test_nll_broadcasts_over_sample_axis():
    params, x = torch.randn(5, 4, 1, 3, 3), torch.rand(4, 1, 3, 3).round()
    nll = Bernoulli((1, 3, 3)).nll(params, x)
    assert nll.shape == (5, 4)
    assert torch.allclose(nll[2], Bernoulli((1, 3, 3)).nll(params[2], x))


def test_discretized_logistic_is_a_distribution_over_256_levels():
    lik = DiscretizedLogistic((1,))
    levels = torch.arange(256, dtype=torch.float64).div(255).view(256, 1)
    for mu, log_s in [(0.3, -3.0), (0.0, -1.0), (0.9, -5.0), (0.5, 1.0)]:
        params = torch.tensor([[mu, log_s]], dtype=torch.float64).expand(256, 2)
        total = torch.exp(-lik.nll(params, levels)).sum()
        assert total.item() == pytest.approx(1.0, abs=1e-4)


def test_discretized_logistic_middle_bin_value():
    lik = DiscretizedLogistic((1,))
    mu, log_s, x = 0.5, -2.0, 128 / 255
    s, h = math.exp(log_s), 0.5 / 255
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    expected = -math.log(sig((x + h - mu) / s) - sig((x - h - mu) / s))
    assert lik.nll(torch.tensor([[mu, log_s]]), torch.tensor([[x]])).item() == pytest.approx(expected, rel=1e-4)


def test_unknown_likelihood_is_a_config_error():
    with pytest.raises(ConfigError, match="likelihood='poisson'"):
        make_likelihood("poisson", (3,))


def _bce_reference(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The composed Bernoulli NLL that :class:`Bernoulli` fuses: the base class's sum of its element-wise terms."""
    return Likelihood.nll(Bernoulli(tuple(x.shape[1:])), logits, x)


def test_bernoulli_fused_nll_gradients_pass_gradcheck():
    logits = torch.randn(2, 3, 1, 2, 2, dtype=torch.float64, requires_grad=True)  # [S, B, C, H, W]
    x = torch.rand(3, 1, 2, 2, dtype=torch.float64, requires_grad=True)  # broadcast over S
    assert torch.autograd.gradcheck(lambda a, b: Bernoulli((1, 2, 2)).nll(a, b), (logits, x))


def test_bernoulli_fused_nll_equals_composed_value_and_gradient():
    torch.manual_seed(0)
    logits = (torch.randn(4, 5, 1, 3, 3) * 30).requires_grad_()  # large logits: softplus's linear branch too
    x = torch.rand(5, 1, 3, 3).round()
    weights = torch.rand(4, 5)
    got = Bernoulli((1, 3, 3)).nll(logits, x)
    (grad,) = torch.autograd.grad((got * weights).sum(), logits)
    reference_logits = logits.detach().clone().requires_grad_()
    expected = _bce_reference(reference_logits, x)
    (expected_grad,) = torch.autograd.grad((expected * weights).sum(), reference_logits)
    assert torch.allclose(got, expected, rtol=1e-5, atol=1e-4)
    assert torch.allclose(grad, expected_grad, atol=1e-6)
    assert torch.isfinite(got).all()


def test_bernoulli_fused_nll_runs_in_float32_under_bf16_autocast():
    logits = torch.randn(6, 1, 4, 4).bfloat16().requires_grad_()
    x = torch.rand(6, 1, 4, 4).round()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = Bernoulli((1, 4, 4)).nll(logits, x)
    assert got.dtype == torch.float32  # as autocast runs binary_cross_entropy_with_logits
    got.sum().backward()
    assert logits.grad.dtype == torch.bfloat16
    expected = torch.sigmoid(logits.detach().float()) - x
    assert torch.allclose(logits.grad.float(), expected, atol=1e-2)
    assert torch.allclose(got, _bce_reference(logits.detach().float(), x), atol=1e-4)
