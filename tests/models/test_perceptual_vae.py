"""msssim-vae and dfc-vae: their losses by hand, a frozen feature network through training, save and reload."""

import json
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import aekit
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError
from aekit.models.perceptual_vae import MSSSIMVAE
from aekit.nn.perceptual import ms_ssim

QUIET = dict(evaluate=False, progress=False, batch_size=8)


def test_msssim_vae_loss_is_one_minus_msssim_plus_beta_kl():
    torch.manual_seed(0)
    model = aekit.build_model("msssim-vae", data_shape=(1, 28, 28), latent_dim=2, hidden=(16,), beta=2.0)
    x = torch.rand(3, 1, 28, 28)
    eps = torch.randn(1, 3, 2)
    out = model(x, eps=eps)
    x_hat = model.decode(model.encode(x, eps=eps).z)[0]  # the decoder's output is the reconstruction
    assert torch.allclose(out.terms["recon"], 1 - ms_ssim(x, x_hat), atol=1e-6)
    loss = model.objective()(out, 0, Batch(x)).total
    assert torch.allclose(loss, out.terms["recon"].mean() + 2.0 * out.terms["kl"].mean())
    same = aekit.build_model("vae", data_shape=(1, 28, 28), latent_dim=2, hidden=(16,), likelihood="msssim")
    assert type(same.likelihood) is type(model.likelihood)
    values, _ = MSSSIMVAE.fit_to_data({}, SimpleNamespace(shape=(1, 28, 28)))
    assert values["likelihood"] == "msssim"  # the data do not swap it for bernoulli


def feature_net():
    torch.manual_seed(1)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.Conv2d(3, 2, 3, stride=2), nn.Flatten())


def tiny_dfc(**kw):
    torch.manual_seed(0)
    return aekit.build_model("dfc-vae", data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), **kw)


def test_dfc_vae_feature_network_stays_frozen_through_training_and_reloads(tmp_path):
    phi = feature_net()
    before = {k: v.clone() for k, v in phi.state_dict().items()}
    model = tiny_dfc(feature_network=phi, feature_layers=["1", "3"], layer_weights=[1.0, 0.5])
    x = torch.rand(32, 1, 8, 8)
    aekit.train(model, x, tmp_path / "run", steps=4, **QUIET)
    assert all(torch.equal(before[k], v) for k, v in phi.state_dict().items())
    assert all(p.grad is None and not p.requires_grad for p in phi.parameters())
    assert all(not any(p is q for q in phi.parameters()) for group in model.parameter_groups().values()
               for _, p in group)
    saved = load_file(tmp_path / "run" / "model" / "model.safetensors")
    assert {f"likelihood.network.{k}" for k in before} <= set(saved)
    fresh = feature_net()
    torch.nn.init.zeros_(fresh[0].weight)  # the saved weights, not the module's own, are loaded
    loaded = aekit.load(tmp_path / "run", feature_network=fresh)
    assert torch.equal(fresh[0].weight, before["0.weight"])
    model.eval()
    eps = torch.randn(1, 4, 2)
    assert torch.allclose(loaded(x[:4], eps=eps).terms["recon"], model(x[:4], eps=eps).terms["recon"])


def test_dfc_vae_from_a_saved_models_encoder_records_the_path(tmp_path):
    x = torch.rand(32, 1, 8, 8)
    aekit.train("ae", x, tmp_path / "source", steps=2, hidden=(8,), latent_dim=2, **QUIET)
    source = str(tmp_path / "source")
    aekit.train("dfc-vae", x, tmp_path / "run", steps=3, hidden=(16,), latent_dim=2, feature_network=source,
                feature_layers=["net.0"], **QUIET)
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert config["config"]["feature_network"] == source
    loaded = aekit.load(tmp_path / "run")
    phi = aekit.load(source).encoder
    assert all(torch.equal(loaded.likelihood.network.state_dict()[k], v) for k, v in phi.state_dict().items())
    x_hat = torch.rand(1, 2, 1, 8, 8)
    by_hand = (phi.net[0](x_hat.flatten(2)) - phi.net[0](x[:2].flatten(1))).pow(2).sum(-1)  # layer net.0, linear
    assert torch.allclose(loaded.likelihood.nll(x_hat, x[:2]), by_hand, atol=1e-5)
    with pytest.raises(DataError, match=r"shape \(1, 8, 8\), these are \(1, 6, 6\)"):  # before any training
        aekit.build_model("dfc-vae", data_shape=(1, 6, 6), latent_dim=2, feature_network=source)


def test_dfc_vae_needs_its_network():
    with pytest.raises(ConfigError, match="dfc-vae needs its frozen network"):
        tiny_dfc()
    with pytest.raises(ConfigError, match="use likelihood=feature"):
        tiny_dfc(likelihood="bernoulli", feature_network=feature_net())
