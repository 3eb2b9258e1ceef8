"""Graph layers, graph encoders and edge decoders.

A graph encoder maps node features ``x [N, F]`` and the message-passing structure (an
:class:`~aekit.data.graphs.Adjacency`) to node features ``h [N, out_features]``; registered as part kind
``graph_encoders``:

- ``gcn``: GCN layers (Kipf & Welling 2017) ``H' = act(A_hat H W + b)``, ``A_hat = D^-1/2 (A + I) D^-1/2``, ending
  with one more propagation ``A_hat H``, so that a bottleneck's linear map on it is the paper's last GCN layer
  (``A_hat (H W) + b = (A_hat H) W + b``): GAE's and VGAE's ``mu = GCN_mu(X, A)`` is this encoder plus the shared
  deterministic or Gaussian bottleneck;
- ``resgcn``: the same with a residual connection around every layer after the first (ResVGAE, Nallbani et al.
  2021), so that it can be deep;
- ``gat``: GAT layers (Velickovic et al. 2018), multi-head attention over each node's neighbours and itself, heads
  concatenated, as GraphMAE's encoder (Hou et al. 2022).

Propagation by ``A_hat`` is one sparse CSR product, built once per graph and cached on the Adjacency.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.nn.backbones import ACTIVATIONS
from aekit.parts import PartContext, register_part

GRAPH_ACTIVATIONS = (*ACTIVATIONS, "prelu")


def graph_activation(name: str) -> nn.Module:
    require(name in GRAPH_ACTIVATIONS, f"activation={name!r} is unknown; choose one of {', '.join(GRAPH_ACTIVATIONS)}")
    return nn.PReLU() if name == "prelu" else ACTIVATIONS[name]()


def propagate(adjacency, h: torch.Tensor) -> torch.Tensor:
    """``A_hat h``: ``[N, D] -> [N, D]``."""
    return torch.sparse.mm(adjacency.gcn_norm(), h)


class GCNLayer(nn.Module):
    """``A_hat (X W) + b`` (Kipf & Welling 2017, Eq. 2); the product with the narrower side first."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.xavier_uniform_(self.linear.weight)  # Glorot & Bengio, as the reference

    def forward(self, x: torch.Tensor, adjacency) -> torch.Tensor:
        if self.linear.out_features <= self.linear.in_features:
            return propagate(adjacency, self.linear(x)) + self.bias
        return self.linear(propagate(adjacency, x)) + self.bias


class GCNEncoder(nn.Module):
    """GCN layers of widths ``hidden``, each followed by the activation (and dropout on its input), then
    ``A_hat H`` for the bottleneck (see the module docstring). ``residual``: ``H' = H + act(GCN(H))`` for every layer
    whose input and output widths agree."""

    def __init__(self, in_features: int, hidden: Sequence[int] = (32,), activation: str = "relu",
                 dropout: float = 0.0, residual: bool = False) -> None:
        super().__init__()
        require(len(hidden) >= 1 and all(h > 0 for h in hidden), f"hidden={tuple(hidden)} must hold positive widths")
        require(0 <= dropout < 1, f"dropout={dropout} must lie in [0, 1)")
        widths = [in_features, *hidden]
        self.layers = nn.ModuleList(GCNLayer(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.acts = nn.ModuleList(graph_activation(activation) for _ in hidden)
        self.dropout, self.residual = dropout, residual
        self.out_features = hidden[-1]

    def forward(self, x: torch.Tensor, adjacency) -> torch.Tensor:
        h = x
        for layer, act in zip(self.layers, self.acts, strict=True):
            out = act(layer(F.dropout(h, self.dropout, self.training), adjacency))  # [N, H]
            h = h + out if self.residual and out.shape == h.shape else out
        return propagate(adjacency, F.dropout(h, self.dropout, self.training))  # [N, H]


@register_part("graph_encoders", "gcn", "GCN layers then A_hat H: the bottleneck's linear map is the last GCN layer")
def gcn_encoder(*, context: PartContext, hidden: Sequence[int] = (32,), activation: str = "relu",
                dropout: float = 0.0):
    return GCNEncoder(context.data_shape[0], hidden, activation, dropout)


@register_part("graph_encoders", "resgcn", "GCN layers with residual connections (ResVGAE), then A_hat H")
def resgcn_encoder(*, context: PartContext, hidden: Sequence[int] = (32, 32, 32, 32), activation: str = "relu",
                   dropout: float = 0.0):
    return GCNEncoder(context.data_shape[0], hidden, activation, dropout, residual=True)


def edge_softmax(scores: torch.Tensor, dst: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of ``scores [E, H]`` over the edges into each target node (``dst [E]``)."""
    index = dst.unsqueeze(-1).expand_as(scores)
    top = scores.new_full((num_nodes, scores.shape[1]), float("-inf"))
    top = top.scatter_reduce(0, index, scores.detach(), "amax", include_self=True)  # [N, H]
    weights = torch.exp(scores - top[dst])  # [E, H]
    total = torch.zeros_like(top).index_add_(0, dst, weights)  # [N, H]
    return weights / total[dst]


class SparseAggregate(torch.autograd.Function):
    """``out[i, h] = sum_j alpha[e(j -> i), h] feat[j, h]`` as one sparse CSR product over a block-diagonal
    matrix (one block per head and per column chunk of at most 128), instead of materialising the ``[E, H, D]``
    messages: the backward pass is the transposed product for ``feat`` and a sampled dense product (SDDMM) for
    ``alpha``."""

    @staticmethod
    def forward(ctx, alpha: torch.Tensor, feat: torch.Tensor, adjacency) -> torch.Tensor:
        n, heads, width = feat.shape
        chunks = _chunks(width)
        d = width // chunks
        layout = block_layout(adjacency, heads * chunks)
        values = alpha.t().repeat_interleave(chunks, 0).reshape(-1)  # [B * E], block b belongs to head b // chunks
        blocks = _to_blocks(feat, chunks)  # [B * N, d]
        out = torch.sparse.mm(_csr(layout["crow"], layout["col"], values, blocks.shape[0]), blocks)  # [B * N, d]
        ctx.save_for_backward(values, blocks)
        ctx.layout, ctx.shape = layout, (n, heads, chunks, d)
        return _from_blocks(out, n, heads, chunks, d)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        values, blocks = ctx.saved_tensors
        layout, (n, heads, chunks, d) = ctx.layout, ctx.shape
        g = _to_blocks(grad.contiguous(), chunks)  # [B * N, d]
        grad_alpha = grad_feat = None
        if ctx.needs_input_grad[1]:
            transposed = _csr(layout["crow_t"], layout["col_t"], values[layout["perm_t"]], g.shape[0])
            grad_feat = _from_blocks(torch.sparse.mm(transposed, g), n, heads, chunks, d)
        if ctx.needs_input_grad[0]:
            pattern = _csr(layout["crow"], layout["col"], values, g.shape[0])
            sampled = torch.sparse.sampled_addmm(pattern, g, blocks.t(), beta=0.0).values()  # [B * E]
            grad_alpha = sampled.view(heads, chunks, -1).sum(1).t()  # [E, H]
        return grad_alpha, grad_feat, None


def _chunks(width: int) -> int:
    chunks = max(1, width // 128)
    while width % chunks:
        chunks -= 1
    return chunks


def _csr(crow, col, values, size: int) -> torch.Tensor:
    return torch.sparse_csr_tensor(crow, col, values, (size, size), check_invariants=False)


def _to_blocks(feat: torch.Tensor, chunks: int) -> torch.Tensor:
    n, heads, width = feat.shape
    return feat.reshape(n, heads * chunks, width // chunks).transpose(0, 1).reshape(-1, width // chunks)


def _from_blocks(out: torch.Tensor, n: int, heads: int, chunks: int, d: int) -> torch.Tensor:
    return out.view(heads * chunks, n, d).transpose(0, 1).reshape(n, heads, chunks * d)


def block_layout(adjacency, blocks: int) -> dict[str, torch.Tensor]:
    """CSR indices of ``blocks`` copies of the self-looped adjacency on the diagonal, and of its transpose (with
    the permutation that takes the values there), cached on the Adjacency."""
    def build():
        src, dst = adjacency.with_self_loops()  # sorted by target: the CSR order of rows = targets
        n, e = adjacency.num_nodes, len(src)
        crow = torch.zeros(n + 1, dtype=torch.int64, device=src.device)
        crow[1:] = torch.cumsum(torch.bincount(dst, minlength=n), 0)
        perm = torch.argsort(src * n + dst)  # rows = sources, for the transpose
        crow_t = torch.zeros_like(crow)
        crow_t[1:] = torch.cumsum(torch.bincount(src, minlength=n), 0)
        offsets = torch.arange(blocks, device=src.device)
        return {
            "crow": torch.cat([(crow[:-1] + b * e) for b in offsets] + [crow.new_tensor([blocks * e])]),
            "col": (src.unsqueeze(0) + offsets.unsqueeze(1) * n).reshape(-1),
            "crow_t": torch.cat([(crow_t[:-1] + b * e) for b in offsets] + [crow.new_tensor([blocks * e])]),
            "col_t": (dst[perm].unsqueeze(0) + offsets.unsqueeze(1) * n).reshape(-1),
            "perm_t": (perm.unsqueeze(0) + offsets.unsqueeze(1) * e).reshape(-1),
        }

    return adjacency.cached(f"blocks{blocks}", build)


class GATLayer(nn.Module):
    """One graph attention layer (Velickovic et al. 2018, Eqs. 1-4), with every node attending to itself too:

        e_ij = LeakyReLU(a_l . W h_j + a_r . W h_i),  alpha_ij = softmax_j(e_ij),  h_i' = sum_j alpha_ij W h_j

    per head; heads concatenated (``[N, heads * out]``); dropout on the input features (``feat_drop``) and on the
    attention weights (``attn_drop``); then bias, an optional residual and the activation.

    A layer that widens (``heads * out > in``, a decoder back to the features) aggregates first and projects after,
    ``sum_j alpha_ij W h_j = W sum_j alpha_ij h_j``, with the scores from ``(W^T a) . h`` so that ``W h`` is never
    formed for every node; ``rows`` then computes the output of those nodes only."""

    def __init__(self, in_features: int, out_features: int, heads: int = 1, feat_drop: float = 0.0,
                 attn_drop: float = 0.0, negative_slope: float = 0.2, activation: str | None = None,
                 residual: bool = False) -> None:
        super().__init__()
        self.heads, self.out_per_head = heads, out_features
        self.fc = nn.Linear(in_features, heads * out_features, bias=False)
        self.attn_src = nn.Parameter(torch.empty(1, heads, out_features))
        self.attn_dst = nn.Parameter(torch.empty(1, heads, out_features))
        self.bias = nn.Parameter(torch.zeros(heads * out_features))
        self.res = None
        if residual:
            self.res = nn.Identity() if in_features == heads * out_features else \
                nn.Linear(in_features, heads * out_features, bias=False)
        self.feat_drop, self.attn_drop, self.negative_slope = feat_drop, attn_drop, negative_slope
        self.act = graph_activation(activation) if activation else None
        gain = nn.init.calculate_gain("relu")
        for p in (self.fc.weight, self.attn_src, self.attn_dst):
            nn.init.xavier_normal_(p, gain=gain)

    def attention(self, score_src: torch.Tensor, score_dst: torch.Tensor, adjacency) -> torch.Tensor:
        """alpha ``[E, H]`` over the self-looped edges from the per-node scores ``[N, H]``."""
        src, dst = adjacency.with_self_loops()  # [E] each, sorted by target
        e = F.leaky_relu(score_src[src] + score_dst[dst], self.negative_slope)  # [E, H]
        return F.dropout(edge_softmax(e, dst, score_src.shape[0]), self.attn_drop, self.training)

    def forward(self, x: torch.Tensor, adjacency, rows: torch.Tensor | None = None) -> torch.Tensor:
        n, h, d = x.shape[0], self.heads, self.out_per_head
        x = F.dropout(x, self.feat_drop, self.training)
        if h * d <= x.shape[1]:  # project, then aggregate
            wh = self.fc(x).view(n, h, d)  # [N, H, D]
            alpha = self.attention((wh * self.attn_src).sum(-1), (wh * self.attn_dst).sum(-1), adjacency)
            out = SparseAggregate.apply(alpha, wh, adjacency).reshape(n, h * d)  # [N, H * D]
            out = out if rows is None else out[rows]
        else:  # aggregate, then project
            w = self.fc.weight.view(h, d, -1)  # [H, D, F_in]
            score_src = x @ torch.einsum("hdi,hd->ih", w, self.attn_src[0])  # [N, H]
            score_dst = x @ torch.einsum("hdi,hd->ih", w, self.attn_dst[0])
            alpha = self.attention(score_src, score_dst, adjacency)
            agg = SparseAggregate.apply(alpha, x.unsqueeze(1).expand(n, h, x.shape[1]).contiguous(), adjacency)
            agg = agg if rows is None else agg[rows]  # [R, H, F_in]
            if h == 1:
                out = F.linear(agg[:, 0], self.fc.weight)  # [R, D]
            else:
                out = torch.einsum("rhi,hdi->rhd", agg, w).reshape(agg.shape[0], h * d)  # [R, H * D]
        out = out + self.bias
        if self.res is not None:
            out = out + self.res(x if rows is None else x[rows])
        return self.act(out) if self.act is not None else out


class GATEncoder(nn.Module):
    """``layers`` GAT layers of ``heads`` heads, each head ``hidden // heads`` wide and the heads concatenated, every
    layer followed by the activation (GraphMAE's encoder: the last layer keeps its activation too)."""

    def __init__(self, in_features: int, hidden: int = 512, heads: int = 4, layers: int = 2, activation: str = "prelu",
                 feat_drop: float = 0.2, attn_drop: float = 0.1, negative_slope: float = 0.2,
                 residual: bool = False, last_activation: bool = True) -> None:
        super().__init__()
        require(hidden % heads == 0, f"hidden={hidden} must be divisible by heads={heads}")
        require(layers >= 1, f"layers={layers} must be >= 1")
        widths = [in_features] + [hidden] * layers
        self.layers = nn.ModuleList(
            GATLayer(widths[i], hidden // heads, heads, feat_drop, attn_drop, negative_slope,
                     activation if (i < layers - 1 or last_activation) else None, residual)
            for i in range(layers))
        self.out_features = hidden

    def forward(self, x: torch.Tensor, adjacency) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, adjacency)  # [N, hidden]
        return x


@register_part("graph_encoders", "gat", "GAT layers, heads concatenated, activation after every layer (GraphMAE)")
def gat_encoder(*, context: PartContext, hidden: int = 512, heads: int = 4, layers: int = 2,
                activation: str = "prelu", feat_drop: float = 0.2, attn_drop: float = 0.1, negative_slope: float = 0.2,
                residual: bool = False):
    return GATEncoder(context.data_shape[0], hidden, heads, layers, activation, feat_drop, attn_drop, negative_slope,
                      residual)


class InnerProductDecoder(nn.Module):
    """p(A_ij = 1 | z) = sigmoid(z_i . z_j) (Kipf & Welling 2016, Eq. 2); returns logits."""

    def forward(self, z: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
        """Logits of the pairs ``edges [2, P]``: ``[P]``."""
        return (z.index_select(0, edges[0]) * z.index_select(0, edges[1])).sum(-1)  # backward: index_add

    def dense(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of every pair: ``[N, N]``."""
        return z @ z.t()

    def softplus_sum(self, z: torch.Tensor, block: int = 512) -> torch.Tensor:
        """sum_ij softplus(z_i . z_j) over every ordered pair, 0-dim: ``softplus(dense(z)).sum()`` computed in
        blocks of rows, so that the ``[N, N]`` logits are never held (:class:`_PairSoftplusSum`)."""
        return _PairSoftplusSum.apply(z, block)


class _PairSoftplusSum(torch.autograd.Function):
    """S = sum_ij softplus(L_ij) with L = z z^T, and its gradient dS/dz = (sigmoid(L) + sigmoid(L)^T) z =
    2 sigmoid(L) z (L is symmetric), both in blocks of rows: the backward recomputes each block of L rather than
    keeping it. Measured 1.6-2.3x faster than autograd through the dense logits on graphs of 2,708-5,000 nodes
    (``benchmarks/graph_speed.py dense``), and the memory is a block, not N x N."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, block: int) -> torch.Tensor:
        ctx.save_for_backward(z)
        ctx.block = block
        total = z.new_zeros(())
        for start in range(0, z.shape[0], block):
            total = total + F.softplus(z[start:start + block] @ z.t()).sum()
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (z,) = ctx.saved_tensors
        dz = torch.empty_like(z)
        for start in range(0, z.shape[0], ctx.block):
            dz[start:start + ctx.block] = torch.sigmoid(z[start:start + ctx.block] @ z.t()) @ z
        return 2.0 * grad * dz, None
