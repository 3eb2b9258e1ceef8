"""The concrete (Gumbel-softmax) parts of JointVAE: the categorical KL against a hand computation, relaxed samples on
the simplex tending to one-hot codes as the temperature falls, one-hot codes at evaluation, the capacity cap."""

import math

import pytest
import torch

from aekit.errors import ConfigError
from aekit.nn.concrete import (
    GaussianCategoricalPrior,
    GaussianConcrete,
    categorical_kl_uniform,
    discrete_capacity,
    gumbel_noise,
    relaxed_one_hot,
)
from aekit.parts import PartContext


def context(latent_dim=6):
    return PartContext(data_shape=(4,), feature_shape=(5,), latent_shape=(latent_dim,))


def test_categorical_kl_to_the_uniform_by_hand():
    alpha = torch.tensor([[0.5, 0.25, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    # sum_k alpha_k log(3 alpha_k) = 0.5 log 1.5 + 2 * 0.25 log 0.75
    expected = torch.tensor([0.5 * math.log(1.5) + 0.5 * math.log(0.75), 0.0])
    assert torch.allclose(categorical_kl_uniform(alpha.log()), expected, atol=1e-6)
    peaked = torch.log_softmax(torch.tensor([60.0, 0.0, 0.0, 0.0]), -1)  # a certain unit carries log K
    assert categorical_kl_uniform(peaked).item() == pytest.approx(math.log(4), abs=1e-5)
    assert discrete_capacity((10, 3)) == pytest.approx(math.log(30))


def test_relaxed_samples_lie_on_the_simplex_and_tend_to_one_hot_as_the_temperature_falls():
    torch.manual_seed(0)
    logits = torch.randn(500, 5).log_softmax(-1)
    g = gumbel_noise(logits.shape)
    hard = torch.nn.functional.one_hot((logits + g).argmax(-1), 5).float()  # the Gumbel-max draw
    gaps = []
    for tau in (2.0, 0.67, 0.1, 0.01, 0.001):
        y = relaxed_one_hot(logits, tau, gumbel=g)
        assert torch.allclose(y.sum(-1), torch.ones(500), atol=1e-5) and bool((y >= 0).all())
        gaps.append((y - hard).abs().sum(-1).mean().item())
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 2e-3


def test_gumbel_max_draws_follow_alpha():
    """argmax(log alpha + g) ~ Cat(alpha): frequencies of 40,000 draws within 0.01 of alpha."""
    torch.manual_seed(1)
    alpha = torch.tensor([0.6, 0.3, 0.1])
    draws = (alpha.log() + gumbel_noise((40000, 3))).argmax(-1)
    assert torch.allclose(torch.bincount(draws, minlength=3) / 40000.0, alpha, atol=0.01)


def test_the_bottleneck_relaxes_in_training_and_gives_one_hot_codes_at_evaluation():
    torch.manual_seed(0)
    part = GaussianConcrete(context(7), discrete=(3, 2), temperature=0.67)
    h = torch.randn(4, 5)
    out = part(h, n_samples=2)
    c = out.z[..., 2:]  # [S, B, 5]: the categories after 2 Gaussian units
    assert out.z.shape == (2, 4, 7)
    assert torch.allclose(c[..., :3].sum(-1), torch.ones(2, 4)) and torch.allclose(c[..., 3:].sum(-1), torch.ones(2, 4))
    assert not torch.equal(c, c.round())  # relaxed, not one-hot
    log_alpha = out.params["log_alpha"]
    expected = categorical_kl_uniform(log_alpha[:, :3]) + categorical_kl_uniform(log_alpha[:, 3:])
    assert torch.allclose(out.terms["kl_disc"], expected)
    mu, logvar = out.params["mu"], out.params["logvar"]
    assert torch.allclose(out.terms["kl"], 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1))
    part.eval()
    codes = part(h, n_samples=2).z[..., 2:]
    assert set(codes.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(codes[0, :, :3].argmax(-1), log_alpha[:, :3].argmax(-1))
    assert torch.equal(codes[0], codes[1]) and torch.equal(part(h).mean[:, 2:], codes[0])


def test_the_prior_draws_gaussian_units_and_one_hot_blocks():
    prior = GaussianCategoricalPrior((7,), (3, 2))
    z = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(z[:, 2:5].sum(-1), torch.ones(2000)) and torch.equal(z[:, 5:].sum(-1), torch.ones(2000))
    assert torch.allclose(z[:, 2:5].mean(0), torch.full((3,), 1 / 3), atol=0.04)
    expected = -0.5 * (z[:, :2] ** 2 + math.log(2 * math.pi)).sum(-1) - math.log(6)
    assert torch.allclose(prior.log_prob(z), expected)


@pytest.mark.parametrize("settings,fragment", [({"discrete": (1,)}, "at least 2 categories"),
                                               ({"discrete": (10,)}, "latent_dim=7"),
                                               ({"discrete": (3,), "temperature": 0.0}, "temperature > 0")])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        GaussianConcrete(context(7), **settings)
    assert "\n" not in str(error.value)
