"""The command line end to end on the bundled digits, and every bad input as a one-line error."""

import gzip
import json
import struct
import subprocess
import sys

import numpy as np
import pytest


def aekit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aekit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def assert_clean_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("aekit: error:"), result.stderr
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


def test_help_does_not_import_torch():
    code = "import sys; from aekit.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    for command in ([], ["train"], ["evaluate"], ["sample"], ["models"], ["datasets"]):
        result = aekit(*command, "--help")
        assert result.returncode == 0 and "usage: aekit" in result.stdout


def test_models_and_datasets_lists():
    assert {"ae", "dae", "vae", "beta-vae"} <= {ln.split()[0] for ln in aekit("models").stdout.splitlines()}
    keys = aekit("models", "beta-vae").stdout
    assert "beta               4.0" in keys and "checkpoint_every" in keys and "val_fraction" in keys
    names = {ln.split()[0] for ln in aekit("datasets").stdout.splitlines()}
    assert {"digits", "mnist", "binarized-mnist", "cifar10"} <= names


def test_train_evaluate_sample_end_to_end(tmp_path):
    run = tmp_path / "run"
    result = aekit("train", "beta-vae", "--data", "digits", "--out", run, "--steps", "60", "latent_dim=3",
                   "beta_schedule=linear", "warmup_steps=30", "hidden=32", "nll_samples=20", "--seed", "3")
    assert result.returncode == 0, result.stderr
    assert f"report: {run / 'report.html'}" in result.stdout
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["name"] == "beta-vae" and config["model"]["beta"] == 4.0
    assert config["model"]["warmup_steps"] == 30 and config["train"]["seed"] == 3
    html = (run / "report.html").read_text()
    nll = json.loads((run / "metrics.json").read_text())["test/nll"]
    assert "<td>nll</td>" in html and f"{nll:.4g}" in html and "data:image/png;base64" in html
    log = (run / "log.csv").read_text().splitlines()
    header = log[0].split(",")
    betas = [float(r.split(",")[header.index("beta")]) for r in log[1:] if ",train," in r]
    assert betas[0] < betas[-1] == 4.0  # the KL weight warmed up

    result = aekit("evaluate", run, "--nll-samples", "50", "--nll-examples", "40")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/nll_samples"] == 50 and "train/steps" in metrics  # earlier keys kept

    result = aekit("sample", run, "-n", "7", "--out", tmp_path / "samples")
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "samples" / "samples.npy").shape == (7, 1, 8, 8)


def test_recipe_file(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model:\n  name: ae\n  latent_dim: 7\n  hidden: [32]\ndata:\n  name: digits\n"
                      "train:\n  steps: 10\n  nll_samples: 0\n")
    result = aekit("train", "--config", recipe, "--out", tmp_path / "run", "--no-eval", "latent_dim=5")
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model"]["name"] == "ae" and config["model"]["latent_dim"] == 5


def write_idx(path, magic, dims, payload):
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload)


@pytest.fixture
def bad_inputs(tmp_path):
    cases = {}
    wrong_magic = tmp_path / "wrong_magic"
    wrong_magic.mkdir()
    write_idx(wrong_magic / "train-images-idx3-ubyte.gz", 1234, (2, 28, 28), bytes(2 * 784))
    write_idx(wrong_magic / "train-labels-idx1-ubyte.gz", 2049, (2,), bytes(2))
    cases["wrong_magic"] = wrong_magic
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    write_idx(truncated / "train-images-idx3-ubyte.gz", 2051, (5, 28, 28), bytes(3 * 784))
    write_idx(truncated / "train-labels-idx1-ubyte.gz", 2049, (5,), bytes(5))
    cases["truncated"] = truncated
    mismatch = tmp_path / "mismatch"
    mismatch.mkdir()
    write_idx(mismatch / "train-images-idx3-ubyte.gz", 2051, (4, 28, 28), bytes(4 * 784))
    write_idx(mismatch / "train-labels-idx1-ubyte.gz", 2049, (3,), bytes(3))
    cases["mismatch"] = mismatch
    nan = np.random.rand(50, 6).astype(np.float32)
    nan[7, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    cases["nan"] = tmp_path / "nan.npy"
    np.save(tmp_path / "table.npy", np.random.rand(50, 6).astype(np.float32))
    cases["table"] = tmp_path / "table.npy"
    return cases


@pytest.mark.parametrize("case,fragments", [
    ("missing", ["no-such-file.npz", "no such file"]),
    ("wrong_magic", ["train-images-idx3-ubyte.gz", "magic"]),
    ("truncated", ["train-images-idx3-ubyte.gz", "truncated"]),
    ("mismatch", ["4", "3"]),
    ("nan", ["nan.npy", "NaN"]),
])
def test_bad_data_is_a_one_line_error(case, fragments, bad_inputs, tmp_path):
    data = tmp_path / "no-such-file.npz" if case == "missing" else bad_inputs[case]
    result = aekit("train", "ae", "--data", data, "--out", tmp_path / "run", "--steps", "2")
    assert_clean_error(result, *fragments)


def test_wrong_shape_for_the_model_is_a_one_line_error(bad_inputs, tmp_path):
    result = aekit("train", "vae", "--data", bad_inputs["table"], "--out", tmp_path / "run", "backbone=conv")
    assert_clean_error(result, "conv backbone needs images", "(6,)")


@pytest.mark.parametrize("args,fragments", [
    (["latent_dim=-3"], ["latent_dim=-3"]),
    (["lr=fast"], ["lr='fast'"]),
    (["latent_dims=3"], ["unknown key 'latent_dims'"]),
    (["likelihood=poisson"], ["likelihood='poisson'"]),
    (["beta_schedule=sometimes"], ["beta_schedule='sometimes'"]),
    (["steps"], ["not key=value"]),
    (["precision=fp3"], ["precision='fp3'"]),
])
def test_invalid_config_values_are_one_line_errors(args, fragments, tmp_path):
    assert_clean_error(aekit("train", "vae", "--data", "digits", "--out", tmp_path / "run", *args), *fragments)


def test_unknown_model_and_corrupt_model_file(tmp_path):
    assert_clean_error(aekit("train", "vea", "--data", "digits", "--out", tmp_path / "x"), "'vea'", "vae")
    run = tmp_path / "run"
    assert aekit("train", "ae", "--data", "digits", "--out", run, "--steps", "3", "--no-eval").returncode == 0
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert_clean_error(aekit("evaluate", run), "model.safetensors", "corrupt")
    assert_clean_error(aekit("sample", run), "model.safetensors")
    assert_clean_error(aekit("sample", tmp_path / "nowhere"), "nowhere")


def test_diverging_run_stops_cleanly_and_keeps_its_checkpoints(tmp_path):
    run = tmp_path / "run"
    result = aekit("train", "ae", "--data", "digits", "--out", run, "--steps", "200", "lr=1e30", "checkpoint_every=1",
                   "lr_schedule=constant", "likelihood=gaussian")
    assert_clean_error(result, "loss term", "last good checkpoint")
    latest = (run / "checkpoints" / "latest").read_text().strip()
    assert (run / "checkpoints" / latest / "model.safetensors").is_file()
    rerun = aekit("train", "ae", "--data", "digits", "--out", run, "--steps", "5")
    assert_clean_error(rerun, "already holds a run")
    assert (run / "checkpoints" / latest / "model.safetensors").is_file()
