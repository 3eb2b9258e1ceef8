"""Sparse dictionary parts: the TopK code and the unit-norm dictionary, composed into the one Autoencoder."""

import pytest
import torch

import aekit
from aekit.data import sparse_feature_data
from aekit.errors import ConfigError
from aekit.metrics import feature_recovery, fraction_of_variance_unexplained, l0
from aekit.nn.sparse import Dictionary, TopK
from aekit.training.hooks import StepHooks


def sae(data_dim=12, latent_dim=48, k=4, **settings):
    torch.manual_seed(0)
    return aekit.build_model("ae", data_shape=(data_dim,), latent_dim=latent_dim, likelihood="gaussian",
                             backbone="dictionary", bottleneck="topk", options={"bottleneck": {"k": k}}, **settings)


def test_the_encoder_starts_as_the_dictionary_transposed_and_keeps_k_latents():
    model = sae()
    assert isinstance(model.decoder, Dictionary) and isinstance(model.bottleneck, TopK)
    assert torch.equal(model.bottleneck.proj.weight, model.decoder.weight.t())
    assert torch.allclose(model.decoder.weight.norm(dim=0), torch.ones(48))
    x = torch.randn(6, 12)
    with torch.no_grad():
        model.decoder.bias.copy_(torch.randn(12))
        out = model(x)
        z = out.latent.z[0]
        pre = model.bottleneck.proj(x - model.decoder.bias)  # b_pre is the dictionary's bias
        kept = pre.topk(4, dim=-1)
        expected = torch.zeros_like(pre).scatter(-1, kept.indices, kept.values.relu())
        assert torch.allclose(z, expected, atol=1e-6) and (l0(z) <= 4).all()
        assert torch.equal(out.terms["l0"], l0(z))
        assert torch.allclose(out.x_params[0], z @ model.decoder.weight.t() + model.decoder.bias)  # W_dec z + b_dec
    assert "bottleneck.model" not in "".join(model.state_dict())  # the tie is a reference, not a second weight


def test_the_dictionary_gradient_loses_its_parallel_part_and_columns_stay_unit_norm(tmp_path):
    model = sae()
    out = model(torch.randn(8, 12))
    model.objective()(out, 0).total.backward()
    StepHooks(model).before_step(0, outputs=[out])
    w, g = model.decoder.weight, model.decoder.weight.grad
    assert torch.allclose((w * g).sum(0), torch.zeros(48), atol=1e-6)
    aekit.train(model, torch.randn(400, 12), tmp_path / "sae", steps=30, batch_size=64, ema_decay=0.9,
                progress=False, figures=False, evaluate=False)
    assert torch.allclose(model.decoder.weight.norm(dim=0), torch.ones(48), atol=1e-5)  # averaged, renormalised
    again = aekit.load(tmp_path / "sae")
    x = torch.randn(5, 12)
    assert torch.equal(again.embed(x), model.eval().embed(x)) and isinstance(again.bottleneck, TopK)


def test_a_topk_dictionary_recovers_features_of_known_sparse_data():
    data = sparse_feature_data(8000, features=32, dim=16, mean_active=3.0, seed=0)
    settings = dict(backbone="dictionary", bottleneck="topk", latent_dim=64, likelihood="gaussian",
                    options={"bottleneck": {"k": 3}})
    start = aekit.build_model("ae", data_shape=(16,), **settings)
    run = aekit.train("ae", data=data.x.numpy(), out=None, steps=600, batch_size=256, lr=1e-2, progress=False,
                      evaluate=False, figures=False, seed=0, **settings)
    x, codes = data.x[:3000], data.codes[:3000]
    trained = feature_recovery(codes, run.model.embed(x))
    assert trained["mcc"] > feature_recovery(codes, start.embed(x))["mcc"] + 0.2
    assert fraction_of_variance_unexplained(x, run.model.reconstruct(x)) < 0.3


@pytest.mark.parametrize("settings,message", [
    ({"options": {"bottleneck": {"k": 0}}}, r"bottleneck.k=0 must be a whole number from 1 to latent_dim=48"),
    ({"options": {"bottleneck": {"k": 49}}}, r"bottleneck.k=49 must be a whole number from 1 to latent_dim=48"),
    ({"likelihood": "logistic"}, r"backbone=dictionary decodes one value per input element"),
])
def test_settings_a_dictionary_cannot_take_are_one_line_errors(settings, message):
    values = dict(data_shape=(12,), latent_dim=48, likelihood="gaussian", backbone="dictionary", bottleneck="topk",
                  options={"bottleneck": {"k": 4}})
    with pytest.raises(ConfigError, match=message):
        aekit.build_model("ae", **{**values, **settings})
