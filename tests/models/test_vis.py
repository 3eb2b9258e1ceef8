"""VIS (Li et al. 2024): log p^(x) for the decoder, log(1 + chi^2(p(z|x) || q)) for the encoder, checked on a
linear-Gaussian model whose posterior is known in closed form."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.models.iwae import log_mean_weight
from aekit.models.vis import log_one_plus_chi2
from aekit.objectives import importance_weights

A, B_, S = 1.5, 0.3, 0.8  # p(z) = N(0, 1), p(x|z) = N(A z + B_, S^2)


def linear_gaussian(**settings):
    """An aekit VAE that is the linear-Gaussian model exactly: no hidden layer, so the decoder is x^ = A z + B_ and
    q(z|x) = N(w_mu x + b_mu, exp(w_lv x + b_lv)), a family that holds the exact posterior."""
    torch.manual_seed(0)
    model = aekit.build_model("vis", data_shape=(1,), latent_dim=1, hidden=(), likelihood="gaussian", sigma=S,
                              **settings)
    with torch.no_grad():
        model.decoder.net[0].weight.fill_(A)
        model.decoder.net[0].bias.fill_(B_)
        model.bottleneck.proj.weight.copy_(torch.tensor([[0.2], [0.1]]))  # mu = 0.2 x + 0.1, logvar = 0.1 x - 0.5
        model.bottleneck.proj.bias.copy_(torch.tensor([0.1, -0.5]))
    return model


def posterior(x):
    """The exact p(z|x): variance 1 / (1 + A^2 / S^2), mean var A (x - B_) / S^2."""
    var = 1.0 / (1.0 + A**2 / S**2)
    return var * A * (x - B_) / S**2, var


def closed_form_log_one_plus_chi2(x, mu, logvar):
    """log int p(z|x)^2 / q(z|x) dz for Gaussians: s_q^2 / (s_p sqrt(2 s_q^2 - s_p^2)) exp(d^2 / (2 s_q^2 - s_p^2))."""
    m_p, v_p = posterior(x)
    v_q = logvar.exp()
    spread = 2 * v_q - v_p
    return torch.log(v_q) - 0.5 * math.log(v_p) - 0.5 * torch.log(spread) + (m_p - mu) ** 2 / spread


def test_the_closed_form_is_the_chi2_divergence():
    """The reference itself, against quadrature of p^2 / q - 1."""
    x, mu, logvar = torch.tensor(0.7), torch.tensor(0.2), torch.tensor(-0.4)
    m_p, v_p = posterior(x)
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    log_p = -0.5 * (z - m_p) ** 2 / v_p - 0.5 * math.log(2 * math.pi * v_p)
    log_q = -0.5 * (z - mu) ** 2 / logvar.exp() - 0.5 * (math.log(2 * math.pi) + logvar)
    chi2 = torch.trapezoid(torch.exp(2 * log_p - log_q), z) - 1
    assert math.isclose(math.log1p(chi2), float(closed_form_log_one_plus_chi2(x, mu, logvar)), rel_tol=1e-6)


def test_log_one_plus_chi2_by_hand():
    """K = 2 weights 1 and 3: V = 5, p^ = 2, log(1 + chi^2) = log(5 / 4); zero at equal weights."""
    log_w = torch.tensor([[0.0], [math.log(3.0)]])
    assert torch.allclose(log_one_plus_chi2(log_w), torch.tensor([math.log(5 / 4)]))
    assert torch.allclose(log_one_plus_chi2(torch.full((4, 2), -3.0)), torch.zeros(2), atol=1e-6)


@pytest.mark.parametrize("gradient", ["score", "reparam"])
def test_chi2_value_and_encoder_gradient_match_the_closed_form(gradient):
    """With many samples the term is log(1 + chi^2(p(z|x) || q)) and its encoder gradient that of the closed form
    (p(x) does not depend on the encoder); the decoder gets none of it."""
    model = linear_gaussian(n_samples=2, chi2_gradient=gradient)
    x = torch.tensor([[0.9]])
    torch.manual_seed(1)
    loss = model.objective()(model(x, n_samples=200_000), step=0)
    params = model.networks()["inference"]
    latent = model.encode(x)
    reference = closed_form_log_one_plus_chi2(x[0, 0], latent.params["mu"][0, 0], latent.params["logvar"][0, 0])
    assert math.isclose(float(loss.logs["chi2"].detach()), float(reference.detach()), rel_tol=0.03)
    expected = torch.autograd.grad(reference, params)
    got = torch.autograd.grad(loss.total, params, retain_graph=True)
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, rtol=0.06, atol=0.01), (g, e)


def test_score_gradient_by_hand_and_the_decoder_takes_the_iwae_gradient():
    """At K = 3 the encoder's gradient is -sum_k softmax_k(2 log w) d log q(z_k|x) / d phi with the samples fixed,
    and the decoder's that of -log p^(x) alone."""
    model = linear_gaussian(n_samples=3)
    x, eps = torch.tensor([[0.9], [-0.4]]), torch.randn(3, 2, 1)
    out = model(x, eps=eps)
    loss = model.objective()(out, step=0)
    log_w = importance_weights(out)  # [3, 2]
    networks = model.networks()
    mu, logvar = out.latent.params["mu"], out.latent.params["logvar"]  # [2, 1]
    z = out.latent.z.detach()  # [3, 2, 1]
    log_q = (-0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)  # [3, 2]
    weights = (2 * log_w).detach().softmax(0)
    expected = torch.autograd.grad(-(weights * log_q).sum(0).mean(), networks["inference"], retain_graph=True)
    got = torch.autograd.grad(loss.total, networks["inference"], retain_graph=True)
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, atol=1e-6)
    bound = log_mean_weight(log_w).mean()
    expected = torch.autograd.grad(-bound, networks["generative"], retain_graph=True)
    got = torch.autograd.grad(loss.total, networks["generative"], retain_graph=True)
    for g, e in zip(got, expected, strict=True):
        assert torch.allclose(g, e, atol=1e-6)
    assert torch.allclose(loss.logs["iwae_bound"], bound)


def test_the_fitted_proposal_moves_to_the_exact_posterior():
    """The decoder held at the true model, the encoder trained on the chi^2 term alone: q(z|x) reaches p(z|x)."""
    model = linear_gaussian(n_samples=32)
    x = torch.linspace(-2, 2, 16).view(-1, 1)
    params = model.networks()["inference"]
    optimiser = torch.optim.Adam(params, lr=0.05)
    m_p, v_p = posterior(x[:, 0])

    def chi2_now():
        latent = model.encode(x)
        return closed_form_log_one_plus_chi2(x[:, 0], latent.params["mu"][:, 0], latent.params["logvar"][:, 0])

    before = float(chi2_now().mean().detach())
    torch.manual_seed(0)
    for step in range(300):
        optimiser.zero_grad()
        model.objective()(model(x), step=step).total.backward()
        optimiser.step()
    after = chi2_now().detach()
    latent = model.encode(x)
    assert before > 0.3 and float(after.mean()) < 0.02
    assert torch.allclose(latent.params["mu"][:, 0], m_p, atol=0.05)
    assert torch.allclose(latent.params["logvar"][:, 0].exp(), torch.full_like(m_p, v_p), rtol=0.1)


@pytest.mark.parametrize("settings,message", [
    ({"n_samples": 1}, "K >= 2"), ({"n_samples": 0}, "K >= 2"), ({"chi2_gradient": "dreg"}, "chi2_gradient"),
    ({"gradient_estimator": "dreg"}, "gradient_estimator"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        aekit.build_model("vis", data_shape=(4,), latent_dim=2, hidden=(8,), **settings)
    assert "\n" not in str(error.value)
