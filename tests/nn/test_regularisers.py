"""Regularisers: the Jacobian penalties against autograd's Jacobian, the nuclear norm against the singular values,
and a regulariser chosen by name on any autoencoder."""

import itertools

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.nn.divergences import KERNEL_SCALES, kernel_widths
from aekit.nn.regularisers import jacobian_norm_sq, sigmoid_code_jacobian_norm_sq


def frobenius_sq_by_autograd(f, x):
    """||J_f(x_i)||_F^2 for each example, from torch.autograd.functional.jacobian one example at a time."""
    return torch.stack([torch.autograd.functional.jacobian(lambda xi: f(xi.unsqueeze(0))[0], xi).pow(2).sum()
                        for xi in x])


def contractive(**kw):
    torch.manual_seed(0)
    return aekit.build_model("contractive-ae", data_shape=(1, 4, 4), latent_dim=3, likelihood="bernoulli", **kw)


def code_of(model):
    return lambda inputs: model.encode(inputs).mean


def test_contractive_closed_form_of_a_sigmoid_code_matches_autograd():
    model = contractive()  # the paper's encoder: flatten, then h = sigmoid(W x + b)
    assert model.regulariser.closed_form and model.encoder.flattens_only
    x = torch.rand(5, 1, 4, 4)
    out = model(x)
    assert ((out.latent.mean > 0) & (out.latent.mean < 1)).all()
    expected = frobenius_sq_by_autograd(code_of(model), x)
    assert torch.allclose(out.terms["contractive"], expected, rtol=1e-5, atol=1e-7)
    h, w = out.latent.mean, model.bottleneck.proj.weight  # sum_j (h_j (1 - h_j))^2 ||W_j||^2, written out
    by_hand = sum((h[:, j] * (1 - h[:, j])) ** 2 * (w[j] ** 2).sum() for j in range(3))
    assert torch.allclose(sigmoid_code_jacobian_norm_sq(h, w), by_hand)


@pytest.mark.parametrize("backbone", ["mlp", "conv"])
def test_contractive_exact_norm_of_a_deeper_encoder_matches_autograd(backbone):
    model = contractive(hidden=(8,), backbone=backbone, channels=(4,), jacobian="exact")
    assert not model.regulariser.closed_form
    x = torch.rand(4, 1, 4, 4)
    expected = frobenius_sq_by_autograd(code_of(model), x)
    assert torch.allclose(model(x).terms["contractive"], expected, rtol=1e-5, atol=1e-7)


def test_hutchinson_over_every_sign_pattern_is_exact_and_unbiased_on_average():
    model = contractive(hidden=(8,), jacobian="hutchinson")
    x = torch.rand(4, 1, 4, 4)
    expected = frobenius_sq_by_autograd(code_of(model), x)
    signs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=3)))  # all 8 Rademacher vectors in R^3
    probes = signs.unsqueeze(1).expand(8, 4, 3)  # [P, B, D]: each example probed with every pattern
    assert torch.allclose(jacobian_norm_sq(code_of(model), x, probes=probes), expected, rtol=1e-5)
    torch.manual_seed(1)
    estimate = jacobian_norm_sq(code_of(model), x, projections=4000)
    assert torch.allclose(estimate, expected, rtol=0.05)


def test_contractive_penalty_trains_the_encoder_and_is_a_value_under_no_grad():
    model = contractive(hidden=(8,))
    x = torch.rand(3, 1, 4, 4)
    term = model(x).terms["contractive"]
    grads = torch.autograd.grad(term.sum(), list(model.encoder.parameters()))
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    with torch.no_grad():
        value = model(x).terms["contractive"]
    assert not value.requires_grad and value.shape == (3,)


def test_contractive_closed_form_refused_where_it_does_not_hold():
    with pytest.raises(ConfigError, match="jacobian=closed-form holds for the one-layer sigmoid code"):
        contractive(hidden=(8,), jacobian="closed-form")


def test_nuclear_norm_is_the_sum_of_the_code_matrix_singular_values():
    torch.manual_seed(0)
    model = aekit.build_model("lorae", data_shape=(6,), latent_dim=4, hidden=(8,), likelihood="gaussian")
    out = model(torch.randn(7, 6))
    z = out.latent.z[0]  # [B, D]
    assert out.terms["nuclear"].dim() == 0
    assert torch.allclose(out.terms["nuclear"], torch.linalg.svdvals(z).sum())
    diagonal = torch.diag(torch.tensor([3.0, -4.0]))
    assert torch.linalg.svdvals(diagonal).sum().item() == pytest.approx(7.0)  # |3| + |-4|


def rae(**kw):
    torch.manual_seed(0)
    return aekit.build_model("rae", data_shape=(5,), latent_dim=2, hidden=(6,), likelihood="gaussian", **kw)


def test_rae_code_and_l2_decoder_penalties_by_hand():
    model = rae()
    out = model(torch.randn(4, 5))
    z = out.latent.z[0]
    assert torch.allclose(out.terms["code"], 0.5 * (z ** 2).sum(1))
    assert torch.allclose(out.terms["decoder"], sum((p ** 2).sum() for p in model.decoder.parameters()))
    assert out.terms["decoder"].dim() == 0


def test_rae_gradient_penalty_estimates_the_decoder_jacobian_and_reaches_the_decoder_only():
    model = rae(decoder_penalty="gradient", projections=4000)
    x = torch.randn(3, 5)
    torch.manual_seed(2)
    out = model(x)
    decode = lambda z: model.decode(z)  # noqa: E731  [B, 5]
    expected = frobenius_sq_by_autograd(decode, out.latent.z[0].detach())
    assert torch.allclose(jacobian_norm_sq(decode, out.latent.z[0], exact=True), expected, rtol=1e-5)
    assert torch.allclose(out.terms["decoder"], expected, rtol=0.1)  # Hutchinson, 4000 probes
    encoder = list(model.encoder.parameters()) + list(model.bottleneck.parameters())
    assert all(g is None for g in torch.autograd.grad(out.terms["decoder"].sum(), encoder, allow_unused=True,
                                                      retain_graph=True))
    assert any(g is not None for g in torch.autograd.grad(out.terms["decoder"].sum(), list(model.decoder.parameters()),
                                                          allow_unused=True))


def test_any_autoencoder_takes_a_regulariser_by_name_with_its_settings():
    model = aekit.build_model("ae", data_shape=(1, 8, 8), latent_dim=3, channels=(4, 8), backbone="conv-grid",
                              regulariser="mmd", options={"regulariser": {"kernel": "rbf"}})
    assert model.has_prior and model.regulariser.kernel == "rbf"  # the MMD's prior, the config's prior
    assert model.bottleneck.latent_shape == (2, 2, 3)
    assert model.regulariser.widths == kernel_widths(KERNEL_SCALES, 12)  # the grid as one vector of 2 * 2 * 3
    out = model(torch.rand(4, 1, 8, 8))
    assert out.terms["mmd"].dim() == 0 and set(model.objective_terms()) == {"recon", "mmd"}
    with pytest.raises(ConfigError, match="regulariser='no-such' is unknown"):
        aekit.build_model("ae", regulariser="no-such")
    with pytest.raises(ConfigError, match="regulariser.radius: nuclear-norm has no such setting"):
        aekit.build_model("ae", regulariser="nuclear-norm", options={"regulariser": {"radius": 2}})


def test_deterministic_bottleneck_activation_is_checked():
    with pytest.raises(ConfigError, match="bottleneck.activation='softsign' is unknown"):
        aekit.build_model("ae", options={"bottleneck": {"activation": "softsign"}})
