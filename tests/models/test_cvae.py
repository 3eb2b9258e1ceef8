"""CVAE (Sohn et al. 2015): the condition reaches encoder and decoder; sampling a class; training on labels."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import aekit
from aekit.data.batch import Batch
from aekit.errors import DataError


def linear_cvae():
    """A CVAE whose decoder is one linear map of [z, c]: decode(z, c) = W_z z + W_c c + b, by hand."""
    encoder = nn.Flatten()
    encoder.out_features = 4
    decoder = nn.Linear(2 + 3, 4)
    return aekit.build_model("cvae", data_shape=(4,), latent_dim=2, condition_dim=3, likelihood="gaussian",
                             encoder=encoder, decoder=decoder)


def test_decoder_sees_z_and_the_one_hot_label():
    model = linear_cvae()
    W, b = model.decoder.weight, model.decoder.bias
    z = torch.randn(5, 2)
    labels = torch.tensor([0, 1, 2, 1, 0])
    c = torch.eye(3)[labels]
    expected = z @ W[:, :2].T + c @ W[:, 2:].T + b
    assert torch.allclose(model.decode(z, model.one_hot(labels)), expected, atol=1e-6)


def test_encoder_sees_the_condition_and_the_elbo_uses_it():
    model = linear_cvae()
    x = torch.randn(3, 4)
    batch = Batch(x, labels=torch.tensor([0, 1, 2]))
    proj = model.bottleneck.proj
    h = torch.cat([x, torch.eye(3)], dim=1)  # [x, one_hot(y)]
    mu, logvar = (h @ proj.weight.T + proj.bias).chunk(2, dim=1)
    eps = torch.randn(1, 3, 2)
    out = model(batch, eps=eps)
    assert torch.allclose(out.latent.mean, mu, atol=1e-6)
    kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
    assert torch.allclose(out.terms["kl"], kl, atol=1e-5)
    x_mean = model.decode(mu + torch.exp(0.5 * logvar) * eps[0], torch.eye(3))
    recon = 0.5 * ((x - x_mean) ** 2).sum(1) + 2 * np.log(2 * np.pi)
    assert torch.allclose(out.terms["recon"], recon, atol=1e-4)


def test_sample_of_a_class_decodes_prior_draws_with_its_label():
    model = linear_cvae()
    got = model.sample(4, generator=torch.Generator().manual_seed(0), condition=2)
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(got, model.decode(z, torch.eye(3)[[2, 2, 2, 2]]), atol=1e-6)


def test_wrong_conditions_are_clear_errors():
    model = linear_cvae()
    with pytest.raises(DataError, match="labels 0..5 do not fit condition_dim=3"):
        model(Batch(torch.randn(2, 4), labels=torch.tensor([0, 5])))
    with pytest.raises(DataError, match=r"condition of shape \(2, 3\), got \(2, 4\)"):
        model(torch.randn(2, 4), condition=torch.zeros(2, 4))
    with pytest.raises(DataError, match="needs a batch with labels"):
        model(Batch(torch.randn(2, 4)))
    with pytest.raises(DataError, match="not conditional"):
        aekit.build_model("vae", data_shape=(4,))(torch.randn(2, 4), condition=torch.zeros(2, 3))
    with pytest.raises(aekit.AekitError, match="condition_dim >= 1"):
        aekit.build_model("cvae", data_shape=(4,))


def test_vector_conditions_come_from_the_batch():
    model = aekit.build_model("cvae", data_shape=(4,), latent_dim=2, hidden=(8,), condition="vector",
                              condition_dim=2, likelihood="gaussian")
    x = torch.randn(3, 4)
    a, b = model(Batch(x, condition=torch.zeros(3, 2)), eps=torch.zeros(1, 3, 2)), \
        model(Batch(x, condition=torch.ones(3, 2)), eps=torch.zeros(1, 3, 2))
    assert not torch.allclose(a.terms["recon"], b.terms["recon"])
    assert model.sample(2, condition=[0.5, 0.5]).shape == (2, 4)


def test_cvae_trains_on_digits_and_samples_a_class_from_the_cli(tmp_path):
    out = tmp_path / "run"
    run = aekit.train("cvae", "digits", out, steps=30, hidden=(32,), latent_dim=2, nll_samples=5, progress=False)
    assert run.model.config.condition_dim == 10  # from the data's classes
    assert (out / "figures" / "samples_per_class.png").is_file()
    assert "samples_per_class.png" in (out / "report.html").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/nll"] > 0 and "test/elbo" in metrics
    proc = subprocess.run([sys.executable, "-m", "aekit.cli", "sample", str(out), "-n", "6", "--condition", "3",
                           "--out", str(tmp_path / "s")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    samples = np.load(tmp_path / "s" / "samples-n6-seed0-condition3.npy")
    expected = run.model.sample(6, generator=torch.Generator().manual_seed(0), condition=3).numpy()
    assert samples.shape == (6, 1, 8, 8) and np.allclose(samples, expected, atol=1e-5)
    proc = subprocess.run([sys.executable, "-m", "aekit.cli", "sample", str(out), "--condition", "0.1,0.9",
                           "--out", str(tmp_path / "bad")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--condition 0.1,0.9 does not fit cvae, which is conditioned on a class id 0..9" in proc.stderr
    assert "condition=" not in proc.stderr.replace("--condition", "")  # no advice meant for the Python API
