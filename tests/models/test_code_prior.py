"""A prior over a quantised run's codes, end to end: it learns more than the codes' own distribution, samples
images, reloads alone, runs from the command line, and refuses what it cannot model."""

import json

import numpy as np
import pytest
import torch

import aekit
from aekit.cli import main
from aekit.errors import ConfigError, DataError
from aekit.report.html import explain_metric

QUICK = dict(progress=False, figures=False, batch_size=64, val_examples=64)


@pytest.fixture(scope="module")
def vq_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("vq") / "run"
    torch.manual_seed(0)
    aekit.train("vq-vae", "digits", out, steps=60, channels=(8, 16), latent_dim=4, codebook_size=32, **QUICK)
    return out


@pytest.mark.parametrize("network", ["autoregressive", "masked"])
def test_a_prior_over_codes_beats_their_unigram_bits_and_samples_images(vq_run, tmp_path, network):
    torch.manual_seed(1)
    run = aekit.train("code-prior", "digits", tmp_path / network, init=str(vq_run), network=network, width=32,
                      depth=2, heads=2, steps=80, **QUICK)
    m = run.metrics
    assert m["test/bits_per_code"] < m["test/unigram_bits_per_code"]  # context helps
    assert all(explain_metric(k, ("code-prior",)) for k in m if k.startswith("test/"))
    prior = aekit.load(tmp_path / network)  # alone: the quantised model's weights are saved with it
    source = aekit.load(vq_run)
    x = torch.rand(4, 1, 8, 8)
    assert torch.equal(prior.codes(x), source.encode(x).params["codes"].reshape(4, -1))
    samples = prior.sample(5, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (5, 1, 8, 8) and torch.isfinite(samples).all()
    codes = prior.sample_codes(3, torch.Generator().manual_seed(0))
    assert codes.shape == (3, 2, 2, 1) and torch.isfinite(prior.log_prob(codes)).all()
    if network == "masked":  # MAGE: the masked prior's token features represent the input
        assert prior.embed(x).shape == (4, 32) and "test/linear_probe_acc" in m
    else:
        with pytest.raises(DataError, match="network=masked"):
            prior.embed(x)


def test_the_prior_leaves_the_quantised_model_as_it_was(vq_run, tmp_path):
    run = aekit.train("code-prior", "digits", tmp_path / "p", init=str(vq_run), width=32, depth=1, heads=2, steps=5,
                      **QUICK)
    source = aekit.load(vq_run)
    assert all(torch.equal(a, b) for a, b in zip(run.model.autoencoder.state_dict().values(),
                                                 source.state_dict().values(), strict=True))


def test_the_cli_trains_a_prior_and_samples_from_it(vq_run, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "code-prior", "--data", "digits", "--out", str(out), f"init={vq_run}", "network=masked",
                 "width=32", "depth=1", "heads=2", "steps=5", "batch_size=32"]) == 0
    assert main(["sample", str(out), "-n", "6"]) == 0
    saved = np.load(next((out / "samples").glob("*.npy")))
    assert saved.shape == (6, 1, 8, 8)
    assert json.loads((out / "metrics.json").read_text())["test/bits_per_code_examples"] > 0


def test_a_run_that_is_not_quantised_is_refused_before_training(tmp_path, capsys):
    aekit.train("vae", "digits", tmp_path / "vae", steps=2, hidden=(16,), **QUICK)
    code = main(["train", "code-prior", "--data", "digits", "--out", str(tmp_path / "p"), f"init={tmp_path / 'vae'}",
                 "steps=2"])
    err = capsys.readouterr().err
    assert code != 0 and "not quantised" in err and "Traceback" not in err


def test_codes_outside_the_codebook_and_other_data_are_refused(vq_run, tmp_path):
    prior = aekit.build_model("code-prior", data_shape=(1, 8, 8), init=str(vq_run),
                              source_model="vq-vae", source_config=json.loads(
                                  (vq_run / "model" / "config.json").read_text())["config"], width=32, depth=1, heads=2)
    with pytest.raises(ConfigError, match="outside the codebook"):
        prior.log_prob(torch.full((1, 2, 2, 1), 32))
    with pytest.raises(ConfigError, match="tokens per example"):
        prior.log_prob(torch.zeros(1, 5, dtype=torch.long))
    data = np.random.default_rng(0).random((100, 6)).astype(np.float32)
    with pytest.raises(DataError, match="same data"):
        aekit.train("code-prior", data, tmp_path / "wrong", init=str(vq_run), steps=1, **QUICK)
    with pytest.raises(ConfigError, match="init=RUN"):
        aekit.build_model("code-prior")


def test_a_prior_over_multiscale_codes_reads_them_coarse_to_fine(tmp_path):
    aekit.train("vq-vae", "digits", tmp_path / "ms", steps=5, bottleneck="msvq", channels=(8, 16), latent_dim=4,
                codebook_size=16, **QUICK)
    prior = aekit.train("code-prior", "digits", tmp_path / "p", init=str(tmp_path / "ms"), width=16, depth=1,
                        heads=2, steps=3, **QUICK).model
    assert prior.network.net.length == 1 + 4  # a 2 x 2 grid: scales 1 x 1 and 2 x 2
    assert prior.sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 1, 8, 8)
