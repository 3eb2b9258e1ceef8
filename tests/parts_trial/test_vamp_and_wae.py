"""Two models written as parts alone, with no change to a forward, the loop or evaluation: a VampPrior (a prior
bound to the built model's encoder, the library's ``prior=vamp``) and a WAE-MMD (a bottleneck with a whole-batch
term)."""

import copy
import math

import pytest
import torch
from torch import nn

import aekit
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.nn.priors import Prior, StandardNormal
from aekit.objectives import Term
from aekit.parts import PartContext, register_part


def vamp_vae():
    torch.manual_seed(0)
    return aekit.build_model("vae", data_shape=(1, 8, 8), latent_dim=3, hidden=(16,), prior="vamp",
                             options={"prior": {"components": 4}})


def test_vamp_prior_log_density_by_hand_and_the_monte_carlo_kl():
    model = vamp_vae()
    prior = model.bottleneck.prior
    z = torch.randn(2, 5, 3)
    q = model.bottleneck.posterior(model.encoder(prior.pseudo_inputs()))
    by_hand = torch.stack([
        torch.distributions.Normal(q["mu"][k], torch.exp(0.5 * q["logvar"][k])).log_prob(z).sum(-1) for k in range(4)
    ]).logsumexp(0) - math.log(4)
    assert torch.allclose(prior.log_prob(z), by_hand, atol=1e-5)
    out = model(torch.rand(5, 1, 8, 8), n_samples=3)
    assert "kl_per_dim" not in out.stats  # no closed form: E_q[log q - log p] over the samples
    assert torch.allclose(out.terms["kl"], (out.latent.log_q - out.latent.log_p).mean(0))


def test_vamp_prior_binding_registers_no_weight_twice_and_follows_a_deep_copy():
    model = vamp_vae()
    names = [n for n, _ in model.named_parameters()]
    assert len(names) == len(set(names)) and "bottleneck.prior.pseudo_weights" in names
    assert not any(n.startswith("bottleneck.prior.model") for n in model.state_dict())
    twin = copy.deepcopy(model)
    assert twin.bottleneck.prior.model() is twin and model.bottleneck.prior.model() is model
    z = torch.randn(4, 3)
    assert torch.allclose(twin.bottleneck.prior.log_prob(z), model.bottleneck.prior.log_prob(z))


def test_vamp_prior_trains_on_two_ddp_processes(tmp_path):
    """The bound prior under DDP: the encoder serves the data and the pseudo-inputs in one forward, each weight is
    registered once, and the two processes end on one model."""
    run = aekit.train("vae", "digits", tmp_path / "ddp", steps=4, latent_dim=3, hidden=(16,), prior="vamp",
                      options={"prior": {"components": 4}}, devices=2, accelerator="cpu",
                      progress=False, evaluate=False, figures=False)
    model = aekit.load(tmp_path / "ddp")
    assert run.metrics["train/steps"] == 4 and model.bottleneck.prior.model() is model
    assert sorted(model.state_dict()) == sorted(vamp_vae().state_dict())


def test_vamp_prior_trains_its_pseudo_inputs_through_the_loop_and_samples(tmp_path):
    model = vamp_vae()
    before = model.bottleneck.prior.pseudo_weights.detach().clone()
    run = aekit.train(model, "digits", tmp_path / "vamp", steps=20, nll_samples=5, nll_examples=20, progress=False,
                      figures=False)
    assert not torch.equal(model.bottleneck.prior.pseudo_weights.detach().cpu(), before)
    assert math.isfinite(run.metrics["test/nll"]) and model.sample(6).shape == (6, 1, 8, 8)
    again = aekit.load(tmp_path / "vamp")  # rebuilt from its config, bound again
    assert again.bottleneck.prior.model() is again


def rbf_like_imq(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """The inverse multiquadratic kernel of WAE, k(x, y) = C / (C + ||x - y||^2)."""
    return scale / (scale + torch.cdist(a, b).pow(2))


@register_part("bottlenecks", "trial-wae-mmd", "WAE-MMD: a deterministic code matched to N(0, I) by the batch MMD")
class WAEMMD(Bottleneck):
    """Tolstikhin et al. 2018, Algorithm 2: z = f(x), and the whole-batch penalty MMD_k(q(z), p(z)) between the
    batch's codes and as many draws from the prior (the unbiased U-statistic)."""

    terms = {"mmd": Term(weight=10.0, batch=True)}

    def __init__(self, context: PartContext, prior: Prior | None = None) -> None:
        super().__init__(context)
        self.proj = nn.Linear(self.in_features, self.latent_dim)
        self.prior = prior or StandardNormal(context)

    def forward(self, h, n_samples=1, eps=None, batch=None) -> BottleneckOutput:
        z = self.proj(h)  # [B, D]
        z_p = self.prior.sample(z.shape[0], device=z.device).to(z.dtype)  # [B, D]
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z,
                                terms={"mmd": mmd(z, z_p, scale=2.0 * self.latent_dim)})


def mmd(z: torch.Tensor, z_p: torch.Tensor, scale: float) -> torch.Tensor:
    n = z.shape[0]
    off = 1.0 - torch.eye(n, device=z.device, dtype=z.dtype)
    within = ((rbf_like_imq(z, z, scale) + rbf_like_imq(z_p, z_p, scale)) * off).sum() / (n * (n - 1))
    return within - 2.0 * rbf_like_imq(z, z_p, scale).mean()


def test_wae_mmd_whole_batch_term_is_weighted_and_evaluated_at_a_stated_batch_size(tmp_path):
    model = aekit.build_model("ae", data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), bottleneck="trial-wae-mmd")
    out = model(torch.rand(6, 1, 8, 8))
    assert out.terms["mmd"].dim() == 0
    loss = model.objective()(out, 0)
    assert loss.total.item() == pytest.approx((out.terms["recon"].mean() + 10.0 * out.terms["mmd"]).item(), rel=1e-6)
    a, b = torch.zeros(3, 2), torch.zeros(3, 2)
    assert mmd(a, b, 4.0).item() == pytest.approx(0.0, abs=1e-6)  # the same points: no discrepancy
    run = aekit.train("ae", "digits", tmp_path / "wae", steps=30, bottleneck="trial-wae-mmd", latent_dim=2,
                      hidden=(16,), terms={"mmd": 5.0}, progress=False, figures=False)
    assert run.model.objective_terms()["mmd"].weight.value == 5.0
    assert math.isfinite(run.metrics["test/mmd"]) and run.metrics["test/batch_terms_batch_size"] > 0


@register_part("priors", "trial-class-gaussian", "p(z | y) = N(mu_y, I): a learned mean per class")
class ClassGaussian(Prior):
    """A prior that depends on the condition: p(z | c) = N(W c, I) for a one-hot class c."""

    conditional = True

    def __init__(self, context: PartContext) -> None:
        super().__init__(context)
        self.means = nn.Linear(context.condition_dim, context.latent_dim, bias=False)

    def log_prob(self, z, batch=None):
        mean = self.means(batch.condition.to(z.dtype))  # [B, D]
        return -0.5 * ((z - mean).pow(2) + math.log(2 * math.pi)).sum(-1)

    def sample(self, n, generator=None, device=None):
        return torch.randn(n, self.latent_dim, generator=generator, device=device)


def test_a_prior_may_depend_on_the_condition():
    torch.manual_seed(0)
    model = aekit.build_model("cvae", data_shape=(1, 8, 8), latent_dim=2, hidden=(16,), condition_dim=3,
                              prior="trial-class-gaussian")
    x, c = torch.rand(4, 1, 8, 8), torch.eye(3)[[0, 1, 2, 0]]
    out = model(x, condition=c, n_samples=2)
    mean = c @ model.bottleneck.prior.means.weight.t()
    by_hand = torch.distributions.Normal(mean, 1.0).log_prob(out.latent.z).sum(-1)  # [S, B]
    assert torch.allclose(out.latent.log_p, by_hand, atol=1e-5)
    from aekit.metrics import importance_sampled_log_likelihood

    assert importance_sampled_log_likelihood(model, x, n_samples=8, condition=c).shape == (4,)


@register_part("corruptions", "trial-rows", "hide whole rows of an image (reads the image's height)")
class HideRows(nn.Module):
    """A corruption that needs the data's shape: it is given the context because it declares one."""

    def __init__(self, level: float, *, context: PartContext) -> None:
        super().__init__()
        self.rows = max(1, round(level * context.data_shape[1]))

    def forward(self, x, noise=None):
        return torch.cat([torch.zeros_like(x[:, :, : self.rows]), x[:, :, self.rows :]], dim=2)


def test_every_kind_of_part_is_built_with_its_context():
    dae = aekit.build_model("dae", data_shape=(1, 8, 8), latent_dim=2, hidden=(8,), noise="trial-rows",
                            noise_level=0.25)
    assert dae.corruption.rows == 2 and dae.context.data_shape == (1, 8, 8)
    assert dae.bottleneck.context.feature_shape == (8,) and dae.bottleneck.context.latent_shape == (2,)
    mae = aekit.build_model("mae", data_shape=(2, 8, 8), patch_size=4, width=8, depth=1, heads=2, decoder_width=8,
                            decoder_depth=1, decoder_heads=2, target="hog")
    assert mae.target_part.channels == 2  # the target read the channels from the context
