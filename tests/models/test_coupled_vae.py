"""Coupled VAE (Hao & Shafto 2023): the decoder on the entropic OT coupling of the batch with prior draws, the
encoder on the ELBO only."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.nn.transport import sinkhorn


def tiny(**settings):
    torch.manual_seed(0)
    return aekit.build_model("coupled-vae", data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="gaussian",
                             prior_draws=5, **settings)


def test_the_coupling_term_by_hand():
    """coupling_i = n sum_j P_ij C_ij + eps n sum_j P_ij log(P_ij n m), with C_ij = -log p(x_i | z~_j) from the
    same prior draws and P the Sinkhorn plan of C; its batch mean is the entropic transport cost."""
    model, x, eps = tiny(epsilon=0.5), torch.randn(4, 6), 0.5
    torch.manual_seed(3)
    out = model(x)
    torch.manual_seed(3)
    model.encode(x)  # the posterior's draw, taken before the coupling's
    z = torch.randn(5, 2)  # the prior draws
    params = model.decode(z)  # [5, 6]
    cost = torch.stack([model.likelihood.nll(params, x[i].expand(5, 6)) for i in range(4)])  # [4, 5]
    plan = sinkhorn(cost.detach(), eps).plan
    expected = 4 * ((plan * cost).sum(1) + eps * (plan * torch.log(plan * 4 * 5)).sum(1))
    assert torch.allclose(out.terms["coupling"], expected, rtol=1e-5)
    assert torch.allclose(plan.sum(1), torch.full((4,), 0.25), atol=1e-5)


def test_a_large_eps_couples_independently():
    """eps -> infinity: P -> a b^T, so each example's coupling is its mean cost over the prior draws (the KL
    vanishes): the prior-sampling estimate of -log p(x|z) averaged over z."""
    model, x = tiny(epsilon=1e3), torch.randn(3, 6)
    torch.manual_seed(4)
    coupling = model(x).terms["coupling"]
    torch.manual_seed(4)
    model.encode(x)
    params = model.decode(torch.randn(5, 2))  # [5, 6]
    mean_cost = torch.stack([model.likelihood.nll(params, x[i].expand(5, 6)).mean() for i in range(3)])
    assert torch.allclose(coupling, mean_cost, atol=0.02)  # eps KL(P || a b^T) ~ var_j C_ij / (2 eps)


def test_each_network_learns_from_its_own_term():
    """The decoder's gradient is that of the coupling alone (the plan held fixed), the encoder's that of the ELBO
    alone; the logged loss is their sum."""
    model, x = tiny(), torch.randn(4, 6)
    out = model(x)
    loss = model.objective()(out, step=0)
    networks = model.networks()
    coupling, negative_elbo = out.terms["coupling"].mean(), (out.terms["recon"] + out.terms["kl"]).mean()
    assert torch.allclose(loss.total, coupling + negative_elbo)
    assert math.isclose(float(loss.logs["elbo"].detach()), -float(negative_elbo.detach()), rel_tol=1e-6)
    for network, term in (("generative", coupling), ("inference", negative_elbo)):
        expected = torch.autograd.grad(term, networks[network], retain_graph=True)
        got = torch.autograd.grad(loss.total, networks[network], retain_graph=True)
        for g, e in zip(got, expected, strict=True):
            assert torch.allclose(g, e, atol=1e-6)


@pytest.mark.parametrize("settings,message", [
    ({"epsilon": 0.0}, "epsilon"), ({"epsilon": -1.0}, "epsilon"), ({"epsilon": math.nan}, "epsilon"),
    ({"prior_draws": 0}, "prior_draws"), ({"sinkhorn_iterations": 0}, "sinkhorn_iterations"),
    ({"beta": 2.0}, "beta"), ({"condition_dim": 3}, "condition_dim"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message) as error:
        aekit.build_model("coupled-vae", data_shape=(4,), latent_dim=2, hidden=(8,), **settings)
    assert "\n" not in str(error.value)
