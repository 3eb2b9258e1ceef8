"""Teacher-feature targets: MR-MAE's mimic loss and DMAE's distillation on the visible tokens, by hand, with an
aekit checkpoint or any module as the teacher, kept frozen and out of the saved weights, and the bad inputs."""

import pytest
import torch
from torch import nn

import aekit
from aekit.errors import ConfigError, DataError

SHAPE = dict(data_shape=(1, 8, 8), patch_size=2)  # a 4 x 4 grid, 4 visible patches at ratio 0.75
STUDENT = dict(width=8, depth=2, heads=2, decoder_width=8, decoder_depth=1, decoder_heads=2, **SHAPE)


def vit_teacher(**kw):
    torch.manual_seed(1)
    return aekit.build_model("mae", **{**STUDENT, "width": 12, "depth": 3, **kw}).eval()


def student(teacher, **kw):
    torch.manual_seed(0)
    return aekit.build_model("mae", teacher=teacher, **{**STUDENT, **kw})


def test_mimic_loss_is_the_projected_visible_tokens_against_the_normalised_teacher_of_the_whole_image():
    teacher = vit_teacher()
    model = student(teacher)
    assert model.config.teacher_dim == 12
    x, noise = torch.rand(3, 1, 8, 8), torch.rand(3, 16)
    out = model(x, noise=noise)
    latent, masking = model.forward_encoder(x, noise)
    with torch.no_grad():
        full = teacher.encoder(teacher.encoder.patch_tokens(x))[:, 1:]  # the teacher on every patch [3, 16, 12]
    f = torch.stack([full[b, masking.ids_keep[b]] for b in range(3)])  # at the student's visible patches
    f = (f - f.mean(-1, keepdim=True)) / (f.var(-1, unbiased=False, keepdim=True) + 1e-6).sqrt()
    by_hand = (model.teacher_head(latent[:, 1:]) - f).pow(2).mean((1, 2))
    torch.testing.assert_close(out.terms["teacher"], by_hand)
    loss = model.objective()(out, 0)
    torch.testing.assert_close(loss.losses["model"], out.terms["recon"].mean() + out.terms["teacher"].mean())


@pytest.mark.filterwarnings("ignore:mae is being trained without its step hooks")  # scored twice, never trained
def test_distill_runs_the_teachers_first_blocks_on_the_visible_patches_only():
    teacher = vit_teacher()
    model = student(teacher, teacher_mode="distill", teacher_layer=1, student_layer=1, teacher_loss="l1",
                    teacher_norm=False, teacher_weight=0.5)
    x, noise = torch.rand(2, 1, 8, 8), torch.rand(2, 16)
    out = model(x, noise=noise)
    _, masking, hidden = model.forward_encoder(x, noise, keep_layer=1)
    enc = teacher.encoder
    with torch.no_grad():
        visible = masking.visible(enc.patch_tokens(x))  # [2, 4, 12]
        t = enc.blocks[0](torch.cat([enc.cls_token.expand(2, -1, -1), visible], 1))[:, 1:]  # one block, no norm
    torch.testing.assert_close(out.terms["teacher"], (model.teacher_head(hidden[:, 1:]) - t).abs().mean((1, 2)))
    # the teacher sees only the visible patches: changing a hidden one changes nothing of the term
    hide = model.unpatchify(masking.mask[..., None].expand(-1, -1, 4)).bool()
    again = model(torch.where(hide, torch.rand_like(x), x), noise=noise)
    torch.testing.assert_close(again.terms["teacher"], out.terms["teacher"])
    loss = model.objective()(out, 0)
    torch.testing.assert_close(loss.losses["model"], out.terms["recon"].mean() + 0.5 * out.terms["teacher"].mean())


class MapTeacher(nn.Module):
    """A CNN-style teacher: a feature map of the student's 4 x 4 grid, with BatchNorm and dropout."""

    def __init__(self, out=(5, 4, 4)):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, out[0], 2, 2), nn.BatchNorm2d(out[0]), nn.Dropout(0.5))
        self.size = out[1:]

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(self.net(x), self.size)


def test_any_module_is_a_teacher_kept_frozen_in_eval_mode_and_out_of_the_weights(tmp_path):
    teacher = MapTeacher()
    model = student(teacher)
    assert model.config.teacher_dim == 5
    model.train()
    assert not teacher.training  # no dropout noise, running BatchNorm statistics
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert not any(n.startswith("teacher.") for n in trainable) and "teacher_head.weight" in trainable
    assert not any(k.startswith("teacher.") for k in model.state_dict())
    x = torch.rand(4, 1, 8, 8)
    before = [p.clone() for p in teacher.parameters()]
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    hooks = aekit.StepHooks(model)  # the masker's schedule, as aekit's loop runs it
    for step in range(3):
        hooks.start(step)
        optimizer.zero_grad()
        model.objective()(model(x), step).losses["model"].backward()
        optimizer.step()
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.parameters(), strict=True))
    assert torch.equal(teacher.net[1].running_mean, torch.zeros(5))  # BatchNorm statistics untouched
    aekit.save_model(model, tmp_path / "m")
    plain = aekit.load(tmp_path / "m")  # embedding needs no teacher
    assert plain.teacher is None and plain.embed(x).shape == (4, 8)
    with pytest.raises(DataError, match="has no teacher"):
        plain.train()(x)
    back = aekit.load(tmp_path / "m", teacher=teacher)
    noise = torch.rand(4, 16)
    torch.testing.assert_close(back.eval()(x, noise=noise).pred, model.eval()(x, noise=noise).pred)


def test_a_checkpoint_folder_is_a_teacher_through_train_and_the_cli(tmp_path):
    from aekit import cli

    tiny = ["patch_size=2", "width=8", "depth=1", "heads=2", "decoder_width=8", "decoder_depth=1", "decoder_heads=2"]
    assert cli.main(["train", "mae", "--data", "digits", "--out", str(tmp_path / "teacher"), "--steps", "5",
                     "--no-eval", *tiny]) == 0
    assert cli.main(["train", "mae", "--data", "digits", "--out", str(tmp_path / "student"), "--steps", "5",
                     *tiny, f"teacher={tmp_path / 'teacher'}", "teacher_mode=distill", "teacher_layer=1"]) == 0
    log = (tmp_path / "student" / "log.csv").read_text().splitlines()
    assert "teacher" in log[0].split(",")
    loaded = aekit.load(tmp_path / "student")
    assert loaded.config.teacher_dim == 8 and loaded.teacher is not None


def test_a_teacher_that_does_not_fit_is_a_clear_error_before_training(tmp_path):
    with pytest.raises(DataError, match=r"feature map is 2x2, the student's patch grid 4x4"):
        student(MapTeacher((5, 2, 2)))
    with pytest.raises(DataError, match=r"features of shape \(1, 5\)"):
        student(nn.Sequential(nn.Flatten(), nn.Linear(64, 5)))
    with pytest.raises(DataError, match=r"patch grid \(2, 2\) is not the student's \(4, 4\)"):
        student(vit_teacher(patch_size=4))
    with pytest.raises(DataError, match="gives 5-dim features but this model was trained with teacher_dim=7"):
        student(MapTeacher(), teacher_dim=7)
    with pytest.raises(ConfigError, match="teacher_layer=1 needs a ViT teacher"):
        student(MapTeacher(), teacher_layer=1)
    with pytest.raises(ConfigError, match="teacher_layer=9: the teacher has 3 blocks"):
        student(vit_teacher(), teacher_layer=9)
    with pytest.raises(ConfigError, match="student_layer=3: the encoder has 2 blocks"):
        student(vit_teacher(), student_layer=3)
    with pytest.raises(ConfigError, match="teacher_mode='copy' is unknown"):
        student(vit_teacher(), teacher_mode="copy")
    with pytest.raises(DataError, match="no such checkpoint folder"):
        aekit.train("mae", data="digits", out=None, steps=1, teacher=str(tmp_path / "gone"), patch_size=2,
                    **{k: v for k, v in STUDENT.items() if k not in SHAPE})
