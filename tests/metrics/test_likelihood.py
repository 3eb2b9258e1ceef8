"""The importance-sampling estimator on a linear-Gaussian model, where log p(x) is known in closed form:
p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I)  =>  p(x) = N(b, W W^T + s^2 I)."""

import math

import pytest
import torch
from torch import nn

import aekit
from aekit.data.base import Dataset
from aekit.metrics import elbo_terms, importance_sampled_log_likelihood

D_X, D_Z, SIGMA = 5, 2, 0.5


class Identity(nn.Module):
    out_features = D_X

    def forward(self, x):
        return x  # [B, D_x]: the features are the data


def linear_gaussian(exact_posterior: bool, perturb: float = 0.0):
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D_X, D_Z, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns: the true posterior is diagonal
    b = torch.randn(D_X, dtype=torch.float64)
    decoder = nn.Linear(D_Z, D_X).double()
    decoder.weight.data, decoder.bias.data = w.clone(), b.clone()
    model = aekit.build_model("vae", data_shape=(D_X,), latent_dim=D_Z, likelihood="gaussian", sigma=SIGMA,
                              encoder=Identity(), decoder=decoder).double()
    if exact_posterior or perturb:
        cov = torch.linalg.inv(torch.eye(D_Z, dtype=torch.float64) + w.T @ w / SIGMA**2)  # diagonal
        a = cov @ w.T / SIGMA**2
        proj = model.bottleneck.proj
        proj.weight.data = torch.cat([a, torch.zeros(D_Z, D_X, dtype=torch.float64)])
        proj.bias.data = torch.cat([-a @ b + perturb, torch.log(torch.diagonal(cov)) + perturb])
    x = torch.randn(6, D_X, dtype=torch.float64) * 2 + b
    marginal = torch.distributions.MultivariateNormal(b, w @ w.T + SIGMA**2 * torch.eye(D_X, dtype=torch.float64))
    return model.eval(), x, marginal.log_prob(x)


def test_exact_posterior_gives_exact_log_likelihood_with_few_samples():
    model, x, exact = linear_gaussian(exact_posterior=True)
    assert torch.allclose(importance_sampled_log_likelihood(model, x, n_samples=3), exact, atol=1e-8)


def test_estimate_converges_to_exact_and_bounds_the_elbo():
    model, x, exact = linear_gaussian(exact_posterior=False, perturb=0.4)  # a close but inexact q(z|x)
    torch.manual_seed(1)
    many = x.repeat(2000, 1)  # 2000 independent draws per example, in one batch
    elbo = elbo_terms(model, many)["elbo"].view(2000, -1).mean(0)
    k1 = importance_sampled_log_likelihood(model, many, n_samples=1).view(2000, -1).mean(0)
    k5000 = importance_sampled_log_likelihood(model, x, n_samples=5000, chunk_size=700)  # chunks: 700 x 7 + 100
    k10 = importance_sampled_log_likelihood(model, many, n_samples=10).view(2000, -1).mean(0)
    assert torch.allclose(k1, elbo, atol=0.15)  # K = 1 is the ELBO
    assert (exact - elbo > 0.2).all()  # the bound is loose ...
    assert (k10 > elbo).all() and (k5000 > k10).all()  # ... and tightens with K ...
    assert torch.allclose(k5000, exact, atol=0.1)  # ... to the exact log p(x)


def test_chunking_does_not_change_the_estimate():
    model, x, _ = linear_gaussian(exact_posterior=False)
    torch.manual_seed(3)
    one = importance_sampled_log_likelihood(model, x, n_samples=64, chunk_size=64)
    torch.manual_seed(3)
    many = importance_sampled_log_likelihood(model, x, n_samples=64, chunk_size=16)
    assert torch.allclose(one, many, atol=1e-9)


@pytest.mark.parametrize("max_decoded, largest", [(None, 4096 // 6 * 6), (60, 60), (1, 6)])
def test_chunks_decode_at_most_max_decoded_rows(monkeypatch, max_decoded, largest):
    model, x, _ = linear_gaussian(exact_posterior=False)  # 6 examples
    decoded = []
    decode = model.decode
    monkeypatch.setattr(model, "decode", lambda z, c=None: decoded.append(z.shape[0] * z.shape[1]) or decode(z, c))
    importance_sampled_log_likelihood(model, x, n_samples=5000, max_decoded=max_decoded)
    assert max(decoded) == largest and sum(decoded) == 5000 * 6  # at least one sample per chunk


def test_deterministic_model_has_no_likelihood():
    model = aekit.build_model("ae", data_shape=(3,), latent_dim=2, likelihood="gaussian")
    with pytest.raises(aekit.AekitError, match="deterministic"):
        importance_sampled_log_likelihood(model, torch.zeros(2, 3), n_samples=2)
    assert math.isfinite(model(torch.zeros(2, 3)).terms["recon"].sum().item())


def test_evaluate_reports_the_mean_nll_and_its_standard_error_over_examples():
    model, x, exact = linear_gaussian(exact_posterior=True)  # exact posterior: every estimate is log p(x)
    data = Dataset(x=x.float(), y=None, name="linear-gaussian")
    metrics = aekit.evaluate(model.float(), data, nll_samples=4)
    assert metrics["test/nll"] == pytest.approx(-float(exact.mean()), abs=1e-4)
    assert metrics["test/nll_stderr"] == pytest.approx(float(exact.std()) / math.sqrt(len(x)), abs=1e-4)
