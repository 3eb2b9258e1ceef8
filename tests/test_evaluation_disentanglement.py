"""The disentanglement suite: a model's mean codes against the test split's factors, each value beside its
settings; data without factors refused."""

from __future__ import annotations

import warnings
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import aekit
from aekit.data import load_data
from aekit.errors import DataError
from aekit.evaluation import evaluate

TINY_VAE = {"latent_dim": 3, "hidden": (16,), "likelihood": "bernoulli"}


class FactorReader(nn.Module):
    """A stand-in model whose code of an XY-blocks image is the block's position and intensity read off the pixels,
    the factors themselves: every score should be near 1."""

    bottleneck = SimpleNamespace(stochastic=False)

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, batch):
        x = batch.inputs[:, 0]  # [B, 16, 16]
        cells = torch.arange(16, dtype=torch.float32) // 2
        mass = x.sum((1, 2))  # [B]
        code = torch.stack([(x.sum(1) * cells).sum(1) / mass, (x.sum(2) * cells).sum(1) / mass, x.amax((1, 2))], 1)
        return SimpleNamespace(latent=SimpleNamespace(mean=code), terms={}, stats={})


@pytest.fixture(autouse=True)
def quiet_solvers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_codes_that_are_the_factors_score_near_one_with_their_settings():
    splits = load_data("xy-blocks", val_fraction=0.0, test_fraction=0.5)
    metrics = evaluate(FactorReader(), splits, suites=("disentanglement",), batch_size=50)
    for name in ("test/mig", "test/factor_vae", "test/beta_vae", "test/modularity", "test/infom", "test/infoc"):
        assert metrics[name] > 0.9, name
    assert metrics["test/metric_examples"] == 128
    assert metrics["test/mig_bins"] == 20 and metrics["test/dci_regressor"] == "logistic"
    assert metrics["test/sap_mode"] == "discrete" and metrics["test/factor_vae_prune"] == 0.05
    assert "test/total_correlation_mean" in metrics and "test/total_correlation_sampled" not in metrics


def test_a_vae_reports_every_metric_and_the_sampled_total_correlation():
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 16, 16), **TINY_VAE)
    splits = load_data("xy-blocks", val_fraction=0.0, test_fraction=0.5)
    metrics = evaluate(model, splits, suites=("disentanglement",), batch_size=64)
    for name in ("beta_vae", "factor_vae", "mig", "sap", "dci_disentanglement", "dci_completeness",
                 "dci_informativeness", "modularity", "explicitness", "infom", "infoc", "infoe",
                 "total_correlation_mean", "total_correlation_sampled"):
        assert isinstance(metrics[f"test/{name}"], float), name
    assert metrics == evaluate(model, splits, suites=("disentanglement",), batch_size=64)  # seeded


def test_data_without_factors_is_refused_at_the_first_batch():
    model = aekit.build_model("vae", data_shape=(1, 8, 8), **TINY_VAE)
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(DataError, match="digits/test: has no ground-truth factors; .*dsprites"):
        evaluate(model, load_data("digits"), suites=("disentanglement",), batch_size=50)
    assert len(calls) == 1
