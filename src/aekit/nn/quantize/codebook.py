"""A codebook: K entries of dimension d (per head), the nearest-entry search, and how the entries are learnt.

The search is the squared Euclidean distance (or, for a cosine codebook, the angle between l2-normalised vectors),

    k(z) = argmin_j ||z - e_j||^2 = argmin_j (||e_j||^2 - 2 z . e_j),

computed in float32 whatever autocast says (half precision loses the small differences between near entries),
over row chunks of at most ``chunk`` distances (by default 1 MiB on a CPU, to stay in cache, but at least 64 rows;
256 MiB on a GPU), so memory stays bounded for codebooks of 2^16 entries. There is
no one-hot matrix anywhere: looking an entry up is a gather, its gradient an index-add, and the EMA counts a
bincount.

The entries are learnt either by gradient (the codebook loss ||sg(z_e) - e_k||^2 of van den Oord et al. 2017) or
by exponential moving averages of the vectors assigned to each entry (their Appendix A.1),

    N_k <- gamma N_k + (1 - gamma) n_k,   m_k <- gamma m_k + (1 - gamma) sum_{i: k(z_i) = k} z_i,
    e_k = m_k / N~_k,   N~_k = (N_k + eps) / (sum_j N_j + K eps) sum_j N_j   (Laplace smoothing),

with n_k and the sums all-reduced over the processes, so that every rank keeps the same codebook. Entries start
from k-means on encoder outputs (Lloyd's iterations from a random subset; ``kmeans_iters``), and an entry unused
for ``dead_after`` optimiser steps is restarted at a vector of that step's batch (chosen on rank 0 and broadcast),
as Dhariwal et al. (2020) and Zeghidour et al. (2021) do against codebook collapse.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CHUNK = 0  # the search's chunk by device: CPU_CHUNK on a CPU, ACCELERATOR_CHUNK elsewhere
CPU_CHUNK = 1 << 18  # distances held at once on a CPU: 1 MiB of float32, within a core's L2 cache ...
CPU_MIN_ROWS = 64  # ... but never fewer rows than a matrix product runs at speed on (4 MiB for 2^14 entries)
ACCELERATOR_CHUNK = 1 << 26  # on a GPU: 256 MiB, few launches


def nearest(z: torch.Tensor, embed: torch.Tensor, cosine: bool = False, temperature: float = 0.0,
            chunk: int = CHUNK, generator: torch.Generator | None = None) -> torch.Tensor:
    """The index of the entry nearest each row, ``z [N, H, d]`` and ``embed [H, K, d]`` -> ``codes [N, H]``, in
    float32, over chunks of rows. ``temperature > 0`` draws the index instead from softmax(-||z - e_j||^2 / T) (the
    Gumbel-max trick), the stochastic code sampling of vector-quantize-pytorch."""
    entries = embed.shape[0] * embed.shape[1]
    if chunk:
        rows = max(1, chunk // entries)
    else:
        rows = max(CPU_MIN_ROWS, CPU_CHUNK // entries) if z.device.type == "cpu" else \
            max(1, ACCELERATOR_CHUNK // entries)
    with torch.autocast(z.device.type, enabled=False):
        z, embed = z.float(), embed.float()
        if cosine:
            z, embed = F.normalize(z, dim=-1), F.normalize(embed, dim=-1)
        z = z.transpose(0, 1)  # [H, N, d]
        norms = embed.pow(2).sum(-1).unsqueeze(1)  # ||e_j||^2 [H, 1, K]
        codes = []
        for start in range(0, z.shape[1], rows):
            d = torch.baddbmm(norms, z[:, start:start + rows], embed.transpose(1, 2), alpha=-2)  # [H, n, K]
            if temperature > 0:
                u = torch.rand(d.shape, device=d.device, generator=generator).clamp_(1e-20, 1.0)
                d = d / temperature + torch.log(-torch.log(u))  # -(score + Gumbel noise)
            codes.append(d.min(-1).indices)  # the first minimum, as argmin, in a faster CPU kernel
        return torch.cat(codes, 1).transpose(0, 1)  # [N, H]


def kmeans(z: torch.Tensor, k: int, iters: int = 10, cosine: bool = False,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Lloyd's k-means on ``z [N, d]``: ``k`` centres ``[k, d]``, seeded by k-means++ (Arthur & Vassilvitskii 2007:
    each next centre drawn with probability proportional to its squared distance from the nearest chosen one)
    where that costs at most :data:`SEEDING_FLOPS`, else from distinct random rows (with repetition where N < k);
    an empty cluster keeps its centre."""
    z = z.float()
    if cosine:
        z = F.normalize(z, dim=-1)
    centres = seed_centres(z, k, generator)
    for _ in range(iters):
        codes = nearest(z.unsqueeze(1), centres.unsqueeze(0), cosine)[:, 0]  # [N]
        counts = torch.bincount(codes, minlength=k).to(z.dtype)  # [k]
        sums = torch.zeros_like(centres).index_add_(0, codes, z)  # [k, d]
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled].unsqueeze(1)
        if cosine:
            centres = F.normalize(centres, dim=-1)
    return centres


SEEDING_FLOPS = 2e9  # the k-means++ seeding's budget: k draws over N rows of d


def seed_centres(z: torch.Tensor, k: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """k starting centres from the rows of ``z [N, d]``: k-means++ within :data:`SEEDING_FLOPS`, else random."""
    n = len(z)
    if n < k or k * n * z.shape[1] > SEEDING_FLOPS:
        rows = torch.randperm(n, generator=generator)[:k] if n >= k else torch.randint(n, (k,), generator=generator)
        return z[rows.to(z.device)].clone()
    chosen = [int(torch.randint(n, (1,), generator=generator))]
    closest = (z - z[chosen[0]]).pow(2).sum(-1)  # [N]
    for _ in range(k - 1):
        weights = closest.cpu().double()
        row = int(torch.multinomial(weights / weights.sum(), 1, generator=generator)) if weights.sum() > 0 else \
            int(torch.randint(n, (1,), generator=generator))
        chosen.append(row)
        closest = torch.minimum(closest, (z - z[row]).pow(2).sum(-1))
    return z[chosen].clone()


def code_counts(codes: torch.Tensor, size: int) -> torch.Tensor:
    """How often each entry of each head was chosen: ``codes [N, H]`` -> ``[H, K]`` (a bincount, no one-hot)."""
    heads = codes.shape[-1]
    offsets = torch.arange(heads, device=codes.device) * size
    return torch.bincount((codes.reshape(-1, heads) + offsets).flatten(), minlength=heads * size).view(heads, size)


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """exp(H(p)) of the usage p_k = n_k / sum n, per head: ``counts [..., K]`` -> ``[...]``; K for uniform use, 1
    for a single code."""
    p = counts.double() / counts.double().sum(-1, keepdim=True).clamp(min=1)
    return torch.exp(-(p * torch.log(p.clamp(min=1e-30))).sum(-1))


class Codebook(nn.Module):
    """``size`` entries of dimension ``dim`` for each of ``heads`` heads (a separate codebook per head, the
    multi-head and grouped quantisers), learnt by EMA (``ema``, decay ``decay``) or by gradient. ``linear``: the
    entries are a frozen random basis C times a learnt d x d map W per head, e_k = C_k W (SimVQ, Zhu et al. 2024:
    every entry moves with each step of W, so none is left behind), W starting at the identity."""

    average_buffers = "copy"  # the entries follow their own averages, not the weight average

    def __init__(self, size: int, dim: int, heads: int = 1, ema: bool = True, decay: float = 0.99,
                 eps: float = 1e-5, cosine: bool = False, kmeans_iters: int = 10, dead_after: int = 20,
                 temperature: float = 0.0, chunk: int = CHUNK, linear: bool = False) -> None:
        super().__init__()
        self.size, self.dim, self.heads = size, dim, heads
        self.ema, self.decay, self.eps, self.cosine = ema, decay, eps, cosine
        self.kmeans_iters, self.dead_after, self.temperature, self.chunk = kmeans_iters, dead_after, temperature, chunk
        embed = torch.randn(heads, size, dim) / dim ** 0.5  # e [H, K, d]
        if cosine:
            embed = F.normalize(embed, dim=-1)
        self.map = nn.Parameter(torch.eye(dim).repeat(heads, 1, 1)) if linear else None  # W [H, d, d]
        if ema or linear:
            self.register_buffer("embed", embed)
        if ema:
            self.register_buffer("cluster_size", torch.ones(heads, size))  # N_k
            self.register_buffer("embed_sum", embed.clone())  # m_k
        elif not linear:
            self.embed = nn.Parameter(embed)
        self.register_buffer("idle", torch.zeros(heads, size, dtype=torch.long))  # steps since each entry was used

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The codes ``[N, H]`` of ``z [N, H, d]``: the nearest entries, or draws near them in training with a
        temperature."""
        temperature = self.temperature if self.training else 0.0
        return nearest(z, self.entries(), self.cosine, temperature, self.chunk)

    def entries(self) -> torch.Tensor:
        """The entries ``[H, K, d]``: the stored ones, or C W for a linear codebook."""
        return self.embed if self.map is None else torch.bmm(self.embed, self.map)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """The entries ``[..., H, d]`` of ``codes [..., H]`` (unit vectors for a cosine codebook)."""
        heads = torch.arange(self.heads, device=codes.device)
        e = self.entries()[heads, codes]  # [..., H, d]
        return F.normalize(e, dim=-1) if self.cosine else e

    @torch.no_grad()
    def init_kmeans(self, z: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Entries from k-means of each head's vectors ``z [N, H, d]``."""
        if self.kmeans_iters < 1 or self.map is not None:
            return
        for h in range(self.heads):
            self.embed.data[h] = kmeans(z[:, h], self.size, self.kmeans_iters, self.cosine, generator)
        if self.ema:
            self.embed_sum.copy_(self.embed)
            self.cluster_size.fill_(1.0)

    @torch.no_grad()
    def update(self, z: torch.Tensor, codes: torch.Tensor, ctx) -> None:
        """After an optimiser step, from the step's vectors ``z [N, H, d]`` and their ``codes [N, H]``: the EMA of
        the entries (if learnt so) and the restart of entries idle for ``dead_after`` steps, identical on every
        rank (``ctx``: the :class:`~aekit.training.hooks.StepContext`)."""
        z = z.float()
        counts = ctx.all_reduce(code_counts(codes, self.size).float(), "sum")  # n_k [H, K]
        if self.ema:
            sums = torch.zeros_like(self.embed_sum)
            for h in range(self.heads):
                sums[h].index_add_(0, codes[:, h], F.normalize(z[:, h], dim=-1) if self.cosine else z[:, h])
            sums = ctx.all_reduce(sums, "sum")
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.cluster_size.sum(-1, keepdim=True)  # [H, 1]
            smoothed = (self.cluster_size + self.eps) / (n + self.size * self.eps) * n  # N~_k [H, K]
            embed = self.embed_sum / smoothed.unsqueeze(-1)
            self.embed.copy_(F.normalize(embed, dim=-1) if self.cosine else embed)
        self.idle.add_(1).masked_fill_(counts > 0, 0)
        if self.dead_after > 0:
            self.restart(z, ctx)

    def restart(self, z: torch.Tensor, ctx) -> None:
        """Entries idle for ``dead_after`` steps move to random vectors of ``z [N, H, d]``, rank 0's on every rank
        (the dead set is the same everywhere: it follows the all-reduced counts)."""
        dead = self.idle >= self.dead_after  # [H, K]
        n_dead = int(dead.sum())
        if n_dead == 0:
            return
        generator = torch.Generator(device=z.device).manual_seed(ctx.step)
        rows = torch.randint(len(z), (n_dead,), generator=generator, device=z.device)
        heads = dead.nonzero()[:, 0]  # the head of each dead entry, in the order of the mask
        new = ctx.broadcast(z[rows, heads].contiguous())  # [n_dead, d]
        if self.cosine:
            new = F.normalize(new, dim=-1)
        self.embed.data[dead] = new.to(self.embed.dtype)
        if self.ema:
            self.embed_sum[dead] = new
            self.cluster_size[dead] = 1.0
        self.idle[dead] = 0
