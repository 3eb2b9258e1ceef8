"""The masked autoencoder from the command line: train, evaluate, convert, and its bad inputs as one-line errors."""

import json

import pytest
import torch
from test_cli import aekit_here, assert_clean_error

TINY = ["patch_size=2", "width=16", "depth=1", "heads=2", "decoder_width=8", "decoder_depth=1", "decoder_heads=2"]


@pytest.fixture(scope="module")
def mae_run(tmp_path_factory):
    from aekit import cli

    run = tmp_path_factory.mktemp("mae") / "run"
    assert cli.main(["train", "mae", "--data", "digits", "--out", str(run), "--steps", "20", *TINY,
                     "masker=block"]) == 0
    return run


def test_train_writes_masked_metrics_and_figure(mae_run):
    metrics = json.loads((mae_run / "metrics.json").read_text())
    assert metrics["test/mask_ratio"] == 0.75 and "test/knn_acc" in metrics and "test/visible_mse" in metrics
    assert (mae_run / "figures" / "masked.png").is_file()
    assert "masked.png" in (mae_run / "report.html").read_text()


@pytest.mark.parametrize("pos_order", ["hw", "wh"])
def test_convert_to_vitmae_and_back_keeps_the_predictions(tmp_path, capsys, pos_order):
    from aekit import cli

    run = tmp_path / "run"
    assert cli.main(["train", "mae", "--data", "digits", "--out", str(run), "--steps", "3", "--no-eval",
                     f"pos_order={pos_order}", "patch_size=4", "width=16", "depth=1", "heads=2", "decoder_width=8",
                     "decoder_depth=1", "decoder_heads=2"]) == 0
    result = aekit_here(capsys, "convert", run, "--to", "vitmae", "--out", tmp_path / "hf")
    assert result.returncode == 0 and (tmp_path / "hf" / "config.json").is_file()
    assert ("written in ViTMAE's position layout (wh)" in result.stderr) == (pos_order == "hw")
    result = aekit_here(capsys, "convert", tmp_path / "hf", "--out", tmp_path / "back")
    assert result.returncode == 0
    import aekit

    first, back = aekit.load(run), aekit.load(tmp_path / "back")
    x, noise = torch.rand(2, 1, 8, 8), torch.rand(2, 4)
    with torch.no_grad():
        assert torch.allclose(first(x, noise=noise).pred, back(x, noise=noise).pred, atol=1e-6)
    again = aekit_here(capsys, "convert", tmp_path / "hf", "--out", tmp_path / "back")  # never overwrites
    assert_clean_error(again, "already holds a model")
    assert_clean_error(aekit_here(capsys, "convert", run, "--out", tmp_path / "x"), "is an aekit model or run")
    assert_clean_error(aekit_here(capsys, "convert", tmp_path, "--out", tmp_path / "x"), "has no config.json")


@pytest.mark.parametrize("setting,fragment", [
    ("mask_ratio=1.0", "mask_ratio=1.0 must be in [0, 1)"),
    ("mask_ratio=0.99", "leaves no visible token"),
    ("patch_size=3", "image size 8x8 is not divisible by patch_size=3"),
    ("masker=squares", "masker='squares' is unknown"),
    ("masker.sigma=0", "masker.sigma=0"),
    ("teacher=no/such/run", "teacher=no/such/run: no such checkpoint folder"),
    ("teacher_mode=copy", "teacher_mode='copy' is unknown"),
    ("student_layer=5", "student_layer=5: the encoder has 1 blocks"),
])
def test_bad_masked_settings_are_one_line_errors(setting, fragment, capsys, tmp_path):
    args = ["train", "mae", "--data", "digits", "--out", tmp_path / "run", "--steps", "2",
            *[t for t in TINY if not t.startswith(setting.split("=")[0] + "=")], setting]
    if setting.startswith("masker.sigma"):
        args.append("masker=red-noise")
    result = aekit_here(capsys, *args)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run" / "model").exists()
