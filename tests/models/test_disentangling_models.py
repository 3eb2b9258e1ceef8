"""The disentangling VAEs' losses by hand: beta-VAE's capacity, beta-TCVAE's decomposition, FactorVAE's game with
its gradients kept apart (both optimisers step: tests/models/test_aae.py), DIP-VAE's penalties; bad settings
refused; each trained from the command line on XY-blocks, reloaded and scored by the disentanglement suite."""

import math

import pytest
import torch

import aekit
from aekit import cli
from aekit.data import load_data
from aekit.data.batch import Batch
from aekit.errors import ConfigError
from aekit.nn.disentangling import dip_covariance, dip_penalties, tc_decomposition

SMALL = {"data_shape": (1, 8, 8), "latent_dim": 3, "hidden": (16,)}


def build(name, **kw):
    torch.manual_seed(0)
    return aekit.build_model(name, **{**SMALL, **kw})


def test_beta_vae_capacity_is_gamma_times_the_distance_to_a_linear_ramp():
    model = build("beta-vae", capacity=10.0, capacity_steps=100, gamma=50.0)
    x = torch.rand(5, 1, 8, 8)
    out = model(x)
    objective = model.objective()
    recon, kl = out.terms["recon"].mean(), out.terms["kl"].mean()
    for step, c in ((0, 0.0), (50, 5.0), (100, 10.0), (400, 10.0), (None, 10.0)):
        expected = recon + 50.0 * (kl - c).abs()
        assert torch.allclose(objective(out, step, Batch(x)).total, expected), step
    plain = build("beta-vae").objective()(out, 0, Batch(x)).total  # no capacity: beta KL
    assert torch.allclose(plain, recon + 4.0 * kl)
    wins = build("beta-vae", capacity=10.0, terms={"kl": {"capacity": 2.0, "weight": 3.0}}).objective()
    assert torch.allclose(wins(out, None, Batch(x)).total, recon + 3.0 * (kl - 2.0).abs())


@pytest.mark.parametrize("name,settings,fragment", [
    ("beta-vae", {"capacity": -1.0}, "capacity=-1.0 must be"),
    ("beta-vae", {"gamma": -2.0}, "gamma=-2.0 must be"),
    ("beta-vae", {"capacity_steps": -5}, "capacity_steps=-5 must be"),
    ("beta-vae", {"capacity": 5.0, "free_bits": 0.5}, "set one of them"),
    ("beta-tcvae", {"gamma": -1.0}, "gamma=-1.0 must be"),
    ("beta-tcvae", {"estimator": "iwae"}, "estimator='iwae' is unknown"),
    ("beta-tcvae", {"prior": "gaussian-mixture"}, "factorised prior"),
    ("factor-vae", {"gamma": -0.5}, "gamma=-0.5 must be"),
    ("dip-vae", {"lambda_od": -1.0}, "lambda_od=-1.0 must be"),
    ("dip-vae", {"dip_type": "III"}, "dip_type='III' is unknown"),
])
def test_bad_settings_are_one_line_errors(name, settings, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        aekit.build_model(name, **{**SMALL, **settings})
    assert "\n" not in str(error.value)


def test_a_negative_capacity_on_the_kl_term_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"capacity=-2.0 and capacity_steps=0 must be >= 0"):
        build("vae", terms={"kl": {"capacity": -2}}).objective()


def test_beta_tcvae_loss_is_the_weighted_decomposition_and_sums_to_the_sampled_kl():
    model = build("beta-tcvae", alpha=2.0, beta=6.0, gamma=0.5)
    x = torch.rand(6, 1, 8, 8)
    out = model(x)
    objective = model.objective()
    objective.dataset_size = 100
    mu, logvar = out.latent.params["mu"], out.latent.params["logvar"]
    parts = tc_decomposition(out.latent.z, mu, logvar, out.latent.log_p, 100, "mss")
    loss = objective(out, 0, Batch(x))
    mi, tc, dim_kl = (parts[k][0].mean() for k in ("mi", "tc", "dim_kl"))
    assert torch.allclose(loss.total, out.terms["recon"].mean() + 2.0 * mi + 6.0 * tc + 0.5 * dim_kl)
    assert torch.allclose(loss.logs["tc"], tc) and torch.allclose(loss.logs["kl"], out.terms["kl"].mean())
    sampled_kl = (out.latent.log_q - out.latent.log_p)[0]  # the bottleneck's own densities
    assert torch.allclose(sum(parts.values())[0], sampled_kl, atol=1e-5)
    unit = build("beta-tcvae", alpha=1.0, beta=1.0, gamma=1.0).objective()  # weights 1: the Monte Carlo -ELBO
    assert torch.allclose(unit(out, 0, Batch(x)).total, out.terms["recon"].mean() + sampled_kl.mean(), atol=1e-5)


def test_factor_vae_terms_by_hand_and_their_gradients_kept_apart():
    model = build("factor-vae", gamma=6.4, disc_hidden=(8,))
    x = torch.rand(4, 1, 8, 8)
    permutation = torch.stack([torch.tensor([1, 0, 3, 2]), torch.tensor([2, 3, 0, 1]), torch.arange(4)], 1)
    torch.manual_seed(1)
    out = model(x, permutation=permutation)
    torch.manual_seed(1)
    z = model.encode(x).z[0]  # the same draw
    D = model.discriminator
    shuffled = torch.stack([z[[1, 0, 3, 2], 0], z[[2, 3, 0, 1], 1], z[:, 2]], 1)
    d_z, d_shuffled = torch.sigmoid(D(z)), torch.sigmoid(D(shuffled))
    assert torch.allclose(out.terms["tc"], torch.log(d_z / (1 - d_z)), atol=1e-5)
    assert torch.allclose(out.terms["disc"], -torch.log(d_z) - torch.log(1 - d_shuffled), atol=1e-5)
    loss = model.objective()(out, 0, Batch(x))
    expected = out.terms["recon"].mean() + out.terms["kl"].mean() + 6.4 * out.terms["tc"].mean()
    assert torch.allclose(loss.losses["model"], expected) and torch.allclose(loss.losses["discriminator"],
                                                                             out.terms["disc"].mean())
    disc_params, encoder_params = list(D.parameters()), list(model.encoder.parameters())
    tc_to_disc = torch.autograd.grad(out.terms["tc"].sum(), disc_params, retain_graph=True, allow_unused=True)
    assert all(g is None for g in tc_to_disc)
    tc_to_encoder = torch.autograd.grad(out.terms["tc"].sum(), encoder_params, retain_graph=True)
    assert any(g.abs().sum() > 0 for g in tc_to_encoder)
    disc_to_encoder = torch.autograd.grad(out.terms["disc"].sum(), encoder_params, allow_unused=True)
    assert all(g is None for g in disc_to_encoder)
    assert {n for n, _ in model.parameter_groups()["discriminator"]} == {
        n for n, _ in model.named_parameters() if n.startswith("discriminator.")}


@pytest.mark.parametrize("dip_type,lambda_d", [("I", 100.0), ("II", 10.0)])
def test_dip_vae_loss_by_hand(dip_type, lambda_d):
    model = build("dip-vae", dip_type=dip_type)
    x = torch.rand(6, 1, 8, 8)
    out = model(x)
    mu, logvar = out.latent.params["mu"], out.latent.params["logvar"]
    centred = mu - mu.mean(0)
    cov = centred.T @ centred / 6 + (torch.diag(logvar.exp().mean(0)) if dip_type == "II" else 0)
    off_diagonal = cov.pow(2).sum() - cov.diagonal().pow(2).sum()
    diagonal = (cov.diagonal() - 1).pow(2).sum()
    assert torch.allclose(out.terms["dip_od"], off_diagonal) and torch.allclose(out.terms["dip_d"], diagonal)
    assert torch.allclose(dip_penalties(dip_covariance(mu, logvar, dip_type))["dip_d"], diagonal)
    loss = model.objective()(out, 0, Batch(x)).total
    expected = out.terms["recon"].mean() + out.terms["kl"].mean() + 10.0 * off_diagonal + lambda_d * diagonal
    assert torch.allclose(loss, expected)


@pytest.mark.parametrize("name,settings", [("beta-tcvae", []), ("factor-vae", ["disc_hidden=16"]),
                                           ("dip-vae", ["dip_type=II"]),
                                           ("beta-vae", ["capacity=5", "capacity_steps=4"])])
def test_trained_from_the_command_line_reloaded_and_scored(name, settings, tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", name, "--data", "xy-blocks", "--out", str(run), "--steps", "5", "--no-eval",
                     "latent_dim=3", "hidden=16", *settings])
    assert code == 0, capsys.readouterr().err
    model = aekit.load(run)
    assert model.name == name
    splits = load_data("xy-blocks", val_fraction=0.0, test_fraction=0.5)
    metrics = aekit.evaluate(model, splits, suites=("disentanglement",), batch_size=128)
    assert math.isfinite(metrics["test/mig"])


def test_a_negative_capacity_stops_the_command_before_training(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "beta-vae", "--data", "xy-blocks", "--out", str(run), "capacity=-3"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and err[-1].startswith("aekit: error:") and "capacity=-3.0 must be" in err[-1]
    assert not (run / "checkpoints").exists()
