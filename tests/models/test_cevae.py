"""ce-vae (Zimmerer et al. 2018): the context mask, the context-encoding term by hand, the objective, the settings."""

import math

import pytest
import torch
import torch.nn.functional as F

import aekit
from aekit.errors import ConfigError
from aekit.models import CEVAE, CEVAEConfig
from aekit.nn.corruptions import ContextMask


def test_context_mask_hides_whole_rectangles_of_bounded_size_in_every_channel():
    torch.manual_seed(0)
    mask = ContextMask(0.5, boxes=3)
    x = torch.rand(64, 3, 12, 10)
    hidden = mask.hidden(x)  # [B, C, H, W]
    assert hidden.shape == x.shape
    assert (hidden == hidden[:, :1]).all()  # the same pixels in every channel
    per_example = hidden[:, 0].flatten(1).sum(1)
    assert (per_example >= 1).all()  # at least one rectangle, at least one pixel
    assert (per_example <= 3 * 6 * 5).all()  # at most 3 rectangles of at most half of each side
    rows, cols = hidden[:, 0].any(2), hidden[:, 0].any(1)  # [B, H], [B, W]
    one_box = per_example == rows.sum(1) * cols.sum(1)  # the examples whose hidden pixels form one rectangle...
    assert one_box.any() and (rows[one_box].sum(1) <= 6).all() and (cols[one_box].sum(1) <= 5).all()
    noise = mask.draw(x)  # the fill where hidden, NaN where visible
    hidden = ~torch.isnan(noise)
    assert (hidden == hidden[:, :1]).all() and (hidden[:, 0].flatten(1).sum(1) >= 1).all()
    x_tilde = mask(x, noise)
    assert torch.equal(x_tilde[~hidden], x[~hidden]) and torch.equal(x_tilde[hidden], noise[hidden])
    assert (x_tilde[hidden] >= 0).all() and (x_tilde[hidden] < 1).all()


def test_context_mask_spans_time_steps_of_a_window_and_features_of_a_row():
    torch.manual_seed(0)
    window = ContextMask(0.25, boxes=1, fill="zero").hidden(torch.rand(32, 16, 3))  # [B, T, C]
    assert (window == window[..., :1]).all()  # whole time steps
    steps = window[..., 0]
    assert (steps.sum(1) >= 1).all() and (steps.sum(1) <= 4).all()
    starts, ends = steps.float().argmax(1), 15 - steps.flip(1).float().argmax(1)
    assert torch.equal(steps.sum(1), ends - starts + 1)  # one contiguous span
    table = ContextMask(0.5, boxes=2).hidden(torch.rand(8, 10))
    assert (table.sum(1) >= 1).all() and (table.sum(1) <= 10).all()


@pytest.mark.parametrize("kwargs,fragment", [
    ({"ce_weight": -1.0}, "ce_weight=-1.0 must be >= 0"),
    ({"context_size": 0.0}, "context_size=0.0 must lie in (0, 1]"),
    ({"context_boxes": 0}, "context_boxes=0 must be >= 1"),
    ({"context_fill": "blur"}, "context_fill='blur' is unknown"),
])
def test_bad_settings_are_clear_errors(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        CEVAEConfig(**kwargs)


def small_model(**settings) -> CEVAE:
    config = CEVAEConfig(data_shape=(1, 8, 8), backbone="conv", channels=(4, 8), hidden=(16,), latent_dim=3,
                         likelihood="bernoulli", **settings)
    return CEVAE(config)


@torch.no_grad()
def test_context_encoding_term_by_hand_and_the_objective_adds_it_with_its_weight():
    torch.manual_seed(0)
    model = small_model(ce_weight=0.7)
    x = (torch.rand(5, 1, 8, 8) > 0.5).float()
    noise = model.context.draw(x)
    # by hand: hide, take the posterior mean of the hidden image, decode, Bernoulli NLL of the whole clean x
    x_tilde = torch.where(torch.isnan(noise), x, noise)
    logits = model.decode(model.encode(x_tilde).mean)  # [5, 1, 8, 8]
    by_hand = F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)
    assert torch.allclose(model.context_encoding(x, noise), by_hand, atol=1e-5)

    eps = torch.randn(1, 5, 3)
    out = model(x, eps=eps, noise=noise)
    assert torch.allclose(out.terms["ce"], by_hand, atol=1e-5)
    loss = model.objective()(out, 0)
    negative_elbo = out.terms["recon"].mean() + out.terms["kl"].mean()
    assert math.isclose(float(loss.total), float(negative_elbo + 0.7 * by_hand.mean()), rel_tol=1e-6)
    assert math.isclose(float(loss.logs["ce"]), float(by_hand.mean()), rel_tol=1e-6)

    model.eval()  # evaluation scores the VAE alone: no context branch
    assert "ce" not in model(x, eps=eps).terms
    assert torch.equal(model(x, eps=eps).terms["recon"], out.terms["recon"])


def test_ce_vae_trains_and_its_inpainting_loss_falls():
    run = aekit.train("ce-vae", data="digits", backbone="conv", channels=(8, 16), latent_dim=8,
                      likelihood="bernoulli", steps=150, batch_size=64, seed=0, evaluate=False, threads=1, out=None)
    model = run.model.train()
    x = torch.as_tensor(aekit.data.load_data("digits").test.x[:200]).float()
    x = x / 255.0 if x.max() > 1 else x
    torch.manual_seed(1)
    noise = model.context.draw(x)
    with torch.no_grad():
        trained = model.context_encoding(x, noise).mean()
        fresh = CEVAE(model.config).train().context_encoding(x, noise).mean()
    assert float(trained) < 0.8 * float(fresh)
