"""RAE's ex-post density: a Gaussian mixture fitted to the training codes after training, saved with the model, and
the samples drawn from it."""

import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import aekit
from aekit import cli
from aekit.data.batch import Batch
from aekit.data.sample import sample_batch
from aekit.errors import DataError
from aekit.nn.priors import ExPostGaussianMixture, fit_gaussian_mixture

QUICK = dict(latent_dim=2, hidden=(16,), progress=False, figures=False)


def test_em_recovers_two_separated_gaussians():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 2, generator=g) * 0.5 + torch.tensor([4.0, 0.0])
    b = torch.randn(100, 2, generator=g) * torch.tensor([1.0, 0.2]) + torch.tensor([-4.0, 1.0])
    weights, means, scale_tril = fit_gaussian_mixture(torch.cat([a, b]), components=2)
    order = means[:, 0].argsort(descending=True)  # the component at x = 4 first
    weights, means, cov = weights[order], means[order], (scale_tril @ scale_tril.mT)[order]
    assert torch.allclose(weights, torch.tensor([0.75, 0.25], dtype=weights.dtype), atol=1e-6)
    assert torch.allclose(means, torch.stack([a.mean(0), b.mean(0)]).double(), atol=1e-5)
    assert torch.allclose(cov[1], torch.cov(b.T, correction=0).double(), atol=1e-4)
    with pytest.raises(DataError, match="a mixture of 3 components needs at least 3 codes, got 2"):
        fit_gaussian_mixture(torch.randn(2, 2), components=3)


def test_mixture_log_density_by_hand():
    prior = ExPostGaussianMixture((2,), components=2)
    prior.weights.copy_(torch.tensor([0.25, 0.75]))
    prior.means.copy_(torch.tensor([[1.0, 0.0], [0.0, -1.0]]))
    prior.scale_tril.copy_(torch.stack([torch.eye(2) * 2.0, torch.eye(2)]))
    z = torch.tensor([[0.5, 0.5]])
    n1 = math.exp(-0.5 * (0.25 + 0.25) / 4.0) / (2 * math.pi * 4.0)  # N(z; (1, 0), 4 I)
    n2 = math.exp(-0.5 * (0.25 + 2.25)) / (2 * math.pi)  # N(z; (0, -1), I)
    assert prior.log_prob(z).item() == pytest.approx(math.log(0.25 * n1 + 0.75 * n2), rel=1e-6)


def test_fresh_mixture_is_the_standard_normal():
    model = aekit.build_model("rae", data_shape=(6,), likelihood="gaussian", latent_dim=3, hidden=(8,))
    prior = model.bottleneck.prior
    assert isinstance(prior, ExPostGaussianMixture) and not prior.fitted and len(prior.weights) == 10
    z = torch.randn(4, 3)
    assert torch.allclose(prior.log_prob(z), -0.5 * (z ** 2).sum(1) - 1.5 * math.log(2 * math.pi), atol=1e-5)


def test_fitted_mixture_is_saved_and_the_loaded_model_draws_the_same_samples(tmp_path):
    torch.manual_seed(0)
    model = aekit.build_model("rae", data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), options={"prior": {
        "components": 3}})
    aekit.fit_after_training(model, Batch(torch.rand(200, 1, 8, 8)))
    prior = model.bottleneck.prior
    assert prior.fitted and model.training  # fitted in evaluation mode, the model's mode restored
    assert not torch.allclose(prior.means, torch.zeros(3, 3))
    path = aekit.save_model(model, tmp_path / "m")
    assert {"bottleneck.prior.weights", "bottleneck.prior.means", "bottleneck.prior.scale_tril",
            "bottleneck.prior.fitted"} <= set(load_file(str(path / "model.safetensors")))
    loaded = aekit.load(path)
    for name in ("weights", "means", "scale_tril"):
        assert torch.equal(getattr(loaded.bottleneck.prior, name), getattr(prior, name))
    first = model.sample(6, generator=torch.Generator().manual_seed(3))
    again = loaded.sample(6, generator=torch.Generator().manual_seed(3))
    assert first.shape == (6, 1, 8, 8) and torch.equal(first, again)
    z = loaded.bottleneck.prior.sample(4000, generator=torch.Generator().manual_seed(4))  # draws follow the mixture
    expected_mean = (prior.weights.unsqueeze(1) * prior.means).sum(0)
    assert torch.allclose(z.mean(0), expected_mean, atol=0.1 * prior.means.abs().max().item() + 0.02)


def test_the_loop_fits_the_mixture_to_the_training_codes_of_the_kept_weights(tmp_path):
    run = aekit.train("rae", "digits", tmp_path / "rae", steps=4, keep_best=True, evaluate=False, **QUICK)
    model = aekit.load(tmp_path / "rae")
    prior = model.bottleneck.prior
    assert prior.fitted and run.model.bottleneck.prior.fitted
    train = aekit.load_data("digits").train  # the run's split, all of it (under 10,000 examples)
    codes = model.embed(sample_batch(train, 10_000))
    weights, means, scale_tril = fit_gaussian_mixture(codes, 10)
    assert torch.allclose(prior.means, means.float(), atol=1e-4) and torch.allclose(prior.weights, weights.float())
    assert cli.main(["sample", str(tmp_path / "rae"), "-n", "5", "--out", str(tmp_path / "samples")]) == 0
    drawn = np.load(tmp_path / "samples" / "samples-n5-seed0.npy")  # aekit sample: the mixture's draws, decoded
    expected = model.sample(5, generator=torch.Generator().manual_seed(0)).numpy()
    assert drawn.shape == (5, 1, 8, 8) and np.array_equal(drawn, expected)
