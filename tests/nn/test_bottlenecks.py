import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.bottlenecks import Deterministic, DiagonalGaussian, StandardNormal
from aekit.nn.corruptions import GaussianNoise, MaskingNoise, SaltAndPepper, make_corruption
from aekit.parts import PartContext


def ctx(features: int, latent_dim: int) -> PartContext:
    return PartContext(feature_shape=(features,), latent_shape=(latent_dim,))


def test_gaussian_kl_matches_closed_form_and_monte_carlo():
    torch.manual_seed(0)
    b = DiagonalGaussian(ctx(4, 3))
    h = torch.randn(2, 4)
    out = b(h)
    mu, logvar = out.params["mu"], out.params["logvar"]
    by_hand = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
    assert torch.allclose(out.terms["kl"], by_hand)
    # Monte Carlo E_q[log q - log p] agrees with the analytic KL
    z = b(h, n_samples=200_000).z
    mc = (b.log_q(z, out.params) - b.log_p(z)).mean(0)
    assert torch.allclose(mc, out.terms["kl"], atol=0.02)


def test_kl_of_standard_normal_posterior_is_zero():
    b = DiagonalGaussian(ctx(2, 5))
    torch.nn.init.zeros_(b.proj.weight)
    torch.nn.init.zeros_(b.proj.bias)
    out = b(torch.randn(3, 2))
    assert torch.allclose(out.terms["kl"], torch.zeros(3), atol=1e-7)


def test_reparameterisation_uses_passed_noise():
    b = DiagonalGaussian(ctx(4, 2))
    h, eps = torch.randn(3, 4), torch.randn(7, 3, 2)
    out = b(h, eps=eps)
    assert out.z.shape == (7, 3, 2)
    assert torch.allclose(out.z, out.params["mu"] + (0.5 * out.params["logvar"]).exp() * eps)


def test_log_q_and_prior_closed_form():
    z = torch.tensor([[[0.5, -1.0]]])
    expected_p = -0.5 * (0.25 + 1.0) - math.log(2 * math.pi)
    assert StandardNormal(2).log_prob(z).item() == pytest.approx(expected_p)
    params = {"mu": torch.tensor([[0.5, -1.0]]), "logvar": torch.zeros(1, 2)}
    assert DiagonalGaussian(ctx(1, 2)).log_q(z, params).item() == pytest.approx(-math.log(2 * math.pi))


def test_deterministic_bottleneck_repeats_code_over_samples():
    out = Deterministic(ctx(4, 2))(torch.randn(3, 4), n_samples=2)
    assert out.z.shape == (2, 3, 2) and torch.equal(out.z[0], out.mean) and out.terms == {}


def test_corruptions_with_passed_noise():
    x, u = torch.tensor([0.2, 0.4, 0.6, 0.8]), torch.tensor([0.05, 0.3, 0.1, 0.9])
    assert torch.allclose(GaussianNoise(0.5)(x, noise=torch.ones(4)), x + 0.5)
    assert torch.equal(MaskingNoise(0.2)(x, noise=u), torch.tensor([0.0, 0.4, 0.0, 0.8]))
    assert torch.equal(SaltAndPepper(0.2)(x, noise=u), torch.tensor([1.0, 0.4, 0.0, 0.8]))
    with pytest.raises(ConfigError, match="noise_level=1.5"):
        make_corruption("masking", 1.5)
