"""The 8-bit likelihoods (PixelCNN++'s logistic mixture, the 256-way categorical) against hand computations, brute
force over the 256 levels, Monte Carlo and ``F.cross_entropy``; bits per dimension; bad data and settings."""

import math

import pytest
import torch
import torch.nn.functional as F

import aekit
from aekit.data.base import Dataset
from aekit.errors import ConfigError, DataError
from aekit.evaluation import evaluate
from aekit.nn.likelihoods import Categorical, DiscretizedLogistic, LogisticMixture, make_likelihood

LEVELS = torch.arange(256, dtype=torch.float64) / 255  # [256]: every 8-bit value in [0, 1]


def mixture_params(logits, mu, log_s, coeff=None) -> torch.Tensor:
    """One pixel's parameters ``[K, C]`` each in the layout of :class:`LogisticMixture`: ``[m C, 1, 1]``."""
    kinds = [logits, mu, log_s] + ([] if coeff is None else [coeff])
    return torch.stack(kinds).to(torch.float64).flatten().view(-1, 1, 1)  # [kinds, K, C] -> [kinds K C, 1, 1]


def sigmoid(t: float) -> float:
    return 1 / (1 + math.exp(-t))


def test_components_below_one_and_unknown_names_are_config_errors():
    with pytest.raises(ConfigError, match=r"likelihood.components=0 must be a whole number >= 1"):
        make_likelihood("logistic-mixture", (3, 4, 4), components=0)
    with pytest.raises(ConfigError, match="likelihood.components"):
        aekit.build_model("vae", data_shape=(3, 8, 8), likelihood="logistic-mixture",
                          options={"likelihood": {"components": -2}})


def test_decoder_outputs_follow_the_parameter_count():
    assert make_likelihood("categorical", (3, 8, 8)).param_multiplier == 256
    assert make_likelihood("logistic-mixture", (3, 8, 8)).param_multiplier == 40  # logit, mu, log s, coeff x 10
    assert make_likelihood("logistic-mixture", (1, 8, 8), components=5).param_multiplier == 15  # no coefficients
    model = aekit.build_model("vae", data_shape=(3, 8, 8), backbone="conv", channels=(8, 16), latent_dim=2,
                              likelihood="logistic-mixture", options={"likelihood": {"components": 2}})
    assert model.decode(torch.zeros(5, 2)).shape == (5, 3 * 8, 8, 8)


@pytest.mark.parametrize("name, shape, options", [
    ("categorical", (2,), {}), ("logistic-mixture", (2,), {"components": 3}),
    ("logistic-mixture", (1, 1, 1), {"components": 1})])
def test_each_dimension_is_a_distribution_over_the_256_levels(name, shape, options):
    torch.manual_seed(0)
    lik = make_likelihood(name, shape, **options)
    params = (torch.randn(1, shape[0] * lik.param_multiplier, *shape[1:], dtype=torch.float64) * 2)
    params = params.expand(256, *params.shape[1:])  # one parameter set, every level
    x = LEVELS.view(256, 1, *(1,) * (len(shape) - 1)).expand(256, *shape)  # both dims (or the one) at level k
    per_dim = lik.log_prob_elementwise(params, x).exp()  # [256, *shape]
    assert torch.allclose(per_dim.sum(0), torch.ones(shape, dtype=torch.float64), atol=1e-6)


def test_one_component_is_the_discretized_logistic_and_its_hand_values():
    mu, log_s = 0.3, -3.0
    mixture = LogisticMixture((1, 1, 1), components=1)
    params = mixture_params(*(torch.tensor([[v]], dtype=torch.float64) for v in (0.7, mu, log_s)))
    x = LEVELS.view(256, 1, 1, 1)
    got = mixture.nll(params.expand(256, 3, 1, 1), x)
    single = DiscretizedLogistic((1, 1, 1)).nll(torch.tensor([mu, log_s], dtype=torch.float64).view(1, 2, 1, 1), x)
    assert torch.allclose(got, single, atol=1e-10)
    s, h = math.exp(log_s), 0.5 / 255
    by_hand = {0: sigmoid((h - mu) / s), 77: sigmoid((77 / 255 + h - mu) / s) - sigmoid((77 / 255 - h - mu) / s),
               255: 1 - sigmoid((1 - h - mu) / s)}  # the lowest bin takes the left tail, the top bin the right
    for k, p in by_hand.items():
        assert got[k].item() == pytest.approx(-math.log(p), rel=1e-9)


def test_where_the_bin_mass_underflows_it_is_the_density_times_the_bin_width():
    """mu = 0.5, s = 0.02, x = 51/255: the difference of CDFs (~3e-8) is below the 1e-5 cut-off, so the mid-bin
    density times 1/255 stands in; by hand in float64 the exact difference, which it matches to 0.1%."""
    mu, log_s, x = 0.5, math.log(0.02), 51 / 255
    params = mixture_params(*(torch.tensor([[v]]) for v in (0.0, mu, log_s)))
    got = -LogisticMixture((1, 1, 1), components=1).nll(params.unsqueeze(0), torch.tensor([[[[x]]]])).item()
    h, s = 0.5 / 255, 0.02
    exact = math.log(sigmoid((x + h - mu) / s) - sigmoid((x - h - mu) / s))
    assert exact < math.log(1e-5) and got == pytest.approx(exact, rel=1e-3)


def test_a_mixture_of_k_is_the_weighted_sum_of_k_single_logistics():
    torch.manual_seed(1)
    K = 4
    logits, mu, log_s = torch.randn(K, 1), torch.rand(K, 1), torch.rand(K, 1) * -4 - 1
    got = LogisticMixture((1, 1, 1), components=K).nll(mixture_params(logits, mu, log_s).expand(256, -1, 1, 1),
                                                        LEVELS.view(256, 1, 1, 1))
    single = DiscretizedLogistic((1, 1, 1))
    pi = logits.double().softmax(0)
    brute = sum(pi[k] * torch.exp(-single.nll(torch.stack([mu[k], log_s[k]]).double().view(1, 2, 1, 1),
                                               LEVELS.view(256, 1, 1, 1))) for k in range(K))
    assert torch.allclose(torch.exp(-got), brute, atol=1e-12)


def rgb_setup(K: int = 2, seed: int = 2):
    """A 3-channel mixture and one pixel's parameters; the components' hand-made P_k(R) too."""
    gen = torch.Generator().manual_seed(seed)
    logits, mu = torch.randn(K, 3, generator=gen), torch.rand(K, 3, generator=gen)
    log_s, coeff = torch.rand(K, 3, generator=gen) * -2 - 3, torch.randn(K, 3, generator=gen)
    return LogisticMixture((3, 1, 1), components=K), mixture_params(logits, mu, log_s, coeff), (logits, mu, log_s)


def test_rgb_mixture_sums_over_each_channel_in_turn_to_the_marginals():
    lik, params, (logits, mu, log_s) = rgb_setup()
    single = DiscretizedLogistic((1,))
    pi = logits.double().sum(1).softmax(0)  # one mixture over the pixel: the channels' logits summed
    for r in (0, 100, 255):
        g, b = torch.meshgrid(LEVELS, LEVELS, indexing="ij")  # every (G, B) with R fixed
        x = torch.stack([torch.full_like(g, r / 255), g, b]).flatten(1).T.reshape(-1, 3, 1, 1)  # [65536, 3, 1, 1]
        joint = torch.exp(-lik.nll(params.expand(len(x), -1, 1, 1), x)).view(256, 256)  # p(r, G, B)
        p_r = sum(pi[k] * torch.exp(-single.nll(torch.stack([mu[k, 0], log_s[k, 0]]).double().view(1, 2),
                                                torch.tensor([[r / 255]], dtype=torch.float64))) for k in range(2))
        assert joint.sum().item() == pytest.approx(p_r.item(), rel=1e-6)  # sum over B, then over G: P(R = r)
        assert joint[40].sum().item() <= p_r.item()  # summed over B alone: P(R = r, G = 40)


def test_rgb_means_are_conditioned_on_the_channels_before():
    lik, params, _ = rgb_setup(K=1)
    theta = lik.parameters_of(params.unsqueeze(0))
    alpha, beta, gamma = torch.tanh(theta["coeff"][0, 0, :, 0, 0])
    mu_r, mu_g, mu_b = theta["mu"][0, 0, :, 0, 0]
    x = torch.tensor([0.2, 0.6, 0.9], dtype=torch.float64).view(1, 1, 3, 1, 1)
    means = lik.coupled_means(theta, x)[0, 0, :, 0, 0]
    expected = torch.stack([mu_r, mu_g + alpha * 0.2, mu_b + beta * 0.2 + gamma * 0.6])
    assert torch.allclose(means, expected)


def test_gradients_are_finite_at_the_edge_bins_and_where_the_bin_mass_underflows():
    lik = LogisticMixture((3, 1, 1), components=2)
    x = torch.tensor([[0.0, 1.0, 128 / 255], [1.0, 0.0, 0.0]]).view(2, 3, 1, 1)
    for scale, mean in ((-7.0, 0.5), (-7.0, 3.0), (2.0, -3.0)):  # tiny scale far from the bin: the density fallback
        theta = torch.stack([torch.zeros(2, 3), torch.full((2, 3), mean), torch.full((2, 3), scale),
                             torch.ones(2, 3)]).flatten().view(1, -1, 1, 1).expand(2, -1, 1, 1).clone()
        theta.requires_grad_(True)
        nll = lik.nll(theta, x)
        nll.sum().backward()
        assert torch.isfinite(nll).all() and torch.isfinite(theta.grad).all() and theta.grad.abs().sum() > 0
    logits = torch.linspace(-1, 1, 256).view(1, 256).requires_grad_(True)  # [B, 256 C], C = 1
    for edge in (0.0, 1.0):  # the lowest level at 100 nats below the top one, and the top one
        Categorical((1,)).nll(logits * 50, torch.tensor([[edge]])).sum().backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_sample_frequencies_match_the_probabilities():
    """Monte Carlo: 200,000 draws of one RGB pixel; the frequency of each joint value expected 5 times or more, and
    of all the others together, within 5 standard errors of its probability exp(-nll); and the draws' mean near
    :meth:`mean` (the component means, clipping aside). Drawn in float64: from torch's float32 ``rand`` on a CPU we
    saw uniform triples cluster (4 of 200,000 in one box of volume 4e-7), which fails such a test."""
    lik, params, _ = rgb_setup()
    n = 200_000
    torch.manual_seed(3)
    draws = lik.sample(params.expand(n, -1, 1, 1))  # [n, 3, 1, 1]
    assert ((draws * 255 - (draws * 255).round()).abs() < 1e-4).all()
    values, counts = torch.unique(draws.view(n, 3), dim=0, return_counts=True)
    p = torch.exp(-lik.nll(params.expand(len(values), -1, 1, 1), values.double().view(-1, 3, 1, 1)))
    frequency, common = counts.double() / n, p * n >= 5  # the values expected 5 times or more, and the rest
    assert common.sum() > 100
    assert ((frequency - p)[common].abs() <= 5 * (p * (1 - p) / n).sqrt()[common]).all()
    p_rest, f_rest = 1 - p[common].sum(), 1 - frequency[common].sum()
    assert abs(f_rest - p_rest) <= 5 * math.sqrt(p_rest * (1 - p_rest) / n)
    assert torch.allclose(draws.mean(0).double(), lik.mean(params.unsqueeze(0))[0], atol=5e-3)


def test_categorical_nll_is_the_cross_entropy_and_its_mean_and_samples():
    torch.manual_seed(4)
    lik = Categorical((2, 3, 3))
    logits = torch.randn(4, 256 * 2, 3, 3)  # [B, 256 C, H, W]: level j of channel c at j C + c
    k = torch.randint(0, 256, (4, 2, 3, 3))
    by_torch = F.cross_entropy(logits.view(4, 256, 2, 3, 3), k, reduction="none").sum((1, 2, 3))
    assert torch.allclose(lik.nll(logits, k / 255), by_torch, atol=1e-4)
    probs = logits.view(4, 256, 2, 3, 3).softmax(1)
    assert torch.allclose(lik.mean(logits), (probs * LEVELS.float().view(256, 1, 1, 1)).sum(1), atol=1e-6)
    one = torch.full((1, 256), -30.0)  # [B, 256 C], C = 1
    one[0, 17] = 30.0  # (nearly) all the mass on level 17
    assert lik.__class__((1,)).sample(one).item() == pytest.approx(17 / 255)


def test_a_uniform_categorical_costs_8_bits_per_dimension_in_the_evaluation():
    """Zero logits: p(x | z) = 256^-D whatever z; the posterior set to the prior makes every importance weight
    p(z) / q(z | x) = 1, so -log p(x) = D ln 256 and bits/dim = 8 exactly."""
    model = aekit.build_model("vae", data_shape=(3, 2, 2), hidden=(8,), latent_dim=2, likelihood="categorical")
    with torch.no_grad():
        for module in (model.decoder, model.bottleneck):
            for p in module.parameters():
                p.zero_()
    x = torch.randint(0, 256, (6, 3, 2, 2)) / 255
    assert model.likelihood.nll(model.decode(torch.zeros(6, 2)), x).div(12 * math.log(2)).tolist() == [8.0] * 6
    metrics = evaluate(model, Dataset(x, None, "tiny"), nll_samples=3, batch_size=6, seed=0, suites=("variational",))
    assert metrics["test/bits_per_dim"] == pytest.approx(8.0, abs=1e-6)
    assert metrics["test/nll"] == pytest.approx(12 * math.log(256), abs=1e-5)


def test_a_gaussian_reports_no_bits_per_dimension():
    model = aekit.build_model("vae", data_shape=(4,), hidden=(8,), latent_dim=2, likelihood="gaussian")
    metrics = evaluate(model, Dataset(torch.rand(6, 4), None, "tiny"), nll_samples=2, batch_size=6, seed=0,
                       suites=("variational",))
    assert "test/nll" in metrics and "test/bits_per_dim" not in metrics


@pytest.mark.parametrize("name", ["categorical", "logistic-mixture"])
@pytest.mark.parametrize("x, what", [(torch.rand(64, 3, 4, 4), "not one of them"),
                                     (torch.randint(0, 256, (64, 3, 4, 4)) / 127.5 - 1, r"lie in \[-1, 1\]")])
def test_data_off_the_8bit_levels_is_refused_before_the_first_step(name, x, what):
    with pytest.raises(DataError, match=f"likelihood={name} models 8-bit data.*{what}"):
        aekit.train("vae", x, out=None, likelihood=name, hidden=(8,), latent_dim=2, steps=1, progress=False,
                    figures=False, evaluate=False)


def test_a_conv_vae_trains_on_8bit_rgb_with_the_mixture_and_reports_bits_per_dim():
    x = torch.randint(0, 256, (64, 3, 8, 8)) / 255
    run = aekit.train("vae", x, out=None, backbone="conv", channels=(8, 16), latent_dim=2, steps=3, batch_size=16,
                      nll_samples=2, progress=False, figures=False, likelihood="logistic-mixture",
                      options={"likelihood": {"components": 2}})
    bits = run.metrics["test/bits_per_dim"]
    assert bits == pytest.approx(run.metrics["test/nll"] / (3 * 8 * 8 * math.log(2)), rel=1e-6) and 0 < bits < 20
