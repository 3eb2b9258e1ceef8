"""MIWAE (Rainforth et al. 2018): the mean of M IWAE bounds of K samples, against hand computations."""

import math

import pytest
import torch

import aekit
from aekit.models.iwae import iwae_bound
from aekit.objectives import importance_weights


def tiny(name="miwae", **settings):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), **settings)


def hand_log_weights(model, x, eps):
    """log w = log p(x|z) + log N(z; 0, I) - log N(z; mu, sigma^2) ``[S, B]``, written out."""
    params = model.encode(x).params
    mu, logvar = params["mu"], params["logvar"]
    z = mu + torch.exp(0.5 * logvar) * eps  # [S, B, D]
    log_pz = (-0.5 * (z**2 + math.log(2 * math.pi))).sum(-1)
    log_qz = (-0.5 * ((z - mu) ** 2 / logvar.exp() + logvar + math.log(2 * math.pi))).sum(-1)
    return -model.likelihood.nll(model.decode(z), x) + log_pz - log_qz


def test_the_bound_is_the_mean_of_m_iwae_bounds_of_k_samples():
    model = tiny(n_bounds=3, n_samples=4)
    x, eps = torch.rand(2, 1, 8, 8), torch.randn(12, 2, 3)
    out = model(x, eps=eps)
    w = hand_log_weights(model, x, eps).exp().view(3, 4, 2)  # [M, K, B]: small enough not to overflow here
    by_hand = torch.log(w.mean(1)).mean(0)  # [B]
    loss = model.objective()(out, step=0)
    assert torch.allclose(loss.logs["miwae_bound"], by_hand.mean(), atol=1e-4)
    assert torch.allclose(loss.total, -by_hand.mean(), atol=1e-4)
    assert model(x).latent.z.shape == (12, 2, 3)  # M K samples drawn per input


def test_one_bound_is_iwae_and_bounds_of_one_sample_are_the_elbo():
    x = torch.rand(3, 1, 8, 8)
    iwae_model, one_bound = tiny("iwae", n_samples=5), tiny(n_bounds=1, n_samples=5)
    eps = torch.randn(5, 3, 3)
    iwae_out = iwae_model(x, eps=eps)
    loss = one_bound.objective()(one_bound(x, eps=eps), step=0)
    assert torch.allclose(loss.logs["miwae_bound"], iwae_bound(iwae_out).mean(), atol=1e-6)
    one_sample_each = tiny(n_bounds=5, n_samples=1)
    out = one_sample_each(x, eps=eps)
    elbo = importance_weights(out).mean(0)  # (1/M) sum_m log w_m: the M-sample ELBO
    assert torch.allclose(one_sample_each.objective()(out, step=0).logs["miwae_bound"], elbo.mean(), atol=1e-6)


def test_samples_that_do_not_split_into_the_bounds_are_an_error():
    model = tiny(n_bounds=3, n_samples=2)
    out = model(torch.rand(2, 1, 8, 8), n_samples=4)
    with pytest.raises(aekit.AekitError, match="4 samples per input do not split into n_bounds=3 bounds"):
        model.objective()(out, step=0)


@pytest.mark.parametrize("settings,message", [
    ({"n_bounds": 0}, "n_bounds=0: M, the number of bounds, must be >= 1"),
    ({"n_samples": 0}, "n_samples=0: K, each bound's samples, must be >= 1"),
    ({"gradient_estimator": "vimco"}, "gradient_estimator='vimco' is unknown; choose one of reparam, stl, dreg"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    for name in ("miwae", "piwae"):
        with pytest.raises(aekit.AekitError) as caught:
            aekit.build_model(name, data_shape=(4,), **settings)
        assert str(caught.value) == message


def test_the_command_line_trains_it_with_its_settings(tmp_path, capsys):
    from aekit import cli

    code = cli.main(["train", "miwae", "--data", "digits", "--out", str(tmp_path / "run"), "--steps", "5",
                     "n_bounds=2", "n_samples=3", "gradient_estimator=dreg", "hidden=16", "latent_dim=2",
                     "figures=false", "nll_samples=5"])
    assert code == 0
    header = (tmp_path / "run" / "log.csv").read_text().splitlines()[0].split(",")
    assert "miwae_bound" in header
    loaded = aekit.load(tmp_path / "run")
    assert (loaded.config.n_bounds, loaded.config.n_samples, loaded.config.gradient_estimator) == (2, 3, "dreg")
    capsys.readouterr()
    assert cli.main(["models"]) == 0
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert {"miwae", "piwae", "ciwae"} <= listed
