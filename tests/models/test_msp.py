"""MSP as a model: its loss by hand from its terms, attributes read from labels or factors, edit() changing the
predicted attribute to the value asked and nothing else of the code, bad settings refused, a command-line run on
XY-blocks' factors."""

import pytest
import torch

import aekit
from aekit import cli
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError

SMALL = {"data_shape": (1, 8, 8), "latent_dim": 4, "hidden": (16,), "attributes": 3}


def build(**kw):
    torch.manual_seed(0)
    return aekit.build_model("msp", **{**SMALL, **kw})


def test_the_loss_is_recon_plus_alpha_and_beta_terms_by_hand():
    model = build(alpha=2.0, beta=0.5)
    b = Batch(torch.rand(5, 1, 8, 8), labels=torch.tensor([0, 1, 2, 1, 0]))
    out = model(b)
    z = out.latent.mean
    y = torch.nn.functional.one_hot(b.labels, 3).float()
    m = model.projection.M
    n = model.projection.complement()
    attr = ((z @ m.T - y) ** 2).sum(-1)
    null = ((z @ n.T) ** 2).sum(-1)
    assert torch.allclose(out.terms["msp_attr"], attr, atol=1e-5)
    assert torch.allclose(out.terms["msp_null"], null, atol=1e-5)
    expected = out.terms["recon"].mean() + 2.0 * attr.mean() + 0.5 * null.mean()
    assert torch.allclose(model.objective()(out, 0, b).total, expected, atol=1e-4)


def test_factors_are_scaled_by_their_levels():
    model = build(auxiliary="factors", factor_levels=(3, 5, 2))
    y = model.attributes_of(Batch(torch.rand(2, 1, 8, 8), factors=torch.tensor([[2, 4, 1], [0, 2, 0]])))
    assert torch.allclose(y, torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.5, 0.0]]))
    with pytest.raises(DataError, match="needs batches with factors"):
        model(Batch(torch.rand(2, 1, 8, 8)))


def test_edit_sets_the_predicted_attribute_and_keeps_the_rest_of_the_code():
    model = build().eval()
    x = torch.rand(3, 1, 8, 8)
    z = model.embed(x)
    y = model.predict_attributes(x)
    edited_images = model.edit(x, attribute=1, value=2.5)
    assert edited_images.shape == x.shape
    # the code the decoder received: z + M^+ (y' - M z)
    wanted = y.clone()
    wanted[:, 1] = 2.5
    z_new = model.projection.edit(z, wanted)
    with torch.no_grad():
        assert torch.allclose(model.projection.attributes(z_new), wanted, atol=1e-4)
        n = model.projection.complement()
        assert torch.allclose(z_new @ n.T, z @ n.T, atol=1e-4)
        assert torch.allclose(model.likelihood.mean(model.decode(z_new)), edited_images, atol=1e-5)
    with pytest.raises(ConfigError, match="attribute=3"):
        model.edit(x, attribute=3, value=1.0)


@pytest.mark.parametrize("settings,fragment", [({"attributes": 0}, "attributes >= 1"),
                                               ({"attributes": 5}, "attributes=5 do not fit"),
                                               ({"alpha": -1.0}, "alpha=-1.0 must be"),
                                               ({"beta": -1.0}, "beta=-1.0 must be"),
                                               ({"auxiliary": "colour"}, "auxiliary='colour'")])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        aekit.build_model("msp", **{**SMALL, **settings})
    assert "\n" not in str(error.value)


def test_labels_missing_from_factor_data_is_a_one_line_error_before_training(tmp_path, capsys):
    code = cli.main(["train", "msp", "--data", "xy-blocks", "--out", str(tmp_path / "run"), "--steps", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and "auxiliary=factors" in err[-1]


def test_trained_from_the_command_line_on_factors_and_reloaded(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "msp", "--data", "xy-blocks", "--out", str(run), "--steps", "5", "--no-eval",
                     "latent_dim=5", "hidden=16", "auxiliary=factors"])
    assert code == 0, capsys.readouterr().err
    model = aekit.load(run)
    assert model.config.attributes == 3 and tuple(model.config.factor_levels) == (8, 8, 4)
    x = torch.rand(2, 1, 16, 16)
    assert model.edit(x, attribute=0, value=0.5).shape == x.shape


def test_the_sample_command_edits_test_examples(tmp_path, capsys):
    import numpy as np

    run = tmp_path / "run"
    assert cli.main(["train", "msp", "--data", "xy-blocks", "--out", str(run), "--steps", "3", "--no-eval",
                     "latent_dim=5", "hidden=16", "auxiliary=factors"]) == 0
    capsys.readouterr()
    assert cli.main(["sample", str(run), "-n", "4", "--edit", "2=0.75", "--out", str(tmp_path / "e")]) == 0
    saved = np.load(tmp_path / "e" / "edit-n4-attribute2-value0.75.npy")
    model = aekit.load(run)
    assert saved.shape == (2, 4, 1, 16, 16)
    assert np.allclose(saved[1], model.edit(saved[0], attribute=2, value=0.75), atol=1e-5)
    assert cli.main(["sample", str(run), "--edit", "two=1"]) != 0
    assert "--edit 'two=1'" in capsys.readouterr().err


def test_a_variational_msp_adds_the_kl_and_projects_the_posterior_mean():
    model = build(bottleneck="gaussian")
    b = Batch(torch.rand(4, 1, 8, 8), labels=torch.tensor([0, 1, 2, 0]))
    out = model(b)
    z = out.latent.params["mu"]
    y = torch.nn.functional.one_hot(b.labels, 3).float()
    assert torch.allclose(out.terms["msp_attr"], ((z @ model.projection.M.T - y) ** 2).sum(-1), atol=1e-5)
    expected = sum(out.terms[k].mean() for k in ("recon", "kl", "msp_attr", "msp_null"))
    assert torch.allclose(model.objective()(out, 0, b).total, expected, atol=1e-4)
