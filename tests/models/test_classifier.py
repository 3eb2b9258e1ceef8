"""Fine-tuning: the classifier takes a mae's encoder (sizes and weights), decays the lr by layer, and scores."""

import pytest
import torch

import aekit
from aekit.errors import AekitError, DataError
from aekit.optim import make_optimizers
from aekit.run_config import TrainConfig

MAE = dict(patch_size=2, width=16, depth=2, heads=2, decoder_width=8, decoder_depth=1, decoder_heads=2)


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("mae") / "run"
    aekit.train("mae", data="digits", out=out, steps=5, batch_size=32, evaluate=False, **MAE)
    return out


def test_init_copies_the_encoder_sizes_and_weights(mae_run):
    result = aekit.train("classifier", data="digits", out=None, init=str(mae_run), steps=1, evaluate=False)
    config = result.model.config
    assert (config.width, config.depth, config.heads, config.patch_size, config.classes) == (16, 2, 2, 2, 10)
    mae = aekit.load(mae_run)
    fresh = aekit.build_model("classifier", config)
    assert not torch.equal(fresh.encoder.blocks[0].attn.qkv.weight, mae.encoder.blocks[0].attn.qkv.weight)
    fresh.initial_weights()  # what the loop calls before the first step of a fresh run
    for key, value in mae.encoder.state_dict().items():
        assert torch.equal(fresh.encoder.state_dict()[key], value)


def test_layer_decay_scales_each_blocks_lr():
    model = aekit.build_model("classifier", data_shape=(1, 8, 8), patch_size=2, width=8, depth=3, heads=2, classes=4)
    assert model.layer_of("encoder.patch_embed.proj.weight") == (0, 4)
    assert model.layer_of("encoder.cls_token") == (0, 4)
    assert model.layer_of("encoder.blocks.1.attn.qkv.weight") == (2, 4)
    assert model.layer_of("head.weight") == (4, 4) and model.layer_of("encoder.norm.weight") == (4, 4)
    optimizers, _ = make_optimizers(model, TrainConfig(lr=1.0, layer_decay=0.5))
    scale_of = {id(p): g["lr_scale"] for g in optimizers["model"].param_groups for p in g["params"]}
    assert scale_of[id(model.encoder.patch_embed.proj.weight)] == 0.5**4
    assert scale_of[id(model.encoder.blocks[0].mlp[0].weight)] == 0.5**3
    assert scale_of[id(model.encoder.blocks[2].mlp[0].weight)] == 0.5
    assert scale_of[id(model.head.weight)] == 1.0


def test_the_loss_is_cross_entropy_with_label_smoothing_and_accuracy_is_scored():
    torch.manual_seed(0)
    model = aekit.build_model("classifier", data_shape=(1, 4, 4), patch_size=2, width=8, depth=1, heads=2, classes=3,
                              label_smoothing=0.3)
    batch = aekit.data.Batch(torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1]))
    out = model(batch)
    log_p = out.logits.log_softmax(-1)
    expected = -(0.7 * log_p[torch.arange(5), batch.labels] + 0.3 * log_p.mean(-1))
    assert torch.allclose(out.terms["ce"], expected, atol=1e-6)
    assert torch.equal(out.terms["correct"], (out.logits.argmax(-1) == batch.labels).float())
    metrics = aekit.evaluate(model, aekit.data.Dataset(batch.inputs, batch.labels, "five"))
    assert metrics["test/accuracy"] == pytest.approx(float(out.terms["correct"].mean()))


def test_a_classifier_needs_labels_and_a_vit_to_start_from(tmp_path):
    with pytest.raises(DataError, match="has no labels"):
        aekit.train("classifier", data=torch.rand(50, 1, 8, 8), out=None, steps=1, patch_size=2)
    aekit.train("ae", data="digits", out=tmp_path / "ae", steps=2, evaluate=False)
    with pytest.raises(AekitError):
        aekit.train("classifier", data="digits", out=None, init=str(tmp_path / "ae"), steps=1, patch_size=2)
