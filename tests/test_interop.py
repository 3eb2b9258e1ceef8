"""Hugging Face ViTMAEForPreTraining <-> aekit mae: identical weights and noise give the same outputs."""

import json

import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import aekit
from aekit.errors import ConfigError, DataError
from aekit.interop import (
    from_vitmae,
    load_vitmae,
    load_vitmae_state,
    save_vitmae,
    state_from_vitmae,
    to_vitmae,
    vitmae_config_from_mae,
    with_position_layout,
)
from aekit.nn.vit import sincos_position_embedding

SMALL = dict(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=128, decoder_hidden_size=16, decoder_num_hidden_layers=2,
             decoder_num_attention_heads=2, decoder_intermediate_size=64, mask_ratio=0.75)


def pretrained_like(**changes):
    """A ViTMAE with the position tables and tokens a pretrained one holds (transformers 5 leaves a model
    built from a config with zero tables)."""
    torch.manual_seed(0)
    hf = ViTMAEForPreTraining(ViTMAEConfig(**{**SMALL, **changes})).eval()
    grid = hf.config.image_size // hf.config.patch_size
    with torch.no_grad():
        hf.vit.embeddings.position_embeddings[0, 1:] = sincos_position_embedding(grid, grid, hf.config.hidden_size,
                                                                                 "wh")
        hf.decoder.decoder_pos_embed[0, 1:] = sincos_position_embedding(grid, grid, hf.config.decoder_hidden_size,
                                                                        "wh")
        hf.vit.embeddings.cls_token.normal_(std=0.02)
        hf.decoder.mask_token.normal_(std=0.02)
    return hf


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_same_weights_and_noise_give_the_same_predictions_mask_and_loss(norm_pix_loss):
    hf = pretrained_like(norm_pix_loss=norm_pix_loss)
    ours = from_vitmae(hf)
    x, noise = torch.rand(4, 3, 16, 16), torch.rand(4, 16)
    with torch.no_grad():
        theirs, mine = hf(pixel_values=x, noise=noise), ours(x, noise=noise)
    assert torch.allclose(mine.pred, theirs.logits, atol=1e-5)
    assert torch.equal(mine.mask, theirs.mask) and torch.equal(mine.ids_restore, theirs.ids_restore)
    assert mine.terms["recon"].mean().item() == pytest.approx(theirs.loss.item(), abs=1e-5)
    # the encoder agrees too: ViTMAE's last hidden state is aekit's latent
    with torch.no_grad():
        assert torch.allclose(hf.vit(x, noise=noise).last_hidden_state, ours.forward_encoder(x, noise)[0], atol=1e-5)


def test_back_to_hugging_face_in_memory_and_through_files(tmp_path):
    hf = pretrained_like()
    ours = from_vitmae(hf)
    x, noise = torch.rand(2, 3, 16, 16), torch.rand(2, 16)
    with torch.no_grad():
        expected = hf(pixel_values=x, noise=noise).logits
        assert torch.allclose(to_vitmae(ours)(pixel_values=x, noise=noise).logits, expected, atol=1e-5)
    save_vitmae(ours, tmp_path / "hf")
    reloaded = ViTMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(pixel_values=x, noise=noise).logits, expected, atol=1e-5)
    hf.save_pretrained(tmp_path / "saved")
    again = load_vitmae(tmp_path / "saved")
    with torch.no_grad():
        assert torch.allclose(again(x, noise=noise).pred, expected, atol=1e-5)
    aekit.save_model(again, tmp_path / "aekit")  # and as an aekit model, reloaded the usual way
    with torch.no_grad():
        assert torch.allclose(aekit.load(tmp_path / "aekit")(x, noise=noise).pred, expected, atol=1e-5)


def test_older_transformers_key_names_convert():
    hf = pretrained_like()
    config = from_vitmae(hf).config
    renames = [("vit.layers.", "vit.encoder.layer."), ("decoder.decoder_layers.", "decoder.decoder_encoder.layer."),
               (".attention.q_proj.", ".attention.attention.query."),
               (".attention.k_proj.", ".attention.attention.key."),
               (".attention.v_proj.", ".attention.attention.value."),
               (".attention.o_proj.", ".attention.output.dense."),
               (".mlp.fc1.", ".intermediate.dense."), (".mlp.fc2.", ".output.dense.")]
    legacy = {}
    for key, value in hf.state_dict().items():
        for new, old in renames:
            key = key.replace(new, old)
        legacy[key] = value
    converted = state_from_vitmae(legacy, config)
    assert all(torch.equal(converted[k], v) for k, v in state_from_vitmae(hf.state_dict(), config).items())


def test_weights_of_another_configuration_or_unset_tables_are_clear_errors(tmp_path):
    hf = pretrained_like()
    wider = from_vitmae(pretrained_like(hidden_size=64, intermediate_size=256)).config
    with pytest.raises(DataError, match=r"has shape \(32, 3, 4, 4\) but this mae needs \(64, 3, 4, 4\).*another "
                       "configuration"):
        load_vitmae_state(aekit.build_model("mae", wider), hf.state_dict())
    fresh = ViTMAEForPreTraining(ViTMAEConfig(**SMALL))
    with pytest.raises(DataError, match="all zeros"):
        from_vitmae(fresh)
    with pytest.raises(ConfigError, match="hidden_act='relu'"):
        from_vitmae(pretrained_like(hidden_act="relu"))
    with pytest.raises(ConfigError, match="masks at random only"):
        to_vitmae(aekit.build_model("mae", data_shape=(3, 16, 16), patch_size=4, width=8, depth=1, heads=2,
                                    decoder_width=8, decoder_depth=1, decoder_heads=2, pos_order="wh",
                                    masker="block"))
    with pytest.raises(ConfigError, match=r"pos_order=hw: aekit.interop.with_position_layout\(model, 'wh'\)"):
        vitmae_config_from_mae(aekit.build_model("mae", data_shape=(3, 16, 16), patch_size=4, width=8, depth=1,
                                                 heads=2, decoder_width=8, decoder_depth=1, decoder_heads=2).config)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "other" / "model.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match="not vit_mae"):
        load_vitmae(tmp_path / "other")
    with pytest.raises(DataError, match="has no config.json"):
        load_vitmae(tmp_path)


@pytest.mark.parametrize("grid", [(16, 16), (8, 16)], ids=["square", "oblong"])
def test_aekits_position_layout_is_the_same_model_in_maes_with_channel_halves_swapped(grid):
    mae = aekit.build_model("mae", data_shape=(3, *grid), patch_size=4, width=16, depth=2, heads=2, decoder_width=8,
                            decoder_depth=1, decoder_heads=2).train()
    assert mae.config.pos_order == "hw"
    relaid = with_position_layout(mae, "wh")
    assert relaid.config.pos_order == "wh" and mae.training and relaid.training
    patches = grid[0] * grid[1] // 16
    enc_a, enc_b = mae.encoder.pos_embed[0, -patches:], relaid.encoder.pos_embed[0, -patches:]
    assert torch.allclose(enc_b, torch.cat([enc_a[:, 8:], enc_a[:, :8]], 1))
    x, noise = torch.rand(3, 3, *grid), torch.rand(3, grid[0] * grid[1] // 16)
    with torch.no_grad():
        a, b = mae.eval()(x, noise=noise), relaid.eval()(x, noise=noise)
        assert torch.allclose(a.pred, b.pred, atol=1e-5) and torch.equal(a.mask, b.mask)
        latent_a, latent_b = mae.forward_encoder(x, noise)[0], relaid.forward_encoder(x, noise)[0]
        assert torch.allclose(latent_b, torch.cat([latent_a[..., 8:], latent_a[..., :8]], -1), atol=1e-5)
    assert with_position_layout(relaid, "hw").state_dict().keys() == mae.state_dict().keys()
    back = with_position_layout(relaid, "hw")
    assert all(torch.allclose(v, mae.state_dict()[k]) for k, v in back.state_dict().items())
    if grid[0] == grid[1]:  # ViTMAE takes square images: it gives the same predictions as the hw model
        with torch.no_grad():
            assert torch.allclose(to_vitmae(mae)(pixel_values=x, noise=noise).logits, a.pred, atol=1e-5)
