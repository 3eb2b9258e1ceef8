"""Sparse dictionary parts: a sparse autoencoder (or transcoder) is the one ``Autoencoder`` with these parts.

- backbone ``dictionary``: the encoder passes the input through as a vector (the bottleneck holds the encoder's
  one linear map) and the decoder is a dictionary x_hat = W_dec z + b_dec whose D columns (atoms) have unit norm.
  Two step hooks keep them so: before the optimiser step the gradient's component parallel to each column is
  removed, after it (and after weight averaging) the columns are renormalised (Bricken et al. 2023; Gao et al.
  2024, Sec. 2.1). b_dec starts at the geometric median of a sample of the targets (Bricken et al. 2023).
- the sparse codes (:class:`SparseCode`) share z = sigma(W_enc (x - b_pre) + b_enc): over a ``dictionary``
  decoder, b_pre is the decoder's bias b_dec (subtracted before encoding, added back by the decoder; not for a
  transcoder, whose input and output live in different spaces) and the encoder starts as the decoder's transpose,
  W_enc = W_dec^T (Gao et al. 2024, Sec. 2.1), tied when the model is built (``bind``). Each logs its ``l0`` (the
  active latents of each row) and records, in a step hook, how many tokens ago each latent last fired.
- ``topk``: sigma = ReLU o TopK_k, the k largest pre-activations of each row kept (Gao et al. 2024, Eq. 1-2), with
  the AuxK loss on dead latents (Appendix A.2); ``batchtopk``: the k * B largest of the whole batch, and at
  inference a threshold estimated in training (Bussmann et al. 2024); ``matryoshka``: BatchTopK whose nested
  prefixes of the dictionary each reconstruct the input (Bussmann et al. 2025); ``gradient-topk``: the k chosen
  with a downstream loss's gradient (Olmo et al. 2024). The penalised codes (ReLU with L1, gated, JumpReLU) are in
  :mod:`aekit.nn.sparse_penalised`.

    aekit train topk-sae --data acts.npy latent_dim=4096 k=32
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.errors import ConfigError
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext, register_part


def geometric_median(x: torch.Tensor, iterations: int = 100, tol: float = 1e-7) -> torch.Tensor:
    """argmin_m sum_n ||x_n - m||_2 of the rows of ``x [N, X]`` by Weiszfeld's iteration, started at the mean:
    m <- sum_n w_n x_n / sum_n w_n with w_n = 1 / ||x_n - m||."""
    x = x.double()
    m = x.mean(0)
    for _ in range(iterations):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(1e-12)  # [N]
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() <= tol * (1.0 + m.norm()):
            m = new
            break
        m = new
    return m.float()


def targets_of(batch) -> torch.Tensor:
    """What a batch's model reconstructs, one row per example ``[N, X]``: its target, or its inputs."""
    target = batch.target if batch.target is not None else batch.inputs
    return target.reshape(target.shape[0], -1).float()


class VectorInput(nn.Module):
    """``x [B, *S] -> [B, prod(S)]``: the input as one vector, for a bottleneck that holds the encoder."""

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.out_features = math.prod(data_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1)


class Dictionary(nn.Module):
    """``z [N, D] -> x_hat [N, *S]`` = W_dec z + b_dec with ``weight`` ``[X, D]`` (X the data's size); its columns
    kept at unit norm by the step hooks where ``unit_norm`` (module docstring). ``pre_bias``: b_dec is also
    subtracted from the input before encoding (an autoencoder of one space; False for a transcoder)."""

    def __init__(self, latent_dim: int, data_shape: tuple[int, ...], unit_norm: bool = True,
                 pre_bias: bool = True) -> None:
        super().__init__()
        self.data_shape, self.unit_norm, self.pre_bias = tuple(data_shape), unit_norm, pre_bias
        size = math.prod(self.data_shape)
        self.weight = nn.Parameter(F.normalize(torch.randn(size, latent_dim), dim=0))  # [X, D]
        self.bias = nn.Parameter(torch.zeros(size))  # b_dec [X]
        self.register_buffer("from_data", torch.zeros((), dtype=torch.bool))  # started from a sample once

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.linear(z, self.weight, self.bias).view(-1, *self.data_shape)

    def atom_norms(self) -> torch.Tensor:
        """||W_dec,i||_2 of each atom, ``[D]``."""
        return self.weight.norm(dim=0)

    @torch.no_grad()
    def init_from_data(self, batch) -> None:
        """b_dec at the geometric median of the sample's targets (once: a trained dictionary keeps its own)."""
        if not self.from_data:
            self.bias.copy_(geometric_median(targets_of(batch)))
            self.from_data.fill_(True)

    @torch.no_grad()
    def before_optimizer_step(self, ctx) -> None:
        """Remove from each column's gradient its component along the column: g_d <- g_d - (w_d . g_d) w_d."""
        w, g = self.weight, self.weight.grad
        if self.unit_norm and g is not None:
            g.sub_(w * (w * g).sum(0, keepdim=True))

    @torch.no_grad()
    def after_optimizer_step(self, ctx) -> None:
        self.after_average()

    @torch.no_grad()
    def after_average(self) -> None:
        """Columns back to unit norm."""
        if self.unit_norm:
            self.weight.div_(self.weight.norm(dim=0, keepdim=True).clamp_min(1e-12))


@register_part("backbones", "dictionary", "the input as a vector, and a decoder of unit-norm atoms x_hat = W z + b "
               "(sparse autoencoders and transcoders)")
def dictionary_backbone(hidden, channels, act, *, context: PartContext, unit_norm: bool = True,
                        pre_bias: bool = True) -> tuple[nn.Module, nn.Module]:
    if context.n_params != 1:
        raise ConfigError("backbone=dictionary decodes one value per input element; choose a likelihood with a fixed "
                          "scale (likelihood=gaussian, the sparse autoencoder's squared error)")
    if context.condition_dim:
        raise ConfigError("backbone=dictionary takes no condition; drop condition_dim")
    return VectorInput(context.data_shape), Dictionary(context.latent_dim, context.data_shape, bool(unit_norm),
                                                       bool(pre_bias))


class Code(NamedTuple):
    """A sparse code ``z [B, *L, D]``; where the code chose its latents (TopK), their ``indices [B, *L, k]`` and
    ``values`` (``z`` at them), which count the active latents without a pass over all D."""

    z: torch.Tensor
    indices: torch.Tensor | None = None
    values: torch.Tensor | None = None


class SparseCode(Bottleneck):
    """z = sigma(W_enc (h - b_pre) + b_enc) at every position (module docstring); a family sets sigma
    (:meth:`code`) and its own terms (:meth:`code_terms`).

    ``dead_tokens``: a latent that has not fired in that many training tokens is dead (Gao et al. 2024; the
    ``since_fired`` buffer counts them, and the statistic ``dead_in_training``, logged at every step, is their
    share); ``aux_k`` > 0 adds the AuxK term: the residual e = x - x_hat of the
    reconstruction, taken as fixed, is reconstructed by the ``aux_k`` largest pre-activations of the dead latents
    alone, e_hat = W_dec z_aux, without b_dec (the residual holds no bias: the decoder bias is counted once), and
    ``auxk`` = ||e - e_hat||^2 / 2 per example (Gao et al. 2024, Appendix A.2; weight 1/32). ``data_norm``
    n = sqrt(mean_n ||x_n - mean(x)||^2) of the targets, measured on the starting sample: a penalty is written for
    the data divided by n, so that its weight does not depend on the activations' scale."""

    terms: ClassVar[dict[str, Term]] = {"l0": Term(log_only=True)}

    def __init__(self, context: PartContext, prior=None, aux_k: int = 0, dead_tokens: int = 10_000_000) -> None:
        super().__init__(context)
        require(not context.condition_dim, "a sparse code takes no condition; drop condition_dim")
        require(isinstance(aux_k, int) and aux_k >= 0, f"bottleneck.aux_k={aux_k} must be a whole number >= 0")
        require(isinstance(dead_tokens, int) and dead_tokens >= 1,
                f"bottleneck.dead_tokens={dead_tokens} must be a whole number >= 1")
        self.aux_k, self.dead_tokens = min(aux_k, self.latent_dim), dead_tokens
        self.proj = nn.Linear(self.in_features, self.latent_dim)  # W_enc, b_enc
        self.register_buffer("since_fired", torch.zeros(self.latent_dim, dtype=torch.long))
        self.register_buffer("data_norm", torch.ones(()))
        self.register_buffer("from_data", torch.zeros((), dtype=torch.bool))  # started from a sample once
        self.model: ModelRef | None = None

    # The model it sits in.
    def bind(self, model) -> None:
        """Keep the model; over a dictionary decoder of the input's size the encoder starts as its transpose, b_enc
        = 0."""
        self.model = ModelRef(model)
        dictionary = self.dictionary
        if dictionary is not None and tuple(dictionary.weight.shape) == (self.in_features, self.latent_dim):
            with torch.no_grad():
                self.proj.weight.copy_(dictionary.weight.t())
                self.proj.bias.zero_()

    @property
    def dictionary(self) -> Dictionary | None:
        decoder = None if self.model is None else getattr(self.model(), "decoder", None)
        return decoder if isinstance(decoder, Dictionary) else None

    def atom_norms(self) -> torch.Tensor:
        """||W_dec,i|| of each latent's atom (1 without a dictionary), ``[D]``."""
        dictionary = self.dictionary
        return self.proj.bias.new_ones(self.latent_dim) if dictionary is None else dictionary.atom_norms()

    @torch.no_grad()
    def init_from_data(self, batch) -> None:
        """``data_norm`` from the sample (once: a trained code keeps its own); :meth:`start_from_data` is what a
        family adds."""
        if self.from_data:
            return
        target = targets_of(batch)
        self.data_norm.copy_((target - target.mean(0)).pow(2).sum(1).mean().sqrt().clamp_min(1e-12))
        self.start_from_data()
        self.from_data.fill_(True)

    def start_from_data(self) -> None:
        """A family's own start once ``data_norm`` is known (a threshold in its units); nothing by default."""

    # The code.
    def pre_activations(self, h: torch.Tensor) -> torch.Tensor:
        """W_enc (h - b_pre) + b_enc, ``[B, *L, D]``; b_pre is the dictionary's bias where it is one."""
        dictionary = self.dictionary
        if dictionary is not None and dictionary.pre_bias and dictionary.bias.shape[0] == h.shape[-1]:
            # W_enc h + (b_enc - W_enc b_dec): one product of the batch, and b_dec's gradient through one of size D
            return F.linear(h, self.proj.weight, self.proj.bias - F.linear(dictionary.bias, self.proj.weight))
        return self.proj(h)

    def code(self, pre: torch.Tensor, batch=None) -> Code:
        raise NotImplementedError

    def code_terms(self, pre: torch.Tensor, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """The family's own terms per example (a sparsity penalty); none by default."""
        return {}

    def samples(self, z: torch.Tensor, n_samples: int) -> torch.Tensor:
        """The codes the decoder reconstructs from, ``[S, B, *L, D]``: the code itself, S times."""
        return z.unsqueeze(0).expand(n_samples, *z.shape)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        pre = self.pre_activations(h)  # [B, *L, D]
        code = self.code(pre, batch)
        z, params = code.z, {"pre": pre}
        if code.indices is None:
            active = z != 0
        else:  # only the chosen can be non-zero: count among them [B, *L, k]
            active = code.values != 0
            params["fired"] = code.indices[active]  # the latents that fired, with repeats
        terms = {"l0": active.flatten(1).sum(-1).to(z.dtype), **self.code_terms(pre, z)}
        stats = {"dead_in_training": self.dead().to(z.dtype).mean()}  # logged at every step
        return BottleneckOutput(z=self.samples(z, n_samples), mean=z, params=params, terms=terms, stats=stats)

    def penalty_scale(self, power: int) -> torch.Tensor:
        """n^2 / 2 / n^power: a penalty P of the codes of data divided by n, P(z / n) = P(z) / n^power, written in
        the units of the reconstruction term ||x - x_hat||^2 / 2."""
        return self.data_norm.pow(2 - power) / 2

    # Dead latents and AuxK.
    def dead(self) -> torch.Tensor:
        """``[D]`` bool: the latents that have not fired in the last ``dead_tokens`` training tokens."""
        return self.since_fired >= self.dead_tokens

    @torch.no_grad()
    def after_optimizer_step(self, ctx) -> None:
        """Count the step's tokens since each latent last fired."""
        if ctx.optimizer != "model" or not ctx.outputs:
            return
        fired = torch.zeros(self.latent_dim, device=self.since_fired.device)
        tokens = torch.zeros((), device=self.since_fired.device)
        for out in ctx.outputs:
            z = out.latent.mean.reshape(-1, self.latent_dim)  # [tokens, D]
            chosen = out.latent.params.get("fired")
            fired = fired.index_fill_(0, chosen, 1.0) if chosen is not None else torch.maximum(
                fired, (z != 0).any(0).to(fired.dtype))
            tokens += z.shape[0]
        fired, tokens = ctx.all_reduce(fired, "max"), ctx.all_reduce(tokens, "sum")
        self.since_fired.add_(tokens.long()).masked_fill_(fired.bool(), 0)

    def reconstruction_terms(self, latent: BottleneckOutput, x_params: torch.Tensor,
                             target: torch.Tensor) -> dict[str, torch.Tensor]:
        dictionary = self.dictionary
        if not self.aux_k or dictionary is None:
            return {}
        pre = latent.params["pre"].reshape(target.shape[0], self.latent_dim)  # [B, D]
        dead = self.dead()
        k = min(self.aux_k, int(dead.sum()))
        if k == 0:
            return {"auxk": pre.new_zeros(pre.shape[0])}
        z_aux = keep_top(pre.masked_fill(~dead, -torch.inf), k).z  # the k largest among the dead
        e = (target - x_params[-1]).reshape(pre.shape[0], -1).detach()  # the full code's residual [B, X]
        e_hat = z_aux @ dictionary.weight.t()  # W_dec z_aux, no b_dec
        return {"auxk": 0.5 * (e - e_hat).pow(2).sum(-1)}


def _check_k(k: int, latent_dim: int) -> int:
    require(isinstance(k, int) and 1 <= k <= latent_dim,
            f"bottleneck.k={k} must be a whole number from 1 to latent_dim={latent_dim}")
    return k


def keep_top(values: torch.Tensor, k: int) -> Code:
    """``values`` with all but the k largest of each row (last axis) set to 0, and ReLU applied."""
    top = values.topk(k, dim=-1)
    kept = top.values.relu()
    return Code(torch.zeros_like(values).scatter_(-1, top.indices, kept), top.indices, kept)


AUXK = {"l0": Term(log_only=True), "auxk": Term(weight=1 / 32)}


@register_part("bottlenecks", "topk", "TopK sparse code: the k largest pre-activations of each row, the rest 0, "
               "with AuxK (Gao et al. 2024)")
class TopK(SparseCode):
    """z = ReLU(TopK_k(W_enc (h - b_pre) + b_enc)) (Gao et al. 2024, Eq. 2); ``k``: the active latents of each row;
    ``aux_k``: AuxK's latents (512 in the paper; at most D)."""

    terms: ClassVar[dict[str, Term]] = AUXK

    def __init__(self, context: PartContext, prior=None, k: int = 32, aux_k: int = 512,
                 dead_tokens: int = 10_000_000) -> None:
        super().__init__(context, aux_k=aux_k, dead_tokens=dead_tokens)
        self.k = _check_k(k, self.latent_dim)

    def code(self, pre: torch.Tensor, batch=None) -> torch.Tensor:
        return keep_top(pre, self.k)


@register_part("bottlenecks", "batchtopk", "BatchTopK: the k * B largest pre-activations of the batch in training, "
               "a learned threshold at inference (Bussmann et al. 2024)")
class BatchTopK(TopK):
    """In training z = ReLU(pre) kept at the k * N largest entries of the batch's N codes together (rows may hold
    more or fewer than k); the threshold theta, an average of each training batch's smallest kept activation
    (theta <- decay * theta + (1 - decay) * min, the first batch's min taken as is), gives at inference
    z = pre * 1[pre > theta] for each row alone (Bussmann et al. 2024, "BatchTopK Sparse Autoencoders"). Before any
    training step the threshold is unset and inference keeps the k largest of each row."""

    def __init__(self, context: PartContext, prior=None, k: int = 32, aux_k: int = 512,
                 dead_tokens: int = 10_000_000, threshold_decay: float = 0.999) -> None:
        super().__init__(context, k=k, aux_k=aux_k, dead_tokens=dead_tokens)
        require(0 <= threshold_decay < 1, f"bottleneck.threshold_decay={threshold_decay} must be in [0, 1)")
        self.threshold_decay = threshold_decay
        self.register_buffer("threshold", torch.full((), -1.0))  # < 0: not yet estimated

    def code(self, pre: torch.Tensor, batch=None) -> torch.Tensor:
        if self.training:
            flat = pre.reshape(-1, self.latent_dim).relu()  # [N, D]
            kept = flat.flatten().topk(min(self.k * flat.shape[0], flat.numel()))
            z = torch.zeros_like(flat).flatten().scatter_(0, kept.indices, kept.values)
            return Code(z.view_as(pre))
        if self.threshold < 0:
            return keep_top(pre, self.k)
        return Code(pre * (pre > self.threshold))

    @torch.no_grad()
    def after_optimizer_step(self, ctx) -> None:
        super().after_optimizer_step(ctx)
        if ctx.optimizer != "model" or not ctx.outputs:
            return
        kept = torch.cat([out.latent.mean.flatten() for out in ctx.outputs])
        kept = kept[kept > 0]
        if kept.numel():
            low = ctx.all_reduce(kept.min(), "min")
            first = self.threshold < 0
            self.threshold.copy_(torch.where(first, low, self.threshold_decay * self.threshold
                                             + (1 - self.threshold_decay) * low))


@register_part("bottlenecks", "matryoshka", "Matryoshka: BatchTopK whose nested dictionary prefixes each reconstruct "
               "(Bussmann et al. 2025)")
class Matryoshka(BatchTopK):
    """BatchTopK codes whose nested prefixes z_{1:m} each reconstruct the input: in training the decoder decodes
    the code cut to each prefix m_1 < ... < m_G = D, one sample each, so the ``recon`` term is the mean over the
    prefixes of ||x - (W_dec[:, :m] z_{1:m} + b_dec)||^2 / 2 (Bussmann et al. 2025, "Learning Multi-Level Features
    with Matryoshka Sparse Autoencoders", Eq. 3, which sums them: a constant factor G). ``groups`` G: the prefixes
    D / 2^(G-1), ..., D / 2, D. At inference the code is the whole one."""

    def __init__(self, context: PartContext, prior=None, k: int = 32, aux_k: int = 512,
                 dead_tokens: int = 10_000_000, threshold_decay: float = 0.999, groups: int = 5) -> None:
        super().__init__(context, k=k, aux_k=aux_k, dead_tokens=dead_tokens, threshold_decay=threshold_decay)
        require(isinstance(groups, int) and groups >= 1, f"bottleneck.groups={groups} must be a whole number >= 1")
        self.prefixes = sorted({max(1, self.latent_dim >> (groups - 1 - g)) for g in range(groups)})

    def samples(self, z: torch.Tensor, n_samples: int) -> torch.Tensor:
        if not self.training:
            return super().samples(z, n_samples)
        positions = torch.arange(self.latent_dim, device=z.device)
        masks = torch.stack([positions < m for m in self.prefixes]).to(z.dtype)  # [G, D]
        return z.unsqueeze(0) * masks.view(len(self.prefixes), *([1] * (z.dim() - 1)), -1)  # [G, B, *L, D]


@register_part("bottlenecks", "gradient-topk", "g-SAE: the k latents chosen with a downstream loss's gradient "
               "(Olmo et al. 2024)")
class GradientTopK(TopK):
    """The TopK code whose k latents are chosen by their activation and their effect on a downstream loss L
    (Olmo et al. 2024, "Features that Make a Difference"): with a = ReLU(pre) and the gradient g = dL/dx of the
    batch (``Batch.gradient``), the kept latents are the k largest of a * (1 + beta |W_dec^T g|), and they keep
    their values a. Without a gradient (or a dictionary) the choice is TopK's."""

    def __init__(self, context: PartContext, prior=None, k: int = 32, aux_k: int = 512,
                 dead_tokens: int = 10_000_000, beta: float = 1.0) -> None:
        super().__init__(context, k=k, aux_k=aux_k, dead_tokens=dead_tokens)
        require(beta >= 0, f"bottleneck.beta={beta} must be >= 0")
        self.beta = beta

    def code(self, pre: torch.Tensor, batch=None) -> torch.Tensor:
        gradient = None if batch is None else batch.gradient
        dictionary = self.dictionary
        if gradient is None or dictionary is None:
            return keep_top(pre, self.k)
        a = pre.relu()  # [B, D]
        effect = (gradient.reshape(a.shape[0], -1).to(a.dtype) @ dictionary.weight).abs()  # |W_dec^T g| [B, D]
        chosen = (a * (1 + self.beta * effect)).topk(self.k, dim=-1).indices
        kept = a.gather(-1, chosen)
        return Code(torch.zeros_like(a).scatter_(-1, chosen, kept), chosen, kept)
