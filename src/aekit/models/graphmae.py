"""GraphMAE: self-supervised masked graph autoencoder (Hou et al. 2022, "GraphMAE: Self-Supervised Masked Graph
Autoencoders").

1. **Mask** a share ``mask_rate`` of the nodes (the shared node masker: tokens = nodes). Of the hidden nodes, a
   share ``1 - replace_rate`` gets the learnable [MASK] token x_[M] in place of its features and ``replace_rate``
   gets the features of random nodes (Sec. 3.2).
2. **Encode** the corrupted graph with a GAT encoder (PReLU, every layer activated): ``H = f_E(A, X~)``.
3. **Re-mask** the code of the hidden nodes before decoding: ``H~ = W H`` with ``H~_i = 0`` for i hidden (Sec. 3.3),
   and **decode** with one GAT layer back to the features: ``Z = f_D(A, H~)``.
4. **Scaled cosine error** on the hidden nodes (Eq. 2): ``L = 1/|V~| sum_i (1 - x_i . z_i / (|x_i| |z_i|))^gamma``.

The embedding used downstream is the encoder's output H on the unmasked graph. The defaults are the paper's Cora
configuration (its ``configs.yml``): hidden 512 with 4 heads, 2 layers, mask rate 0.5, replace rate 0.05,
gamma 3, feature / attention dropout 0.2 / 0.1, Adam with lr 0.001, cosine decay and L2 weight decay 2e-4,
1500 epochs, on row-normalised features. On CiteSeer and PubMed (by name, or a Planetoid folder of theirs) the
paper's configurations for them are taken instead (``data_recipes``; ``configs/graphmae-citeseer.yaml`` and
``-pubmed.yaml`` hold the same), and ``aekit train`` says which recipe it took.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from aekit.config import require
from aekit.data.graphs import GraphBatch
from aekit.models.base import Model, _check_part
from aekit.models.gae import GAE, _as_batch, check_graph_config, graph_nodes
from aekit.nn.graph import GATLayer, GCNLayer, graph_activation
from aekit.nn.maskers import make_masker
from aekit.objectives import Term
from aekit.parts import PartContext, build_part
from aekit.registry import register_model

DECODERS = ("gat", "gcn", "linear")


@dataclass(frozen=True)
class GraphMAEConfig:
    """``encoder`` (a ``graph_encoders`` part) of width ``hidden``; ``decoder``: one ``gat`` (the paper's), ``gcn``
    or ``linear`` layer (no re-masking for ``linear``, as in the reference); ``gamma``: the SCE exponent;
    ``probe_*``: the node-classification probe's Adam lr, L2 weight decay and epochs (the paper's lr_f,
    weight_decay_f and max_epoch_f)."""

    data_shape: tuple[int, ...] = (1433,)
    encoder: str = "gat"
    hidden: int = 512
    heads: int = 4
    out_heads: int = 1
    layers: int = 2
    activation: str = "prelu"
    feat_drop: float = 0.2
    attn_drop: float = 0.1
    negative_slope: float = 0.2
    residual: bool = False
    decoder: str = "gat"
    mask_rate: float = 0.5
    replace_rate: float = 0.05
    masker: str = "random"
    gamma: float = 3.0
    probe_lr: float = 0.01
    probe_weight_decay: float = 1e-4
    probe_epochs: int = 300
    objective: str = ""
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    terms: dict[str, Any] = field(default_factory=dict)
    part_options: ClassVar[tuple[str, ...]] = ("encoder", "masker")

    def __post_init__(self) -> None:
        check_graph_config(self)
        _check_part("maskers", self.masker, "masker")
        require(self.decoder in DECODERS, f"decoder={self.decoder!r} is unknown; choose one of {', '.join(DECODERS)}")
        require(0 < self.mask_rate < 1, f"mask_rate={self.mask_rate} must lie in (0, 1); the paper's is 0.5")
        require(0 <= self.replace_rate < 1, f"replace_rate={self.replace_rate} must lie in [0, 1)")
        require(self.probe_lr > 0 and self.probe_weight_decay >= 0 and self.probe_epochs >= 1,
                "probe_lr must be > 0, probe_weight_decay >= 0 and probe_epochs >= 1")
        require(self.gamma >= 1, f"gamma={self.gamma} must be >= 1 (the paper's is 1 to 3)")
        require(self.hidden > 0 and self.heads > 0 and self.out_heads > 0 and self.layers > 0,
                "hidden, heads, out_heads and layers must be positive")


@dataclass
class GraphMAEOutput:
    """pred: ``[M, F]`` the decoded features of the M hidden nodes (in node order); mask: ``[N]`` 1 = hidden;
    latent: ``[N, hidden]`` the encoder's output; terms: ``recon`` (the SCE, 0-dim); stats: ``mask_ratio``."""

    pred: torch.Tensor
    mask: torch.Tensor
    latent: torch.Tensor
    terms: dict[str, torch.Tensor]
    stats: dict[str, torch.Tensor]


def scaled_cosine_error(x: torch.Tensor, z: torch.Tensor, gamma: float) -> torch.Tensor:
    """Hou et al. 2022, Eq. 2: mean over rows of ``(1 - cos(x_i, z_i))^gamma``, ``[M, F] -> []``."""
    cos = (F.normalize(x, dim=-1) * F.normalize(z, dim=-1)).sum(-1)  # [M]
    return (1 - cos).pow(gamma).mean()


@register_model("graphmae", config=GraphMAEConfig,
                description="GraphMAE: masked node features, GAT encoder, re-masked GAT decoder, scaled cosine "
                            "error (Hou et al. 2022)")
class GraphMAE(Model):
    data_kind = "graph"
    suites = ("node-classification",)
    train_defaults: ClassVar[dict[str, Any]] = {
        "steps": 1500, "lr": 0.001, "weight_decay": 2e-4, "optimizer": "adam", "lr_schedule": "cosine",
        "log_every": 50, "eval_every": 50, "batch_size": 1}
    data_defaults: ClassVar[dict[str, Any]] = {"graph_task": "node", "row_normalize": True}
    # The paper's configs.yml (also configs/graphmae-*.yaml); the defaults are Cora's.
    default_recipe: ClassVar[str] = "cora"
    data_recipes: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {
        "cora": {},
        "citeseer": {"model": {"hidden": 512, "heads": 2, "mask_rate": 0.5, "replace_rate": 0.1, "gamma": 1.0,
                               "probe_lr": 0.01, "probe_weight_decay": 0.01, "probe_epochs": 300},
                     "train": {"steps": 300, "lr": 0.001, "weight_decay": 2e-5}},
        "pubmed": {"model": {"hidden": 1024, "heads": 4, "mask_rate": 0.75, "replace_rate": 0.0, "gamma": 3.0,
                             "probe_lr": 0.01, "probe_weight_decay": 1e-4, "probe_epochs": 300},
                   "train": {"steps": 1000, "lr": 0.001, "weight_decay": 1e-5}},
    }
    check_batch = GAE.check_batch

    @classmethod
    def fit_to_data(cls, values, splits):
        graph_nodes(splits)
        return super().fit_to_data(values, splits)

    def own_terms(self) -> dict[str, Term]:
        """``recon``: the scaled cosine error over the masked nodes, one value per graph."""
        return {"recon": Term(batch=True)}

    def __init__(self, config: GraphMAEConfig, name: str = "graphmae") -> None:
        super().__init__(config, name)
        c = config
        features = c.data_shape[0]
        settings = {"hidden": c.hidden, "heads": c.heads, "layers": c.layers, "activation": c.activation,
                    "feat_drop": c.feat_drop, "attn_drop": c.attn_drop, "negative_slope": c.negative_slope,
                    "residual": c.residual} if c.encoder == "gat" else {"hidden": (c.hidden,) * c.layers}
        self.encoder = build_part("graph_encoders", c.encoder, context=PartContext(data_shape=(features,), model=name),
                                  **{**settings, **c.options.get("encoder", {})})
        width = self.encoder.out_features
        self.masker = make_masker(c.masker, c.mask_rate, c.options.get("masker", {}),
                                  context=PartContext(data_shape=(features,), model=name))
        self.mask_token = nn.Parameter(torch.zeros(1, features))  # x_[M]
        self.encoder_to_decoder = nn.Linear(width, width, bias=False)  # W of the re-mask step
        if c.decoder == "gat":
            self.decoder = GATLayer(width, features, c.out_heads, c.feat_drop, c.attn_drop, c.negative_slope,
                                    None, c.residual)
        elif c.decoder == "gcn":
            self.decoder = GCNLayer(width, features)
        else:
            self.decoder = nn.Linear(width, features)
        self.decoder_act = graph_activation(c.activation) if c.decoder == "gat" and c.out_heads > 1 else None

    def mask_nodes(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x~ [N, F], mask [N])``: step 1 of the module docstring; ``noise [N]`` passes the masker's noise in."""
        n = x.shape[0]
        masking = self.masker(x.unsqueeze(0), noise=None if noise is None else noise.unsqueeze(0))
        mask = masking.mask[0]  # [N], 1 = hidden
        hidden = torch.nonzero(mask, as_tuple=True)[0]  # [M]
        hidden = hidden[torch.randperm(len(hidden), device=x.device)]  # which hidden nodes are replaced
        n_replace = int(self.config.replace_rate * len(hidden))
        token_nodes, replaced = hidden[n_replace:], hidden[:n_replace]
        x_tilde = x.clone()
        x_tilde[token_nodes] = self.mask_token.to(x.dtype)  # the [MASK] token in place of the features
        if n_replace:
            x_tilde[replaced] = x[torch.randperm(n, device=x.device)[:n_replace]]  # random nodes' features
        return x_tilde, mask

    def decode(self, h: torch.Tensor, mask: torch.Tensor, graph, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Step 3: ``[N, hidden] -> [R, F]``, the decoded features of the nodes ``rows`` (all when None)."""
        rep = self.encoder_to_decoder(h)  # [N, hidden]
        if self.config.decoder == "linear":
            out = self.decoder(rep if rows is None else rep[rows])
        else:
            rep = rep * (1 - mask).unsqueeze(-1).to(rep.dtype)  # re-mask: the hidden nodes' codes are zeroed
            if self.config.decoder == "gat":
                out = self.decoder(rep, graph, rows)  # only the rows the loss reads are projected
            else:
                out = self.decoder(rep, graph)
                out = out if rows is None else out[rows]
        return self.decoder_act(out) if self.decoder_act is not None else out

    def forward(self, batch: GraphBatch, noise: torch.Tensor | None = None) -> GraphMAEOutput:
        batch = self.check_batch(batch)
        x, graph = batch.inputs, batch.graph
        x_tilde, mask = self.mask_nodes(x, noise)
        h = self.encoder(x_tilde, graph)  # [N, hidden]
        hidden = torch.nonzero(mask, as_tuple=True)[0]  # [M]
        pred = self.decode(h, mask, graph, hidden)  # [M, F]
        loss = scaled_cosine_error(x[hidden], pred, self.config.gamma)
        return GraphMAEOutput(pred=pred, mask=mask, latent=h, terms={"recon": loss},
                              stats={"mask_ratio": mask.mean()})

    @torch.no_grad()
    def embed(self, batch) -> torch.Tensor:
        """Node embeddings ``[N, hidden]``: the encoder on the whole, unmasked graph."""
        batch = self.check_batch(_as_batch(batch, self.device))
        return self.encoder(batch.inputs, batch.graph)
