"""MAE's own math: patch order, the encoder on visible patches only, the loss on hidden ones, norm_pix targets,
position embeddings, presets, FLOPs, pooling and bad settings."""

import pytest
import torch

import aekit
from aekit.errors import ConfigError, DataError
from aekit.models.mae import MAE, MAEConfig, mae_flops
from aekit.nn.vit import block_flops, sincos_position_embedding
from aekit.parts import PartContext

TINY = dict(width=8, depth=1, heads=2, decoder_width=8, decoder_depth=1, decoder_heads=2)


def tiny(**kw):
    return aekit.build_model("mae", **{"data_shape": (3, 8, 8), "patch_size": 4, **TINY, **kw})


def test_patchify_orders_patches_row_major_with_channels_last_and_unpatchify_inverts():
    model = tiny(data_shape=(2, 4, 6), patch_size=2)
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).view(1, 2, 4, 6)
    patches = model.patchify(x)  # [1, 2 * 3, 2 * 2 * 2]
    assert patches.shape == (1, 6, 8)
    # patch 1 is row 0, column 1: pixels (0..1, 2..3); each pixel gives its 2 channels in turn
    expected = [x[0, c, i, j].item() for i in (0, 1) for j in (2, 3) for c in (0, 1)]
    assert patches[0, 1].tolist() == expected
    assert torch.equal(model.unpatchify(patches), x)


def test_the_encoder_sees_only_the_visible_patches():
    torch.manual_seed(0)
    model = tiny(data_shape=(1, 8, 8), patch_size=2).eval()  # 16 patches, 4 visible
    x = torch.rand(2, 1, 8, 8)
    noise = torch.rand(2, 16)
    latent, masking = model.forward_encoder(x, noise)
    assert latent.shape == (2, 1 + 4, 8)
    hidden = model.unpatchify(masking.mask[..., None].expand(-1, -1, 4)).bool()  # [2, 1, 8, 8] hidden pixels
    changed = torch.where(hidden, torch.rand_like(x), x)
    assert torch.equal(model.forward_encoder(changed, noise)[0], latent)  # hidden pixels do not reach it
    visible_change = torch.where(hidden, x, x + 0.5)
    assert not torch.allclose(model.forward_encoder(visible_change, noise)[0], latent)


def test_loss_is_the_mean_squared_error_on_hidden_patches_only():
    model = tiny(data_shape=(1, 2, 4), patch_size=2)  # 2 patches of 4 pixels
    x = torch.zeros(1, 1, 2, 4)
    pred = torch.tensor([[[1.0, 1, 1, 1], [2.0, 0, 0, 0]]])  # patch 0 off by 1 everywhere, patch 1 by 2 once
    assert model.forward_loss(x, pred, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0)
    assert model.forward_loss(x, pred, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(1.0)  # 4 / 4
    assert model.forward_loss(x, pred, torch.tensor([[1.0, 1.0]])).item() == pytest.approx(1.0)
    pred[0, 1, 0] = 4.0
    assert model.forward_loss(x, pred, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(4.0)
    assert model.forward_loss(x, pred, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1.0)


def test_forward_scores_the_hidden_patches_of_its_own_mask():
    torch.manual_seed(0)
    model = tiny()
    x, noise = torch.rand(3, 3, 8, 8), torch.rand(3, 4)
    out = model(x, noise=noise)
    assert out.pred.shape == (3, 4, 48) and out.mask.sum(1).tolist() == [3.0, 3.0, 3.0]
    per_patch = (out.pred - model.patchify(x)).pow(2).mean(-1)
    assert torch.allclose(out.terms["recon"], (per_patch * out.mask).sum(1) / 3)
    assert float(out.stats["mask_ratio"]) == 0.75


def test_norm_pix_targets_are_standardised_per_patch_and_views_undo_it():
    torch.manual_seed(0)
    model = tiny(norm_pix_loss=True)
    x = torch.rand(2, 3, 8, 8) * 0.5 + 0.2
    t = model.target(x)
    assert torch.allclose(t.mean(-1), torch.zeros(2, 4), atol=1e-5)
    assert torch.allclose(t.var(-1), torch.ones(2, 4), atol=1e-3)
    out = model(x)
    out.pred = t.clone()  # a perfect prediction in normalised units comes back as the pixels themselves
    assert torch.allclose(model.predicted_pixels(x, out), model.patchify(x), atol=1e-4)


def test_masked_views_paste_the_visible_patches():
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.rand(2, 3, 8, 8)
    noise = torch.rand(2, 4)
    views = model.masked_views(x, noise)
    hidden = model.unpatchify(model(x, noise=noise).mask[..., None].expand(-1, -1, 48)).bool()
    assert torch.equal(views["reconstruction"][~hidden], x[~hidden])
    assert torch.equal(views["masked"][hidden], torch.full_like(x, 0.5)[hidden])
    assert torch.equal(views["reconstruction"][hidden], views["prediction"][hidden])
    assert torch.equal(model.reconstruct(x, noise=noise), views["reconstruction"])


def test_position_embedding_puts_rows_and_columns_in_their_halves():
    table = sincos_position_embedding(2, 3, 8, "hw")  # [6, 8]: sin_row cos_row | sin_col cos_col
    rows, cols = torch.arange(6) // 3, torch.arange(6) % 3
    assert torch.allclose(table[:, 0], torch.sin(rows.double()).float())  # frequency 1 for the first channel
    assert torch.allclose(table[:, 2], torch.cos(rows.double()).float())
    assert torch.allclose(table[:, 4], torch.sin(cols.double()).float())
    assert torch.allclose(table[:, 1], torch.sin(rows.double() / 100).float())  # 10000 ** (-1 / 2)
    swapped = sincos_position_embedding(2, 3, 8, "wh")
    assert torch.equal(swapped, torch.cat([table[:, 4:], table[:, :4]], 1))
    with pytest.raises(ConfigError, match="divisible by 4"):
        sincos_position_embedding(2, 2, 6)


def test_non_square_images_any_channels_and_no_class_token():
    model = tiny(data_shape=(5, 8, 12), class_token=False)
    assert model.config.grid == (2, 3) and model.config.pool == "mean"
    out = model(torch.rand(2, 5, 8, 12))
    assert out.latent.shape == (2, 1, 8)  # floor(6 * 0.25) = 1 visible token, no class token
    assert model.embed(torch.rand(2, 5, 8, 12)).shape == (2, 8)


def test_embed_reads_the_class_token_or_the_mean_of_the_unmasked_image():
    torch.manual_seed(0)
    model = tiny().eval()
    x = torch.rand(2, 3, 8, 8)
    h = model.encoder(model.encoder.patch_tokens(x))  # [2, 1 + 4, 8]: every patch, no masking
    assert torch.equal(model.embed(x), h[:, 0])
    mean = MAE(MAEConfig(**{**model.config.__dict__, "pool": "mean"}))
    mean.load_state_dict(model.state_dict())
    assert torch.allclose(mean.eval().embed(x), h[:, 1:].mean(1))
    assert torch.equal(model.embed(x), model.embed(x))  # no randomness in the features


def test_presets_fill_the_sizes_left_at_zero_and_give_the_documented_parameter_counts():
    c = MAEConfig(data_shape=(3, 32, 32))
    assert (c.preset, c.width, c.depth, c.heads, c.patch_size) == ("tiny", 192, 12, 3, 4)
    assert MAEConfig(data_shape=(3, 224, 224), preset="base").patch_size == 16
    assert MAEConfig(preset="small", width=96, heads=3).width == 96  # an explicit size wins
    counts = {}
    for preset in ("tiny", "small", "base"):
        model = MAE(MAEConfig(data_shape=(3, 224, 224), preset=preset))
        counts[preset] = round(sum(p.numel() for p in model.encoder.parameters()) / 1e6, 2)
    assert counts == {"tiny": 5.49, "small": 21.59, "base": 85.65}  # ViT-Ti/S/B-16 (docs/masked.md)


def test_flops_count_the_matrix_products_by_hand():
    assert block_flops(2, 4, 2.0) == 2 * (4 * 2 * 16 + 2 * 4 * 4 + 2 * 8 * 2 * 4)
    c = MAEConfig(data_shape=(3, 224, 224), preset="base", mask_ratio=0.0)
    full = mae_flops(c, visible_only=False)["encoder"]
    assert full / 2e9 == pytest.approx(17.56, abs=0.05)  # ViT-B/16's 17.6 G multiply-adds
    visible = mae_flops(MAEConfig(data_shape=(3, 224, 224), preset="base"))["encoder"]
    assert 3.5 < full / visible < 4.1  # 197 tokens against 50


def test_bad_settings_are_clear_errors_before_training():
    with pytest.raises(ConfigError, match=r"mask_ratio=1.0 must be in \[0, 1\)"):
        tiny(mask_ratio=1.0)
    with pytest.raises(ConfigError, match="not divisible by patch_size=3"):
        tiny(patch_size=3)
    with pytest.raises(ConfigError, match="leaves no visible token"):
        tiny(mask_ratio=0.8)(torch.rand(1, 3, 8, 8))  # 4 patches at 0.8: none kept
    with pytest.raises(ConfigError, match="takes images"):
        tiny(data_shape=(16,))
    with pytest.raises(ConfigError, match="masker='blocks' is unknown"):
        tiny(masker="blocks")
    with pytest.raises(ConfigError, match="preset='huge'"):
        tiny(preset="huge")
    with pytest.raises(ConfigError, match="not divisible by heads=3"):
        tiny(width=8, heads=3)
    with pytest.raises(ConfigError, match="pool=cls needs class_token"):
        tiny(class_token=False, pool="cls")
    with pytest.raises(DataError, match="does not fit mae's data_shape"):
        tiny()(torch.rand(1, 3, 16, 16))


def test_masker_options_and_schedule_reach_the_masker():
    model = tiny(data_shape=(1, 16, 16), masker="block", options={"masker": {"min_patches": 2}},
                 ratio_schedule="linear", ratio_start=0.5, ratio_steps=100)
    assert model.masker.min_patches == 2 and model.masker.ratio_at(50) == 0.625
    assert float(model.masker.ratio) == 0.5  # the schedule's start until the loop's hook moves it


@pytest.mark.slow
def test_trains_through_the_loop_and_writes_the_masked_figure(tmp_path):
    result = aekit.train("mae", data="digits", out=tmp_path / "run", patch_size=2, steps=30, batch_size=32,
                         **TINY)
    metrics = result.metrics
    assert metrics["test/mask_ratio"] == 0.75 and metrics["test/masked_mse"] > 0
    assert 0 < metrics["test/linear_probe_acc"] <= 1
    assert (tmp_path / "run" / "figures" / "masked.png").is_file()
    loaded = aekit.load(tmp_path / "run")
    assert isinstance(loaded, MAE) and loaded.config == result.model.config


def test_hpm_ranking_loss_by_hand():
    from aekit.models.mae import relative_loss

    predicted = torch.tensor([[0.0, 1.0, 5.0]])
    actual = torch.tensor([[1.0, 2.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])  # only patches 0 and 1 are hidden: pairs (0, 1) and (1, 0)
    # pair (0, 1): p1 - p0 = 1, l1 > l0 -> -log sigmoid(1); pair (1, 0): p0 - p1 = -1, l0 < l1 -> -log(1 - sigmoid(-1))
    expected = -torch.log(torch.sigmoid(torch.tensor(1.0)))
    assert relative_loss(predicted, actual, mask).item() == pytest.approx(expected.item(), abs=1e-6)


def test_hpm_trains_its_loss_predictor_and_masks_by_it_only_in_training():
    torch.manual_seed(0)
    model = tiny(data_shape=(1, 8, 8), patch_size=2, masker="hpm")
    assert model.loss_predictor is not None
    x = torch.rand(4, 1, 8, 8)
    out = model(x)
    loss = model.objective()(out, 0)
    assert set(loss.logs) >= {"recon", "hpm"} and loss.total > loss.logs["recon"]
    loss.total.backward()
    assert all(p.grad is not None for p in model.loss_predictor.parameters())
    called = []
    original = model.predicted_difficulty
    model.predicted_difficulty = lambda tokens: called.append(1) or original(tokens)
    aekit.StepHooks(model).start(1)  # a training step, as the loop starts it
    model(x)
    model.eval()
    model(x)
    assert called == [1]  # predicted losses steer the mask in training only
    assert "hpm" in model.objective()(model(x), None).logs


def test_hog_target_by_hand_and_as_the_decoders_output():
    from aekit.nn.targets import HOGTarget

    hog = HOGTarget(4, context=PartContext(data_shape=(1, 8, 8)), cell=4, bins=4)
    x = torch.zeros(1, 1, 4, 8)
    x[..., 4:] = 1.0  # a vertical edge between the two patches: horizontal gradients only
    t = hog(x)  # [1, 2, 4]
    assert t.shape == (1, 2, 4)
    assert torch.allclose(t[..., 1:], torch.zeros(1, 2, 3))  # every vote in the 0-orientation bin
    assert torch.allclose(t[..., 0], torch.ones(1, 2))  # L2-normalised
    model = tiny(target="hog", options={"target": {"cell": 2}})
    assert model.target_part.dim == 3 * 9 * 4 and model.suites == ("masked", "representation")
    out = model(torch.rand(2, 3, 8, 8))
    assert out.pred.shape == (2, 4, 108) and out.terms["recon"].shape == (2,)
    assert set(model.masked_views(torch.rand(2, 3, 8, 8))) == {"original", "masked"}
    with pytest.raises(ConfigError, match="target.cell=3 must divide"):
        tiny(target="hog", options={"target": {"cell": 3}})
    with pytest.raises(ConfigError, match="target='sift' is unknown"):
        tiny(target="sift")
