"""Vector quantisation with a learnt codebook: VQ (van den Oord et al. 2017) and residual VQ (Zeghidour et al.
2021), each with heads (a codebook per slice of the code: multi-head and grouped VQ), EMA or gradient codebooks,
k-means initialisation, dead-code restarts, cosine codebooks, a lower-dimensional codebook, stochastic codes and
the rotation trick (:mod:`aekit.nn.quantize.codebook`, :func:`~aekit.nn.quantize.base.straight_through`).

VQ-VAE's objective, per example (summed over a grid's positions and the code's coordinates),

    L = -log p(x | z_q) + ||sg(z_e) - z_q||^2 + beta ||z_e - sg(z_q)||^2,

has the codebook term ``codebook`` only for a codebook learnt by gradient (``ema=false``; with EMA the entries
follow their averages instead) and the commitment term ``commit`` (beta = 0.25 by default, ``terms.commit=``).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require, require_choice
from aekit.nn.priors import Prior
from aekit.nn.quantize.base import (
    GRADIENTS,
    Quantized,
    Quantizer,
    check_codebook,
    codebook_loss,
    commitment,
    straight_through,
)
from aekit.nn.quantize.codebook import CHUNK, Codebook
from aekit.objectives import Term
from aekit.parts import PartContext, register_part


class CodebookQuantizer(Quantizer):
    """The settings every learnt codebook shares, checked once; ``stages`` codebooks of ``heads`` heads."""

    terms: ClassVar[dict[str, Term]] = {"commit": Term(weight=0.25), "codebook": Term(weight=1.0)}

    def __init__(self, context: PartContext, stages: int, codebook_size: int, codebook_dim: int, heads: int,
                 ema: bool, decay: float, cosine: bool, kmeans_iters: int, dead_after: int, temperature: float,
                 gradient: str, chunk: int, linear: bool = False) -> None:
        check_codebook(codebook_size)
        require(heads >= 1, f"bottleneck.heads={heads} must be >= 1")
        require(codebook_dim > 0 or context.latent_dim % heads == 0, f"latent_dim={context.latent_dim} does not "
                f"split into bottleneck.heads={heads}; choose heads that divide it or set bottleneck.codebook_dim")
        require(codebook_dim >= 0, f"bottleneck.codebook_dim={codebook_dim} must be >= 0 (0: latent_dim / heads)")
        require(0 < decay < 1, f"bottleneck.decay={decay} must lie in (0, 1)")
        require(kmeans_iters >= 0 and dead_after >= 0, "bottleneck.kmeans_iters and bottleneck.dead_after must be >= 0"
                " (0 turns each off)")
        require(temperature >= 0, f"bottleneck.temperature={temperature} must be >= 0 (0: the nearest code)")
        require_choice(gradient, GRADIENTS, "bottleneck.gradient")
        require(chunk >= 0, f"bottleneck.chunk={chunk} must be >= 0 (0: by device)")
        self.heads, self.dim = heads, codebook_dim or context.latent_dim // heads
        super().__init__(context, heads * self.dim)
        self.stages, self.ema, self.gradient = stages, ema, gradient
        self.codebooks = nn.ModuleList(
            Codebook(codebook_size, self.dim, heads, ema, decay, cosine=cosine, kmeans_iters=kmeans_iters,
                     dead_after=dead_after, temperature=temperature, chunk=chunk, linear=linear)
            for _ in range(stages))

    @property
    def codebook_sizes(self) -> list[int]:
        return [cb.size for cb in self.codebooks for _ in range(self.heads)]

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        parts = codes.view(len(codes), self.stages, self.heads)  # [N, stages, H]
        return sum(cb.lookup(parts[:, s]) for s, cb in enumerate(self.codebooks)).flatten(1)  # [N, c]

    def terms_of(self, r: torch.Tensor, e: torch.Tensor) -> dict[str, torch.Tensor]:
        """The commitment term, and the codebook term where the entries learn by gradient, for inputs ``r`` and
        their entries ``e`` ``[N, H, d]``."""
        terms = {"commit": commitment(r, e)}
        if not self.ema:
            terms["codebook"] = codebook_loss(r, e)
        return terms

    def codebook_stats(self) -> dict[str, torch.Tensor]:
        dead = sum(int((cb.idle >= cb.dead_after).sum()) for cb in self.codebooks if cb.dead_after > 0)
        return {"dead_codes": torch.tensor(float(dead))}

    def init_codebooks(self, rows: torch.Tensor, generator: torch.Generator) -> None:
        """k-means for each stage's codebook, on the residual the stage sees."""
        r = self.normalise(rows.view(len(rows), self.heads, self.dim))
        for cb in self.codebooks:
            cb.init_kmeans(r, generator)
            r = r - cb.lookup(cb(r))

    def update_codebooks(self, rows: dict[str, torch.Tensor], ctx) -> None:
        inputs = rows["inputs"].view(len(rows["inputs"]), self.stages, self.heads, self.dim)  # [N, stages, H, d]
        codes = rows["codes"].view(len(rows["codes"]), self.stages, self.heads)
        for s, cb in enumerate(self.codebooks):
            cb.update(inputs[:, s], codes[:, s], ctx)

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Inputs of a cosine codebook lie on the unit sphere, like its entries."""
        return F.normalize(z, dim=-1) if self.codebooks[0].cosine else z


@register_part("bottlenecks", "vq", "vector quantisation: the nearest of `codebook_size` learnt entries (EMA, "
               "k-means start, dead-code restarts; van den Oord et al. 2017)")
class VectorQuantizer(CodebookQuantizer):
    """z_q = e_k, k = argmin_j ||z_e - e_j||^2 (per head), passed on by the straight-through estimator or the
    rotation trick (``gradient``). Settings: ``codebook_size`` K; ``codebook_dim`` (0: latent_dim / heads; else
    the code is projected to heads x codebook_dim and back); ``heads``; ``ema`` and its ``decay`` (false: the
    codebook term learns the entries); ``cosine``; ``kmeans_iters`` (0: a random start); ``dead_after`` (steps
    unused before an entry restarts; 0: never); ``temperature`` (> 0: codes drawn from softmax(-d^2 / T) in
    training); ``chunk`` (distances held at once; 0: by device); ``orthogonal`` (with ``ema=false``): the
    ``orthogonal`` term ||E E^T - I||_F^2 / n^2 over the unit vectors E of at most ``orthogonal_codes`` entries the
    batch used, per head (Shin et al. 2021, as vector-quantize-pytorch's orthogonal regulariser; weight 10,
    ``terms.orthogonal=``), which spreads the learnt entries apart."""

    terms: ClassVar[dict[str, Term]] = {**CodebookQuantizer.terms, "orthogonal": Term(weight=10.0, batch=True)}
    orthogonal, orthogonal_codes = False, 128  # (SimVQ, built past this __init__, has no regulariser)

    def __init__(self, context: PartContext, prior: Prior | None = None, codebook_size: int = 512,
                 codebook_dim: int = 0, heads: int = 1, ema: bool = True, decay: float = 0.99, cosine: bool = False,
                 kmeans_iters: int = 10, dead_after: int = 20, temperature: float = 0.0, gradient: str = "ste",
                 chunk: int = CHUNK, orthogonal: bool = False, orthogonal_codes: int = 128) -> None:
        require(not (orthogonal and ema), "bottleneck.orthogonal=true regularises entries learnt by gradient; set "
                "bottleneck.ema=false with it")
        require(orthogonal_codes >= 2, f"bottleneck.orthogonal_codes={orthogonal_codes} must be >= 2")
        super().__init__(context, 1, codebook_size, codebook_dim, heads, ema, decay, cosine, kmeans_iters,
                         dead_after, temperature, gradient, chunk)
        self.orthogonal, self.orthogonal_codes = orthogonal, orthogonal_codes

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        z = self.normalise(z_e.view(len(z_e), self.heads, self.dim))  # [N, H, d]
        codebook = self.codebooks[0]
        codes = codebook(z.detach())  # [N, H]
        z_q = codebook.lookup(codes)  # [N, H, d]
        batch_terms = {"orthogonal": self.orthogonality(codes)} if self.orthogonal else {}
        return Quantized(z=straight_through(z, z_q, self.gradient).flatten(1), codes=codes,
                         terms=self.terms_of(z, z_q), hook={"inputs": z.detach().flatten(1)}, batch_terms=batch_terms)

    def orthogonality(self, codes: torch.Tensor) -> torch.Tensor:
        """||E E^T - I||_F^2 / n^2 over the unit vectors of (at most ``orthogonal_codes`` of) the entries that
        ``codes [N, H]`` use, averaged over the heads."""
        entries = self.codebooks[0].entries()  # [H, K, d]
        total = entries.new_zeros(())
        for h in range(self.heads):
            used = torch.unique(codes[:, h])
            used = used[torch.randperm(len(used), device=used.device)[: self.orthogonal_codes]]
            e = F.normalize(entries[h, used], dim=-1)  # [n, d]
            gram = e @ e.t() - torch.eye(len(e), device=e.device, dtype=e.dtype)
            total = total + gram.pow(2).sum() / len(e) ** 2
        return total / self.heads


@register_part("bottlenecks", "simvq", "SimVQ: a frozen random codebook times one learnt linear map, so every entry "
               "moves at each step (Zhu et al. 2024)")
class SimVQ(VectorQuantizer):
    """VQ over the entries e_k = C_k W, C a frozen random basis, W a learnt d x d map (per head), trained by the
    codebook term ||sg(z_e) - C_k W||^2 (which reaches W, and so every entry) and the commitment term: the
    remedy of Zhu et al. (2024) for the collapse of codebooks whose rarely chosen entries never receive a
    gradient. No EMA, no k-means, no restarts: the map is what learns. The other settings are
    :class:`VectorQuantizer`'s."""

    def __init__(self, context: PartContext, prior: Prior | None = None, codebook_size: int = 512,
                 codebook_dim: int = 0, heads: int = 1, cosine: bool = False, temperature: float = 0.0,
                 gradient: str = "ste", chunk: int = CHUNK) -> None:
        CodebookQuantizer.__init__(self, context, 1, codebook_size, codebook_dim, heads, False, 0.99, cosine, 0, 0,
                                   temperature, gradient, chunk, linear=True)


@register_part("bottlenecks", "rvq", "residual VQ: `stages` codebooks, each quantising what the ones before left, "
               "with quantizer dropout (Zeghidour et al. 2021); `heads` > 1: grouped residual VQ")
class ResidualVQ(CodebookQuantizer):
    """r_1 = z_e, k_s = argmin_j ||r_s - e^(s)_j||^2, r_{s+1} = r_s - e^(s)_{k_s}, z_q = sum_{s <= n} e^(s)_{k_s}
    (SoundStream's residual vector quantiser), the commitment term sum_s ||r_s - sg(e^(s)_{k_s})||^2, and the
    straight-through (or rotation) gradient through the sum. ``quantizer_dropout`` p: in training, with
    probability p a batch uses only its first n ~ U{1..stages} stages, so the decoder learns every bitrate; the
    codebooks of the stages left out still see their residuals, so every rank updates every stage (no collective
    waits on a stage another rank dropped). ``heads`` > 1 quantises each slice of the code with its own residual
    stack (grouped residual VQ, Yang et al. 2023). The other settings are :class:`VectorQuantizer`'s, for every
    stage."""

    def __init__(self, context: PartContext, prior: Prior | None = None, stages: int = 4,
                 quantizer_dropout: float = 0.0, codebook_size: int = 256, codebook_dim: int = 0, heads: int = 1,
                 ema: bool = True, decay: float = 0.99, cosine: bool = False, kmeans_iters: int = 10,
                 dead_after: int = 20, temperature: float = 0.0, gradient: str = "ste", chunk: int = CHUNK) -> None:
        require(stages >= 1, f"bottleneck.stages={stages} must be >= 1")
        require(0 <= quantizer_dropout <= 1, f"bottleneck.quantizer_dropout={quantizer_dropout} must lie in [0, 1]")
        super().__init__(context, stages, codebook_size, codebook_dim, heads, ema, decay, cosine, kmeans_iters,
                         dead_after, temperature, gradient, chunk)
        self.quantizer_dropout = quantizer_dropout

    def active_stages(self) -> int:
        if self.training and self.quantizer_dropout > 0 and float(torch.rand(())) < self.quantizer_dropout:
            return int(torch.randint(1, self.stages + 1, ()))
        return self.stages

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        z = self.normalise(z_e.view(len(z_e), self.heads, self.dim))  # [N, H, d]
        n_active = self.active_stages()
        r, z_q = z, torch.zeros_like(z)
        codes, inputs, terms = [], [], {}
        for s, codebook in enumerate(self.codebooks):
            k = codebook(r.detach())  # [N, H]
            e = codebook.lookup(k)  # [N, H, d]
            codes.append(k)
            inputs.append(r.detach())
            if s < n_active:
                z_q = z_q + e
                for name, value in self.terms_of(r, e).items():
                    terms[name] = terms.get(name, 0) + value
            r = r - e.detach()
        return Quantized(z=straight_through(z, z_q, self.gradient).flatten(1), codes=torch.cat(codes, -1),
                         terms=terms, hook={"inputs": torch.stack(inputs, 1).flatten(1)})


@register_part("bottlenecks", "random-projection", "BEST-RQ: a frozen random projection and a frozen random "
               "codebook, codes by cosine similarity (Chiu et al. 2022)")
class RandomProjectionQuantizer(Quantizer):
    """k = argmin_j ||e_j / ||e_j|| - P x / ||P x||||, with P a frozen Xavier-initialised projection of the features
    and the e_j frozen standard-normal entries (Chiu et al. 2022, BEST-RQ): nothing here learns, so the codes are a
    fixed random tokenisation of the input, the targets of a masked-prediction model
    (``model.encode(x).params["codes"]``). The value passed on is the unit entry e_k / ||e_k|| (no gradient reaches
    the encoder through it). ``codebook_size``, ``codebook_dim`` (0: latent_dim) and ``heads`` (independent
    codebooks, the multi-codebook variant)."""

    terms: ClassVar[dict[str, Term]] = {}

    def __init__(self, context: PartContext, prior: Prior | None = None, codebook_size: int = 8192,
                 codebook_dim: int = 0, heads: int = 1, seed: int = 0) -> None:
        check_codebook(codebook_size)
        require(heads >= 1 and codebook_dim >= 0, "bottleneck.heads must be >= 1 and bottleneck.codebook_dim >= 0")
        self.heads, self.dim = heads, codebook_dim or context.latent_dim
        super().__init__(context, heads * self.dim)
        generator = torch.Generator().manual_seed(seed)
        bound = (6 / (self.in_features + self.code_width)) ** 0.5  # Xavier-uniform
        with torch.no_grad():
            self.proj_in.weight.copy_(torch.rand(self.proj_in.weight.shape, generator=generator) * 2 * bound - bound)
            self.proj_in.bias.zero_()
        self.proj_in.requires_grad_(False)
        self.codebook = Codebook(codebook_size, self.dim, heads, ema=False, cosine=True, kmeans_iters=0, dead_after=0)
        self.codebook.embed.requires_grad_(False)
        self.codebook.embed.data.copy_(torch.randn(heads, codebook_size, self.dim, generator=generator))

    @property
    def codebook_sizes(self) -> list[int]:
        return [self.codebook.size] * self.heads

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        codes = self.codebook(z_e.view(len(z_e), self.heads, self.dim))  # [N, H], by cosine
        return Quantized(z=self.lookup(codes), codes=codes)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        return self.codebook.lookup(codes).flatten(1)  # unit entries [N, c]
