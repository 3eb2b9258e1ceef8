"""Sequence backbones: shapes for any window length, the parameter layout a likelihood splits, what each encoder
reads (the recurrent one the whole window, in order), and the bad shapes and settings."""

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.nn.backbones import make_backbone
from aekit.nn.sequence import _stacked
from aekit.parts import PartContext

BACKBONES = ["seq-conv", "gru", "lstm", "transformer"]


def ctx(data_shape, latent_dim: int, n_params: int = 1) -> PartContext:
    return PartContext(data_shape=data_shape, latent_shape=(latent_dim,), n_params=n_params)


@pytest.mark.parametrize("name", BACKBONES)
@pytest.mark.parametrize("length", [1, 5, 16, 33])
def test_encoder_and_decoder_shapes_for_any_length(name, length):
    encoder, decoder = make_backbone(name, ctx((length, 3), 4, 2), (16,), (8, 16), "relu")
    x = torch.randn(6, length, 3)
    h = encoder(x)
    assert h.shape == (6, encoder.out_features)
    assert decoder(torch.randn(6, 4)).shape == (6, 2 * length, 3)


def test_parameters_are_stacked_along_time_the_way_a_likelihood_splits_them():
    out = torch.arange(3 * 4.0).view(1, 3, 4)  # [N, T, C * m] with m = 2, C = 2: step t holds (mu, log_s)
    stacked = _stacked(out, 2)  # [1, 6, 2]
    mu, log_s = stacked.chunk(2, dim=1)
    assert torch.equal(mu, out[..., :2]) and torch.equal(log_s, out[..., 2:])


@pytest.mark.parametrize("name", BACKBONES)
def test_every_step_of_the_window_reaches_the_features(name):
    torch.manual_seed(0)
    encoder, _ = make_backbone(name, ctx((10, 2), 4, 1), (16,), (8, 16), "relu")
    x = torch.randn(1, 10, 2, requires_grad=True)
    encoder(x).sum().backward()
    assert bool((x.grad.abs().sum(-1) > 0).all())  # no step is ignored


def test_the_recurrent_encoder_reads_the_window_in_order():
    torch.manual_seed(0)
    encoder, _ = make_backbone("gru", ctx((6, 1), 4, 1), (8,), (), "relu")
    x = torch.randn(1, 6, 1)
    assert not torch.allclose(encoder(x), encoder(x.flip(1)))
    # its feature is the top layer's last state: running the GRU by hand gives it
    _, h = encoder.rnn(x)
    torch.testing.assert_close(encoder(x), h[-1])


@pytest.mark.parametrize("name", BACKBONES)
def test_a_vae_on_windows_trains_one_step_and_reconstructs(name):
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(12, 2), backbone=name, likelihood="gaussian-learned", latent_dim=3,
                              hidden=(16,), channels=(8, 16))
    x = torch.randn(4, 12, 2)
    loss = model.objective()(model(x), 0).losses["model"]
    loss.backward()
    assert torch.isfinite(loss) and model.reconstruct(x).shape == x.shape


def test_bad_shapes_and_settings_are_clear_errors():
    with pytest.raises(ConfigError, match=r"backbone=gru takes windows of a series \[T, C\], got data shape \(1, 8"):
        make_backbone("gru", ctx((1, 8, 8), 4, 1), (8,), (), "relu")
    with pytest.raises(ConfigError, match="the conv backbone needs images.*seq-conv, gru, lstm or transformer"):
        make_backbone("conv", ctx((12, 3), 4, 1), (8,), (4,), "relu")
    with pytest.raises(ConfigError, match="backbone.layers=0 must be >= 1"):
        make_backbone("lstm", ctx((12, 3), 4, 1), (8,), (), "relu", layers=0)
    with pytest.raises(ConfigError, match="not divisible by backbone.heads=3"):
        make_backbone("transformer", ctx((12, 3), 4, 1), (16,), (), "relu", heads=3)
    with pytest.raises(ConfigError, match="backbone.depth: gru has no such setting; it takes layers"):
        make_backbone("gru", ctx((12, 3), 4, 1), (8,), (), "relu", depth=2)
