"""Quantisers with an implicit codebook, one scalar grid per coordinate: FSQ and residual FSQ (Mentzer et al.
2023), lookup-free quantisation (LFQ, Yu et al. 2023, MAGVIT-v2) and binary spherical quantisation (BSQ, Zhao et
al. 2024). No entry is stored or searched: a code is the coordinates' grid positions, read as one integer."""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from aekit.config import require
from aekit.nn.priors import Prior
from aekit.nn.quantize.base import Quantized, Quantizer, codebook_loss, commitment, straight_through
from aekit.objectives import Term
from aekit.parts import PartContext, register_part

INDEX_BITS = 62  # the most bits one int64 code holds


def round_ste(z: torch.Tensor) -> torch.Tensor:
    """round(z) forward, the identity gradient."""
    return z + (torch.round(z) - z).detach()


@register_part("bottlenecks", "fsq", "finite scalar quantisation: each coordinate bounded and rounded to `levels` "
               "values, no codebook, no auxiliary loss (Mentzer et al. 2023); `stages` > 1: residual FSQ")
class FSQ(Quantizer):
    """z_hat_i = round(f(z_i)) / floor(L_i / 2), f(z) = (L - 1)(1 + eps) / 2 * tanh(z + shift) - offset (offset =
    1/2 and shift = atanh(offset / half_L) for even L, so that the L values are symmetric after rounding), with
    the straight-through gradient of round. The code is the mixed-radix number sum_i (round(f(z_i)) + floor(L_i /
    2)) prod_{j < i} L_j < prod_i L_i. ``levels`` (each >= 2) per coordinate of a head; ``heads`` codes per vector.

    ``stages`` > 1 (residual FSQ): stage s quantises the residual r_s scaled up by (L - 1)^s per coordinate and
    passes on its value scaled back, z_hat = sum_s FSQ(r_s (L - 1)^s) / (L - 1)^s, each stage a finer grid.

    ``normalise`` (true): z_e's coordinates are standardised over the batch first (a batch norm without affine
    parameters, its running statistics in evaluation). The bound's tanh has flat tails: with an encoder whose
    outputs are not normalised, a coordinate the decoder does not yet use drifts into them, its gradient vanishes,
    and it is stuck on one level for good (on MNIST, one of 4 coordinates in every run, capping the codes used at
    a fifth). Standardised, every coordinate spreads over its levels."""

    terms: ClassVar[dict[str, Term]] = {}

    def __init__(self, context: PartContext, prior: Prior | None = None, levels: tuple[int, ...] = (8, 5, 5, 5),
                 heads: int = 1, stages: int = 1, normalise: bool = True) -> None:
        levels = tuple(int(v) for v in levels)
        require(len(levels) >= 1 and all(v >= 2 for v in levels), f"bottleneck.levels={list(levels)}: each "
                "coordinate needs at least 2 levels, e.g. [8, 5, 5, 5]")
        require(heads >= 1 and stages >= 1, "bottleneck.heads and bottleneck.stages must be >= 1")
        require(sum(math.log2(v) for v in levels) <= INDEX_BITS, f"bottleneck.levels={list(levels)} make "
                f"{math.prod(levels)} codes, more than an int64 code holds; use fewer levels or more heads")
        super().__init__(context, heads * len(levels), normalise)
        self.heads, self.stages = heads, stages
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.tensor((1, *levels[:-1])), 0), persistent=False)
        counts = torch.tensor(levels, dtype=torch.float32)
        half_l = (counts - 1) * (1 + 1e-3) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        for name, value in {"half_l": half_l, "offset": offset, "shift": torch.atanh(offset / half_l),
                            "half_width": (self.levels // 2).float(), "step": counts - 1}.items():
            self.register_buffer(name, value, persistent=False)

    @property
    def codebook_sizes(self) -> list[int]:
        return [math.prod(self.levels.tolist())] * (self.heads * self.stages)

    def quantize_stage(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One FSQ of ``z [N, H, d]``: the values in [-1, 1] ``[N, H, d]`` and the codes ``[N, H]``."""
        rounded = round_ste(torch.tanh(z + self.shift) * self.half_l - self.offset)  # integers in [-L/2, L/2]
        digits = (rounded.detach() + self.half_width).long()  # [N, H, d], each in [0, L)
        return rounded / self.half_width, (digits * self.basis).sum(-1)

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        r = z_e.view(len(z_e), self.heads, -1)  # [N, H, d]
        if self.stages == 1:
            value, codes = self.quantize_stage(r)
            return Quantized(z=value.flatten(1), codes=codes)
        scale = self.step
        z_hat, codes = torch.zeros_like(r), []
        for s in range(self.stages):
            value, k = self.quantize_stage(r * scale ** s)
            z_hat = z_hat + value / scale ** s
            r = r - (value / scale ** s).detach()
            codes.append(k)
        return Quantized(z=z_hat.flatten(1), codes=torch.cat(codes, -1))

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        digits = (codes.view(len(codes), self.stages, self.heads, 1) // self.basis) % self.levels  # [N, s, H, d]
        values = (digits - self.half_width) / self.half_width
        scales = self.step ** torch.arange(self.stages, device=codes.device).view(-1, 1, 1)
        return (values / scales).sum(1).flatten(1)  # [N, c]


@register_part("bottlenecks", "lfq", "lookup-free quantisation: the sign of each of `bits` coordinates, with the "
               "entropy loss computed in chunks (Yu et al. 2023); `spherical`: BSQ (Zhao et al. 2024)")
class LFQ(Quantizer):
    """q_i = s sign(z_i), the code sum_i [q_i > 0] 2^i (per head of ``bits`` coordinates, at most 62), with the
    straight-through gradient, the commitment term ||z - sg(q)||^2 (on by default) and MAGVIT-v2's entropy term

        entropy = E_n[H(p(c | z_n))] - gamma H(E_n[p(c | z_n)]),   p(c | z) = softmax_c(-||z - c||^2 / T),

    small when each vector is confidently one code and the batch spreads over many. Since ||c||^2 is the same
    for every code, p(c | z) factorises over the bits, p(q_i = +s | z) = sigmoid(4 s z_i / T): the first part is
    a sum of binary entropies, exactly, and the second a sum over the codes of each group of at most
    ``entropy_group_bits`` bits (one group when bits fit), computed over chunks of codes, each recomputed in the
    backward pass, so memory stays O(rows x chunk) (a bits-wide code's 2^bits probabilities never exist at once).
    The batch term is scaled by the rows per example, as the per-example terms are sums over an example's rows.

    ``spherical`` (BSQ): z is first projected to the unit sphere, u = z / ||z||, and s = 1 / sqrt(bits), so
    codes and inputs both lie on it.

    ``stages`` > 1 (residual LFQ): stage t quantises what the stages before left at the scale s 2^-t,
    z_hat = sum_t q_t, each stage with its commitment and entropy terms (summed). ``normalise`` (true): z_e's
    coordinates standardised over the batch first, as :class:`FSQ`'s, so every bit starts balanced."""

    terms: ClassVar[dict[str, Term]] = {"commit": Term(weight=0.25), "entropy": Term(weight=0.1, batch=True)}

    def __init__(self, context: PartContext, prior: Prior | None = None, bits: int = 10, heads: int = 1,
                 spherical: bool = False, temperature: float = 1.0, diversity: float = 1.0,
                 entropy_group_bits: int = 12, chunk: int = 1 << 22, stages: int = 1, normalise: bool = True) -> None:
        require(1 <= bits <= INDEX_BITS, f"bottleneck.bits={bits}: a code of more than {INDEX_BITS} bits does not "
                f"fit an int64 index; use at most {INDEX_BITS} bits per head and more heads")
        require(heads >= 1, f"bottleneck.heads={heads} must be >= 1")
        require(temperature > 0, f"bottleneck.temperature={temperature} must be > 0")
        require(diversity >= 0, f"bottleneck.diversity={diversity} must be >= 0")
        require(1 <= entropy_group_bits <= 20, f"bottleneck.entropy_group_bits={entropy_group_bits} must lie in "
                "1..20")
        require(stages >= 1 and not (spherical and stages > 1), f"bottleneck.stages={stages} must be >= 1 (and 1 "
                "with spherical=true: the residual of a point on the sphere is not on it)")
        super().__init__(context, heads * bits, normalise)
        self.bits, self.heads, self.spherical, self.stages = bits, heads, spherical, stages
        self.temperature, self.diversity = temperature, diversity
        self.group_bits, self.chunk = entropy_group_bits, chunk
        self.scale = 1 / math.sqrt(bits) if spherical else 1.0
        self.register_buffer("powers", 2 ** torch.arange(bits), persistent=False)

    @property
    def codebook_sizes(self) -> list[int]:
        return [1 << self.bits] * (self.heads * self.stages)

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        z = z_e.view(len(z_e), self.heads, self.bits)  # [N, H, b]
        if self.spherical:
            z = torch.nn.functional.normalize(z, dim=-1)
        r, z_hat, codes, commit, entropy = z, torch.zeros_like(z), [], 0, 0
        for t in range(self.stages):
            scale = self.scale * 2.0 ** -t
            q = torch.where(r > 0, scale, -scale)
            codes.append(((r > 0).long() * self.powers).sum(-1))  # [N, H]
            commit = commit + commitment(r, q)
            entropy = entropy + self.entropy(4 * scale * r / self.temperature)  # from the logits of q_i = +s
            z_hat, r = z_hat + q, r - q
        return Quantized(z=(z + (z_hat - z).detach()).flatten(1), codes=torch.cat(codes, -1),
                         terms={"commit": commit}, batch_terms={"entropy": entropy})

    def entropy(self, logits: torch.Tensor) -> torch.Tensor:
        """E_n[H(p(c|z_n))] - gamma H(E_n p(c|z_n)), summed over heads, from the bits' logits ``[N, H, b]``."""
        per_sample = binary_entropy(logits).sum(-1).mean(0).sum()  # exact: the bits are independent given z
        codebook = logits.new_zeros(())
        for h in range(self.heads):
            for start in range(0, self.bits, self.group_bits):
                codebook = codebook + mean_code_entropy(logits[:, h, start:start + self.group_bits], self.chunk)
        return per_sample - self.diversity * codebook

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        bits = (codes.view(len(codes), self.stages, self.heads, 1) // self.powers) % 2  # [N, stages, H, b]
        scales = self.scale * 2.0 ** -torch.arange(self.stages, device=codes.device).view(-1, 1, 1)
        return torch.where(bits > 0, scales, -scales).sum(1).flatten(1)


def binary_entropy(logits: torch.Tensor) -> torch.Tensor:
    """H of Bernoulli(sigmoid(l)), in nats, elementwise: softplus(l) - l sigmoid(l)."""
    return torch.nn.functional.softplus(logits) - logits * torch.sigmoid(logits)


def mean_code_entropy(logits: torch.Tensor, chunk: int) -> torch.Tensor:
    """H(p_bar), p_bar(c) = (1/N) sum_n prod_i p(c_i | l_ni), over the 2^g codes of ``logits [N, g]``: log p(c | l_n)
    = sum_i log sigmoid(-l_ni) + sum_i c_i l_ni, a matrix product per chunk of codes, each chunk's mean taken under
    activation checkpointing so that no [N, 2^g] matrix is kept for the backward pass."""
    n, g = logits.shape
    base = torch.nn.functional.logsigmoid(-logits).sum(-1, keepdim=True)  # [N, 1]
    codes_per_chunk = max(1, chunk // max(n, 1))
    all_codes = torch.arange(1 << g, device=logits.device)
    bits = ((all_codes.unsqueeze(-1) >> torch.arange(g, device=logits.device)) & 1).to(logits.dtype)  # [2^g, g]
    means = [checkpoint(_chunk_mean, base, logits, bits[start:start + codes_per_chunk], use_reentrant=False)
             for start in range(0, 1 << g, codes_per_chunk)]
    p_bar = torch.cat(means)  # [2^g]
    return -(p_bar * torch.log(p_bar.clamp(min=1e-30))).sum()


def _chunk_mean(base: torch.Tensor, logits: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
    return torch.exp(base + logits @ bits.t()).mean(0)  # [chunk]


@register_part("bottlenecks", "latent-quantize", "latent quantisation: each coordinate snapped to the nearest of its "
               "own learnt scalar values (Hsu et al. 2023, QLAE)")
class LatentQuantizer(Quantizer):
    """z_hat_j = v_{j, k_j}, k_j = argmin_k |z_j - v_{j,k}|: coordinate j of the code takes one of its own
    ``values`` learnt scalars v_j (starting evenly spaced on [-0.5, 0.5], as Hsu et al. 2023), passed on with
    the straight-through gradient and trained by the quantisation term ||sg(z) - z_hat||^2 (``codebook``) and the
    commitment term ||z - sg(z_hat)||^2, each weighted 0.01 as in the authors' configurations. The code is one
    index per coordinate, found by search over the values themselves, so it stays right however the learnt
    values move (an index computed from a uniform grid would not). A coordinate's values are a small codebook of
    their own: the code space is the product of the coordinates', values^d codes, as the paper's disentangling
    latent space asks."""

    terms: ClassVar[dict[str, Term]] = {"commit": Term(weight=0.01), "codebook": Term(weight=0.01)}

    def __init__(self, context: PartContext, prior: Prior | None = None, values: int = 10) -> None:
        require(values >= 2, f"bottleneck.values={values}: each coordinate needs at least 2 values")
        super().__init__(context, context.latent_dim)
        self.values = nn.Parameter(torch.linspace(-0.5, 0.5, values).repeat(context.latent_dim, 1))  # v [d, n]

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.values.shape[1]] * self.code_width

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        codes = (z_e.detach().unsqueeze(-1) - self.values.detach()).abs().argmin(-1)  # [N, d]
        z_hat = self.lookup(codes)  # [N, d]
        return Quantized(z=straight_through(z_e, z_hat), codes=codes,
                         terms={"commit": commitment(z_e, z_hat), "codebook": codebook_loss(z_e, z_hat)})

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.values.gather(1, codes.t()).t()  # v_{j, k_j} [N, d]
