"""SparK's own math: sparse batch norm over visible positions, nothing hidden leaking into the sparse CNN at any
scale, the loss on hidden patches, the stages chosen from the image size, the dense encoder of embed, and the
bad settings."""

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.models.spark import SparK, default_stages
from aekit.nn.sparse_conv import SparseBatchNorm2d, active_at


def tiny(**kw):
    torch.manual_seed(0)
    return aekit.build_model("spark", **{"data_shape": (1, 8, 8), "width": 4, **kw})


def test_sparse_batch_norm_counts_the_visible_positions_only():
    norm = SparseBatchNorm2d(2, momentum=0.5)
    x = torch.randn(3, 2, 4, 4) * 3 + 1
    active = (torch.rand(3, 1, 2, 2) > 0.4).float()
    active[0, 0, 0, 0] = 1
    out = norm(x, active)
    mask = active_at(active, (4, 4))[:, 0].bool()  # [3, 4, 4]
    visible = x.permute(0, 2, 3, 1)[mask]  # [N, 2]
    mean, var = visible.mean(0), visible.var(0, unbiased=False)
    expected = (visible - mean) / (var + norm.eps).sqrt()
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[mask], expected)
    assert torch.all(out.permute(0, 2, 3, 1)[~mask] == 0)
    torch.testing.assert_close(norm.running_mean, 0.5 * mean)
    torch.testing.assert_close(norm.running_var, 0.5 + 0.5 * visible.var(0, unbiased=True))
    norm.eval()  # running statistics; still zero where hidden
    out = norm(x, active)
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[mask], (visible - norm.running_mean)
                               / (norm.running_var + norm.eps).sqrt())


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32)])
def test_hidden_pixels_reach_no_feature_of_the_sparse_encoder(shape):
    model = tiny(data_shape=shape).train()
    x = torch.rand(2, *shape)
    noise = torch.rand(2, model.config.grid[0] * model.config.grid[1])
    masking = model.random_masking(x, noise)
    active = model.active_map(masking)
    p = model.config.patch_size
    hidden = model.unpatchify(masking.mask[..., None].expand(-1, -1, p * p * shape[0])).bool()
    features = model.forward_encoder(x, active)
    changed = model.forward_encoder(torch.where(hidden, torch.rand_like(x) * 5, x), active)
    assert len(features) == model.config.stages
    for f, g in zip(features, changed, strict=True):
        assert torch.equal(f, g)  # batch statistics included: they count visible positions only
        assert torch.all(f * (1 - active_at(active, f.shape[-2:])) == 0)  # hidden positions stay empty
    moved = model.forward_encoder(torch.where(hidden, x, x + 0.5), active)
    assert not torch.allclose(moved[-1], features[-1])


def test_the_loss_is_on_hidden_patches_of_normalised_pixels_and_views_paste_the_visible_ones():
    model = tiny()
    x, noise = torch.rand(3, 1, 8, 8), torch.rand(3, 16)
    out = model(x, noise=noise)
    assert out.pred.shape == (3, 16, 4) and out.mask.sum(1).tolist() == [10.0] * 3  # floor(16 * 0.4) = 6 kept
    t = model.patchify(x)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
    by_hand = ((out.pred - t).pow(2).mean(-1) * out.mask).sum(1) / out.mask.sum(1)
    torch.testing.assert_close(out.terms["recon"], by_hand)
    model.eval()
    views = model.masked_views(x, noise)
    keep = (1 - model.eval()(x, noise=noise).mask).bool()
    for b in range(3):
        assert torch.equal(model.patchify(views["reconstruction"])[b, keep[b]], model.patchify(x)[b, keep[b]])


def test_embed_is_the_dense_encoder_averaged_over_space():
    model = tiny(data_shape=(3, 32, 32)).eval()
    x = torch.rand(4, 3, 32, 32)
    z = model.embed(x)
    assert z.shape == (4, 4 * 2**3)
    every = torch.ones(4, 1, *model.config.grid)
    torch.testing.assert_close(z, model.encoder(x, every)[-1].mean((2, 3)))


def test_stages_follow_the_image_size():
    assert [default_stages(s) for s in [(3, 32, 32), (1, 28, 28), (1, 8, 8), (2, 13, 11)]] == [4, 3, 2, 1]
    c = tiny(data_shape=(1, 28, 28)).config
    assert (c.stages, c.patch_size, c.grid, c.widths, c.decoder_width) == (3, 4, (7, 7), (4, 8, 16), 16)


@pytest.mark.parametrize("setting,fragment", [
    ({"stages": 5}, "image size 8x8 is not divisible by spark's patch 16"),
    ({"stages": 4}, "leaves no visible token of 1"),
    ({"target": "hog"}, "spark predicts pixels"),
    ({"masker": "hpm"}, "use mae for hpm"),
    ({"mask_ratio": 1.0}, "must be in [0, 1)"),
    ({"width": 0}, "width and blocks must be positive"),
    ({"data_shape": (7,)}, "spark takes images"),
])
def test_bad_settings_are_clear_errors(setting, fragment):
    with pytest.raises(ConfigError, match=fragment.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        tiny(**setting)


def test_trains_through_the_loop_with_the_masked_suites_and_figure(tmp_path):
    from aekit import cli

    assert cli.main(["train", "spark", "--data", "digits", "--out", str(tmp_path / "run"), "--steps", "20",
                     "width=4", "masker=block"]) == 0
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test/mask_ratio"] == pytest.approx(10 / 16) and "test/knn_acc" in metrics
    assert metrics["test/masked_mse"] > 0 and 0 < metrics["test/linear_probe_acc"] <= 1
    assert (tmp_path / "run" / "figures" / "masked.png").is_file()
    loaded = aekit.load(tmp_path / "run")
    assert isinstance(loaded, SparK) and loaded.config.masker == "block"
