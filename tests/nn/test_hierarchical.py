"""Hierarchical bottlenecks: the joint densities by hand, the per-layer KL estimates against Monte Carlo, the ladder's
merge, log p(x) through every layer against a linear-Gaussian chain's closed form, sampling down the chain, the
path derivative, and bad settings."""

import math

import pytest
import torch

import aekit
from aekit.errors import ConfigError, DataError
from aekit.metrics import importance_sampled_log_likelihood
from aekit.nn.hierarchical import LOGVAR_BOUND, bounded, gaussian_kl, precision_weighted

LADDER_AND_BOTTOM_UP = ("hierarchical-vae", "ladder-vae")


def normal(z, mu, logvar):
    return torch.distributions.Normal(mu, torch.exp(0.5 * logvar)).log_prob(z)


def tiny(name="hierarchical-vae", **kw):
    torch.manual_seed(0)
    settings = dict(data_shape=(6,), likelihood="gaussian", latent_dim=2, upper_latents=(3,), hidden=(8,),
                    transition_hidden=(5,))
    return aekit.build_model(name, **{**settings, **kw})


def test_gaussian_kl_and_the_ladder_merge_by_hand():
    q = (torch.tensor([0.3, -1.0]), torch.tensor([0.2, -0.5]))
    p = (torch.tensor([1.0, 0.5]), torch.tensor([-0.3, 0.7]))
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(q[0], torch.exp(0.5 * q[1])),
                                                  torch.distributions.Normal(p[0], torch.exp(0.5 * p[1])))
    assert torch.allclose(gaussian_kl(q, p), reference, atol=1e-6)
    # N(1, 1) and N(3, 3) merged by precision: variance 1 / (1 + 1/3) = 0.75, mean (1 * 1 + 3 / 3) * 0.75 = 1.5
    three = torch.tensor(3.0)
    mu, logvar = precision_weighted((torch.tensor(1.0), torch.tensor(0.0)), (three, three.log()))
    assert mu.item() == pytest.approx(1.5) and logvar.exp().item() == pytest.approx(0.75)
    assert bounded(torch.tensor(0.0)).item() == 0.0 and bounded(torch.tensor(1e6)).item() == pytest.approx(LOGVAR_BOUND)


def test_bottom_up_joint_densities_by_hand():
    model = tiny()
    bn = model.bottleneck
    x = torch.randn(4, 6)
    eps = torch.randn(3, 4, 5)  # 3 samples, 4 inputs, 2 + 3 noise values (z_1's first)
    out = model.encode(x, n_samples=3, eps=eps)
    h = model.encoder(x)
    mu1, logvar1 = bn.proj(h).chunk(2, -1)
    logvar1 = bounded(logvar1)
    z1 = mu1 + torch.exp(0.5 * logvar1) * eps[..., :2]
    mu2, logvar2 = bn.upward[0](z1)  # q(z_2 | z_1)
    z2 = mu2 + torch.exp(0.5 * logvar2) * eps[..., 2:]
    mu_p, logvar_p = bn.prior.conditionals[0](z2)  # p(z_1 | z_2)
    log_q = normal(z1, mu1, logvar1).sum(-1) + normal(z2, mu2, logvar2).sum(-1)
    log_p = normal(z2, torch.zeros(()), torch.zeros(())).sum(-1) + normal(z1, mu_p, logvar_p).sum(-1)
    assert torch.equal(out.z, z1) and torch.equal(out.mean, mu1)
    assert torch.allclose(out.log_q, log_q, atol=1e-5) and torch.allclose(out.log_p, log_p, atol=1e-5)
    assert out.stats["kl_per_dim"].shape == (4, 5)  # both layers' units, bottom first
    assert torch.allclose(out.terms["kl"], out.stats["kl_per_dim"].sum(-1))


@pytest.mark.parametrize("name", LADDER_AND_BOTTOM_UP)
def test_kl_estimate_agrees_with_the_monte_carlo_joint_kl(name):
    """The KL term (closed forms where they apply) and log q - log p of the same draws estimate the same KL of the
    whole chain; with 20,000 draws they agree within four standard errors of the latter. The layers are coupled
    strongly (weights x 1.5, a broad q(z_1 | x)), so that the closed form below the top of bottom-up inference, whose
    prior depends on a layer drawn after it, would be 7 to 27 standard errors off."""
    model = tiny(name)
    bn = model.bottleneck
    x = torch.randn(3, 6)
    with torch.no_grad():
        for part in (bn.prior.conditionals, getattr(bn, "upward", torch.nn.ModuleList())):
            for weight_name, weight in part.named_parameters():
                weight.mul_(1.5 if "weight" in weight_name else 1.0)
        (bn.estimates[0] if name == "ladder-vae" else bn.proj).bias[2:] = 1.0
        out = model.encode(x, n_samples=20_000)
        joint = out.log_q - out.log_p  # [S, B]
        stderr = joint.std(0) / math.sqrt(joint.shape[0])
        assert ((out.terms["kl"] - joint.mean(0)).abs() < 4 * stderr + 1e-3).all()
        layers = sum(out.stats[f"kl_layer{i}"] for i in (1, 2))
        assert layers.item() == pytest.approx(out.terms["kl"].mean().item(), rel=1e-5)


def test_ladder_merges_each_estimate_with_the_prior_above():
    model = tiny("ladder-vae")
    bn = model.bottleneck
    x = torch.randn(2, 6)
    eps = torch.randn(1, 2, 5)
    out = model.encode(x, eps=eps)
    params = bn.posterior(model.encoder(x))
    z2 = params["mu2"] + torch.exp(0.5 * params["logvar2"]) * eps[..., 2:]  # the top: its estimate alone
    mu1, logvar1 = precision_weighted((params["mu1"], params["logvar1"]), bn.prior.conditionals[0](z2))
    assert torch.allclose(out.z, mu1 + torch.exp(0.5 * logvar1) * eps[..., :2], atol=1e-6)
    mean_path = precision_weighted((params["mu1"], params["logvar1"]), bn.prior.conditionals[0](params["mu2"]))[0]
    assert torch.allclose(out.mean, mean_path, atol=1e-6)
    assert "logvar" not in out.params  # q(z_1 | x) is not Gaussian: no single-layer collapse diagnostics


def linear_gaussian_chain(name, a=0.8, b=0.3, sigma=0.5):
    """z_2 ~ N(0, 1), z_1 | z_2 ~ N(a z_2 + b, 1), x | z_1 ~ N(c z_1 + d, sigma^2 I): linear maps everywhere (no
    hidden layers) and the variances fixed, so x ~ N(c b + d, (a^2 + 1) c c^T + sigma^2 I)."""
    model = aekit.build_model(name, data_shape=(2,), likelihood="gaussian", sigma=sigma, latent_dim=1,
                              upper_latents=(1,), hidden=(), transition_hidden=())
    c, d = torch.tensor([[1.5], [-0.7]]), torch.tensor([0.2, 0.1])
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        (prior,) = model.bottleneck.prior.conditionals[0].net
        prior.weight[0, 0], prior.bias[0] = a, b  # mu_p = a z_2 + b, log sigma_p^2 = 0
        (decoder,) = model.decoder.net
        decoder.weight.copy_(c)
        decoder.bias.copy_(d)
        for module in model.bottleneck.modules():  # a broad proposal: every q a N(0, e^0.5), whatever the input
            if isinstance(module, torch.nn.Linear) and module is not prior:
                module.bias[1::2] = LOGVAR_BOUND * math.atanh(0.5 / LOGVAR_BOUND)
    cov = (a ** 2 + 1) * c @ c.T + sigma ** 2 * torch.eye(2)
    return model, torch.distributions.MultivariateNormal((c * b).squeeze(1) + d, cov)


@pytest.mark.parametrize("name", LADDER_AND_BOTTOM_UP)
def test_log_likelihood_through_every_layer_matches_the_closed_form(name):
    model, marginal = linear_gaussian_chain(name)
    x = torch.tensor([[0.5, 0.0], [2.0, -1.0], [-1.0, 0.8]])
    torch.manual_seed(1)
    estimate = importance_sampled_log_likelihood(model, x, n_samples=20_000)
    assert torch.allclose(estimate, marginal.log_prob(x), atol=0.02)


def test_sampling_goes_down_the_chain():
    model, marginal = linear_gaussian_chain("hierarchical-vae")
    z1 = model.bottleneck.prior.sample(40_000, generator=torch.Generator().manual_seed(0))  # N(b, a^2 + 1)
    assert z1.shape == (40_000, 1)
    assert z1.mean().item() == pytest.approx(0.3, abs=0.03) and z1.var().item() == pytest.approx(1.64, abs=0.05)
    x = model.sample(3, generator=torch.Generator().manual_seed(0))
    again = model.sample(3, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2) and torch.equal(x, again)
    with pytest.raises(DataError, match="no closed form"):
        model.bottleneck.prior.log_prob(z1)


@pytest.mark.parametrize("name", LADDER_AND_BOTTOM_UP)
def test_path_log_q_keeps_the_value_and_drops_the_score(name):
    """log q with the parameters held fixed: the same value, and its gradient is the total derivative minus the
    score (the derivative through q's parameters at fixed samples)."""
    model = tiny(name)
    x, eps = torch.randn(2, 6), torch.randn(2, 2, 5)
    weights = [p for n, p in model.named_parameters() if n.startswith(("encoder.", "bottleneck."))]

    def grads(value):
        return torch.autograd.grad(value.sum(), weights, allow_unused=True, retain_graph=True)

    out = model.encode(x, n_samples=2, eps=eps)
    path = out.log_q_path
    assert torch.allclose(path, out.log_q, atol=1e-6)
    bn = model.bottleneck
    params = bn.posterior(model.encoder(x))
    zs, _ = bn.draw_layers(params, 2, eps)
    fixed = [z.detach() for z in zs]
    score = sum(normal(z, *q).sum(-1) for z, q in zip(fixed, bn.q_params(fixed, params), strict=True))
    for g_path, g_total, g_score in zip(grads(path), grads(out.log_q), grads(score), strict=True):
        if g_path is None:
            continue
        expected = g_total - (g_score if g_score is not None else 0)
        assert torch.allclose(g_path, expected, atol=1e-4)


def test_two_layer_iwae_trains_with_dreg_and_reports_layers(tmp_path):
    run = aekit.train("hierarchical-iwae", "digits", tmp_path / "run", steps=30, latent_dim=4, upper_latents=(2,),
                      hidden=(32,), n_samples=3, gradient_estimator="dreg", nll_samples=20, progress=False,
                      figures=False)
    metrics = run.metrics
    assert math.isfinite(metrics["test/nll"]) and len(metrics["test/kl_per_dim"]) == 6
    assert "test/mutual_information" in metrics  # q(z_1 | x) is Gaussian in bottom-up inference
    loaded = aekit.load(tmp_path / "run")
    assert type(loaded.bottleneck).__name__ == "BottomUpGaussian"


@pytest.mark.parametrize("settings, message", [
    ({"upper_latents": ()}, "at least 2 stochastic layers"),
    ({"upper_latents": (0,)}, r"upper_latents=\[0\] must hold positive sizes"),
    ({"transition_hidden": (0,)}, "positive widths"),
    ({"prior": "ex-post-gmm"}, "the top layer of a hierarchical bottleneck is N"),
    ({"options": {"bottleneck": {"activation": "swish"}}}, "bottleneck.activation='swish' is unknown"),
])
def test_bad_settings_are_one_line_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**settings)


def test_ladder_with_one_layer_is_refused_and_noise_of_the_wrong_size_is_named():
    with pytest.raises(ConfigError, match="a ladder needs at least 2 stochastic layers"):
        aekit.build_model("vae", data_shape=(6,), bottleneck="ladder", options={"bottleneck": {"layers": []}})
    model = tiny("ladder-vae")
    with pytest.raises(DataError, match="eps has 2 values per position; a ladder of layers \\[2, 3\\] draws 5"):
        model.encode(torch.randn(2, 6), eps=torch.randn(1, 2, 2))


def test_the_report_explains_each_layers_kl():
    from aekit.report import explain_metric

    assert explain_metric("test/kl_layer2").startswith("KL of stochastic layer 2 (1: next to the data)")
    assert explain_metric("kl_layer1").startswith("KL of stochastic layer 1") and explain_metric("test/kl_layerx") == ""
