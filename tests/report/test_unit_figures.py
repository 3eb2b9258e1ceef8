"""The units' figures: latent traversals decode the moved codes, each unit's information about each factor, the KL
bars; which runs get them; a factor dataset's evaluation scored by the disentanglement suite without asking."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import aekit
from aekit.data import load_data
from aekit.evaluation import evaluate
from aekit.metrics.disentanglement import mig, normalised_information
from aekit.outputs import TRAVERSAL_STEPS, latent_traversals, write_figures
from aekit.report import plot_factor_information, plot_latent_traversals, plot_unit_kl
from aekit.report.html import _headline_section
from tests.report.test_figures import assert_png

TINY_VAE = {"latent_dim": 3, "hidden": (16,), "likelihood": "bernoulli"}


@pytest.fixture(autouse=True)
def quiet_solvers():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_a_traversal_decodes_the_input_code_with_one_unit_moved_by_each_step():
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 8, 8), **TINY_VAE).eval()
    x = torch.rand(2, 1, 8, 8)
    seen = []
    decode = model.decode
    model.decode = lambda z, condition=None: seen.append(z.clone()) or decode(z, condition)
    spread = torch.tensor([1.0, 0.5, 2.0])
    images = latent_traversals(model, x, [2, 0], spread)
    assert images.shape == (2, 2, len(TRAVERSAL_STEPS), 1, 8, 8)
    z = model.embed(x)  # [2, 3]
    moved = seen[-1].view(2, 2, len(TRAVERSAL_STEPS), 3)
    steps = torch.tensor(TRAVERSAL_STEPS)
    for i in range(2):
        for row, unit in enumerate([2, 0]):
            expected = z[i].repeat(len(steps), 1)
            expected[:, unit] += steps * spread[unit]
            torch.testing.assert_close(moved[i, row], expected)
    middle = TRAVERSAL_STEPS.index(0.0)
    torch.testing.assert_close(images[:, 0, middle], model.reconstruct(x))  # no move: the reconstruction


def test_normalised_information_is_one_for_the_factors_themselves_and_mig_its_gaps():
    rng = np.random.default_rng(0)
    factors = np.stack([rng.integers(0, 4, 2000), rng.integers(0, 5, 2000)], 1)
    codes = np.concatenate([factors + rng.normal(0, 0.01, factors.shape), rng.normal(size=(2000, 1))], 1)
    info = normalised_information(codes, factors, bins=20)  # [3, 2]
    np.testing.assert_allclose(np.diag(info[:2]), 1.0, atol=1e-9)
    assert info[0, 1] < 0.01 and info[1, 0] < 0.01 and info[2].max() < 0.02
    gaps = np.sort(info, 0)[-1] - np.sort(info, 0)[-2]
    assert mig(codes, factors)["mig"] == pytest.approx(gaps.mean())


def test_the_unit_figures_draw_for_any_size(tmp_path):
    images = torch.rand(3, 4, 7, 1, 9, 13)
    assert_png(plot_latent_traversals(images, [f"z{u}" for u in range(4)], TRAVERSAL_STEPS, tmp_path / "t.png"))
    assert_png(plot_latent_traversals(torch.rand(1, 1, 7, 3, 8, 8), ["z0"], TRAVERSAL_STEPS, tmp_path / "rgb.png"))
    assert_png(plot_unit_kl([0.0, 1.2, 0.005, 3.0], tmp_path / "kl.png"))
    assert_png(plot_factor_information(np.eye(3)[:, :2], ["a", "b", "c"], ["x", "y"], tmp_path / "info.png"))
    with pytest.raises(ValueError, match="2 unit labels"):
        plot_latent_traversals(images, ["a", "b"], TRAVERSAL_STEPS, tmp_path / "bad.png")
    with pytest.raises(ValueError, match="for 3 units and 1 factors"):
        plot_factor_information(np.eye(3)[:, :2], ["a", "b", "c"], ["x"], tmp_path / "bad.png")


def test_a_vae_on_a_factor_dataset_gets_all_three_and_the_suite_without_asking(tmp_path):
    torch.manual_seed(0)
    splits = load_data("xy-blocks", val_fraction=0.0, test_fraction=0.5)
    model = aekit.build_model("vae", data_shape=(1, 16, 16), **TINY_VAE)
    metrics = evaluate(model, splits, batch_size=64)
    assert isinstance(metrics["test/mig"], float) and len(metrics["test/kl_per_dim"]) == 3
    assert "test/mig" not in evaluate(model, splits, batch_size=64, suites=("reconstruction",))
    written = {p.name for p in write_figures(model, splits, tmp_path, metrics=metrics)}
    assert {"unit_kl.png", "latent_traversals.png", "factor_information.png"} <= written
    for name in ("unit_kl.png", "latent_traversals.png", "factor_information.png"):
        assert_png(tmp_path / "figures" / name)
    assert "test/mig" in _headline_section(metrics, model.suites)


def test_codes_the_decoder_cannot_read_anywhere_get_no_traversal_and_other_data_no_factor_map(tmp_path):
    splits = load_data("digits")
    model = aekit.build_model("vae", data_shape=(1, 8, 8), **TINY_VAE)
    assert "test/mig" not in evaluate(model, splits, batch_size=200)
    written = {p.name for p in write_figures(model, splits, tmp_path / "vae")}
    assert "latent_traversals.png" in written and "factor_information.png" not in written
    assert "unit_kl.png" not in written  # no metrics given: no KL to draw
    quantised = aekit.build_model("fsq-ae", data_shape=(1, 8, 8), levels=(3, 3), backbone="mlp", hidden=(16,))
    assert "latent_traversals.png" not in {p.name for p in write_figures(quantised, splits, tmp_path / "fsq")}
