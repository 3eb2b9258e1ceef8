"""The unscented autoencoder: its sigma points and weights, the moment regulariser, the objective, bad settings."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError
from aekit.models.unscented_ae import frobenius_regulariser
from aekit.nn.bottlenecks import unscented_sigma_points


def test_sigma_points_and_weights_by_hand():
    mu, std = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, 2.0]])
    points, weights = unscented_sigma_points(mu, std, kappa=1.0)  # d + kappa = 3
    r3 = math.sqrt(3.0)
    expected = torch.tensor([[1.0, -2.0], [1 + 0.5 * r3, -2.0], [1.0, -2 + 2 * r3], [1 - 0.5 * r3, -2.0],
                             [1.0, -2 - 2 * r3]]).unsqueeze(1)  # [5, 1, 2]
    torch.testing.assert_close(points, expected)
    torch.testing.assert_close(weights, torch.tensor([1 / 3, 1 / 6, 1 / 6, 1 / 6, 1 / 6]))


@pytest.mark.parametrize("kappa", [1e-3, 0.0, 2.0, -2.5])
def test_weighted_sigma_points_reproduce_mean_and_covariance(kappa):
    torch.manual_seed(0)
    mu, std = torch.randn(3, 4, dtype=torch.float64), torch.rand(3, 4, dtype=torch.float64) + 0.1
    points, weights = unscented_sigma_points(mu, std, kappa)  # [9, 3, 4], [9]
    assert points.shape == (9, 3, 4) and math.isclose(float(weights.sum()), 1.0)
    mean = torch.einsum("s,sbd->bd", weights, points)
    centred = points - mean
    covariance = torch.einsum("s,sbd,sbe->bde", weights, centred, centred)  # [B, d, d]
    torch.testing.assert_close(mean, mu, rtol=0, atol=1e-12)
    torch.testing.assert_close(covariance, torch.diag_embed(std.pow(2)), rtol=0, atol=1e-12)


def test_frobenius_regulariser_by_hand():
    mu = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    sigma = torch.tensor([[2.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    value = frobenius_regulariser(mu, sigma.pow(2).log())
    torch.testing.assert_close(value, torch.tensor([1.0 + 5.0, 0.0, math.sqrt(8.0) + 1.0]))


def tiny(**kw):
    return aekit.build_model("unscented-ae", data_shape=(1, 6, 6), latent_dim=3, hidden=(16,), **kw)


def test_forward_decodes_the_sigma_points_and_weighs_the_reconstruction():
    torch.manual_seed(0)
    model = tiny(kappa=0.5)
    out = model(torch.rand(4, 1, 6, 6))
    params = out.latent.params
    points, weights = unscented_sigma_points(params["mu"], torch.exp(0.5 * params["logvar"]), 0.5)
    torch.testing.assert_close(out.latent.z, points)  # [7, 4, 3]
    torch.testing.assert_close(out.latent.sample_weights, weights)
    torch.testing.assert_close(out.terms["recon"], -(weights[:, None] * out.log_px_z).sum(0))


def test_loss_is_reconstruction_plus_beta_times_the_regulariser_and_the_kl_is_logged_only():
    torch.manual_seed(0)
    model = tiny(beta=0.3)
    x = torch.rand(4, 1, 6, 6)
    out = model(x)
    loss = model.objective()(out, step=0)
    params = out.latent.params
    frobenius = frobenius_regulariser(params["mu"], params["logvar"])
    torch.testing.assert_close(loss.total, out.terms["recon"].mean() + 0.3 * frobenius.mean())
    torch.testing.assert_close(loss.logs["kl"], out.terms["kl"].mean())
    torch.testing.assert_close(loss.logs["elbo"], -(out.terms["recon"] + out.terms["kl"]).mean())


@pytest.mark.parametrize("kw", [{"kappa": -3.0}, {"kappa": -5.0}, {"kappa": math.nan}, {"free_bits": 0.1}])
def test_bad_settings_are_one_line_errors(kw):
    with pytest.raises(ConfigError) as error:
        tiny(**kw)
    assert "\n" not in str(error.value)


def test_a_grid_counts_every_coordinate_and_refuses_a_kappa_below_minus_d():
    with pytest.raises(ConfigError, match="d = 12 latent coordinates"):  # a 2x2 grid of 3 latents
        aekit.build_model("unscented-ae", data_shape=(1, 8, 8), backbone="conv-grid", latent_dim=3,
                          channels=(4, 8), options={"bottleneck": {"kappa": -12.0}})


def test_an_importance_weighted_bound_refuses_sigma_points():
    model = aekit.build_model("vae", data_shape=(1, 6, 6), latent_dim=3, hidden=(16,), objective="iwae",
                              options={"bottleneck": {"sampling": "sigma_points"}})
    with pytest.raises(ConfigError, match="sampling=random"):
        model.objective()(model(torch.rand(2, 1, 6, 6)), step=0)


def test_an_unknown_sampling_is_a_one_line_error():
    with pytest.raises(ConfigError, match="random, sigma_points"):
        aekit.build_model("vae", data_shape=(1, 6, 6), latent_dim=3, options={"bottleneck": {"sampling": "grid"}})
