"""Graph autoencoders for link prediction: GAE and VGAE (Kipf & Welling 2016), ARGA and ARGVA (Pan et al. 2018),
ResVGAE (Nallbani et al. 2021).

A graph encoder (GCN layers) gives node features H; the shared bottleneck maps them to node codes Z (the
deterministic one for GAE, the Gaussian posterior q(z_i | X, A) = N(mu_i, diag sigma_i^2) for VGAE); the
inner-product decoder scores each pair, p(A_ij = 1 | Z) = sigmoid(z_i . z_j). The reconstruction term is the
cross-entropy of the adjacency:

- ``recon=dense`` (Kipf & Welling's reference code): over every pair of A + I, the edges weighted by
  ``pos_weight = (N^2 - |E|) / |E|`` and the mean scaled by ``N^2 / (2 (N^2 - |E|))``, O(N^2) time (the N x N
  logits are computed in blocks of rows and never held);
- ``recon=sampled`` (PyTorch Geometric's): the mean over the training edges plus the mean over as many
  non-edges drawn each step (``neg_ratio`` per edge), O(|E|);
- ``recon=auto`` (the default): ``dense`` on a graph of at most :data:`DENSE_AUTO` nodes, ``sampled`` on a larger
  one; ``aekit train`` says which in one line.

Both reproduce the paper's Cora figures within a point, ``dense`` (the paper's own loss) about half a point higher
(``benchmarks/RESULTS.md``, sections 8a and 13c), hence the default where the graph is small enough for it.

VGAE's KL is the mean over nodes of KL(q(z_i) || N(0, I)) scaled by 1 / N, as in the reference, so that it
weighs like one entry of the adjacency; ``beta`` weighs it further. ARGA / ARGVA add a discriminator on the node
codes, trained by its own optimiser against draws from N(0, I) (:func:`aekit.models.aae.adversarial_terms`).
Held-out edges (validation, test) are scored by ``auc`` and ``ap`` in ``out.stats``, so validation logs them and
``monitor=auc`` keeps the best epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from aekit.config import require
from aekit.data.graphs import GraphBatch, sample_non_edges
from aekit.errors import DataError
from aekit.metrics.graph import link_scores
from aekit.models.aae import LatentDiscriminator, adversarial_own_terms, adversarial_terms
from aekit.models.base import Model, _check_part
from aekit.nn.bottlenecks import BottleneckOutput, make_bottleneck
from aekit.nn.graph import InnerProductDecoder
from aekit.objectives import Term
from aekit.parts import PartContext, build_part
from aekit.registry import register_model

RECON = ("auto", "dense", "sampled")
DENSE_AUTO = 5_000  # nodes: recon=auto takes the dense loss up to this size (25 M pairs, tens of ms a step)
DENSE_LIMIT = 40_000  # nodes: recon=dense is refused above (1.6 G pairs a step)


def graph_nodes(splits) -> int:
    """The number of nodes of the graph ``splits`` hold; data that is no graph is an error."""
    from aekit.data.graphs import is_graph_splits

    if not is_graph_splits(splits):
        raise DataError("a graph model trains on a graph; pass data=cora (or sbm), a Planetoid folder, a graph "
                        ".npz, a Graph or a PyTorch Geometric Data")
    return splits.train.graph.num_nodes


def check_graph_config(config) -> None:
    """What every graph model's config checks: node features ``(F,)``, its encoder and objective parts."""
    require(len(config.data_shape) == 1 and config.data_shape[0] > 0,
            f"data_shape={config.data_shape}: a graph model takes node features (F,)")
    _check_part("graph_encoders", config.encoder, "encoder")
    if config.objective:
        _check_part("objectives", config.objective, "objective")


@dataclass(frozen=True)
class GAEConfig:
    """``data_shape``: ``(F,)`` node features; ``encoder``: a ``graph_encoders`` part with widths ``hidden``;
    ``bottleneck``: deterministic (GAE) or gaussian (VGAE); ``adversarial``: add ARGA's discriminator (widths
    ``disc_hidden``, weight ``adv_weight``)."""

    data_shape: tuple[int, ...] = (1433,)
    encoder: str = "gcn"
    hidden: tuple[int, ...] = (32,)
    latent_dim: int = 16
    activation: str = "relu"
    dropout: float = 0.0
    bottleneck: str = "deterministic"
    recon: str = "auto"
    neg_ratio: int = 1
    beta: float = 1.0
    adversarial: bool = False
    disc_hidden: tuple[int, ...] = (64, 64)
    adv_weight: float = 1.0
    objective: str = ""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=dict)
    part_options: ClassVar[tuple[str, ...]] = ("encoder", "bottleneck")

    def __post_init__(self) -> None:
        check_graph_config(self)
        require(self.latent_dim > 0, f"latent_dim={self.latent_dim} must be a positive integer")
        _check_part("bottlenecks", self.bottleneck, "bottleneck")
        require(self.recon in RECON, f"recon={self.recon!r} is unknown; choose one of {', '.join(RECON)}")
        require(self.neg_ratio >= 1, f"neg_ratio={self.neg_ratio} must be >= 1")
        require(self.beta >= 0 and self.adv_weight >= 0, "beta and adv_weight must be >= 0")
        require(0 <= self.dropout < 1, f"dropout={self.dropout} must lie in [0, 1)")

    @property
    def kl_weight(self) -> float:
        return self.beta if self.bottleneck == "gaussian" else 0.0


@dataclass
class GAEOutput:
    """z: ``[N, D]`` node codes (a posterior sample in training); latent: the bottleneck's output; terms: the
    graph's loss terms (0-dim: ``recon``, ``kl``, ``adv``, ``disc``); stats: ``auc``/``ap`` of held-out edges."""

    z: torch.Tensor
    latent: BottleneckOutput
    terms: dict[str, torch.Tensor]

    @property
    def stats(self) -> dict[str, torch.Tensor]:
        return self.latent.stats


LINK_TRAINING = {"steps": 200, "lr": 0.01, "lr_schedule": "constant", "optimizer": "adam", "monitor": "auc",
                 "monitor_mode": "max", "keep_best": True, "eval_every": 1, "log_every": 10, "batch_size": 1}


@register_model("gae", config=GAEConfig, description="Graph autoencoder: GCN encoder, inner-product decoder "
                "(Kipf & Welling 2016)")
class GAE(Model):
    data_kind = "graph"
    suites = ("link-prediction", "node-classification")
    train_defaults: ClassVar[dict[str, Any]] = LINK_TRAINING
    data_defaults: ClassVar[dict[str, Any]] = {"graph_task": "link"}

    def __init__(self, config: GAEConfig, name: str = "gae") -> None:
        super().__init__(config, name)
        nodes = PartContext(data_shape=tuple(config.data_shape), model=name)  # node features (F,)
        self.encoder = build_part("graph_encoders", config.encoder, context=nodes,
                                  **{"hidden": tuple(config.hidden), "activation": config.activation,
                                     "dropout": config.dropout, **config.options.get("encoder", {})})
        context = PartContext(data_shape=tuple(config.data_shape), feature_shape=(self.encoder.out_features,),
                              latent_shape=(config.latent_dim,), model=name)
        self.bottleneck = make_bottleneck(config.bottleneck, context, "standard-normal" if config.adversarial else None,
                                          config.options.get("bottleneck", {}))
        self.decoder = InnerProductDecoder()
        if config.adversarial:
            self.discriminator = LatentDiscriminator(config.latent_dim, tuple(config.disc_hidden), "relu")

    def own_terms(self) -> dict[str, Term]:
        """The graph's terms, one value per graph: ``recon``, a variational encoder's ``kl`` weighted by ``beta``
        and, with ``adversarial``, ARGA's ``adv`` (``adv_weight``) and the discriminator's ``disc``."""
        c = self.config
        return adversarial_own_terms(c.adv_weight, c.kl_weight, batch=True)

    def own_optimizers(self) -> tuple[str, ...]:
        return ("discriminator",) if self.config.adversarial else ()

    @classmethod
    def fit_to_data(cls, values, splits):
        nodes = graph_nodes(splits)
        if values.get("recon") == "dense" and nodes > DENSE_LIMIT:  # refused before training, not at its first step
            raise DataError(f"recon=dense scores all {nodes}^2 node pairs, too many for {nodes} nodes; use "
                            f"recon=sampled on graphs of more than {DENSE_LIMIT} nodes")
        values, notes = super().fit_to_data(values, splits)
        if values.get("recon", "auto") == "auto":
            if nodes <= DENSE_AUTO:
                chosen = (f"the dense loss over every node pair (Kipf & Welling's): the graph has {nodes:,} nodes, "
                          f"at most {DENSE_AUTO:,}; recon=sampled is faster")
            else:
                chosen = (f"the sampled loss (non-edges drawn each step): the graph has {nodes:,} nodes, over the "
                          f"{DENSE_AUTO:,} up to which it scores every pair; recon=dense scores them all")
            notes = [*notes, f"recon=auto takes {chosen}"]
        return values, notes

    def uses_dense_loss(self, nodes: int) -> bool:
        """Whether the reconstruction term of a graph of ``nodes`` nodes is the dense one (``recon``)."""
        return self.config.recon == "dense" or (self.config.recon == "auto" and nodes <= DENSE_AUTO)

    def check_batch(self, batch) -> GraphBatch:
        if not isinstance(batch, GraphBatch):
            raise DataError(f"{self.name} takes a graph (a GraphBatch, as a graph source gives), not "
                            f"{type(batch).__name__}")
        if tuple(batch.inputs.shape[1:]) != tuple(self.config.data_shape):
            raise DataError(f"node features of width {batch.inputs.shape[1]} do not fit {self.name}'s "
                            f"{self.config.data_shape[0]}; train a model for this graph")
        return batch

    # The forward pass.
    def encode(self, batch: GraphBatch, eps: torch.Tensor | None = None) -> BottleneckOutput:
        h = self.encoder(batch.inputs, batch.graph)  # [N, H]
        return self.bottleneck(h, eps=None if eps is None else eps.unsqueeze(0))  # z [1, N, D]

    def recon_loss(self, z: torch.Tensor, batch: GraphBatch, neg_edges: torch.Tensor | None) -> torch.Tensor:
        """-log p(A | Z) as the module docstring defines it, on the training edges (``batch.pos_edges``), or the
        sampled form on held-out edges and non-edges when the batch has them."""
        pos = batch.pos_edges
        if pos is None:  # a graph without a split: its own message-passing edges, once each
            e = batch.graph.edge_index
            pos = e[:, e[0] < e[1]]
        if batch.neg_edges is None and self.uses_dense_loss(z.shape[0]):
            return self.dense_recon_loss(z, batch.graph)
        if neg_edges is None:
            neg_edges = batch.neg_edges
        if neg_edges is None:
            neg_edges = sample_non_edges(z.shape[0], pos.shape[1] * self.config.neg_ratio, batch.graph.edge_keys(),
                                         distinct=False)
        pos_logits, neg_logits = self.decoder(z, pos), self.decoder(z, neg_edges)
        return F.softplus(-pos_logits).mean() + F.softplus(neg_logits).mean()  # -log s(pos) - log(1 - s(neg))

    def dense_recon_loss(self, z: torch.Tensor, graph) -> torch.Tensor:
        """Kipf & Welling's weighted cross-entropy over every entry of A + I, computed as one dense sum plus a
        correction at the positive entries: with l = logits, t = targets and w = pos_weight,

            sum_ij [w t_ij softplus(-l_ij) + (1 - t_ij) softplus(l_ij)]
                = sum_ij softplus(l_ij) + sum_{t_ij = 1} [w softplus(-l_ij) - softplus(l_ij)],

        so no dense target or weight matrix is built."""
        n = z.shape[0]
        if n > DENSE_LIMIT:
            raise DataError(f"recon=dense scores all {n}^2 node pairs, too many for {n} nodes; use recon=sampled "
                            f"(non-edges drawn each step) on graphs of more than {DENSE_LIMIT} nodes")
        edges = graph.edge_index.shape[1]  # |E|: the directed edges, without the self-loops
        pos_weight = (n * n - edges) / edges
        norm = n * n / (2.0 * (n * n - edges))
        src, dst = graph.with_self_loops()  # the positive entries of A + I
        pos_logits = self.decoder(z, torch.stack([src, dst]))  # [E + N]
        total = self.decoder.softplus_sum(z) + (pos_weight * F.softplus(-pos_logits) - F.softplus(pos_logits)).sum()
        return norm * total / (n * n)

    def forward(self, batch: GraphBatch, eps: torch.Tensor | None = None, neg_edges: torch.Tensor | None = None,
                z_prior: torch.Tensor | None = None) -> GAEOutput:
        """Score the graph ``batch``; ``eps [N, D]``, ``neg_edges [2, P]`` and ``z_prior [N, D]`` pass the
        posterior noise, the training non-edges and the discriminator's prior draws in."""
        batch = self.check_batch(batch)
        latent = self.encode(batch, eps)
        z = latent.z[0]  # [N, D]
        terms = {"recon": self.recon_loss(z, batch, neg_edges)}
        if "kl" in latent.terms:
            terms["kl"] = latent.terms["kl"].mean() / z.shape[0]  # the reference's (1 / N) mean_i KL_i
        if self.config.adversarial:
            if z_prior is None:
                z_prior = torch.randn_like(z)
            adv, disc, latent.stats["disc_accuracy"] = adversarial_terms(self.discriminator, z, z_prior)
            terms["adv"], terms["disc"] = adv.mean(), disc.mean()
        if batch.neg_edges is not None and batch.pos_edges is not None:
            with torch.no_grad():
                mean = latent.mean
                scores = link_scores(self.decoder(mean, batch.pos_edges), self.decoder(mean, batch.neg_edges))
            latent.stats.update({k: torch.tensor(v) for k, v in scores.items()})
        return GAEOutput(z=z, latent=latent, terms=terms)

    # What a user calls.
    @torch.no_grad()
    def embed(self, batch) -> torch.Tensor:
        """Node embeddings ``[N, D]``: the posterior means (the codes of GAE)."""
        return self.encode(self.check_batch(_as_batch(batch, self.device))).mean

    @torch.no_grad()
    def predict_links(self, batch, edges: torch.Tensor) -> torch.Tensor:
        """p(A_ij = 1) for the pairs ``edges [2, P]`` of the graph ``batch``: ``[P]``."""
        z = self.embed(batch)
        return torch.sigmoid(self.decoder(z, torch.as_tensor(edges, device=z.device)))


def _as_batch(data, device) -> GraphBatch:
    """A GraphBatch from a batch, a graph source, a :class:`~aekit.data.graphs.Graph` or the splits
    ``aekit.load_data("cora")`` gives (their training graph, whose edges the encoder propagates over), on
    ``device``."""
    from aekit.data.base import Splits
    from aekit.data.graphs import Adjacency, Graph, GraphSource

    if isinstance(data, Splits):
        data = data.train
    if isinstance(data, Graph):
        data = GraphBatch(data.x, data.y, graph=Adjacency(data.edge_index, data.num_nodes))
    elif isinstance(data, GraphSource):
        data = data.batch()
    return data.to(device)


@dataclass(frozen=True)
class VGAEConfig(GAEConfig):
    bottleneck: str = "gaussian"


@dataclass(frozen=True)
class ARGAConfig(GAEConfig):
    adversarial: bool = True


@dataclass(frozen=True)
class ARGVAConfig(GAEConfig):
    bottleneck: str = "gaussian"
    adversarial: bool = True


@dataclass(frozen=True)
class ResVGAEConfig(GAEConfig):
    encoder: str = "resgcn"
    hidden: tuple[int, ...] = (32, 32, 32, 32)
    bottleneck: str = "gaussian"


for _name, _config, _text in (
    ("vgae", VGAEConfig, "Variational graph autoencoder: Gaussian node codes, KL / N (Kipf & Welling 2016)"),
    ("arga", ARGAConfig, "Adversarially regularised graph autoencoder: a discriminator on the codes (Pan 2018)"),
    ("argva", ARGVAConfig, "Adversarially regularised variational graph autoencoder (Pan et al. 2018)"),
    ("resvgae", ResVGAEConfig, "VGAE with residual GCN layers, deeper encoders (Nallbani et al. 2021)"),
):
    register_model(_name, config=_config, description=_text)(GAE)
