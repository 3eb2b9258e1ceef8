"""hvae: defaults and shorthands, learnt step size and temperature, log p(x) through q_0's importance weights and
through the extended space's weights against the closed form of a linear-Gaussian model, the bottleneck in
another variational model, and a run from the command line."""

import json
import math
import re

import pytest
import torch

import aekit
from aekit import cli
from aekit.errors import ConfigError
from aekit.metrics import importance_sampled_log_likelihood
from tests.nn.test_hamiltonian import linear_gaussian_hvae

A, S, X = 1.5, 0.8, 1.2  # p(z) = N(0, 1), p(x|z) = N(A z, S^2), one observation X
POST_VAR = 1 / (1 + A**2 / S**2)
LOG_PX = -0.5 * (X**2 / (A**2 + S**2) + math.log(2 * math.pi * (A**2 + S**2)))


def test_defaults_shorthands_and_learnt_settings():
    model = aekit.build_model("hvae", data_shape=(6,), hidden=(8,), latent_dim=2)
    assert (model.config.n_lf, model.config.eps_lf, model.config.beta_zero) == (3, 1e-3, 0.3)
    assert model.config.options["bottleneck"]["n_lf"] == 3 and model.bottleneck.n_lf == 3
    assert dict(model.named_parameters()).keys().isdisjoint({"bottleneck.log_eps", "bottleneck.logit_beta_zero"})
    learnt = aekit.build_model("hvae", data_shape=(6,), hidden=(8,), latent_dim=2, n_lf=2, eps_lf=0.05,
                               beta_zero=0.5, learn_eps_lf=True, learn_beta_zero=True)
    out = learnt(torch.rand(4, 6))
    assert out.latent.stats["eps_lf"].item() == pytest.approx(0.05) and out.latent.stats["beta_zero"].item() == \
        pytest.approx(0.5)
    (out.terms["recon"] + out.terms["kl"]).sum().backward()
    for name in ("bottleneck.log_eps", "bottleneck.logit_beta_zero", "decoder.net.0.weight", "encoder.net.0.weight"):
        grad = dict(learnt.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_log_likelihood_through_q0_matches_the_closed_form():
    """The importance-sampled log p(x) draws from q_0(z|x) (20,000 draws): within 0.01 nats of log N(x; 0, A^2 +
    S^2), with a q_0 deliberately off the posterior, whatever the dynamics."""
    model = linear_gaussian_hvae(A, S, POST_VAR * A * X / S**2 + 0.3, 2 * POST_VAR, n_lf=2, eps_lf=0.3).eval()
    torch.manual_seed(0)
    estimate = importance_sampled_log_likelihood(model, torch.tensor([[X]], dtype=torch.float64), n_samples=20_000)
    assert estimate.item() == pytest.approx(LOG_PX, abs=0.01)


def test_extended_space_weights_estimate_log_px():
    """log (1/S) sum_s p(x|z_K) p(z_K) N(rho_K) / (q_0(z_0) N(gamma_0)) over S = 20,000 flowed draws is a consistent
    estimate of log p(x): the output's log_q and log_p are the extended space's densities."""
    model = linear_gaussian_hvae(A, S, POST_VAR * A * X / S**2 + 0.3, 2 * POST_VAR, n_lf=2, eps_lf=0.3, beta_zero=0.5)
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(torch.tensor([[X]], dtype=torch.float64), n_samples=20_000)
    log_w = out.log_px_z + out.latent.log_p - out.latent.log_q  # [S, 1]
    assert (torch.logsumexp(log_w, 0) - math.log(20_000)).item() == pytest.approx(LOG_PX, abs=0.01)


def test_hamiltonian_bottleneck_in_an_importance_weighted_model():
    iwae = aekit.build_model("iwae", data_shape=(4,), latent_dim=3, hidden=(8,), bottleneck="hamiltonian",
                             options={"bottleneck": {"n_lf": 2, "eps_lf": 0.1}})
    loss = iwae.objective()(iwae(torch.rand(3, 4)), step=0).total
    assert torch.isfinite(loss)


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ConfigError, match=re.escape("n_lf=0: the number of leapfrog steps")) as error:
        aekit.build_model("hvae", data_shape=(4,), n_lf=0)
    assert "\n" not in str(error.value)


def test_train_hvae_from_the_command_line_and_load_it(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "hvae", "--data", "digits", "--out", str(run), "--steps", "5", "latent_dim=3",
                     "hidden=32", "n_lf=2", "eps_lf=0.01", "nll_samples=10", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((run / "metrics.json").read_text())
    assert math.isfinite(metrics["test/nll"]) and math.isfinite(metrics["test/elbo"])
    model = aekit.load(run / "model")
    assert model.name == "hvae" and model.bottleneck.n_lf == 2
    capsys.readouterr()
    code = cli.main(["train", "hvae", "--data", "digits", "--out", str(tmp_path / "bad"), "beta_zero=0"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0 and len(err) == 1 and "beta_zero=0" in err[0] and not (tmp_path / "bad").exists()
