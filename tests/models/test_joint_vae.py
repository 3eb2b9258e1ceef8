"""JointVAE: the two capacity terms by hand at several steps, the discrete capacity capped at sum_i log K_i as in
Dupont (2018), bad settings refused before training, a command-line run reloaded and scored."""

import math

import pytest
import torch

import aekit
from aekit import cli
from aekit.data import load_data
from aekit.data.batch import Batch
from aekit.errors import ConfigError

SMALL = {"data_shape": (1, 8, 8), "latent_dim": 5, "hidden": (16,), "discrete": (3,)}


def build(**kw):
    torch.manual_seed(0)
    return aekit.build_model("joint-vae", **{**SMALL, **kw})


def test_the_loss_is_gamma_times_each_kl_distance_to_its_own_linear_capacity():
    model = build(capacity=8.0, capacity_steps=100, capacity_disc=1.0, capacity_disc_steps=50, gamma=30.0)
    x = torch.rand(6, 1, 8, 8)
    out = model(x)
    recon, kl, kl_disc = (out.terms[k].mean() for k in ("recon", "kl", "kl_disc"))
    objective = model.objective()
    # (step, C_z(t), C_c(t)): C_z = 8 min(1, t/100), C_c = 1 min(1, t/50) (below the cap log 3 = 1.0986)
    for step, c_z, c_c in ((0, 0.0, 0.0), (25, 2.0, 0.5), (50, 4.0, 1.0), (100, 8.0, 1.0), (1000, 8.0, 1.0),
                           (None, 8.0, 1.0)):
        expected = recon + 30.0 * (kl - c_z).abs() + 30.0 * (kl_disc - c_c).abs()
        assert torch.allclose(objective(out, step, Batch(x)).total, expected), step


def test_the_discrete_capacity_stops_at_the_units_maximum():
    """C_c(t) = min(C_c min(1, t / T_c), sum_i log K_i): with C_c = 5 over 1000 steps and two units of 3 and 2
    categories (cap log 6 = 1.7918) the ramp is 0.005 t until step 358.4, then log 6."""
    model = build(latent_dim=7, discrete=(3, 2), capacity_disc=5.0, capacity_disc_steps=1000)
    term = model.objective().terms["kl_disc"]
    cap = math.log(6)
    for step in (0, 100, 300, 358, 359, 500, 1000, 10**6, None):
        expected = cap if step is None else min(5.0 * min(1.0, step / 1000), cap)
        assert term.capacity_at(step) == pytest.approx(expected, abs=5.0 / 1000 / 2 + 1e-9), step
    assert build(discrete=(3,), capacity_disc=0.5).objective().terms["kl_disc"].capacity == 0.5  # under the cap


def test_without_capacities_both_kls_are_weighted_by_beta():
    model = build(capacity=0.0, capacity_disc=0.0, beta=3.0)
    x = torch.rand(4, 1, 8, 8)
    out = model(x)
    expected = out.terms["recon"].mean() + 3.0 * (out.terms["kl"].mean() + out.terms["kl_disc"].mean())
    assert torch.allclose(model.objective()(out, 0, Batch(x)).total, expected)


def test_embeddings_hold_one_hot_categories():
    model = build().eval()
    codes = model.embed(torch.rand(8, 1, 8, 8))
    assert codes.shape == (8, 5) and torch.equal(codes[:, 2:].sum(-1), torch.ones(8))
    assert model.sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 1, 8, 8)


@pytest.mark.parametrize("settings,fragment", [
    ({"discrete": (1,)}, "at least 2 categories"),
    ({"discrete": (4, 0)}, "at least 2 categories"),
    ({"temperature": 0.0}, "temperature=0.0"),
    ({"temperature": -1.0}, "temperature=-1.0"),
    ({"capacity": -1.0}, "capacity=-1.0 must be"),
    ({"capacity_disc": -2.0}, "capacity_disc=-2.0 must be"),
    ({"capacity_disc_steps": -3}, "capacity_disc_steps=-3 must be"),
    ({"gamma": -5.0}, "gamma=-5.0 must be"),
    ({"latent_dim": 3}, "latent_dim=3"),
])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        aekit.build_model("joint-vae", **{**SMALL, **settings})
    assert "\n" not in str(error.value)


def test_a_one_category_unit_stops_the_command_before_training(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "joint-vae", "--data", "xy-blocks", "--out", str(run), "discrete=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and err[-1].startswith("aekit: error:") and "at least 2 categories" in err[-1]
    assert not (run / "checkpoints").exists()


def test_trained_from_the_command_line_reloaded_and_scored(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "joint-vae", "--data", "xy-blocks", "--out", str(run), "--steps", "5", "--no-eval",
                     "latent_dim=7", "discrete=4", "hidden=16", "capacity_steps=4", "capacity_disc_steps=4"])
    assert code == 0, capsys.readouterr().err
    model = aekit.load(run)
    assert model.name == "joint-vae" and model.config.discrete == (4,)
    splits = load_data("xy-blocks", val_fraction=0.0, test_fraction=0.5)
    metrics = aekit.evaluate(model, splits, suites=("disentanglement",), batch_size=128)
    assert math.isfinite(metrics["test/mig"])
