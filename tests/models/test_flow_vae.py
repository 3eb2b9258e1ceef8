"""vae-nf and vae-iaf: log p(x) through each flow against a linear-Gaussian model's closed form, the flow's settings
as shorthands, free flow parameters saved and loaded, bad settings, and a small run from the command line."""

import json
import math
import re

import pytest
import torch

import aekit
from aekit import cli
from aekit.errors import ConfigError
from aekit.metrics import importance_sampled_log_likelihood

RECIPES = [("vae-nf", {}), ("vae-nf", {"flow": "radial"}), ("vae-iaf", {"made_hidden": (8,), "context_dim": 3})]


def linear_gaussian(name, sigma=1.0, **kw):
    """z ~ N(0, I_2), x | z ~ N(C z + d, sigma^2 I): a linear decoder (no hidden layers), so that
    x ~ N(d, C C^T + sigma^2 I); the encoder reads x itself, the flow's parameters are the initial random ones."""
    torch.manual_seed(0)
    model = aekit.build_model(name, data_shape=(2,), likelihood="gaussian", sigma=sigma, latent_dim=2, hidden=(),
                              flow_length=3, **kw)
    c, d = torch.tensor([[1.0, 0.3], [-0.4, 0.8]]), torch.tensor([0.2, -0.1])
    with torch.no_grad():
        (decoder,) = model.decoder.net
        decoder.weight.copy_(c)
        decoder.bias.copy_(d)
        base = model.bottleneck.q0.proj  # q_0 = N(0.3 x, e^1.5): the flow carries it to its own shape
        base.weight.zero_()
        base.weight[:2].copy_(0.3 * torch.eye(2))
        base.bias.zero_()
        base.bias[2:] = 1.5
        for weight in (module.weight for module in model.bottleneck.flow.modules() if hasattr(module, "mask")):
            weight.mul_(0.3)  # the IAF's m and s vary with z mildly: the weights keep a finite variance
    return model, torch.distributions.MultivariateNormal(d, c @ c.T + sigma ** 2 * torch.eye(2))


@pytest.mark.parametrize("name,settings", RECIPES)
def test_log_likelihood_through_the_flow_matches_the_closed_form(name, settings):
    """The importance-sampled log p(x) with q_K as the proposal is consistent only if log q_K is the density of
    the samples drawn (50,000 of them: within 0.015 nats over four seeds). The flow is far from the identity and
    q_K from the posterior (the log-determinant and the ELBO's gap are checked)."""
    model, marginal = linear_gaussian(name, **settings)
    x = torch.tensor([[0.5, 0.0], [2.0, -1.0], [-1.0, 0.8]])
    torch.manual_seed(1)
    estimate = importance_sampled_log_likelihood(model, x, n_samples=50_000)
    assert torch.allclose(estimate, marginal.log_prob(x), atol=0.03)
    with torch.no_grad():
        out = model(x, n_samples=2000)
        log_det = model.bottleneck.transform(out.latent.params, 2000)[2]  # [S, B]
    elbo = -(out.terms["recon"] + out.terms["kl"])
    assert (marginal.log_prob(x) - elbo).mean() > 0.1 and log_det.abs().mean() > 0.1


def test_flow_settings_are_shorthands_and_free_parameters_are_saved(tmp_path):
    model = aekit.build_model("vae-nf", data_shape=(4,), latent_dim=2, hidden=(8,), likelihood="gaussian",
                              flow="radial", flow_length=3, amortised=False)
    bn = model.bottleneck
    assert (bn.flow_name, bn.length, bn.flow.amortised) == ("radial", 3, False)
    assert model.config.options["bottleneck"] == {"flow": "radial", "length": 3, "amortised": False}
    loaded = aekit.load(aekit.save_model(model, tmp_path / "m"))
    assert torch.equal(loaded.bottleneck.flow.theta, bn.flow.theta) and loaded.config == model.config
    iaf = aekit.build_model("vae-iaf", data_shape=(4,), latent_dim=3, hidden=(8,), made_hidden=(5, 6), context_dim=2)
    assert [layer.out_features for layer in iaf.bottleneck.flow.steps[0].layers] == [5, 6]
    assert iaf.bottleneck.flow.context.out_features == 2 and len(iaf.bottleneck.flow.steps) == 2
    iwae = aekit.build_model("iwae", data_shape=(4,), latent_dim=2, hidden=(8,), bottleneck="flow",
                             options={"bottleneck": {"flow": "iaf", "length": 1}})
    assert torch.isfinite(iwae.objective()(iwae(torch.rand(3, 4)), step=0).total)


@pytest.mark.parametrize("name,settings,fragment", [
    ("vae-nf", {"flow_length": 0}, "flow_length=0: a flow needs at least one step"),
    ("vae-iaf", {"flow_length": -1}, "flow_length=-1"),
    ("vae-nf", {"flow": "spline"}, "flow='spline' is unknown; choose one of planar, radial, iaf"),
    ("vae", {"bottleneck": "flow", "options": {"bottleneck": {"length": 0}}}, "bottleneck.length=0"),
    ("vae-iaf", {"context_dim": 0}, "context_dim=0"),
])
def test_bad_flow_settings_are_one_line_errors(name, settings, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)) as error:
        aekit.build_model(name, data_shape=(4,), latent_dim=2, hidden=(8,), **settings)
    assert "\n" not in str(error.value)


def test_train_vae_iaf_from_the_command_line_and_load_it(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "vae-iaf", "--data", "digits", "--out", str(run), "--steps", "40", "latent_dim=3",
                     "hidden=32", "made_hidden=16", "flow_length=2", "nll_samples=20", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    nll, elbo = metrics["test/nll"], metrics["test/elbo"]
    assert math.isfinite(nll) and nll <= -elbo + 0.5  # the 20-sample bound is no looser than the ELBO
    model = aekit.load(run / "model")
    assert model.name == "vae-iaf" and model.bottleneck.flow_name == "iaf"
    x = torch.rand(2, 1, 8, 8)
    assert torch.isfinite(model(x).terms["kl"]).all()
    capsys.readouterr()
    code = cli.main(["train", "vae-iaf", "--data", "digits", "--out", str(tmp_path / "bad"), "flow_length=0"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0 and len(err) == 1 and "flow_length=0" in err[0] and not (tmp_path / "bad").exists()
