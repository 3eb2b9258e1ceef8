"""PIWAE (Rainforth et al. 2018): the inference network ascends MIWAE(M, K), the generative network IWAE(M K),
from the same samples."""

import pytest
import torch

import aekit
from aekit.models.iwae import log_mean_weight
from aekit.objectives import importance_weights


def tiny(name, **settings):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="gaussian", n_bounds=2,
                             n_samples=3, **settings)


def test_each_network_gets_the_gradient_of_its_own_bound():
    """Against torch.autograd.grad of each bound alone: the encoder and posterior get MIWAE(2, 3)'s, the decoder
    IWAE(6)'s, and the logged loss is the sum of the two negative bounds."""
    model = tiny("piwae")
    out = model(torch.randn(5, 6), eps=torch.randn(6, 5, 2))
    loss = model.objective()(out, step=0)
    log_w = importance_weights(out)  # [6, 5]
    miwae, iwae = log_mean_weight(log_w, 2).mean(), log_mean_weight(log_w, 1).mean()
    assert torch.allclose(loss.total, -(miwae + iwae)) and iwae >= miwae  # Jensen: the one bound of M K is tighter
    assert torch.allclose(loss.logs["miwae_bound"], miwae) and torch.allclose(loss.logs["iwae_bound"], iwae)
    networks = model.networks()
    for network, bound in (("inference", miwae), ("generative", iwae)):
        params = networks[network]
        expected = torch.autograd.grad(-bound, params, retain_graph=True)
        got = torch.autograd.grad(loss.total, params, retain_graph=True)
        for g, e in zip(got, expected, strict=True):
            assert torch.allclose(g, e, atol=1e-6)


@pytest.mark.parametrize("estimator", ["stl", "dreg"])
def test_the_encoder_takes_miwaes_estimator_and_the_decoder_the_iwae_gradient(estimator):
    """With a gradient estimator, the encoder's gradient is MIWAE's under that estimator, the decoder's the
    plain IWAE(M K) gradient."""
    x, eps = torch.randn(5, 6), torch.randn(6, 5, 2)
    piwae, miwae = tiny("piwae", gradient_estimator=estimator), tiny("miwae", gradient_estimator=estimator)
    plain = tiny("piwae")
    grads = {}
    for name, model in (("piwae", piwae), ("miwae", miwae), ("plain", plain)):
        model.objective()(model(x, eps=eps), step=0).total.backward()
        grads[name] = {n: p.grad for n, p in model.named_parameters()}
    for name, g in grads["piwae"].items():
        expected = grads["plain" if name.startswith("decoder.") else "miwae"][name]
        assert torch.allclose(g, expected, atol=1e-6), name
