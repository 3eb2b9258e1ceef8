"""The quantising bottleneck: what every quantiser shares, so that each one only says how it quantises.

A quantiser maps the encoder's features ``h [B, *L, F]`` to ``z_e = W_in h`` of the code width c, quantises each
row (``quantize``: the value passed on, its codes, its terms), and maps back to the latent width D where c != D
(``W_out``: the lower-dimensional codebook of vector-quantize-pytorch, or FSQ's few levels). Everything from
``W_in`` to the codes runs in float32 under autocast, so that bf16 and fp16 training choose the codes fp32 would.
The output is deterministic, ``z [S, B, *L, D]`` the same for each of the S samples; its ``params`` carry ``z_e``
and ``codes [B, *L, G]`` (G code columns: heads, stages), which the step hooks, the ``codebook`` evaluation suite
and a prior over codes read; ``decode_codes`` turns codes back into latents.

Its statistics are logged every step: ``perplexity`` (exp of the entropy of the batch's code usage, the mean
over columns), ``code_usage`` (the share of each column's entries the batch used) and, for a learnt codebook,
``dead_codes`` (entries unused for the restart period).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from aekit.config import require
from aekit.nn.bottlenecks import Bottleneck, BottleneckOutput
from aekit.nn.quantize.codebook import perplexity
from aekit.objectives import Term
from aekit.parts import ModelRef, PartContext

KMEANS_ROWS = 65_536  # the encoder outputs a codebook's k-means sees at most

GRADIENTS = ("ste", "rotation")


@dataclass
class Quantized:
    """What ``quantize`` gives for ``N`` rows: ``z [N, c]``, the value passed on (equal to the quantised one, its
    gradient the estimator's); ``codes [N, G]``; ``terms``, each per row ``[N]``; ``hook``: tensors the step hooks
    need (a residual quantiser's stage inputs), per row; ``batch_terms``: terms of the whole batch ``[]`` (an
    entropy of the batch's code distribution), scaled in the output by the rows per example, as a per-example term
    sums over an example's rows."""

    z: torch.Tensor
    codes: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    batch_terms: dict[str, torch.Tensor] = field(default_factory=dict)
    hook: dict[str, torch.Tensor] = field(default_factory=dict)


def straight_through(z: torch.Tensor, z_q: torch.Tensor, gradient: str = "ste") -> torch.Tensor:
    """The quantised value ``z_q`` forward, with the encoder's gradient through ``z`` (both ``[..., d]``):

    - ``ste``: z + sg(z_q - z), the identity gradient of van den Oord et al. (2017);
    - ``rotation``: sg(lambda R) z, with R the rotation taking z / ||z|| to z_q / ||z_q|| and lambda = ||z_q|| /
      ||z|| (Fifty et al. 2024, the rotation trick), R = I - 2 r r^T + 2 q e^T with e = z / ||z||,
      q = z_q / ||z_q||, r = (e + q) / ||e + q||: the gradient reaching z is rotated as z was and so tells the
      encoder where in its Voronoi cell the vector lies. Its forward value is z_q itself (lambda R z = z_q), and
      its backward lambda R^T g is computed at once from z and z_q (:class:`RotationTrick`).
    """
    if gradient == "ste":
        return z + (z_q - z).detach()
    return RotationTrick.apply(z, z_q.detach())


class RotationTrick(torch.autograd.Function):
    """z_q forward; lambda R^T g = lambda (g - 2 r (r . g) + 2 e (q . g)) backward, to z only."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(z, z_q)
        return z_q.clone()

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:
        z, z_q = ctx.saved_tensors
        z_norm, q_norm = z.norm(dim=-1, keepdim=True).clamp(min=1e-12), z_q.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        e, q = z / z_norm, z_q / q_norm
        r = torch.nn.functional.normalize(e + q, dim=-1)
        rotated = g - 2 * r * (r * g).sum(-1, keepdim=True) + 2 * e * (q * g).sum(-1, keepdim=True)
        return q_norm / z_norm * rotated, None


def commitment(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """beta's term ||z - sg(z_q)||^2 per row, ``[N, ..., d] -> [N]``: it keeps the encoder near its codes."""
    return (z - z_q.detach()).pow(2).flatten(1).sum(-1)


def codebook_loss(z: torch.Tensor, z_q: torch.Tensor) -> torch.Tensor:
    """||sg(z) - z_q||^2 per row, ``[N, ..., d] -> [N]``: it moves a codebook learnt by gradient to its vectors."""
    return (z.detach() - z_q).pow(2).flatten(1).sum(-1)


def usage(codes: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's perplexity and share of entries used, each the mean over the columns of ``codes [N, G]``
    (column g has ``sizes[g]`` entries; counted by sorting, so an implicit codebook of 2^40 entries costs no
    more than one of 16)."""
    perplexities, shares = [], []
    for g, size in enumerate(sizes):
        counts = torch.unique(codes[:, g], return_counts=True)[1]
        perplexities.append(perplexity(counts))
        shares.append(len(counts) / size)
    return torch.stack(perplexities).mean().float(), torch.tensor(sum(shares) / len(shares))


def standardised(norm: nn.BatchNorm1d, z: torch.Tensor) -> torch.Tensor:
    """``z [..., c]`` through the batch norm ``norm`` over all its rows; a lone row in training is standardised by
    the running statistics (a batch of one has no variance of its own)."""
    rows = z.reshape(-1, z.shape[-1])  # [N, c]
    training = norm.training and len(rows) > 1
    out = torch.nn.functional.batch_norm(rows, norm.running_mean, norm.running_var, training=training,
                                         momentum=norm.momentum, eps=norm.eps)
    return out.view_as(z)


class Quantizer(Bottleneck):
    """A bottleneck that quantises: ``W_in``, :meth:`quantize`, ``W_out``. Subclasses give ``quantize``,
    ``codebook_sizes`` (the entries of each code column), ``lookup`` (codes to the quantised value) and, where
    their codebook is learnt outside the gradient, ``update_codebooks``."""

    terms: ClassVar[dict[str, Term]] = {"commit": Term(weight=0.25)}
    traversable = False  # codes only where the codebook has entries

    def __init__(self, context: PartContext, code_width: int, normalise: bool = False) -> None:
        super().__init__(context)
        require(code_width >= 1, f"the code width is {code_width}; it must be >= 1")
        self.code_width = code_width
        self.proj_in = nn.Linear(self.in_features, code_width)
        # each coordinate of z_e standardised over the batch (running statistics in evaluation), for an implicit
        # codebook whose bound has flat tails: see FSQ
        self.norm_in = nn.BatchNorm1d(code_width, affine=False) if normalise else None
        self.proj_out = nn.Linear(code_width, self.latent_dim) if code_width != self.latent_dim else nn.Identity()
        self.model: ModelRef | None = None

    @property
    def codebook_sizes(self) -> list[int]:
        raise NotImplementedError

    def quantize(self, z_e: torch.Tensor) -> Quantized:
        raise NotImplementedError

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """The quantised value ``[N, c]`` of ``codes [N, G]``."""
        raise NotImplementedError

    @property
    def code_shape(self) -> tuple[int, ...]:
        """The codes of one example: ``(*L, G)``, G columns at each position of the grid ``L``."""
        return (*self.latent_shape[:-1], len(self.codebook_sizes))

    def quantize_grid(self, z_e: torch.Tensor) -> Quantized:
        """Quantise ``z_e [B, *L, c]``: each of its B prod(L) rows alone, by :meth:`quantize`."""
        return self.quantize(z_e.reshape(-1, self.code_width))

    def lookup_grid(self, codes: torch.Tensor) -> torch.Tensor:
        """The quantised value ``[B, *L, c]`` of an example's codes ``[B, *code_shape]``."""
        return self.lookup(codes.reshape(-1, codes.shape[-1])).view(*codes.shape[:-1], self.code_width)

    def bind(self, model) -> None:
        self.model = ModelRef(model)

    def forward(self, h: torch.Tensor, n_samples: int = 1, eps: torch.Tensor | None = None,
                batch=None) -> BottleneckOutput:
        lead = h.shape[:-1]  # [B, *L]
        with torch.autocast(h.device.type, enabled=False):
            z_e = self.proj_in(h.to(self.proj_in.weight.dtype)).float()  # [B, *L, c]
            if self.norm_in is not None:
                z_e = standardised(self.norm_in, z_e)
            q = self.quantize_grid(z_e)  # rows: N = B * prod(L) positions, or a grid's tokens
            z = self.proj_out(q.z.to(self.proj_in.weight.dtype)).view(*lead, self.latent_dim)  # [B, *L, D]
        codes = q.codes.view(lead[0], *self.code_shape)  # [B, *L, G]
        terms = {name: value.view(lead[0], -1).sum(-1) for name, value in q.terms.items()}  # per example [B]
        terms.update({name: value * math.prod(lead[1:]) for name, value in q.batch_terms.items()})
        stats = dict(zip(("perplexity", "code_usage"), usage(q.codes, self.codebook_sizes), strict=True))
        stats.update(self.codebook_stats())
        return BottleneckOutput(z=z.unsqueeze(0).expand(n_samples, *z.shape), mean=z,
                                params={"z_e": z_e, "codes": codes, **q.hook}, terms=terms, stats=stats)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """Latents ``[B, *L, D]`` of codes ``[B, *code_shape]``: what a prior over codes decodes through."""
        require(codes.dtype in (torch.int32, torch.int64), f"codes must be integers, got {codes.dtype}")
        sizes = torch.tensor(self.codebook_sizes, device=codes.device)
        require(tuple(codes.shape[1:]) == self.code_shape, f"codes of shape {tuple(codes.shape[1:])} per example; "
                f"this quantiser gives {self.code_shape}")
        require(bool(((codes >= 0) & (codes < sizes)).all()), f"codes lie outside the codebook: each column g takes "
                f"0 <= code < {self.codebook_sizes}")
        z = self.lookup_grid(codes.long())  # [B, *L, c]
        return self.proj_out(z.to(self.proj_in.weight.dtype)).view(len(codes), *self.latent_shape)

    def codebook_stats(self) -> dict[str, torch.Tensor]:
        """Statistics of a learnt codebook (dead entries); none for an implicit one."""
        return {}

    # Learning the codebook outside the gradient.
    def init_from_data(self, batch) -> None:
        """A learnt codebook starts from k-means on the encoder's outputs for a sample of training data (not when the
        quantiser is in evaluation mode: a trained model held fixed inside another, as under a prior over codes)."""
        if self.model is None or not self.training or not callable(getattr(self, "init_codebooks", None)):
            return
        model = self.model()
        z_e = model.encode(batch.inputs, condition=model.condition_of(batch)).params["z_e"]
        rows = z_e.reshape(-1, self.code_width).float()
        generator = torch.Generator(device=rows.device).manual_seed(int(torch.randint(1 << 31, (1,))))
        if len(rows) > KMEANS_ROWS:
            rows = rows[torch.randperm(len(rows), generator=generator, device=rows.device)[:KMEANS_ROWS]]
        self.init_codebooks(rows, generator)

    def after_optimizer_step(self, ctx) -> None:
        """The step's rows, from every micro-batch's output, to ``update_codebooks`` (in training mode only)."""
        update = getattr(self, "update_codebooks", None)
        if update is None or not ctx.outputs or not self.training:
            return
        params = [out.latent.params for out in ctx.outputs]
        update({name: torch.cat([p[name].detach().reshape(-1, p[name].shape[-1]) for p in params])
                for name in params[0]}, ctx)  # each [N, last axis]


def check_codebook(codebook_size: int, key: str = "bottleneck.codebook_size") -> None:
    require(codebook_size >= 2, f"{key}={codebook_size}: a codebook needs at least 2 entries")


def log2_size(sizes: list[int]) -> float:
    """Bits of one code: sum_g log2 K_g."""
    return sum(math.log2(s) for s in sizes)
