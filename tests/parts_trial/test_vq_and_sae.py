"""Two models written as parts alone, with no change to a forward, the loop or evaluation: an EMA VQ-VAE on a 7x7
code grid (a codebook updated by a step hook from the step's outputs, model defaults for its part settings) and a
TopK sparse autoencoder (tied initialisation from the built model, decoder-gradient projection before the
optimiser step, unit-norm columns kept through the weight average)."""

import math
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import aekit
from aekit.models.ae import AE, AEConfig
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part
from aekit.registry import register_model
from aekit.training.hooks import StepHooks


@register_part("bottlenecks", "trial-vq-ema", "vector quantisation with an EMA codebook (VQ-VAE)")
class EMAQuantizer(Bottleneck):
    """van den Oord et al. 2017: z_q = e_k, k = argmin_j ||z_e - e_j||, the straight-through gradient, the
    commitment term beta ||z_e - sg(z_q)||^2, and the codebook as exponential moving averages of the codes
    assigned to each entry (Appendix A.1), updated after each optimiser step from that step's outputs."""

    terms = {"commit": Term(weight=0.25), "perplexity": Term(log_only=True, batch=True)}
    average_buffers = "copy"  # the codebook is learnt by its own averages, not by the weight average

    def __init__(self, context: PartContext, prior=None, codebook_size: int = 512, decay: float = 0.99,
                 eps: float = 1e-5) -> None:
        super().__init__(context)
        self.proj = nn.Linear(self.in_features, self.latent_dim)  # the 1x1 convolution before quantisation
        self.decay, self.eps = decay, eps
        self.register_buffer("codebook", torch.randn(codebook_size, self.latent_dim))  # e [K, D]
        self.register_buffer("cluster_size", torch.ones(codebook_size))  # N_k
        self.register_buffer("code_sum", self.codebook.clone())  # m_k

    def forward(self, h, n_samples=1, eps=None, batch=None) -> BottleneckOutput:
        z_e = self.proj(h)  # [B, *L, D]
        codes = torch.cdist(z_e.flatten(0, -2), self.codebook).argmin(-1).view(z_e.shape[:-1])  # [B, *L]
        z_q = self.codebook[codes]  # [B, *L, D]
        z = z_e + (z_q - z_e).detach()  # straight through
        commit = (z_e - z_q.detach()).pow(2).flatten(1).sum(-1)  # [B]
        usage = F.one_hot(codes.flatten(), len(self.codebook)).float().mean(0)
        perplexity = torch.exp(-(usage * torch.log(usage + 1e-10)).sum())
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z,
                                params={"z_e": z_e, "codes": codes}, terms={"commit": commit, "perplexity": perplexity})

    def after_optimizer_step(self, ctx) -> None:
        z_e = torch.cat([out.latent.params["z_e"].detach().flatten(0, -2) for out in ctx.outputs])  # [N, D]
        codes = torch.cat([out.latent.params["codes"].flatten() for out in ctx.outputs])  # [N]
        onehot = F.one_hot(codes, len(self.codebook)).to(z_e.dtype)  # [N, K]
        counts = ctx.all_reduce(onehot.sum(0), "sum")  # n_k
        sums = ctx.all_reduce(onehot.t() @ z_e, "sum")  # sum of the z_e assigned to e_k
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + len(self.codebook) * self.eps) * n  # Laplace smoothing
        self.codebook.copy_(self.code_sum / smoothed.unsqueeze(1))


@dataclass(frozen=True)
class VQVAEConfig(AEConfig):
    """A VQ-VAE: a conv grid of codes by default, the codebook's size a part setting the model defaults."""

    backbone: str = "conv-grid"
    bottleneck: str = "trial-vq-ema"
    likelihood: str = "gaussian"
    latent_dim: int = 8
    channels: tuple[int, ...] = (16, 32)
    options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"bottleneck": {"codebook_size": 32}})


register_model("trial-vq-vae", config=VQVAEConfig, description="VQ-VAE with an EMA codebook (tests)")(AE)


def test_model_defaults_for_part_settings_merge_under_the_users():
    model = aekit.build_model("trial-vq-vae", data_shape=(1, 28, 28), options={"bottleneck": {"decay": 0.95}})
    assert len(model.bottleneck.codebook) == 32 and model.bottleneck.decay == 0.95
    assert model.bottleneck.latent_shape == (7, 7, 8)
    model = aekit.build_model("trial-vq-vae", data_shape=(1, 28, 28), options={"bottleneck": {"codebook_size": 8}})
    assert len(model.bottleneck.codebook) == 8


def test_the_codebook_follows_its_moving_averages_in_a_loop_of_ones_own():
    """One step by hand: after the hook, e_k = m_k / N_k with N, m the decayed counts and sums of the codes."""
    torch.manual_seed(0)
    model = aekit.build_model("trial-vq-vae", data_shape=(1, 28, 28), options={"bottleneck": {"decay": 0.5}})
    q = model.bottleneck
    x = torch.rand(4, 1, 28, 28)
    hooks = StepHooks(model)
    out = model(x)
    model.objective()(out, 0).total.backward()
    z_e, codes = out.latent.params["z_e"].detach().flatten(0, -2), out.latent.params["codes"].flatten()
    counts = torch.bincount(codes, minlength=32).float()
    sums = torch.zeros(32, 8).index_add_(0, codes, z_e)
    size, code_sum = 0.5 * q.cluster_size + 0.5 * counts, 0.5 * q.code_sum + 0.5 * sums
    hooks.after_step(0, outputs=[out])
    n = size.sum()
    expected = code_sum / ((size + 1e-5) / (n + 32e-5) * n).unsqueeze(1)
    assert torch.allclose(q.codebook, expected, atol=1e-5)
    assert out.terms["commit"].shape == (4,) and out.terms["perplexity"].dim() == 0


def test_a_vq_vae_on_a_7x7_code_grid_trains_through_the_loop_and_its_codebook_moves(tmp_path):
    torch.manual_seed(0)
    model = aekit.build_model("trial-vq-vae", data_shape=(1, 28, 28))
    before = model.bottleneck.codebook.clone()
    run = aekit.train(model, "mnist", tmp_path / "vq", steps=30, batch_size=64, val_examples=256, progress=False,
                      figures=False, ema_decay=0.9)
    assert not torch.allclose(model.bottleneck.codebook.cpu(), before)  # the hook ran in aekit's loop
    assert math.isfinite(run.metrics["test/commit"]) and run.metrics["test/perplexity"] >= 1
    log = (tmp_path / "vq" / "log.csv").read_text().splitlines()[0].split(",")
    assert {"commit", "perplexity"} <= set(log)


class TiedDecoder(nn.Module):
    """x_hat = W_dec z + b_dec with unit-norm columns of W_dec, kept by the two step hooks: the gradient's
    component parallel to each column is removed before the step, and the columns renormalised after it (and
    after weight averaging)."""

    def __init__(self, latent_dim: int, data_dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(F.normalize(torch.randn(data_dim, latent_dim), dim=0))  # [X, D]
        self.bias = nn.Parameter(torch.zeros(data_dim))

    def forward(self, z):
        return z @ self.weight.t() + self.bias  # [N, D] -> [N, X]

    def before_optimizer_step(self, ctx) -> None:
        w, g = self.weight, self.weight.grad
        if g is not None:
            g.sub_(w * (w * g).sum(0, keepdim=True))  # remove each column's parallel part

    def after_optimizer_step(self, ctx) -> None:
        self.after_average()

    def after_average(self) -> None:
        self.weight.div_(self.weight.norm(dim=0, keepdim=True))


@register_part("bottlenecks", "trial-topk", "TopK sparse code: keep the k largest pre-activations (Gao et al. 2024)")
class TopK(Bottleneck):
    """z = TopK(W_enc (x - b_dec) + b_enc), initialised tied to the decoder: W_enc = W_dec^T (bound once built)."""

    terms = {"l0": Term(log_only=True)}

    def __init__(self, context: PartContext, prior=None, k: int = 4) -> None:
        super().__init__(context)
        self.k = k
        self.proj = nn.Linear(self.in_features, self.latent_dim)
        self.model = None

    def bind(self, model) -> None:
        self.model = ModelRef(model)
        with torch.no_grad():
            self.proj.weight.copy_(model.decoder.weight.t())
            self.proj.bias.zero_()

    def forward(self, h, n_samples=1, eps=None, batch=None) -> BottleneckOutput:
        pre = self.proj(h - self.model().decoder.bias)  # [B, D]
        top = pre.topk(self.k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, top.indices, top.values.relu())
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z,
                                terms={"l0": (z != 0).float().sum(-1)})


def sae(data_dim=12, latent_dim=24):
    torch.manual_seed(0)
    encoder = nn.Identity()
    encoder.out_features = data_dim
    return aekit.build_model("ae", data_shape=(data_dim,), latent_dim=latent_dim, likelihood="gaussian",
                             bottleneck="trial-topk", encoder=encoder, decoder=TiedDecoder(latent_dim, data_dim))


def test_topk_sae_is_tied_at_binding_and_sparse():
    model = sae()
    assert torch.equal(model.bottleneck.proj.weight, model.decoder.weight.t())
    out = model(torch.randn(5, 12))
    assert ((out.latent.z[0] != 0).sum(-1) <= 4).all()
    assert "bottleneck.model" not in "".join(model.state_dict())


def test_the_decoder_gradient_projection_keeps_columns_on_the_sphere(tmp_path):
    model = sae()
    x = torch.randn(8, 12)
    hooks = StepHooks(model)
    out = model(x)
    model.objective()(out, 0).total.backward()
    hooks.before_step(0, outputs=[out])
    w, g = model.decoder.weight, model.decoder.weight.grad
    assert torch.allclose((w * g).sum(0), torch.zeros(24), atol=1e-5)  # no component along any column
    data = torch.randn(400, 12)
    aekit.train(model, data, tmp_path / "sae", steps=25, batch_size=64, ema_decay=0.8, progress=False,
                figures=False, evaluate=False)
    assert torch.allclose(model.decoder.weight.norm(dim=0), torch.ones(24), atol=1e-5)  # averaged, renormalised


def test_stepping_a_model_with_hooks_without_them_warns():
    model = sae()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with pytest.warns(UserWarning, match="without its step hooks"):
        for _ in range(3):
            model.objective()(model(torch.randn(4, 12)), 0).total.backward()
            optimizer.step()
