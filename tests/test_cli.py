"""The command line end to end on the bundled digits, and every bad input as a one-line error."""

import gzip
import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from aekit import cli


def aekit(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aekit.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def aekit_here(capsys, *args):
    """The command run in this process (no torch start-up per call), answered like a subprocess."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=captured.out, stderr=captured.err)


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
    for command in ([], ["train"], ["evaluate"], ["sample"], ["models"], ["datasets"], ["compare"], ["parts"]):
        result = aekit(*command, "--help")
        assert result.returncode == 0 and "usage: aekit" in result.stdout


def test_models_and_datasets_lists():
    assert {"ae", "dae", "vae", "beta-vae"} <= {ln.split()[0] for ln in aekit("models").stdout.splitlines()}
    keys = aekit("models", "beta-vae").stdout
    assert "beta               4.0" in keys and "checkpoint_every" in keys and "val_fraction" in keys
    assert "options            {}" in keys and "MISSING" not in keys  # a mapping's default, not a sentinel
    assert "  kl                 4, beta" in keys.split("terms and their weights")[1]  # the KL weighted by beta
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
    assert np.load(tmp_path / "samples" / "samples-n7-seed0.npy").shape == (7, 1, 8, 8)
    result = aekit("sample", run, "-n", "3", "--seed", "1", "--out", tmp_path / "samples")
    assert result.returncode == 0, result.stderr  # another call writes beside the first, named by its settings
    assert {p.name for p in (tmp_path / "samples").iterdir()} == {
        "samples-n7-seed0.npy", "samples-n7-seed0.png", "samples-n3-seed1.npy", "samples-n3-seed1.png"}


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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny trained runs (a vae and an ae on digits) that tests copy before changing."""
    from aekit import train

    root = tmp_path_factory.mktemp("runs")
    tiny = dict(steps=20, hidden=(32,), nll_samples=10, progress=False, figures=False)
    train("vae", "digits", root / "vae", latent_dim=4, **tiny)
    train("ae", "digits", root / "ae", latent_dim=3, **tiny)
    return root


def files_of(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_parts_lists_each_kind_and_refuses_an_unknown_one():
    result = aekit("parts")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    models = lines.index("models:")
    names = []
    for line in lines[models + 1:]:
        if not line.startswith("  "):
            break
        names.append(line.split()[0])
    assert {"ae", "dae", "vae", "beta-vae"} <= set(names)
    assert "bottlenecks:" in lines and "objectives:" in lines
    assert_clean_error(aekit("parts", "nosuch"), "'nosuch'", "priors")


def test_compare_writes_one_page_and_leaves_the_runs_alone(runs, tmp_path):
    before = {name: files_of(runs / name) for name in ("vae", "ae")}
    result = aekit("compare", runs / "vae", runs / "ae", "--out", tmp_path / "cmp")
    assert result.returncode == 0, result.stderr
    html = (tmp_path / "cmp" / "index.html").read_text()
    assert "<th>vae (vae)</th><th>ae (ae)</th>" in html
    assert "<td>model.latent_dim</td>" in html and "nats per example, lower is better" in html
    assert 'class="number best"' in html and "data:image/png;base64" in html
    assert [p.name for p in (tmp_path / "cmp").iterdir()] == ["index.html"]
    inside = aekit("compare", runs / "vae", runs / "ae", "--out", runs / "vae")  # allowed: only index.html is new
    assert inside.returncode == 0, inside.stderr
    after = files_of(runs / "vae")
    assert after.pop(Path("index.html")) and after == before["vae"] and files_of(runs / "ae") == before["ae"]
    (runs / "vae" / "index.html").unlink()


def test_compare_refuses_a_missing_run_or_one_without_metrics(runs, tmp_path, capsys):
    assert_clean_error(aekit_here(capsys, "compare", runs / "vae", tmp_path / "nowhere", "--out", tmp_path / "c"),
                       "nowhere", "no such run folder")
    unevaluated = tmp_path / "unevaluated"
    shutil.copytree(runs / "ae", unevaluated)
    (unevaluated / "metrics.json").unlink()
    assert_clean_error(aekit_here(capsys, "compare", runs / "vae", unevaluated, "--out", tmp_path / "c"),
                       "unevaluated", "metrics.json not found", "aekit evaluate")
    assert not (tmp_path / "c").exists()


def test_evaluate_on_other_data_writes_beside_the_run_metrics(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "vae", run)
    kept = {name: (run / name).read_bytes() for name in ("metrics.json", "report.html")}
    images = tmp_path / "noise.npy"
    np.save(images, np.random.default_rng(0).random((60, 1, 8, 8)).astype(np.float32))
    result = aekit("evaluate", run, "--data", images, "--nll-samples", "5")
    assert result.returncode == 0, result.stderr
    written = run / "evaluations" / "noise.npy" / "metrics.json"
    assert f"metrics: {written}" in result.stdout
    scores = json.loads(written.read_text())
    assert scores["test/nll_samples"] == 5 and scores["test/examples"] == 6  # test_fraction 0.1 of 60
    assert {name: (run / name).read_bytes() for name in kept} == kept

    table = tmp_path / "table.npy"
    np.save(table, np.random.default_rng(0).random((50, 6)).astype(np.float32))
    assert_clean_error(aekit("evaluate", run, "--data", table), "table.npy", "(6,)", "(1, 8, 8)")
    assert sorted(p.name for p in (run / "evaluations").iterdir()) == ["noise.npy"]


@pytest.mark.parametrize("flag,value", [("--nll-samples", "-1"), ("--nll-examples", "-2")])
def test_evaluate_refuses_negative_counts(flag, value, runs, capsys):
    kept = (runs / "vae" / "metrics.json").read_bytes()
    assert_clean_error(aekit_here(capsys, "evaluate", runs / "vae", flag, value), f"{flag} {value}")
    assert (runs / "vae" / "metrics.json").read_bytes() == kept


@pytest.mark.parametrize("n", ["0", "-3"])
def test_sample_refuses_a_count_below_one(n, runs, tmp_path, capsys):
    assert_clean_error(aekit_here(capsys, "sample", runs / "vae", "-n", n, "--out", tmp_path / "s"), f"-n {n}")
    assert not (tmp_path / "s").exists()


def test_sample_condition_on_an_unconditional_model_is_a_clean_error(runs, tmp_path, capsys):
    result = aekit_here(capsys, "sample", runs / "vae", "-n", "2", "--condition", "3", "--out", tmp_path / "s")
    assert_clean_error(result, "vae", "condition")
    assert not (tmp_path / "s").exists() or not any((tmp_path / "s").iterdir())
    assert_clean_error(aekit_here(capsys, "sample", runs / "vae", "--condition", "red"), "'red'", "class id")


class RecordingModel(torch.nn.Module):
    """Stands in for a trained model: records what sample() was given."""

    name = "stub"
    UNSET = object()

    def __init__(self, takes_condition):
        super().__init__()
        self.calls = []
        if not takes_condition:
            self.sample = self.sample_unconditionally

    def sample(self, n, generator=None, condition=UNSET):
        self.calls.append(condition)
        return torch.rand(n, 1, 4, 4)

    def sample_unconditionally(self, n, generator=None):
        return torch.rand(n, 1, 4, 4)


@pytest.mark.parametrize("given,passed", [(None, RecordingModel.UNSET), ("3", 3), ("0.1,0.9", [0.1, 0.9]),
                                          ("2.5", [2.5])])
def test_sample_passes_the_condition_only_when_given(given, passed, tmp_path, capsys, monkeypatch):
    model = RecordingModel(takes_condition=True)
    monkeypatch.setattr("aekit.io.load", lambda path: model)
    extra = [] if given is None else ["--condition", given]
    result = aekit_here(capsys, "sample", tmp_path, "-n", "2", "--out", tmp_path / "s", *extra)
    assert result.returncode == 0, result.stderr
    (condition,) = model.calls
    if isinstance(passed, list):  # a vector: a 1-D float tensor
        assert condition.dtype == torch.float32 and condition.tolist() == pytest.approx(passed)
    elif passed is RecordingModel.UNSET:  # not given: not passed at all
        assert condition is RecordingModel.UNSET
    else:  # a class id: a plain int
        assert type(condition) is int and condition == passed
    monkeypatch.setattr("aekit.io.load", lambda path: RecordingModel(takes_condition=False))
    refused = aekit_here(capsys, "sample", tmp_path, "--condition", "1", "--out", tmp_path / "t")
    assert_clean_error(refused, "stub takes no condition")


@pytest.mark.parametrize("case", ["file", "inside_file"])
def test_train_refuses_an_out_it_cannot_write_before_training(case, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("keep me")
    out = blocker if case == "file" else blocker / "run"
    result = aekit("train", "ae", "--data", "digits", "--out", out, "--steps", "2")
    assert_clean_error(result, str(out), "is a file")
    assert blocker.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_write_errors_are_one_line(runs, tmp_path, capsys):
    out = tmp_path / "cmp"
    (out / "index.html").mkdir(parents=True)  # the page cannot replace a folder
    result = aekit_here(capsys, "compare", runs / "vae", "--out", out)
    assert_clean_error(result, str(out / "index.html"), "directory")
    assert [p.name for p in out.iterdir()] == ["index.html"]  # no temporary file left behind


def test_new_keys_and_settings_are_one_line_errors(capsys, tmp_path):
    import torch as _torch

    if not _torch.cuda.is_available():
        result = aekit_here(capsys, "train", "ae", "--data", "digits", "--out", tmp_path / "g", "--steps", "1",
                            "accelerator=gpu")
        assert_clean_error(result, "accelerator=gpu", "no CUDA GPU")
        assert not (tmp_path / "g" / "checkpoints").exists()
    cases = [
        (["optimizers.critic.lr=1e-3"], "no optimiser 'critic'"),
        (["optimizers.model.momentum=0.9"], "unknown optimizers.model key"),
        (["lr.model=1"], "takes no dotted settings"),
        (["objective=nosuch"], "objective='nosuch' is unknown"),
        (["threads=-1"], "threads=-1"),
        (["imports=no_such_module_here"], "cannot import"),
        (["strategy=fsdp", "accelerator=cpu", "devices=2"], "FSDP is only available on GPU"),
    ]
    for extra, fragment in cases:
        result = aekit_here(capsys, "train", "aae", "--data", "digits", "--out", tmp_path / "x", "--steps", "1",
                            "hidden=8", "latent_dim=2", *extra)
        assert_clean_error(result, fragment)
    result = aekit_here(capsys, "train", "iwae", "--data", "digits", "--out", tmp_path / "k", "--steps", "1",
                        "n_samples=0")
    assert_clean_error(result, "n_samples=0")


def test_models_lists_the_first_users_of_the_new_parts(capsys):
    out = aekit_here(capsys, "models").stdout
    for name in ("iwae", "cvae", "aae", "vae", "beta-vae", "ae", "dae"):
        assert any(line.split()[0] == name for line in out.splitlines()), name


@pytest.mark.parametrize("args,fragment", [
    (["latent_dim=4", "latent_dim=8"], "latent_dim is given twice (latent_dim=4, then latent_dim=8); give it once"),
    (["latent_dim=4", "model.latent_dim=8"], "latent_dim is given twice"),
    (["--steps", "50", "steps=70"], "steps is given twice (--steps 50 and steps=70)"),
    (["--steps", "0"], "--steps 0: give a number >= 1"),
    (["steps=0"], "steps=0: give a number >= 1"),
])
def test_a_setting_given_twice_or_zero_steps_is_refused_before_anything_runs(capsys, tmp_path, args, fragment):
    result = aekit_here(capsys, "train", "vae", "--data", "digits", "--out", tmp_path / "run", *args)
    assert_clean_error(result, fragment)
    assert not (tmp_path / "run").exists()


def test_evaluate_false_as_a_setting_skips_the_evaluation_like_no_eval(capsys, tmp_path):
    run = tmp_path / "run"
    result = aekit_here(capsys, "train", "ae", "--data", "digits", "--out", run, "--steps", "2", "evaluate=false")
    assert result.returncode == 0 and "test/" not in result.stdout and "report:" not in result.stdout
    assert (run / "model").is_dir() and not (run / "metrics.json").exists()
    for args, fragment in ((["evaluate=maybe"], "evaluate='maybe' must be true or false"),
                           (["--no-eval", "train.evaluate=true"], "--no-eval and train.evaluate=true contradict")):
        result = aekit_here(capsys, "train", "ae", "--data", "digits", "--out", tmp_path / "other", *args)
        assert_clean_error(result, fragment)
        assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("args,fragment", [
    (["--steps", "0"], "--steps 0: give a number >= 1"),
    (["--steps", "5", "steps=7"], "steps is given twice"),
])
def test_detect_refuses_zero_steps_and_a_doubled_setting(capsys, tmp_path, args, fragment):
    table = tmp_path / "t.csv"
    table.write_text("a,b\n" + "\n".join(f"{i},{i % 3}" for i in range(40)) + "\n")
    result = aekit_here(capsys, "detect", table, "--out", tmp_path / "d", *args)
    assert_clean_error(result, fragment)


@pytest.mark.parametrize("suffix", [".npz", ".npy", ".csv"])
def test_an_empty_file_is_one_clear_line_for_train_and_detect(capsys, tmp_path, suffix):
    empty = tmp_path / f"empty{suffix}"
    empty.write_bytes(b"")
    for command in (["train", "ae", "--data", empty, "--out", tmp_path / "run"], ["detect", empty, "--out",
                                                                                    tmp_path / "det"]):
        result = aekit_here(capsys, *command, "--steps", "2")
        assert_clean_error(result, "the file is empty (0 bytes)")


def test_a_relative_data_path_is_stored_resolved_so_the_run_evaluates_from_anywhere(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    np.savez(work / "table.npz", x=np.random.default_rng(0).random((120, 6)).astype("float32"))
    result = aekit("train", "ae", "--data", "table.npz", "--out", "run", "--steps", "3", "hidden=8", "--no-eval",
                   cwd=work)
    assert result.returncode == 0, result.stderr
    data = json.loads((work / "run" / "config.json").read_text())["data"]
    assert data["name"] == str((work / "table.npz").resolve()) and data["given_as"] == "table.npz"
    result = aekit("evaluate", work / "run", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert json.loads((work / "run" / "metrics.json").read_text())["test/examples"] > 0


@pytest.mark.parametrize("args,fragment", [
    (["vea", "--data", "digits"], "model 'vea' is not registered (did you mean 'vae'?)"),
    (["vae", "--data", "digit"], "digit: no such file or folder (did you mean 'digits'?)"),
    (["vae", "--data", "digits", "latent_dims=3"], "unknown key 'latent_dims' for vae (did you mean 'latent_dim'?)"),
])
def test_a_mistyped_name_gets_a_suggestion(capsys, tmp_path, args, fragment):
    result = aekit_here(capsys, "train", *args, "--out", tmp_path / "run")
    assert_clean_error(result, fragment)
    assert len(result.stderr) < 400  # a suggestion, not every key there is
