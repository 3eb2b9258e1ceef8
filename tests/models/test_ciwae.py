"""CIWAE (Rainforth et al. 2018): beta ELBO + (1 - beta) IWAE over the same K samples."""

import math

import pytest
import torch

import aekit
from aekit.models.iwae import iwae_bound
from aekit.objectives import importance_weights


def tiny(beta, **settings):
    torch.manual_seed(0)
    return aekit.build_model("ciwae", data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), n_samples=4, beta=beta,
                             **settings)


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_the_bound_mixes_the_elbo_and_the_iwae_bound(beta):
    """beta = 1: the K-sample ELBO, (1/K) sum_k log w_k; beta = 0: the IWAE bound; between, the mix."""
    model = tiny(beta)
    out = model(torch.rand(3, 1, 8, 8), eps=torch.randn(4, 3, 3))
    elbo, iwae = importance_weights(out).mean(0).mean(), iwae_bound(out).mean()
    loss = model.objective()(out, step=0)
    expected = beta * elbo + (1 - beta) * iwae
    assert torch.allclose(loss.logs["ciwae_bound"], expected, atol=1e-5)
    assert torch.allclose(loss.total, -expected, atol=1e-5)
    assert torch.allclose(loss.logs["vae_bound"], elbo) and torch.allclose(loss.logs["iwae_bound"], iwae)
    assert elbo <= iwae  # Jensen, for any samples


def test_beta_is_a_shorthand_for_the_two_weights():
    terms = tiny(0.25).objective_terms()
    assert (terms["vae"].weight.value, terms["iwae"].weight.value) == (0.25, 0.75)


@pytest.mark.parametrize("beta", [-0.1, 1.5, math.nan, math.inf])
def test_a_beta_outside_zero_one_is_a_one_line_error(beta):
    with pytest.raises(aekit.AekitError) as caught:
        aekit.build_model("ciwae", data_shape=(4,), beta=beta)
    assert str(caught.value) == (f"beta={beta}: CIWAE's beta mixes the ELBO and the IWAE bound; give a number in "
                                 "[0, 1]")


def test_other_bad_settings_are_one_line_errors():
    with pytest.raises(aekit.AekitError, match=r"^n_samples=0: K, the samples both bounds share, must be >= 1$"):
        aekit.build_model("ciwae", data_shape=(4,), n_samples=0)
    with pytest.raises(aekit.AekitError, match=r"^beta_schedule='linear': CIWAE's beta is a constant mix"):
        aekit.build_model("ciwae", data_shape=(4,), beta_schedule="linear")
