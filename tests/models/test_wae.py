"""WAE-MMD, WAE-GAN, InfoVAE, SWAE and LoRAE: their terms and weights, and the WAE-GAN discriminator's loss, which
reaches no encoder or decoder weight."""

import pytest
import torch

import aekit
from aekit.data.batch import Batch
from aekit.nn.divergences import KERNEL_SCALES, kernel_widths


def tiny(name, **kw):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), **kw)


def test_wae_gan_discriminator_loss_reaches_no_encoder_or_decoder_weight():
    model = tiny("wae-gan", disc_hidden=(8,), lambda_=2.0)
    x = Batch(torch.rand(6, 1, 8, 8))
    loss = model.objective()(model(x), step=0, batch=x)
    assert set(loss.losses) == {"model", "discriminator"}
    autoencoder = [p for name, p in model.named_parameters() if not name.startswith("discriminator.")]
    assert autoencoder and all(g is None for g in torch.autograd.grad(
        loss.losses["discriminator"], autoencoder, allow_unused=True, retain_graph=True))
    disc = list(model.discriminator.parameters())
    assert all(g is not None for g in torch.autograd.grad(loss.losses["discriminator"], disc, retain_graph=True))
    assert [p for _, p in model.parameter_groups()["discriminator"]] == disc  # on its own optimiser
    out = model(x)  # the encoder's side: lambda * -log D(z~) in the model's loss
    assert model.objective_terms()["adv"].weight.value == 2.0
    assert torch.allclose(model.objective()(out, 0, x).total, (out.terms["recon"] + 2.0 * out.terms["adv"]).mean())


def test_wae_mmd_weighs_the_imq_mmd_by_lambda():
    model = tiny("wae-mmd", lambda_=5.0)
    assert model.regulariser.kernel == "imq" and model.regulariser.widths == kernel_widths(KERNEL_SCALES, 3)
    out = model(torch.rand(6, 1, 8, 8))
    assert torch.equal(out.latent.z[0], out.latent.mean)  # a deterministic encoder
    loss = model.objective()(out, 0)
    assert torch.allclose(loss.total, out.terms["recon"].mean() + 5.0 * out.terms["mmd"])
    assert tiny("wae-mmd", terms={"mmd": 1.0}).objective_terms()["mmd"].weight.value == 1.0  # terms.mmd wins


def test_info_vae_weighs_the_kl_by_one_minus_alpha_and_the_mmd_by_alpha_plus_lambda_minus_one():
    model = tiny("info-vae", alpha=0.5, lambda_=3.0)
    terms = model.objective_terms()
    assert terms["kl"].weight.value == 0.5 and terms["mmd"].weight.value == 2.5 and terms["mmd"].batch
    assert model.regulariser.kernel == "rbf" and model.bottleneck.stochastic
    out = model(torch.rand(6, 1, 8, 8))
    loss = model.objective()(out, 0)
    expected = out.terms["recon"].mean() + 0.5 * out.terms["kl"].mean() + 2.5 * out.terms["mmd"]
    assert torch.allclose(loss.total, expected)
    assert float(loss.logs["elbo"]) == pytest.approx(-(out.terms["recon"] + out.terms["kl"]).mean().item())
    elbo = tiny("info-vae", alpha=0.0, lambda_=1.0).objective_terms()  # alpha = 0, lambda = 1: the ELBO
    assert elbo["kl"].weight.value == 1.0 and elbo["mmd"].weight.value == 0.0


def test_swae_weighs_the_sliced_wasserstein_distance_and_takes_any_prior_that_samples():
    model = tiny("swae", lambda_=3.0, projections=7)
    assert model.regulariser.projections == 7
    out = model(torch.rand(6, 1, 8, 8))
    assert out.terms["swd"].dim() == 0 and out.terms["swd"] > 0
    assert torch.allclose(model.objective()(out, 0).total, out.terms["recon"].mean() + 3.0 * out.terms["swd"])
    mixture = tiny("swae", prior="ex-post-gmm")  # a prior with a sampler is all the distance needs
    assert mixture(torch.rand(6, 1, 8, 8)).terms["swd"].dim() == 0


def test_lorae_weighs_the_nuclear_norm_by_lambda():
    model = tiny("lorae", lambda_=0.5)
    out = model(torch.rand(6, 1, 8, 8))
    assert torch.allclose(model.objective()(out, 0).total, out.terms["recon"].mean() + 0.5 * out.terms["nuclear"])
