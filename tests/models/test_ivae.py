"""iVAE as a model: the KL term is the closed form against p(z|u), the posterior and the prior see u while the
decoder does not, samples given u, u read from labels or factors, bad settings refused, command-line runs."""

import pytest
import torch

import aekit
from aekit import cli
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError
from aekit.nn.priors import gaussian_kl

SMALL = {"data_shape": (1, 8, 8), "latent_dim": 3, "hidden": (16,), "condition_dim": 4}


def build(**kw):
    torch.manual_seed(0)
    return aekit.build_model("ivae", **{**SMALL, **kw})


def test_the_kl_term_is_the_closed_form_against_the_conditional_prior():
    model = build()
    b = Batch(torch.rand(5, 1, 8, 8), labels=torch.tensor([0, 1, 2, 3, 1]))
    out = model(b)
    u = torch.nn.functional.one_hot(b.labels, 4).float()
    mu_p, logvar_p = model.bottleneck.prior.params(u)
    expected = gaussian_kl(out.latent.params["mu"], out.latent.params["logvar"], mu_p, logvar_p).sum(-1)
    assert torch.allclose(out.terms["kl"], expected, atol=1e-6)
    total = model.objective()(out, 0, b).total
    assert torch.allclose(total, out.terms["recon"].mean() + expected.mean(), atol=1e-5)


def test_u_reaches_the_posterior_and_the_prior_but_not_the_decoder():
    model = build().eval()
    x = torch.rand(2, 1, 8, 8)
    u0, u1 = torch.eye(4)[[0, 0]], torch.eye(4)[[3, 3]]
    assert not torch.allclose(model.encode(x, condition=u0).mean, model.encode(x, condition=u1).mean)
    z = torch.randn(2, 3)
    assert torch.equal(model.decode(z, u0), model.decode(z, u1)) and torch.equal(model.decode(z, u0), model.decode(z))
    mu0, logvar0 = model.bottleneck.prior.params(u0)
    mu1, logvar1 = model.bottleneck.prior.params(u1)
    assert not torch.allclose(mu0, mu1) and not torch.allclose(logvar0, logvar1)


def test_samples_given_u():
    model = build().eval()
    first = model.sample(6, generator=torch.Generator().manual_seed(0), condition=2)
    again = model.sample(6, generator=torch.Generator().manual_seed(0), condition=2)
    other = model.sample(6, generator=torch.Generator().manual_seed(0), condition=0)
    assert first.shape == (6, 1, 8, 8) and torch.equal(first, again) and not torch.allclose(first, other)
    with pytest.raises(DataError, match=r"needs a condition of shape \(6, 4\)"):
        model.sample(6)


def test_u_from_factors_scaled_by_their_levels():
    model = build(auxiliary="factors", condition_dim=2, factor_levels=(5, 3))
    u = model.condition_of(Batch(torch.rand(2, 1, 8, 8), factors=torch.tensor([[4, 0], [2, 1]])))
    assert torch.allclose(u, torch.tensor([[1.0, 0.0], [0.5, 0.5]]))
    with pytest.raises(DataError, match="needs a batch with labels"):
        build().condition_of(Batch(torch.rand(2, 1, 8, 8)))


@pytest.mark.parametrize("settings,fragment", [({"condition_dim": 0}, "condition_dim >= 1"),
                                               ({"prior": "standard-normal"}, "use prior=conditional-gaussian"),
                                               ({"auxiliary": "segments"}, "auxiliary='segments'")])
def test_bad_settings_are_one_line_errors(settings, fragment):
    with pytest.raises(ConfigError, match=fragment) as error:
        aekit.build_model("ivae", **{**SMALL, **settings})
    assert "\n" not in str(error.value)


def test_trained_from_the_command_line_on_factors_and_reloaded(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "ivae", "--data", "xy-blocks", "--out", str(run), "--steps", "5", "--no-eval",
                     "latent_dim=3", "hidden=16", "auxiliary=factors"])
    assert code == 0, capsys.readouterr().err
    model = aekit.load(run)
    assert model.config.condition_dim == 3 and tuple(model.config.factor_levels) == (8, 8, 4)
    assert model.sample(2, condition=[0.5, 0.5, 1.0]).shape == (2, 1, 16, 16)


def test_the_double_vae_adds_the_second_vae_terms_to_the_loss():
    model = build(auxiliary_encoder=True)
    b = Batch(torch.rand(4, 1, 8, 8), labels=torch.tensor([0, 1, 2, 3]))
    out = model(b)
    assert set(out.terms) == {"recon", "kl", "u_recon", "u_kl"}
    u = torch.eye(4)
    mu, logvar = model.bottleneck.prior.params(u)
    assert torch.allclose(out.terms["u_kl"], 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1), atol=1e-6)
    total = model.objective()(out, 0, b).total
    assert torch.allclose(total, sum(out.terms[k].mean() for k in out.terms), atol=1e-5)
    total.backward()
    assert model.bottleneck.prior.u_decoder[0].weight.grad.abs().sum() > 0
    assert set(build().objective().terms) == {"recon", "kl"}
