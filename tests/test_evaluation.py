"""The one pass of an evaluation: one forward per test batch shared by every suite, the generic terms (per-example,
0-dim statistics, whole-batch terms at a stated batch size) and the variational suite against a hand computation."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import aekit
from aekit.data.base import Dataset, Splits
from aekit.errors import ConfigError
from aekit.evaluation import SUITES, Suite, evaluate, own_stream, register_suite
from aekit.metrics import aggregate_posterior_mmd, importance_sampled_log_likelihood, mutual_information

TINY = {
    "ae": {"latent_dim": 3, "hidden": (16,), "likelihood": "bernoulli"},
    "vae": {"latent_dim": 3, "hidden": (16,), "likelihood": "bernoulli"},
    "mae": {"width": 8, "depth": 1, "heads": 2, "decoder_width": 8, "decoder_depth": 1, "decoder_heads": 2,
            "patch_size": 4},
}


def labelled_splits(n_test: int = 25) -> Splits:
    torch.manual_seed(0)
    x, y = torch.rand(30 + n_test, 1, 8, 8), torch.arange(30 + n_test) % 3
    return Splits(Dataset(x[:30], y[:30], "train"), Dataset(x[:0], y[:0], "val"), Dataset(x[30:], y[30:], "test"))


@pytest.fixture
def recording_suite():
    """A suite registered for one test that records the output of each batch it is handed."""
    seen = []

    class Recording(Suite):
        def update(self, model, batch, out, state):
            seen.append(out)
            state.add("seen", torch.ones(len(batch)))

        def compute(self, model, state):
            return {"batches_seen": len(seen), "examples_seen": state.counts["seen"]}

    register_suite("recording")(Recording)
    yield seen
    del SUITES["recording"]


@pytest.mark.parametrize("name", ["ae", "vae", "mae"])
def test_every_suite_shares_one_forward_per_test_batch(name, recording_suite):
    torch.manual_seed(0)
    model = aekit.build_model(name, data_shape=(1, 8, 8), **TINY[name])
    forwards = []
    model.register_forward_hook(lambda module, args, out: forwards.append(out))
    metrics = evaluate(model, labelled_splits(25), nll_samples=2, batch_size=10, probe_examples=30,
                       suites=(*model.suites, "recording"))
    assert len(forwards) == 3 == metrics["test/batches_seen"]  # 25 examples in batches of 10: 10, 10, 5
    assert all(seen is out for seen, out in zip(recording_suite, forwards, strict=True))  # the same outputs
    assert metrics["test/examples_seen"] == metrics["test/examples"] == 25
    assert "test/knn_acc" in metrics and "test/recon" in metrics


def test_a_masked_model_scores_its_reconstruction_and_its_patches_on_the_same_masks():
    torch.manual_seed(0)
    model = aekit.build_model("mae", data_shape=(1, 8, 8), **TINY["mae"])
    metrics = evaluate(model, labelled_splits(12), batch_size=5)
    assert metrics["test/mask_ratio"] == 0.75
    assert metrics["test/recon"] == pytest.approx(metrics["test/masked_mse"], abs=2e-6)  # the loss is the hidden mse
    # the reconstruction pastes the visible patches back: its error is the hidden patches' error times their share
    assert metrics["test/mse"] == pytest.approx(0.75 * metrics["test/masked_mse"], abs=2e-6)


class Toy(nn.Module):
    """x [B, 1] -> a per-example term x^2, a whole-batch term (the batch's size), 0-dim and per-example stats."""

    suites = ()

    def __init__(self, whole_batch: bool = True) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))  # where the model lives
        self.whole_batch = whole_batch

    def forward(self, batch):
        x = batch.inputs[:, 0]  # [B]
        terms = {"square": x**2} | ({"size": torch.tensor(float(len(x)))} if self.whole_batch else {})
        return SimpleNamespace(terms=terms, stats={"mean": x.mean(), "rows": x})


def toy_data(n: int) -> Dataset:
    return Dataset(torch.arange(n, dtype=torch.float32).unsqueeze(1), None, "toy")


def test_per_example_terms_and_batch_statistics_are_averaged_over_the_examples():
    x = torch.arange(25, dtype=torch.float64)
    for batch_size in (4, 10, 25):
        metrics = evaluate(Toy(), toy_data(25), batch_size=batch_size)
        assert metrics["test/square"] == pytest.approx(float((x**2).mean()), rel=1e-6)
        assert metrics["test/mean"] == pytest.approx(12.0)  # batch means weighted by their sizes: the mean of x
        assert "test/rows" not in metrics  # a statistic that is neither per batch nor 0-dim is left to suites


def test_whole_batch_terms_are_scored_at_the_stated_batch_size():
    metrics = evaluate(Toy(), toy_data(25), batch_size=10)
    assert metrics["test/size"] == 10.0 and metrics["test/batch_terms_batch_size"] == 10  # the batch of 5 left out
    assert evaluate(Toy(), toy_data(20), batch_size=10)["test/size"] == 10.0
    small = evaluate(Toy(), toy_data(7), batch_size=10)  # smaller than a batch: the split as one batch
    assert small["test/size"] == 7.0 and small["test/batch_terms_batch_size"] == 7
    assert "test/batch_terms_batch_size" not in evaluate(Toy(whole_batch=False), toy_data(25), batch_size=10)


def tiny_vae() -> nn.Module:
    torch.manual_seed(0)
    return aekit.build_model("vae", data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="bernoulli").eval()


def test_variational_metrics_match_a_hand_computation():
    model, x = tiny_vae(), torch.rand(7, 6)
    metrics = evaluate(model, Dataset(x, None, "tiny"), batch_size=3, seed=5, suites=("variational",))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(5)
        outs = [model(x[i : i + 3]) for i in range(0, 7, 3)]  # the pass alone draws: batches of 3, 3, 1
    recon, kl = torch.cat([o.terms["recon"] for o in outs]), torch.cat([o.terms["kl"] for o in outs])
    means = torch.cat([o.latent.mean for o in outs])  # [7, 2]
    assert metrics["test/recon"] == pytest.approx(float(recon.mean()), abs=1e-5)
    assert metrics["test/kl"] == pytest.approx(float(kl.mean()), abs=1e-5)
    assert metrics["test/elbo"] == pytest.approx(float(-(recon + kl).mean()), abs=1e-5)
    assert metrics["test/active_units"] == int((means.var(0) > 0.01).sum())
    kl_dims = torch.cat([o.stats["kl_per_dim"] for o in outs]).mean(0)
    assert metrics["test/kl_per_dim"] == pytest.approx(kl_dims.tolist(), abs=1e-5)
    assert metrics["test/examples"] == 7 and "test/nll" not in metrics
    logvar = torch.cat([o.latent.params["logvar"] for o in outs])
    sampled = torch.cat([o.latent.z[0] for o in outs])
    assert metrics["test/mutual_information"] == pytest.approx(float(mutual_information(means, logvar, sampled)),
                                                       abs=1e-5)
    assert metrics["test/mi_examples"] == 7 and metrics["test/collapsed_units"] == int((kl_dims < 0.01).sum())
    seed = int(np.random.SeedSequence(5, spawn_key=(1,)).generate_state(1)[0])  # the prior draws' own stream
    draws = model.bottleneck.prior.sample(7, generator=torch.Generator().manual_seed(seed))  # [7, 2]
    assert metrics["test/aggregate_mmd"] == pytest.approx(float(aggregate_posterior_mmd(sampled, draws)), abs=1e-5)


def test_a_unit_forced_to_collapse_is_flagged_and_carries_no_information():
    model, x = tiny_vae(), torch.randn(400, 6)
    with torch.no_grad():  # unit 1's mean and log-variance no longer depend on x and are the prior's: N(0, 1)
        for row in (1, 3):  # the projection gives [mu_0, mu_1, logvar_0, logvar_1]
            model.bottleneck.proj.weight[row] = 0
            model.bottleneck.proj.bias[row] = 0
        model.bottleneck.proj.weight[0] *= 20  # unit 0 carries much of x
    metrics = evaluate(model, Dataset(x, None, "tiny"), batch_size=100, seed=0, suites=("variational",))
    assert metrics["test/collapsed_units"] == 1 and metrics["test/kl_per_dim"][1] == 0
    assert 0.5 < metrics["test/mutual_information"] <= math.log(400)


def test_the_nll_is_estimated_in_the_pass_over_a_fixed_random_subset_without_moving_the_other_metrics():
    from aekit.evaluation.budget import subset_indices

    model, x = tiny_vae(), (torch.rand(7, 6) > 0.5).float()  # binary: the Bernoulli's NLL is a code length
    data = Dataset(x, None, "tiny")
    metrics = evaluate(model, data, nll_samples=4, nll_examples=4, batch_size=3, seed=5)
    chosen = subset_indices(7, 4)  # 4 of the 7 examples, drawn once, in order
    assert chosen.tolist() != [0, 1, 2, 3]  # not the first ones: a test set ordered by class stays covered
    estimates, done = [], 0
    for start in (0, 3, 6):  # batch by batch, each batch's chosen examples on a stream keyed by their position
        rows = chosen[(chosen >= start) & (chosen < start + 3)]
        if len(rows):
            with torch.no_grad(), own_stream(5, done, x.device):
                estimates.append(importance_sampled_log_likelihood(model, x[rows], n_samples=4))
            done += len(rows)
    nll = -torch.cat(estimates).double()
    assert metrics["test/nll"] == pytest.approx(float(nll.mean()), abs=1e-5)
    assert metrics["test/nll_stderr"] == pytest.approx(float(nll.std()) / 2, abs=1e-5)
    assert metrics["test/bits_per_dim"] == pytest.approx(float(nll.mean()) / (6 * math.log(2)), abs=1e-5)
    assert metrics["test/nll_samples"] == 4 and metrics["test/nll_examples"] == 4
    without = evaluate(model, data, batch_size=3, seed=5)
    assert {k: v for k, v in metrics.items() if "nll" not in k and "bits" not in k} == without
    grey = evaluate(model, Dataset(torch.rand(7, 6), None, "grey"), nll_samples=4, batch_size=3, seed=5)
    assert "test/nll" in grey and "test/bits_per_dim" not in grey  # a Bernoulli on grey levels: a cross-entropy


def test_suite_registration_and_choice_errors_say_what_to_do():
    class Half:
        def update(self, model, batch, out, state):
            pass

    with pytest.raises(TypeError, match="lacks update"):
        register_suite("half")(Half)
    with pytest.raises(ValueError, match="registered twice"):
        register_suite("reconstruction")(Suite)
    with pytest.raises(ConfigError, match="'nope' is unknown; choose from"):
        evaluate(Toy(), toy_data(3), suites=("nope",))
    with pytest.raises(ConfigError, match="batch_size=0 must be a positive"):
        evaluate(Toy(), toy_data(3), batch_size=0)
    assert "half" not in SUITES
