"""Priors over the codes of a quantised autoencoder, so that it generates: p(k) over the token sequence of an
example's codes ``[B, *L, G]`` read position by position (row-major over the grid, the G columns of a position
together), T = prod(L) G tokens, token i drawn from its column's codebook.

    autoregressive   p(k) = prod_i p(k_i | k_<i), a causal Transformer     van den Oord et al. 2017; Esser et al. 2021
    masked           MaskGIT: a bidirectional Transformer predicts masked   Chang et al. 2022; Li et al. 2023 (MAGE)
                     tokens; generation unmasks the most confident in a
                     few parallel steps

Both embed token i as e[offset_g + k_i] + p_i (one table over the columns' vocabularies, learnt positions) and
read logits from one head, each position's limited to its column's codebook. Each gives ``nll(codes)`` (its
training loss per example, in nats), ``log_prob(codes)`` (an exact log-likelihood) and ``sample(n)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.vit import Block, init_weights
from aekit.parts import register_part

MAX_VOCABULARY = 1 << 20  # the embedding table's rows at most


class CodeTransformer(nn.Module):
    """Token and position embeddings, ``depth`` pre-norm blocks (``causal`` or not), a final norm and a head to
    the largest codebook; the logits of a token outside its column's codebook are -inf."""

    def __init__(self, sizes: list[int], positions: int, width: int, depth: int, heads: int, causal: bool) -> None:
        super().__init__()
        require(sum(sizes) + 1 <= MAX_VOCABULARY, f"the codebooks hold {sum(sizes)} codes in all; a prior over codes "
                f"embeds at most {MAX_VOCABULARY - 1} (use fewer bits or levels)")
        require(width > 0 and depth > 0 and heads > 0, "width, depth and heads must be >= 1")
        self.sizes, self.columns, self.length = list(sizes), len(sizes), positions * len(sizes)
        self.special = sum(sizes)  # BOS for the autoregressive prior, MASK for the masked one
        self.register_buffer("offsets", torch.tensor([0, *sizes[:-1]]).cumsum(0).repeat(positions), persistent=False)
        self.register_buffer("valid", torch.arange(max(sizes)) < torch.tensor(sizes).unsqueeze(1), persistent=False)
        self.embed = nn.Embedding(self.special + 1, width)
        self.position = nn.Parameter(torch.zeros(1, self.length, width))  # p_i
        self.blocks = nn.ModuleList(Block(width, heads, causal=causal) for _ in range(depth))
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, max(sizes))
        self.apply(init_weights)
        nn.init.trunc_normal_(self.position, std=0.02)
        nn.init.trunc_normal_(self.embed.weight, std=0.02)

    def ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Embedding rows of ``codes [B, T]``: offset_g + k_i."""
        return codes + self.offsets

    def features(self, ids: torch.Tensor) -> torch.Tensor:
        """The last block's normalised token features ``[B, T, W]`` for the embedding rows ``ids [B, T]``."""
        h = self.embed(ids) + self.position  # [B, T, W]
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, T, K_max]`` for the embedding rows ``ids [B, T]`` (the special token where masked)."""
        logits = self.head(self.features(ids))  # [B, T, K_max]
        column_valid = self.valid[torch.arange(self.length, device=ids.device) % self.columns]  # [T, K_max]
        return logits.masked_fill(~column_valid, -torch.inf)


@register_part("code_priors", "autoregressive", "p(k) = prod_i p(k_i | k_<i), a causal Transformer over the codes")
class AutoregressivePrior(nn.Module):
    """p(k) = prod_i p(k_i | k_<i) (the PixelCNN prior of VQ-VAE, a Transformer as in Esser et al. 2021): the
    input is BOS, k_1, ..., k_{T-1}, causally attended; the loss is the exact -log p(k). Sampling draws token by
    token at ``temperature``."""

    def __init__(self, sizes: list[int], positions: int, width: int = 128, depth: int = 4, heads: int = 4) -> None:
        super().__init__()
        self.net = CodeTransformer(sizes, positions, width, depth, heads, causal=True)

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """log p(k) ``[B]`` of ``codes [B, T]``."""
        ids = self.net.ids(codes)
        bos = torch.full_like(ids[:, :1], self.net.special)
        logits = self.net(torch.cat([bos, ids[:, :-1]], 1))  # [B, T, K]
        return -F.cross_entropy(logits.transpose(1, 2), codes, reduction="none").sum(-1)

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        return -self.log_prob(codes)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        """``n`` code sequences ``[n, T]``, token by token."""
        device = self.net.position.device
        ids = torch.full((n, 1), self.net.special, dtype=torch.long, device=device)
        codes = torch.zeros(n, self.net.length, dtype=torch.long, device=device)
        for i in range(self.net.length):
            h = self.net.embed(ids) + self.net.position[:, : i + 1]
            for block in self.net.blocks:
                h = block(h)
            logits = self.net.head(self.net.norm(h[:, -1]))[:, : self.net.sizes[i % self.net.columns]]  # [n, K_g]
            codes[:, i] = torch.multinomial(torch.softmax(logits / temperature, -1).cpu(), 1,
                                            generator=generator)[:, 0].to(device)
            ids = torch.cat([ids, codes[:, i:i + 1] + self.net.offsets[i]], 1)
        return codes


SCHEDULES = ("cosine", "mage")


@register_part("code_priors", "masked", "MaskGIT: masked-token prediction, parallel iterative decoding; MAGE's "
               "masking-ratio schedule as an option")
class MaskedTokenPrior(nn.Module):
    """A bidirectional Transformer that predicts masked tokens from the others (Chang et al. 2022, MaskGIT).

    Training masks a ratio r of each example's tokens, ``schedule`` ``cosine`` r = cos(pi u / 2), u ~ U(0, 1)
    (MaskGIT), or ``mage`` r from a Gaussian of mode 0.55 and deviation 0.25 truncated to [0.5, 1] (Li et al. 2023,
    whose high ratios serve both generation and the encoder's representation), and the loss is the cross-entropy
    of the masked tokens, their mean scaled by T so that it reads per example like a sequence's NLL (it is not
    one). Generation starts fully masked and, over ``steps`` steps, samples every masked token, keeps the
    ceil(T (1 - cos(pi s / 2S))) most confident (confidence: the log-probability plus Gumbel noise of scale
    ``choice_temperature`` (1 - s / S)) and masks the rest again.

    ``log_prob`` is exact for one decoding order: log p(k) = sum_t log p(k_{o_t} | k_{o_<t}) for a random order
    o, one token unmasked at a time, T forward passes (the any-order view of masked models); it is a valid
    log-likelihood whose value depends on the order drawn."""

    def __init__(self, sizes: list[int], positions: int, width: int = 128, depth: int = 4, heads: int = 4,
                 schedule: str = "cosine", steps: int = 8, choice_temperature: float = 4.5) -> None:
        super().__init__()
        require_choice(schedule, SCHEDULES, "network.schedule")
        require(steps >= 1, f"network.steps={steps}: decoding needs at least one step")
        self.net = CodeTransformer(sizes, positions, width, depth, heads, causal=False)
        self.schedule, self.steps, self.choice_temperature = schedule, steps, choice_temperature

    def represent(self, codes: torch.Tensor) -> torch.Tensor:
        """MAGE's representation of an example: the mean over its tokens of the features of its codes, none masked
        ``[B, W]`` (Li et al. 2023 train with the high ratios of ``schedule=mage`` for it)."""
        return self.net.features(self.net.ids(codes)).mean(1)

    def mask_ratio(self, n: int, device: torch.device) -> torch.Tensor:
        """r ``[n]`` for the training masks."""
        if self.schedule == "cosine":
            return torch.cos(0.5 * math.pi * torch.rand(n, device=device))
        r = torch.empty(n, device=device)
        return nn.init.trunc_normal_(r, mean=0.55, std=0.25, a=0.5, b=1.0)

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        b, t = codes.shape
        count = (self.mask_ratio(b, codes.device) * t).ceil().clamp(1, t)  # tokens to mask [B]
        ranks = torch.rand(b, t, device=codes.device).argsort(-1).argsort(-1)
        masked = ranks < count.unsqueeze(1)  # [B, T]
        ids = self.net.ids(codes).masked_fill(masked, self.net.special)
        ce = F.cross_entropy(self.net(ids).transpose(1, 2), codes, reduction="none")  # [B, T]
        return (ce * masked).sum(-1) / masked.sum(-1) * t

    def log_prob(self, codes: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, t = codes.shape
        order = torch.rand(b, t, generator=generator).argsort(-1).to(codes.device)  # o [B, T]
        ids = torch.full_like(codes, self.net.special)
        total = codes.new_zeros(b, dtype=torch.float32)
        rows = torch.arange(b, device=codes.device)
        for step in range(t):
            i = order[:, step]
            log_p = torch.log_softmax(self.net(ids)[rows, i], -1)  # [B, K]
            total = total + log_p[rows, codes[rows, i]]
            ids[rows, i] = codes[rows, i] + self.net.offsets[i]
        return total

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, temperature: float = 1.0) -> torch.Tensor:
        t, device = self.net.length, self.net.position.device
        ids = torch.full((n, t), self.net.special, dtype=torch.long, device=device)
        codes = torch.zeros(n, t, dtype=torch.long, device=device)
        masked = torch.ones(n, t, dtype=torch.bool, device=device)
        for s in range(1, self.steps + 1):
            probs = torch.softmax(self.net(ids) / temperature, -1).cpu()  # [n, T, K]
            drawn = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(n, t).to(device)
            drawn = torch.where(masked, drawn, codes)
            gumbel = -torch.log(-torch.log(torch.rand(n, t, generator=generator).clamp(1e-20, 1.0))).to(device)
            confidence = torch.log(probs.to(device).gather(-1, drawn.unsqueeze(-1))[..., 0].clamp(min=1e-30))
            confidence = (confidence + self.choice_temperature * (1 - s / self.steps) * gumbel)
            confidence = confidence.masked_fill(~masked, torch.inf)  # decided tokens stay
            keep_masked = math.floor(t * math.cos(0.5 * math.pi * s / self.steps)) if s < self.steps else 0
            ranks = confidence.argsort(-1).argsort(-1)
            masked = ranks < keep_masked
            codes = drawn
            ids = torch.where(masked, self.net.special, self.net.ids(codes))
        return codes
