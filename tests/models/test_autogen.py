"""AutoGen: the reconstruction term taken m times, m = 1 the VAE, bad m refused."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError

SETTINGS = {"data_shape": (1, 6, 6), "latent_dim": 3, "hidden": (16,)}


def fixed_output(model, seed=0):
    torch.manual_seed(seed)
    x, eps = torch.rand(4, 1, 6, 6), torch.randn(1, 4, 3)
    return model(x, eps=eps)


@pytest.mark.parametrize("m", [1.0, 2.0, 5.5])
def test_loss_is_m_times_recon_plus_kl(m):
    model = aekit.build_model("autogen", m=m, **SETTINGS)
    out = fixed_output(model)
    loss = model.objective()(out, step=0)
    torch.testing.assert_close(loss.total, m * out.terms["recon"].mean() + out.terms["kl"].mean())
    torch.testing.assert_close(loss.logs["elbo"], -(out.terms["recon"] + out.terms["kl"]).mean())


def test_m_equal_to_one_is_the_vae():
    vae = aekit.build_model("vae", **SETTINGS)
    autogen = aekit.build_model("autogen", m=1, **SETTINGS)
    autogen.load_state_dict(vae.state_dict())
    vae_loss = vae.objective()(fixed_output(vae), step=0)
    autogen_loss = autogen.objective()(fixed_output(autogen), step=0)
    torch.testing.assert_close(autogen_loss.total, vae_loss.total, rtol=0, atol=0)


@pytest.mark.parametrize("m", [0.5, 0.0, -1.0, math.nan, math.inf])
def test_bad_m_is_a_one_line_error(m):
    with pytest.raises(ConfigError, match="m=") as error:
        aekit.build_model("autogen", m=m, **SETTINGS)
    assert "\n" not in str(error.value)
