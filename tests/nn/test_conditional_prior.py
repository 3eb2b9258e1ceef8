"""iVAE's conditional prior p(z|u): the KL from a Gaussian posterior against the closed form written out and a Monte
Carlo estimate, a prior that depends on u, log p(z|u) and draws given u."""

import math

import pytest
import torch

from aekit.errors import ConfigError, DataError
from aekit.nn.conditional_prior import ConditionalGaussian
from aekit.parts import PartContext


def prior(d=3, u_dim=4, **kw):
    torch.manual_seed(0)
    return ConditionalGaussian(PartContext(latent_shape=(d,), condition_dim=u_dim), **kw)


class U:
    def __init__(self, u):
        self.condition = u


def test_kl_against_the_closed_form_and_monte_carlo():
    p = prior()
    u = torch.eye(4)[[0, 2]]
    mu_q, logvar_q = torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.3, -0.2]]), torch.tensor([[0.1, -0.5, 0.0], [1.0, 0, 0]])
    kl = p.kl_from_gaussian(mu_q, logvar_q, U(u))
    mu_p, logvar_p = p.params(u)
    var_q, var_p = logvar_q.exp(), logvar_p.exp()
    written = 0.5 * (torch.log(var_p / var_q) + (var_q + (mu_q - mu_p) ** 2) / var_p - 1)
    assert torch.allclose(kl, written, atol=1e-6)
    torch.manual_seed(1)
    z = mu_q + (0.5 * logvar_q).exp() * torch.randn(200000, 2, 3)  # [S, B, D]
    log_q = (-0.5 * ((z - mu_q) ** 2 / var_q + logvar_q + math.log(2 * math.pi))).sum(-1)
    monte_carlo = (log_q - p.log_prob(z, U(u))).mean(0)
    assert torch.allclose(monte_carlo, kl.sum(-1), atol=0.03)
    assert p.kl_from_gaussian(mu_q, logvar_q) is None  # without u: no closed form here


def test_the_prior_depends_on_u_and_samples_given_u():
    p = prior()
    u = torch.eye(4)
    mu, logvar = p.params(u)
    assert not torch.allclose(mu[0], mu[1]) and not torch.allclose(logvar[0], logvar[1])
    z = p.sample(20000, generator=torch.Generator().manual_seed(0), condition=u[[1]].expand(20000, 4))
    with torch.no_grad():
        assert torch.allclose(z.mean(0), mu[1], atol=0.05)
        assert torch.allclose(z.var(0).log(), logvar[1], atol=0.05)
    zero_mean = prior(learn_mean=False)
    assert torch.equal(zero_mean.params(u)[0], torch.zeros(4, 3))
    with pytest.raises(DataError, match="pass condition="):
        p.sample(3)
    with pytest.raises(DataError, match="auxiliary variable u"):
        p.log_prob(torch.zeros(1, 2, 3), U(None))


def test_a_prior_without_u_is_refused():
    with pytest.raises(ConfigError, match="condition_dim >= 1"):
        ConditionalGaussian(PartContext(latent_shape=(3,), condition_dim=0))


def test_the_second_vae_terms_by_hand():
    """IDVAE: u_recon = 1/2 ||u - g(mu + sigma eps)||^2 + U/2 log 2 pi, u_kl = KL(N(mu, sigma^2) || N(0, I))."""
    p = prior(auxiliary_vae=True)
    u = torch.eye(4)[[1, 3]]
    eps = torch.tensor([[0.3, -1.0, 0.5], [0.0, 2.0, -0.2]])
    terms = p.auxiliary_terms(u, eps=eps)
    mu, logvar = p.params(u)
    u_hat = p.u_decoder(mu + (0.5 * logvar).exp() * eps)
    recon = 0.5 * ((u - u_hat) ** 2).sum(-1) + 2 * math.log(2 * math.pi)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1)
    assert torch.allclose(terms["u_recon"], recon, atol=1e-6) and torch.allclose(terms["u_kl"], kl, atol=1e-6)
    assert not hasattr(prior(), "u_decoder")
