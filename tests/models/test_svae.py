"""svae: defaults and the distribution shorthand, the KL term and embedding, the importance-sampled log p(x) through
each posterior's own sampling and density against an exact value, bad settings, and a run from the command line."""

import json
import math
import re

import pytest
import torch

import aekit
from aekit import cli
from aekit.errors import ConfigError
from aekit.metrics import importance_sampled_log_likelihood
from aekit.nn.spherical import power_spherical_kl_to_uniform, vmf_kl_to_uniform


@pytest.mark.parametrize("distribution,kl", [("vmf", vmf_kl_to_uniform),
                                              ("power-spherical", power_spherical_kl_to_uniform)])
def test_svae_terms_embedding_and_shorthand(distribution, kl):
    torch.manual_seed(0)
    model = aekit.build_model("svae", data_shape=(6,), hidden=(8,), likelihood="gaussian", distribution=distribution)
    assert model.config.latent_dim == 10 and model.config.prior == "uniform-sphere"
    assert model.config.options["bottleneck"] == {"distribution": distribution}
    assert model.bottleneck.distribution == distribution
    x = torch.rand(5, 6)
    out = model(x, n_samples=3)
    params = out.latent.params
    assert out.latent.z.shape == (3, 5, 10) and torch.allclose(out.latent.z.norm(dim=-1), torch.ones(()))
    assert torch.allclose(out.terms["kl"], kl(10, params["kappa"]).view(5)) and (params["kappa"] >= 1).all()
    assert torch.allclose(model.embed(x), params["mu"]) and torch.allclose(params["mu"].norm(dim=-1), torch.ones(()))
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 6)


def test_the_vmf_correction_is_zero_in_value_and_the_score_term_in_gradient():
    """The model's ``vmf_correction`` is 0; its gradient in the kappa head is that of E_q[f * log q/r] with f the
    draws' -log p(x|z); an importance-weighted bound only logs it; without gradients it is not made."""
    torch.manual_seed(0)
    model = aekit.build_model("svae", data_shape=(6,), hidden=(8,), likelihood="gaussian")
    x = torch.rand(5, 6)
    torch.manual_seed(1)
    out = model(x, n_samples=3)
    correction = out.terms["vmf_correction"]
    assert correction.shape == (5,) and torch.equal(correction, torch.zeros(5))
    f = model.likelihood.nll(out.x_params, x).detach()  # [S, B]
    log_ratio = out.latent.params["rejection_log_ratio"]  # [S, B]
    kappa_head = model.bottleneck.proj.bias
    by_hand = torch.autograd.grad((f * log_ratio).mean(0).sum(), kappa_head, retain_graph=True)[0]
    assert torch.allclose(torch.autograd.grad(correction.sum(), kappa_head)[0], by_hand)
    assert model.objective().terms["vmf_correction"].log_only is False
    iwae = aekit.build_model("svae", data_shape=(6,), hidden=(8,), likelihood="gaussian", objective="iwae")
    assert iwae.objective().terms["vmf_correction"].log_only
    with torch.no_grad():
        assert "vmf_correction" not in model(x).terms


@pytest.mark.parametrize("distribution", ["vmf", "power-spherical"])
def test_log_likelihood_through_the_posterior_is_exact_for_a_decoder_that_ignores_z(distribution):
    """With the decoder's weights at zero, p(x|z) = p(x) for every z, so log p(x) is known exactly and the
    importance-sampled estimate E_q[p(x|z) p(z) / q(z|x)] reaches it only if log q is the density of the draws
    (20,000 of them on S^2: within 0.02 nats). kappa is kept near 1: the weights' variance grows like e^{2 kappa}
    when q is much narrower than the flat p(z|x) = p(z)."""
    torch.manual_seed(0)
    model = aekit.build_model("svae", data_shape=(2,), hidden=(), likelihood="gaussian", latent_dim=3,
                              distribution=distribution)
    with torch.no_grad():
        (decoder,) = model.decoder.net
        decoder.weight.zero_()
        model.bottleneck.proj.bias[-1] = -1.0  # kappa = softplus(-1 + ...) + 1, near 1.3
    x = torch.tensor([[0.5, -0.2], [1.0, 0.3]])
    exact = -model.likelihood.nll(model.decode(torch.zeros(1, 2, 3)), x)[0]  # [B]
    torch.manual_seed(1)
    estimate = importance_sampled_log_likelihood(model, x, n_samples=20_000)
    assert torch.allclose(estimate, exact, atol=0.02)
    out = model(x, n_samples=2000)
    assert (out.latent.log_q - out.latent.log_p).mean(0).sub(out.terms["kl"]).abs().max() < 0.05


@pytest.mark.parametrize("settings,fragment", [
    ({"latent_dim": 1}, "latent_dim=1: a vmf latent lives on the sphere"),
    ({"latent_dim": 1, "distribution": "power-spherical"}, "latent_dim=1: a power-spherical latent"),
    ({"distribution": "normal"}, "distribution='normal' is unknown; choose one of vmf, power-spherical"),
])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)) as error:
        aekit.build_model("svae", data_shape=(4,), hidden=(8,), **settings)
    assert "\n" not in str(error.value)


def test_spherical_bottleneck_needs_the_uniform_sphere_prior():
    with pytest.raises(ConfigError, match="use prior=uniform-sphere"):
        aekit.build_model("vae", data_shape=(4,), hidden=(8,), bottleneck="spherical")
    iwae = aekit.build_model("iwae", data_shape=(4,), latent_dim=3, hidden=(8,), bottleneck="spherical",
                             prior="uniform-sphere")
    assert torch.isfinite(iwae.objective()(iwae(torch.rand(3, 4)), step=0).total)


def test_train_svae_from_the_command_line_and_load_it(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "svae", "--data", "digits", "--out", str(run), "--steps", "5", "latent_dim=3",
                     "hidden=32", "nll_samples=10", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["test/nll"]) and math.isfinite(metrics["test/elbo"])
    model = aekit.load(run / "model")
    assert model.name == "svae" and model.bottleneck.distribution == "vmf"
    assert torch.isfinite(model.sample(3, generator=torch.Generator().manual_seed(0))).all()
    capsys.readouterr()
    code = cli.main(["train", "svae", "--data", "digits", "--out", str(tmp_path / "bad"), "latent_dim=1"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0 and len(err) == 1 and "latent_dim=1" in err[0] and not (tmp_path / "bad").exists()
