"""aekit.anomaly: scores, maps and attributions checked against their definitions, and maps that find what was
pasted into an image."""

import numpy as np
import pytest
import torch

import aekit
from aekit.anomaly import (
    anomaly_maps,
    anomaly_scores,
    integrated_gradients,
    reconstruction_attributions,
    score_function,
)
from aekit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def table_models():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(400, 3)) @ rng.normal(size=(3, 6))).astype(np.float32)
    common = dict(data=x, hidden=(16,), latent_dim=3, steps=200, seed=0, evaluate=False, threads=1, out=None)
    ae = aekit.train("ae", **common).model.eval()
    vae = aekit.train("vae", **common).model.eval()
    return torch.from_numpy(x[:20]), ae, vae


def test_recon_attributions_split_the_recon_score_exactly(table_models):
    x, ae, vae = table_models
    for model in (ae, vae):
        shares = reconstruction_attributions(model, x)
        assert shares.shape == x.shape
        assert torch.allclose(shares.sum(1), anomaly_scores(model, x, "recon"), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("criterion", ["recon", "elbo", "nll"])
def test_integrated_gradients_are_complete(table_models, criterion):
    x, ae, vae = table_models
    model = ae if criterion == "recon" else vae
    baseline = torch.full((6,), 0.3)
    ig = integrated_gradients(model, x, criterion, baseline=baseline, steps=128, n_samples=8)
    score = score_function(model, criterion, n_samples=8)
    with torch.no_grad():
        rise = score(x) - score(baseline.expand_as(x))
    assert ig.shape == x.shape
    assert torch.allclose(ig.sum(1), rise, rtol=0.02, atol=0.02 * float(rise.abs().mean()))


def test_the_gradient_map_is_the_scores_derivative(table_models):
    x, _, vae = table_models
    grad = anomaly_maps(vae, x[:4], "gradient")  # |d(-ELBO)/dx|, the samples from a fixed seed
    score = score_function(vae, "elbo")
    h = 1e-2
    for i, j in [(0, 0), (1, 3), (3, 5)]:
        up, down = x[:4].clone(), x[:4].clone()
        up[i, j] += h
        down[i, j] -= h
        with torch.no_grad():
            numeric = (score(up)[i] - score(down)[i]) / (2 * h)
        assert float(grad[i, j]) == pytest.approx(abs(float(numeric)), rel=0.03, abs=1e-3)


def test_the_combined_score_sums_the_combined_map_and_scores_are_repeatable(table_models):
    x, _, vae = table_models
    maps = anomaly_maps(vae, x, "combined")
    recon_error = anomaly_maps(vae, x, "recon-error")
    assert torch.allclose(maps, recon_error * anomaly_maps(vae, x, "gradient"))
    assert torch.allclose(anomaly_scores(vae, x, "combined"), maps.sum(1), rtol=1e-5)
    assert torch.equal(anomaly_scores(vae, x, "nll", n_samples=16), anomaly_scores(vae, x, "nll", n_samples=16))


def test_bad_requests_are_clear_errors(table_models):
    x, ae, vae = table_models
    with pytest.raises(ConfigError, match="criterion=elbo needs a model with a posterior"):
        anomaly_scores(ae, x, "elbo")
    with pytest.raises(ConfigError, match="kind='heat' is unknown"):
        anomaly_maps(vae, x, "heat")
    with pytest.raises(DataError, match="NaN or infinite"):
        anomaly_scores(vae, x.clone().fill_(float("nan")), "recon")
    with pytest.raises(DataError, match="baseline of shape"):
        integrated_gradients(vae, x, "recon", baseline=torch.zeros(5))
    with pytest.raises(ConfigError, match="steps=0 must be >= 1"):
        integrated_gradients(vae, x, "recon", steps=0)


def test_maps_find_a_bright_square_pasted_into_digits():
    """Digits' top-left corner is always dark: a square pasted there is what an anomaly map must point at."""
    from sklearn.datasets import load_digits

    images = (load_digits().images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8]
    model = aekit.train("ce-vae", data=images[:1500], backbone="conv", channels=(8, 16), latent_dim=8,
                        likelihood="bernoulli", steps=400, batch_size=64, seed=0, evaluate=False, out=None,
                        threads=1).model.eval()
    x = torch.from_numpy(images[1500:1540]).clone()
    x[:, :, 0:3, 0:3] = 1.0  # the anomaly: 9 of 64 pixels
    square = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    square[..., 0:3, 0:3] = True
    # the gradient alone is spread over every confidently dark pixel (for a Bernoulli likelihood it is the
    # decoder's logit there), which is why the ceVAE multiplies it by the reconstruction error
    for kind, least in (("recon-error", 2.0), ("gradient", 1.2), ("combined", 3.0)):
        m = anomaly_maps(model, x, kind)
        share = (m * square).flatten(1).sum(1) / m.flatten(1).sum(1)  # the map's mass on the square
        assert float(share.median()) > least * 9 / 64, kind
    ig = integrated_gradients(model, x, "elbo", steps=16).clamp(min=0)
    assert float(((ig * square).flatten(1).sum(1) / ig.flatten(1).sum(1)).median()) > 3 * 9 / 64
    clean = torch.from_numpy(images[1500:1540])
    assert (anomaly_scores(model, x, "combined") > anomaly_scores(model, clean, "combined")).float().mean() > 0.9
