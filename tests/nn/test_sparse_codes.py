"""The sparse codes' math against hand computations: BatchTopK's batch choice and threshold, Matryoshka's prefixes,
AuxK (the decoder bias counted once), the penalties' units, the gate's frozen decoder, JumpReLU's pseudo-derivatives,
g-SAE's choice, the dead-latent count, the start from data and transcoders."""

import math

import pytest
import torch

import aekit
from aekit.data.batch import Batch
from aekit.errors import ConfigError
from aekit.nn.sparse import geometric_median
from aekit.training.hooks import StepHooks

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
pytestmark = pytest.mark.filterwarnings("ignore:.*without its step hooks")  # the math, outside a loop


def sae(name="topk-sae", width=6, latent_dim=10, **settings):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(width,), latent_dim=latent_dim, **settings)


def nll(x, x_hat):
    """The Gaussian likelihood's -log p(x | x_hat) with unit variance, per row."""
    return (0.5 * (x - x_hat) ** 2 + HALF_LOG_2PI).sum(-1)


def test_the_geometric_median_minimises_the_summed_distances_and_resists_outliers():
    x = torch.randn(200, 3)
    x[:20] += 100.0  # a tenth of the rows far away
    m = geometric_median(x)
    distance = lambda c: (x - c).norm(dim=1).sum()  # noqa: E731
    for step in torch.eye(3) * 1e-2:
        assert distance(m) <= distance(m + step) and distance(m) <= distance(m - step)
    assert m.norm() < 2.0 < x.mean(0).norm()


def test_batchtopk_keeps_k_times_b_of_the_batch_and_infers_with_its_threshold():
    model = sae("batchtopk-sae", k=2)
    x = torch.randn(5, 6)
    pre = model.bottleneck.pre_activations(x).detach()
    z = model(x).latent.mean
    kept = pre.relu().flatten().topk(10).values
    assert int((z != 0).sum()) == 10 and torch.equal(z.flatten().sort().values[-10:], kept.sort().values)
    out = model(x)
    StepHooks(model).after_step(0, outputs=[out])
    first = out.latent.mean[out.latent.mean > 0].min()
    assert torch.isclose(model.bottleneck.threshold, first)
    out2 = model(torch.randn(5, 6))
    StepHooks(model).after_step(1, outputs=[out2])
    second = out2.latent.mean[out2.latent.mean > 0].min()
    assert torch.isclose(model.bottleneck.threshold, 0.999 * first + 0.001 * second)  # the running average
    model.eval()
    theta = model.bottleneck.threshold
    assert torch.equal(model.embed(x), pre * (pre > theta))  # each row alone at inference


def test_matryoshka_reconstructs_from_every_prefix_in_training_and_from_the_whole_code_at_inference():
    model = sae("matryoshka-sae", latent_dim=16, k=3, groups=3)
    assert model.bottleneck.prefixes == [4, 8, 16]
    x = torch.randn(4, 6)
    out = model(x)
    z, w, b = out.latent.mean, model.decoder.weight, model.decoder.bias
    expected = torch.stack([nll(x, z[:, :m] @ w[:, :m].t() + b) for m in (4, 8, 16)]).mean(0)
    assert torch.allclose(out.terms["recon"], expected, atol=1e-5)
    model.eval()
    out = model(x)
    assert out.x_params.shape[0] == 1 and torch.allclose(out.terms["recon"], nll(x, out.latent.mean @ w.t() + b),
                                                         atol=1e-5)


def test_auxk_reconstructs_the_residual_from_the_dead_latents_without_the_decoder_bias():
    model = sae("topk-sae", latent_dim=10, k=2, aux_k=3, dead_tokens=100)
    with torch.no_grad():
        model.decoder.bias.copy_(torch.randn(6))
    x = torch.randn(4, 6)
    assert torch.equal(model(x).terms["auxk"], torch.zeros(4))  # nothing dead yet
    dead = torch.tensor([1, 3, 4, 7, 9])
    model.bottleneck.since_fired[dead] = 100
    out = model(x)
    assert out.stats["dead_in_training"].item() == 0.5  # the share logged at every step
    pre = out.latent.params["pre"].detach()
    masked = torch.full_like(pre, -torch.inf)
    masked[:, dead] = pre[:, dead]
    top = masked.topk(3, dim=-1)
    z_aux = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
    e = x - out.x_params[0].detach()
    w = model.decoder.weight.detach()
    assert torch.allclose(out.terms["auxk"], 0.5 * ((e - z_aux @ w.t()) ** 2).sum(-1), atol=1e-5)
    counted_twice = 0.5 * ((e - (z_aux @ w.t() + model.decoder.bias.detach())) ** 2).sum(-1)
    assert not torch.allclose(out.terms["auxk"], counted_twice, atol=1e-3)
    out.terms["auxk"].sum().backward()  # the residual is a fixed target: AuxK trains the dead latents' path only
    live = torch.tensor([0, 2, 5, 6, 8])
    assert torch.equal(model.bottleneck.proj.weight.grad[live], torch.zeros(5, 6))


def test_the_step_hook_counts_tokens_since_each_latent_fired():
    model = sae("topk-sae", latent_dim=10, k=2)
    hooks = StepHooks(model)
    out = model(torch.randn(4, 6))
    fired = (out.latent.mean != 0).any(0)
    hooks.after_step(0, outputs=[out])
    assert torch.equal(model.bottleneck.since_fired, torch.where(fired, 0, 4))
    silent = model(torch.zeros(4, 6))  # b_enc = b_dec = 0: every pre-activation 0, nothing fires
    assert not silent.latent.mean.any()
    hooks.after_step(1, outputs=[silent])
    assert torch.equal(model.bottleneck.since_fired, torch.where(fired, 4, 8))


def test_penalties_are_written_for_data_of_unit_mean_squared_norm():
    model = sae("relu-sae", options={"backbone": {"unit_norm": False}})
    data = torch.randn(300, 6) * 7.0 + 3.0
    aekit.init_from_data(model, Batch(data))
    n = (data - data.mean(0)).pow(2).sum(1).mean().sqrt()
    assert torch.isclose(model.bottleneck.data_norm, n)
    with torch.no_grad():
        model.decoder.weight.mul_(torch.linspace(0.5, 2.0, 10))  # atoms of different norms
    x = data[:4]
    out = model(x)
    z, norms = out.latent.mean, model.decoder.weight.norm(dim=0)
    # n^2 / 2 * P(z / n) with P(z) = sum_i z_i ||W_dec,i||
    assert torch.allclose(out.terms["sparsity"], n**2 / 2 * ((z / n) * norms).sum(-1), rtol=1e-5)
    scaled = aekit.build_model("relu-sae", data_shape=(6,), latent_dim=10, options={"backbone": {"unit_norm": False}})
    scaled.load_state_dict(model.state_dict())
    with torch.no_grad():  # the same model for data ten times larger: every term grows 100 times
        for p in (scaled.bottleneck.proj.bias, scaled.decoder.bias, scaled.bottleneck.data_norm):
            p.mul_(10)
    big = scaled(10 * x)
    assert torch.allclose(big.terms["sparsity"], 100 * out.terms["sparsity"], rtol=1e-4)
    assert torch.allclose(big.terms["recon"] - 6 * HALF_LOG_2PI, 100 * (out.terms["recon"] - 6 * HALF_LOG_2PI),
                          rtol=1e-4)


def test_the_gate_chooses_the_latents_and_its_reconstruction_does_not_train_the_decoder():
    model = sae("gated-sae")
    with torch.no_grad():
        model.bottleneck.r_mag.copy_(torch.randn(10))
        model.bottleneck.b_mag.copy_(torch.randn(10))
    x = torch.randn(4, 6)
    out = model(x)
    gate = out.latent.params["pre"]
    wx = gate - model.bottleneck.proj.bias
    expected = (gate > 0).float() * (model.bottleneck.r_mag.exp() * wx + model.bottleneck.b_mag).relu()
    assert torch.allclose(out.latent.mean, expected)
    w, b = model.decoder.weight, model.decoder.bias
    assert torch.allclose(out.terms["gate_recon"], nll(x, gate.relu() @ w.t() + b), atol=1e-5)
    out.terms["gate_recon"].sum().backward()
    assert w.grad is None and model.bottleneck.proj.weight.grad.abs().sum() > 0  # b_dec: only as the pre-bias


def test_jumprelu_thresholds_learn_through_the_pseudo_derivatives():
    model = sae("jumprelu-sae", threshold=0.5, bandwidth=0.4)
    bottleneck = model.bottleneck
    assert torch.allclose(bottleneck.theta, torch.full((10,), 0.5))
    x = torch.randn(64, 6)
    out = model(x)
    pre, theta, eps = out.latent.params["pre"].detach(), bottleneck.theta.detach(), 0.4
    assert torch.equal(out.latent.mean, pre * (pre > theta))
    assert torch.equal(out.terms["sparsity"], 0.5 * (pre > theta).float().sum(-1))  # n = 1 before the data start
    out.terms["sparsity"].sum().backward()
    near = ((pre - theta).abs() < eps / 2).float()
    d_theta = (0.5 * -(1 / eps) * near).sum(0)  # dH/dtheta = -(1/eps) K((pre - theta) / eps)
    assert torch.allclose(bottleneck.log_threshold.grad, d_theta * theta, atol=1e-5)  # chain rule: theta = exp(t)
    bottleneck.log_threshold.grad = None
    out = model(x)
    g = torch.randn_like(out.latent.mean)
    (out.latent.mean * g).sum().backward()
    d_theta = (-(theta / eps) * near * g).sum(0)  # dz/dtheta = -(theta/eps) K((pre - theta) / eps)
    assert torch.allclose(bottleneck.log_threshold.grad, d_theta * theta, atol=1e-5)


def test_a_gradient_sae_chooses_the_latents_that_move_the_downstream_loss():
    model = sae("gradient-sae", k=2, beta=3.0)
    x, g = torch.randn(4, 6), torch.randn(4, 6)
    out = model(Batch(x, gradient=g))
    a = out.latent.params["pre"].detach().relu()
    effect = (g @ model.decoder.weight.detach()).abs()
    chosen = (a * (1 + 3.0 * effect)).topk(2, dim=-1).indices
    assert torch.equal(out.latent.mean, torch.zeros_like(a).scatter(-1, chosen, a.gather(-1, chosen)))
    plain = model(x).latent.mean  # without a gradient: TopK's choice
    assert torch.equal(plain, torch.zeros_like(a).scatter(-1, a.topk(2).indices, a.topk(2).values))


def test_a_transcoder_reconstructs_the_target_and_does_not_centre_its_input_on_b_dec(tmp_path):
    model = sae("topk-sae", k=2, transcoder=True)
    assert model.decoder.pre_bias is False
    with torch.no_grad():
        model.decoder.bias.copy_(torch.randn(6))
    x, y = torch.randn(5, 6), torch.randn(5, 6)
    out = model(Batch(x, target=y))
    assert torch.allclose(out.latent.params["pre"], model.bottleneck.proj(x))
    assert torch.allclose(out.terms["recon"], nll(y, out.x_params[0]), atol=1e-5)
    assert torch.allclose(aekit.build_model("topk-sae", data_shape=(6,), latent_dim=10, k=2).bottleneck.proj.bias,
                          torch.zeros(10))


def test_training_starts_the_dictionary_from_the_data_once():
    data = torch.randn(600, 6) * 2.0 + 5.0
    model = sae("topk-sae", k=2)
    aekit.train(model, data.numpy(), None, steps=1, batch_size=64, lr=1e-9, progress=False, figures=False,
                evaluate=False, val_fraction=0.0, test_fraction=0.0)
    started = model.decoder.bias.detach().clone()
    assert torch.allclose(started, geometric_median(data), atol=1e-3)
    aekit.train(model, (data + 10).numpy(), None, steps=1, batch_size=64, lr=1e-9, progress=False, figures=False,
                evaluate=False, val_fraction=0.0, test_fraction=0.0)
    assert torch.allclose(model.decoder.bias, started, atol=1e-6)  # a trained dictionary keeps its own


def test_the_sparsity_suite_by_hand():
    model = sae("topk-sae", k=2).eval()
    x = torch.randn(30, 6)
    metrics = aekit.evaluate(model, aekit.data.Dataset(x, None, "s"), suites=("sparsity",), batch_size=7, split="s")
    z = model.embed(x)
    x_hat = model.reconstruct(x)
    fvu = float(((x - x_hat) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
    fired = (z != 0).sum(0)
    assert metrics["s/l0"] == pytest.approx(2.0)
    assert metrics["s/fvu"] == pytest.approx(fvu, rel=1e-5)
    assert metrics["s/explained_variance"] == pytest.approx(1 - fvu, rel=1e-5)
    assert metrics["s/dead_latents"] == int((fired == 0).sum())
    assert metrics["s/dense_fraction"] == pytest.approx(float((fired > 3).float().mean()))


@pytest.mark.parametrize("name,settings,message", [
    ("topk-sae", {"k": 11}, r"bottleneck.k=11 must be a whole number from 1 to latent_dim=10"),
    ("batchtopk-sae", {"k": 0}, r"bottleneck.k=0 must be"),
    ("jumprelu-sae", {"threshold": 0.0}, r"bottleneck.threshold=0.0 must be > 0"),
    ("relu-sae", {"sparsity_coefficient": -1.0}, r"sparsity_coefficient=-1.0 must be >= 0"),
    ("matryoshka-sae", {"groups": 0, "k": 2}, r"bottleneck.groups=0 must be"),
])
def test_settings_a_sparse_code_cannot_take_are_one_line_errors(name, settings, message):
    with pytest.raises(ConfigError, match=message):
        sae(name, **settings)


def test_a_transcoder_trains_on_data_with_a_target_and_refuses_data_without_one():
    from aekit.data import Dataset

    x = torch.randn(300, 6)
    pairs = Dataset(x, None, "pairs", target=2.0 * x + 1.0)
    settings = dict(out=None, steps=3, batch_size=50, progress=False, figures=False, evaluate=False, latent_dim=10,
                    k=2, transcoder=True)
    run = aekit.train("topk-sae", pairs, **settings)
    assert torch.allclose(run.model.decoder.bias, torch.ones(6), atol=0.5)  # the targets' centre, not the inputs
    with pytest.raises(ConfigError, match="transcoder=true reconstructs a target, and this data has none"):
        aekit.train("topk-sae", Dataset(x, None, "alone"), **settings)
