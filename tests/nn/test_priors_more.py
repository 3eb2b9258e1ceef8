"""The learned priors (vamp, gaussian-mixture, maf): densities against closed forms and numerical integrals,
samples against their densities, the Monte Carlo KL against the true one, importance-sampled log p(x) with each,
the VampPrior's pseudo-inputs, and bad settings."""

import json
import math

import pytest
import torch

import aekit
from aekit import cli
from aekit.data.batch import Batch
from aekit.errors import ConfigError, DataError
from aekit.metrics import importance_sampled_log_likelihood
from aekit.nn.bottlenecks import DiagonalGaussian
from aekit.nn.maf import MAFPrior
from aekit.nn.priors import GaussianMixture, gaussian_kl
from aekit.parts import PartContext, init_from_data

CONTEXT = PartContext(data_shape=(1, 4, 4), feature_shape=(8,), latent_shape=(2,))


def tiny_vae(prior: str, latent_dim: int = 2, **options):
    torch.manual_seed(0)
    return aekit.build_model("vae", data_shape=(1, 4, 4), latent_dim=latent_dim, hidden=(8,), prior=prior,
                             options={"prior": options})


def mixture(components: int) -> GaussianMixture:
    torch.manual_seed(1)
    prior = GaussianMixture(CONTEXT, components=components)
    with torch.no_grad():
        prior.logvars.uniform_(-1.0, 0.5)
        prior.logits.normal_()
    return prior


def maf() -> MAFPrior:
    torch.manual_seed(2)
    return MAFPrior(CONTEXT, length=3, hidden=(16,))


def vamp():
    return tiny_vae("vamp", components=3).double().bottleneck.prior  # the prior keeps its model


PRIORS = {"gaussian-mixture": lambda: mixture(3), "maf": maf, "vamp": vamp}


def grid(half_width: float = 9.0, points: int = 361) -> tuple[torch.Tensor, float]:
    """A square grid ``[points^2, 2]`` over [-w, w]^2 and its cell's area."""
    t = torch.linspace(-half_width, half_width, points, dtype=torch.float64)
    z = torch.cartesian_prod(t, t)  # [points^2, 2]
    return z, (t[1] - t[0]).item() ** 2


@pytest.mark.parametrize("name", PRIORS)
def test_each_prior_integrates_to_one_and_its_samples_have_the_density_moments(name):
    prior = PRIORS[name]().double()
    z, area = grid()
    with torch.no_grad():
        density = prior.log_prob(z).exp() * area  # [N]
    assert density.sum().item() == pytest.approx(1.0, abs=2e-3)
    mean = density @ z  # E[z] by quadrature, [2]
    second = (z * density[:, None]).T @ z  # E[z z^T], [2, 2]
    draws = prior.sample(20_000, generator=torch.Generator().manual_seed(0)).double()  # [n, 2]
    assert draws.shape == (20_000, 2)
    spread = (second - mean.outer(mean)).diagonal().sqrt()
    assert torch.allclose(draws.mean(0), mean, atol=4 * spread.max().item() / math.sqrt(20_000) + 1e-3)
    assert torch.allclose(draws.T @ draws / len(draws), second, rtol=0.05, atol=0.05)


def test_a_mixture_of_one_component_is_a_gaussian_with_the_closed_form_kl():
    prior = mixture(1)
    mu, sigma = prior.means[0].detach(), torch.exp(0.5 * prior.logvars[0]).detach()
    z = torch.randn(4, 5, 2)
    by_hand = torch.distributions.Normal(mu, sigma).log_prob(z).sum(-1)
    assert torch.allclose(prior.log_prob(z), by_hand, atol=1e-5)
    mu_q, logvar_q = torch.randn(3, 2), torch.randn(3, 2)
    true_kl = torch.distributions.kl_divergence(torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q)),
                                                torch.distributions.Normal(mu, sigma))
    assert torch.allclose(prior.kl_from_gaussian(mu_q, logvar_q), true_kl, atol=1e-5)
    assert mixture(2).kl_from_gaussian(mu_q, logvar_q) is None  # no closed form: Monte Carlo


def test_the_monte_carlo_kl_to_a_mixture_matches_the_true_kl():
    """Two equal components make the mixture one Gaussian, whose KL from q is known; the bottleneck, finding no
    closed form, estimates it over its samples."""
    prior = GaussianMixture(CONTEXT, components=2)
    with torch.no_grad():
        prior.means.copy_(torch.tensor([[0.5, -1.0]]).expand(2, 2))
        prior.logvars.copy_(torch.tensor([[0.3, -0.4]]).expand(2, 2))
    bottleneck = DiagonalGaussian(CONTEXT, prior=prior)
    torch.manual_seed(0)
    out = bottleneck(torch.randn(3, 8), n_samples=40_000)
    assert "kl_per_dim" not in out.stats
    mu, logvar = out.params["mu"], out.params["logvar"]
    true_kl = gaussian_kl(mu, logvar, prior.means[0], prior.logvars[0]).sum(-1)  # [B]
    spread = (out.log_q - out.log_p).std(0) / math.sqrt(40_000)
    assert torch.all((out.terms["kl"] - true_kl).abs() < 4 * spread + 1e-4)


def test_the_vamp_prior_is_the_mean_of_the_pseudo_inputs_posteriors_by_hand():
    model = tiny_vae("vamp", latent_dim=3, components=4)
    prior = model.bottleneck.prior
    u = prior.pseudo_inputs()
    assert u.shape == (4, 1, 4, 4) and u.min() >= 0 and u.max() <= 1  # squashed into [0, 1]
    q = model.bottleneck.posterior(model.encoder(u))  # mu, logvar [K, D]
    z = torch.randn(2, 5, 3)
    by_hand = torch.stack([torch.distributions.Normal(q["mu"][k], torch.exp(0.5 * q["logvar"][k])).log_prob(z).sum(-1)
                           for k in range(4)]).logsumexp(0) - math.log(4)
    assert torch.allclose(prior.log_prob(z), by_hand, atol=1e-5)
    out = model(torch.rand(5, 1, 4, 4), n_samples=3)
    assert torch.allclose(out.terms["kl"], (out.latent.log_q - out.latent.log_p).mean(0))


def test_the_vamp_gradient_reaches_the_pseudo_inputs_and_the_encoder_sees_them():
    model = tiny_vae("vamp", components=3)
    prior = model.bottleneck.prior
    seen = []
    model.encoder.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach()))
    prior.log_prob(torch.randn(6, 2)).sum().backward()
    assert len(seen) == 1 and torch.equal(seen[0], prior.pseudo_inputs().detach())
    assert prior.pseudo_weights.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


def test_the_vamp_pseudo_inputs_start_from_the_data():
    model = tiny_vae("vamp", components=3, init="data")
    x = torch.rand(5, 1, 4, 4)
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 0.0, 1.0
    init_from_data(model, Batch(x))
    assert torch.equal(model.bottleneck.prior.pseudo_inputs().detach(), x[:3].clamp(0.01, 0.99))
    with pytest.raises(DataError, match="prior.init=data starts 3 pseudo-inputs .* holds 2"):
        init_from_data(model, Batch(x[:2]))
    with pytest.raises(DataError, match=r"prior.squash=true .* \[-1, "):
        init_from_data(model, Batch(x * 2 - 1))
    free = tiny_vae("vamp", components=3, init="data", squash=False)
    init_from_data(free, Batch(x * 2 - 1))
    assert torch.equal(free.bottleneck.prior.pseudo_inputs().detach(), (x * 2 - 1)[:3])
    before = tiny_vae("vamp", components=3).bottleneck.prior.pseudo_weights.detach().clone()
    random_start = tiny_vae("vamp", components=3)
    init_from_data(random_start, Batch(x))  # init=random: the data do not move it
    assert torch.equal(random_start.bottleneck.prior.pseudo_weights.detach(), before)


def test_the_maf_inverts_its_flow_and_its_log_determinant_is_the_jacobian_s():
    torch.manual_seed(3)
    prior = MAFPrior(PartContext(latent_shape=(3,)), length=2, hidden=(8, 8)).double()
    u = torch.randn(5, 3, dtype=torch.float64)
    z = prior.forward_flow(u)
    back, log_det = prior.inverse(z)
    assert torch.allclose(back, u, atol=1e-10)
    for row in range(5):
        jacobian = torch.autograd.functional.jacobian(lambda t: prior.inverse(t)[0], z[row])  # [3, 3]
        assert log_det[row].sum().item() == pytest.approx(torch.linalg.slogdet(jacobian)[1].item(), abs=1e-10)


@pytest.mark.parametrize("prior", ["standard-normal", "gaussian-mixture", "maf", "vamp"])
@pytest.mark.parametrize("bottleneck", ["gaussian", "flow"])
def test_importance_sampled_log_likelihood_runs_with_each_posterior_and_prior(prior, bottleneck):
    torch.manual_seed(0)
    build = dict(data_shape=(1, 4, 4), latent_dim=2, hidden=(8,), prior=prior, bottleneck=bottleneck,
                 options={"prior": {"components": 3}} if prior in ("vamp", "gaussian-mixture") else {})
    if prior == "vamp" and bottleneck == "flow":
        with pytest.raises(ConfigError, match="prior=vamp mixes the Gaussian posteriors .* bottleneck=gaussian"):
            aekit.build_model("vae", **build)
        return
    model = aekit.build_model("vae", **build).eval()
    x = torch.rand(4, 1, 4, 4)
    eps = torch.randn(6, 4, 2)
    nll = -importance_sampled_log_likelihood(model, x, n_samples=6, eps=eps)
    assert nll.shape == (4,) and torch.isfinite(nll).all()
    one = -importance_sampled_log_likelihood(model, x, n_samples=1, eps=eps[:1])
    z, log_q, log_p = model.bottleneck.importance_samples(model.encode(x).params, 1, eps[:1])
    log_px_z = -model.likelihood.nll(model.decode(z), x)
    assert torch.allclose(one, -(log_px_z + log_p - log_q)[0], atol=1e-5)  # log w with the prior's own density
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 4, 4)


@pytest.mark.parametrize("build,message", [
    (dict(prior="vamp", options={"prior": {"components": 0}}), "prior.components=0: the VampPrior needs at least"),
    (dict(prior="gaussian-mixture", options={"prior": {"components": 0}}), "prior.components=0: a mixture needs"),
    (dict(prior="maf", options={"prior": {"length": 0}}), "prior.length=0: a flow needs at least one step"),
    (dict(prior="vamp", options={"prior": {"init": "noise"}}), "prior.init='noise' is unknown"),
    (dict(prior="vamp", condition_dim=2), "prior=vamp encodes its pseudo-inputs without a condition"),
])
def test_bad_prior_settings_are_one_line_errors(build, message):
    with pytest.raises(ConfigError, match=message) as error:
        aekit.build_model("vae", data_shape=(1, 4, 4), latent_dim=2, hidden=(8,), **build)
    assert "\n" not in str(error.value)


def test_vamp_vae_from_the_command_line_loads_and_samples(tmp_path, capsys):
    run = tmp_path / "run"
    code = cli.main(["train", "vamp-vae", "--data", "digits", "--out", str(run), "--steps", "5", "latent_dim=3",
                     "hidden=16", "components=8", "prior.init=data", "nll_samples=4", "--no-eval", "--seed", "0"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((run / "model" / "config.json").read_text())["config"]["options"]["prior"]["components"] == 8
    model = aekit.load(run / "model")
    assert model.name == "vamp-vae" and model.bottleneck.prior.model() is model
    assert model.bottleneck.prior.pseudo_weights.shape == (8, 1, 8, 8)
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (4, 1, 8, 8) and torch.isfinite(samples).all()
    capsys.readouterr()
    code = cli.main(["train", "vamp-vae", "--data", "digits", "--out", str(tmp_path / "bad"), "components=0"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code != 0 and len(err) == 1 and "components=0" in err[0] and not (tmp_path / "bad").exists()
