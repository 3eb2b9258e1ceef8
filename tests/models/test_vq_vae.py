"""Quantised autoencoders end to end: k-means start, the codebook suite, save/load by codes, the CLI, bad input,
and codebooks kept identical across two DDP processes."""

import json
import math

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.report.html import explain_metric

QUICK = dict(progress=False, figures=False, batch_size=64, val_examples=128)


def test_a_vq_vae_starts_from_kmeans_trains_and_reports_its_codebook(tmp_path):
    torch.manual_seed(0)
    model = aekit.build_model("vq-vae", data_shape=(1, 8, 8), channels=(8, 16), latent_dim=4, codebook_size=32)
    random_start = model.bottleneck.codebooks[0].embed.clone()
    run = aekit.train(model, "digits", tmp_path / "vq", steps=40, **QUICK)
    book = model.bottleneck.codebooks[0]
    assert not torch.allclose(book.embed.cpu(), random_start)
    m = run.metrics
    for key in ("test/codebook_usage", "test/codebook_perplexity", "test/unused_codes", "test/code_entropy_bits",
                "test/commit", "test/perplexity", "test/dead_codes"):
        assert math.isfinite(m[key]), key
    assert m["test/code_capacity_bits"] == pytest.approx(5)  # per grid position: a 5-bit code
    assert m["test/codebook_usage"] > 0.5  # k-means and restarts keep most entries in use
    assert m["test/codebook_perplexity"] > 8
    log = (tmp_path / "vq" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"commit", "perplexity", "code_usage", "dead_codes"} <= set(log)
    unexplained = [k for k in m if k.startswith("test/") and not explain_metric(k, model.suites)]
    assert not unexplained  # the report says what each of them measures


def test_a_saved_quantised_model_gives_the_same_codes_and_decodes_them(tmp_path):
    torch.manual_seed(1)
    run = aekit.train("rvq-vae", "digits", tmp_path / "rvq", steps=10, channels=(8, 16), latent_dim=4, stages=2,
                      codebook_size=16, **QUICK)
    assert explain_metric("test/stage1_usage") and run.metrics["test/stage1_usage"] > 0
    model = aekit.load(tmp_path / "rvq")
    x = torch.rand(5, 1, 8, 8)
    again = aekit.load(tmp_path / "rvq")
    codes = model.encode(x).params["codes"]
    assert codes.shape == (5, 2, 2, 2) and torch.equal(codes, again.encode(x).params["codes"])
    assert torch.allclose(model.bottleneck.decode_codes(codes), model.embed(x), atol=1e-6)


@pytest.mark.parametrize("name,extra", [("fsq-ae", ["levels=[5,5,4]"]), ("lfq-ae", ["bits=6"]),
                                        ("vq-vae", ["bottleneck.gradient=rotation", "bottleneck.heads=2"])])
def test_the_cli_trains_each_quantised_model(tmp_path, name, extra, capsys):
    out = tmp_path / name
    code = main(["train", name, "--data", "digits", "--out", str(out), "steps=8", "batch_size=32", "val_examples=64",
                 "channels=[8,16]", *extra])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/codebook_usage"] > 0
    assert (out / "model" / "model.safetensors").is_file() and (out / "figures" / "code_usage.png").is_file()


def test_tabular_data_take_one_code_vector_per_example(tmp_path):
    data = np.random.default_rng(0).normal(size=(300, 6)).astype(np.float32)
    run = aekit.train("vq-vae", data, tmp_path / "tab", steps=5, codebook_size=8, **QUICK)
    assert run.model.config.backbone == "mlp" and run.model.bottleneck.latent_shape == (16,)


@pytest.mark.parametrize("args,message", [
    (["codebook_size=1"], "at least 2 entries"),
    (["bottleneck.heads=5"], "does not split"),
])
def test_bad_settings_stop_the_cli_with_one_line(tmp_path, capsys, args, message):
    code = main(["train", "vq-vae", "--data", "digits", "--out", str(tmp_path / "bad"), "steps=2", *args])
    assert code != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "bad" / "model").exists()


def test_fsq_levels_below_two_and_lfq_bits_past_int64_are_refused_before_training():
    with pytest.raises(aekit.errors.ConfigError, match="at least 2 levels"):
        aekit.build_model("fsq-ae", data_shape=(1, 8, 8), levels=(8, 1))
    with pytest.raises(aekit.errors.ConfigError, match="int64"):
        aekit.build_model("lfq-ae", data_shape=(1, 8, 8), bits=70)


def test_a_quantised_model_without_a_prior_over_codes_says_so_when_asked_to_sample():
    model = aekit.build_model("vq-vae", data_shape=(1, 8, 8), channels=(8, 16))
    with pytest.raises(aekit.errors.DataError, match="code-prior"):
        model.sample(2)


@pytest.mark.slow
def test_codebooks_restarts_and_evaluation_stay_identical_across_two_ddp_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("VQ_DIR", str(tmp_path))
    aekit.train("vq-vae", "digits", tmp_path / "run", steps=5, devices=2, accelerator="cpu", imports="vq_ddp_parts",
                bottleneck="vq-recorded", channels=(8, 16), latent_dim=4, codebook_size=64,
                options={"bottleneck": {"dead_after": 1}}, **QUICK)
    for step in range(5):
        ranks = [json.loads((tmp_path / f"rank{r}_step{step}.json").read_text()) for r in (0, 1)]
        assert ranks[0]["embed"] == ranks[1]["embed"] and ranks[0]["idle"] == ranks[1]["idle"]
        assert ranks[0]["rows"] == 32 * 4  # each rank's half of the batch, a 2x2 grid each
    assert max(ranks[0]["idle"]) <= 1  # restarts ran: nothing idle past dead_after
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())  # evaluation ran, no collective hung it
    assert metrics["test/codebook_usage"] > 0


def test_qlae_trains_with_the_authors_weight_decay_unless_told_otherwise(tmp_path):
    run = aekit.train("qlae", "digits", tmp_path / "qlae", steps=5, channels=(8, 16), latent_dim=4, **QUICK)
    assert json.loads((tmp_path / "qlae" / "config.json").read_text())["train"]["weight_decay"] == 0.1
    assert run.metrics["test/code_capacity_bits"] == pytest.approx(4 * math.log2(10))
    aekit.train("qlae", "digits", tmp_path / "wd0", steps=2, channels=(8, 16), weight_decay=0.0, **QUICK)
    assert json.loads((tmp_path / "wd0" / "config.json").read_text())["train"]["weight_decay"] == 0.0
