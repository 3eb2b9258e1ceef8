"""Graphs: one graph held as node features and an undirected edge set, read from the Planetoid files, from a
PyTorch Geometric ``Data``, or from an edge list plus a feature matrix, and split for the two tasks graph
autoencoders are scored on.

- **Link prediction** (Kipf & Welling 2016): the undirected edges are split 85 / 5 / 10 (``edge_split``), seeded;
  validation and test get as many sampled non-edges as held-out edges; the message-passing graph every split
  sees holds the training edges only, so a held-out edge never reaches the encoder.
- **Node classification** (Planetoid, Yang et al. 2016): every edge; the train / validation / test nodes of the
  data's own split (Cora: 140 / 500 / 1,000), or a seeded random one where it ships none.

A :class:`GraphSource` is a map source of one example, the whole graph: the training loop takes it as one batch
a step (full-batch training), a :class:`GraphBatch` holding the node features as ``inputs``, the message-passing
structure as ``graph`` (an :class:`Adjacency` that caches its normalised and sorted forms) and the edges and
nodes the split scores.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from aekit.data.base import Splits
from aekit.data.batch import Batch
from aekit.errors import DataError

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")
GRAPH_TASKS = ("link", "node")


class Adjacency:
    """The message-passing structure of one graph: ``edge_index [2, E]`` (source row 0, target row 1; both
    directions of every undirected edge, no self-loops), with the forms the layers use cached on first use."""

    def __init__(self, edge_index: torch.Tensor, num_nodes: int) -> None:
        self.edge_index, self.num_nodes = edge_index, num_nodes
        self._cache: dict[str, object] = {}

    @property
    def device(self) -> torch.device:
        return self.edge_index.device

    def to(self, device, non_blocking: bool = False) -> Adjacency:
        if torch.device(device) == self.device:
            return self
        return Adjacency(self.edge_index.to(device, non_blocking=non_blocking), self.num_nodes)

    def cached(self, key: str, build):
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def with_self_loops(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(src, dst)`` of the edges plus one self-loop per node, sorted by target (CSR order)."""
        def build():
            loops = torch.arange(self.num_nodes, device=self.device)
            src = torch.cat([self.edge_index[0], loops])
            dst = torch.cat([self.edge_index[1], loops])
            order = torch.argsort(dst * self.num_nodes + src)
            return src[order], dst[order]

        return self.cached("self_loops", build)

    def gcn_norm(self) -> torch.Tensor:
        """A_hat = D^-1/2 (A + I) D^-1/2 as a sparse CSR matrix ``[N, N]`` (Kipf & Welling 2017, Eq. 2)."""
        def build():
            src, dst = self.with_self_loops()
            degree = torch.bincount(dst, minlength=self.num_nodes).to(torch.get_default_dtype())
            inv_sqrt = degree.pow(-0.5)
            values = inv_sqrt[dst] * inv_sqrt[src]
            crow = torch.zeros(self.num_nodes + 1, dtype=torch.int64, device=self.device)
            crow[1:] = torch.cumsum(torch.bincount(dst, minlength=self.num_nodes), 0)
            return torch.sparse_csr_tensor(crow, src, values, (self.num_nodes, self.num_nodes), check_invariants=False)

        return self.cached("gcn_norm", build)

    def edge_keys(self) -> torch.Tensor:
        """The sorted keys ``i * N + j`` of the directed edges, to test pairs for membership."""
        return self.cached("keys", lambda: torch.sort(self.edge_index[0] * self.num_nodes + self.edge_index[1])[0])


@dataclass
class GraphBatch(Batch):
    """A graph as one batch: ``inputs [N, F]`` node features, ``labels [N]`` node classes (where known),
    ``graph`` the message-passing structure, ``pos_edges`` / ``neg_edges`` ``[2, P]`` the edges and non-edges the
    split scores (training: the training edges, the non-edges drawn each step by the model), ``node_mask [N]``
    the nodes the split scores (node classification)."""

    graph: Adjacency | None = None
    pos_edges: torch.Tensor | None = None
    neg_edges: torch.Tensor | None = None
    node_mask: torch.Tensor | None = None

    @property
    def num_nodes(self) -> int:
        return self.inputs.shape[0]

    def select(self, index):
        raise DataError("a graph trains as one batch on one device; set devices=1")


@dataclass
class Graph:
    """One graph: ``x [N, F]`` float32 features, ``edges [2, M]`` its undirected edges once each (``i < j``),
    ``y [N]`` node classes or None, ``masks`` the data's own node split (``train``/``val``/``test`` bool ``[N]``)
    where it has one; ``notes``: what was cleaned on reading (self-loops, duplicate edges, isolated nodes)."""

    x: torch.Tensor
    edges: torch.Tensor
    y: torch.Tensor | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    name: str = "graph"
    classes: tuple[str, ...] | None = None
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, x, edge_index, y=None, masks=None, name: str = "graph", classes=None) -> Graph:
        """A graph from features ``x [N, F]`` and edges ``edge_index [2, E]`` (directed pairs or undirected ones,
        in any order): out-of-range indices, NaN features and label counts that disagree are errors; self-loops
        and duplicate edges are dropped, and isolated nodes kept, each said in ``notes``."""
        x = torch.as_tensor(np.asarray(x, dtype=np.float32) if not torch.is_tensor(x) else x).float()
        if x.dim() != 2:
            raise DataError(f"{name}: node features of shape {tuple(x.shape)}; give a matrix [num_nodes, features]")
        if not torch.isfinite(x).all():
            row = int(torch.nonzero(~torch.isfinite(x))[0, 0])
            raise DataError(f"{name}: the features of node {row} hold NaN or Inf; clean or drop it first")
        n = x.shape[0]
        e = torch.as_tensor(np.asarray(edge_index) if not torch.is_tensor(edge_index) else edge_index)
        if e.dim() != 2 or 2 not in e.shape:
            raise DataError(f"{name}: edges of shape {tuple(e.shape)}; give edge_index [2, E] or an edge list [E, 2]")
        e = e.long() if e.shape[0] == 2 else e.long().t()
        if e.numel() and (int(e.min()) < 0 or int(e.max()) >= n):
            bad = int(e.max()) if int(e.max()) >= n else int(e.min())
            raise DataError(f"{name}: edge index {bad} is out of range for {n} nodes (0..{n - 1}); node ids must "
                            "index the feature rows")
        notes = []
        loops = int((e[0] == e[1]).sum())
        e = e[:, e[0] != e[1]]
        pairs = torch.stack([torch.minimum(e[0], e[1]), torch.maximum(e[0], e[1])])
        keys = torch.unique(pairs[0] * n + pairs[1])
        edges = torch.stack([keys // n, keys % n])
        if loops:
            notes.append(f"{name}: {loops} self-loops dropped (the encoders add their own)")
        duplicates = e.shape[1] - int(torch.unique(e[0] * n + e[1]).numel())
        if duplicates:
            notes.append(f"{name}: {duplicates} duplicate edges dropped")
        isolated = n - int(torch.unique(edges.flatten()).numel())
        if isolated:
            notes.append(f"{name}: {isolated} isolated nodes (no edge) kept")
        if y is not None:
            y = torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y).long().flatten()
            if len(y) != n:
                raise DataError(f"{name}: {n} nodes but {len(y)} labels; give one label per node")
        masks = {k: torch.as_tensor(v, dtype=torch.bool) for k, v in (masks or {}).items()}
        for key, mask in masks.items():
            if mask.shape != (n,):
                raise DataError(f"{name}: the {key} mask has shape {tuple(mask.shape)}; give one flag per node ({n})")
        return cls(x, edges, y, masks, name, classes, notes)

    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def edge_index(self) -> torch.Tensor:
        """Both directions of every edge: ``[2, 2M]``."""
        return torch.cat([self.edges, self.edges.flip(0)], dim=1)

    def row_normalized(self) -> Graph:
        """Features divided by their row sums (rows of zeros stay zero), as GCN's and GraphMAE's Planetoid
        preprocessing does."""
        s = self.x.sum(1, keepdim=True)
        return dataclasses.replace(self, x=self.x / torch.where(s == 0, torch.ones_like(s), s))

    @classmethod
    def from_pyg(cls, data, name: str = "graph") -> Graph:
        """From a PyTorch Geometric ``Data`` (``x``, ``edge_index``, ``y``, ``train_mask`` / ``val_mask`` /
        ``test_mask`` where present)."""
        if getattr(data, "x", None) is None:
            raise DataError(f"{name}: the Data has no node features x; set data.x (e.g. torch.eye(num_nodes))")
        masks = {k: getattr(data, f"{k}_mask") for k in ("train", "val", "test")
                 if getattr(data, f"{k}_mask", None) is not None}
        return cls.build(data.x, data.edge_index, getattr(data, "y", None), masks, name)

    def to_pyg(self):
        """A PyTorch Geometric ``Data`` with both directions of every edge and the masks (``aekit[graph]``)."""
        try:
            from torch_geometric.data import Data
        except ImportError:
            raise DataError("to_pyg needs PyTorch Geometric; pip install 'aekit[graph]'") from None
        masks = {f"{k}_mask": v for k, v in self.masks.items()}
        return Data(x=self.x, edge_index=self.edge_index, y=self.y, **masks)


# ---------------------------------------------------------------------------------------------------------
# Reading


def _planetoid_allowed() -> dict[tuple[str, str], object]:
    import collections

    import scipy.sparse

    return {("scipy.sparse.csr", "csr_matrix"): scipy.sparse.csr_matrix,
            ("scipy.sparse._csr", "csr_matrix"): scipy.sparse.csr_matrix,
            ("collections", "defaultdict"): collections.defaultdict,
            ("__builtin__", "list"): list, ("builtins", "list"): list}


def read_planetoid(folder: str | Path, name: str = "cora") -> Graph:
    """The Planetoid files ``ind.<name>.{x,tx,allx,y,ty,ally,graph,test.index}`` (Yang et al. 2016), read through
    a restricted unpickler (numpy arrays, scipy CSR matrices, lists and a defaultdict; anything else is refused
    unrun), with the Planetoid split: the labelled ``x`` nodes train, the next 500 validate, ``test.index`` tests.
    Test ids missing from the graph (CiteSeer's isolated test nodes) get zero features and no test flag, as
    Kipf & Welling's and PyTorch Geometric's readers do."""
    from aekit.data.formats import read_pickle

    folder = Path(folder)
    allowed = _planetoid_allowed()
    parts = {}
    for key in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
        path = folder / f"ind.{name}.{key}"
        if not path.is_file():
            raise DataError(f"{path}: missing; a Planetoid folder holds ind.{name}.{{x,tx,allx,y,ty,ally,graph,"
                            "test.index}")
        parts[key] = read_pickle(path, allowed)
    index_path = folder / f"ind.{name}.test.index"
    try:
        test_index = np.array([int(line) for line in index_path.read_text().split()], dtype=np.int64)
    except (OSError, ValueError) as err:
        raise DataError(f"{index_path}: not a list of node ids ({err}); check the file") from None
    dense = {k: np.asarray(v.todense()) if hasattr(v, "todense") else np.asarray(v) for k, v in parts.items()
             if k != "graph"}
    tx, ty = dense["tx"], dense["ty"]
    order = np.sort(test_index)
    span = order[-1] - order[0] + 1
    if span != len(order):  # CiteSeer: test ids with no node in tx; pad them with zero rows
        tx_full = np.zeros((span, tx.shape[1]), dtype=tx.dtype)
        ty_full = np.zeros((span, ty.shape[1]), dtype=ty.dtype)
        tx_full[order - order[0]], ty_full[order - order[0]] = tx, ty
        tx, ty = tx_full, ty_full
    x = np.concatenate([dense["allx"], tx]).astype(np.float32)
    y_onehot = np.concatenate([dense["ally"], ty])
    x[test_index], y_onehot[test_index] = x[order], y_onehot[order]  # the test rows are stored in sorted order
    n = x.shape[0]
    graph = parts["graph"]
    if not isinstance(graph, dict):
        raise DataError(f"{folder}/ind.{name}.graph: not an adjacency dict; check the file")
    src = [int(i) for i, nbrs in graph.items() for _ in nbrs]
    dst = [int(j) for nbrs in graph.values() for j in nbrs]
    edges = np.array([src, dst], dtype=np.int64)
    edges = edges[:, (edges < n).all(0)]  # the graph dict may list ids beyond the feature rows (none in Cora)
    n_train = dense["y"].shape[0]
    masks = {k: np.zeros(n, dtype=bool) for k in ("train", "val", "test")}
    masks["train"][:n_train] = True
    masks["val"][n_train : n_train + 500] = True
    masks["test"][test_index] = True
    y = y_onehot.argmax(1)
    return Graph.build(x, edges, y, masks, name)


def read_graph_files(edges: str | Path, features: str | Path | None = None, labels: str | Path | None = None,
                     name: str | None = None) -> Graph:
    """A graph from files: an ``.npz`` holding ``edge_index`` (or ``edges``), ``x`` and optionally ``y`` (and
    ``train_mask``/``val_mask``/``test_mask``); or an edge list (CSV of ``source,target`` rows, a header allowed,
    or ``.npy``/``.npz``) plus a feature matrix (CSV or ``.npy``/``.npz``) and optional labels."""
    edges = Path(edges)
    name = name or edges.stem

    def array(path: Path, keys=("x", "features", "arr_0")) -> np.ndarray:
        if not path.is_file():
            raise DataError(f"{path}: no such file; pass the edge list and the feature matrix")
        if path.suffix in (".npy", ".npz"):
            data = np.load(path, allow_pickle=False)
            if isinstance(data, np.ndarray):
                return data
            key = next((k for k in keys if k in data.files), data.files[0])
            return data[key]
        try:
            return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=_header_rows(path))
        except ValueError as err:
            raise DataError(f"{path}: not a numeric CSV ({err}); give numbers only, one row per line") from None

    if edges.suffix == ".npz" and features is None:
        data = np.load(edges, allow_pickle=False)
        key = "edge_index" if "edge_index" in data.files else "edges" if "edges" in data.files else None
        if key is None or "x" not in data.files:
            raise DataError(f"{edges}: a graph .npz needs edge_index (or edges) and x arrays; it has "
                            f"{', '.join(data.files)}")
        masks = {k: data[f"{k}_mask"] for k in ("train", "val", "test") if f"{k}_mask" in data.files}
        return Graph.build(data["x"], data[key], data["y"] if "y" in data.files else None, masks, name)
    if features is None:
        raise DataError(f"{edges}: an edge list needs a feature matrix; pass features=PATH (torch.eye for none)")
    e = array(edges, ("edge_index", "edges", "arr_0")).astype(np.int64)
    y = None if labels is None else array(Path(labels), ("y", "labels", "arr_0")).reshape(-1)
    return Graph.build(array(Path(features)), e, y, None, name)


def _header_rows(path: Path) -> int:
    first = path.open().readline()
    try:
        [float(c) for c in first.split(",")]
        return 0
    except ValueError:
        return 1


def stochastic_block_graph(nodes: int = 600, classes: int = 4, features: int = 64, degree: float = 8.0,
                           homophily: float = 0.8, seed: int = 0) -> Graph:
    """A generated graph that needs no files: ``nodes`` split evenly into ``classes`` blocks, about ``degree``
    edges per node of which a share ``homophily`` join nodes of the same block (a stochastic block model), and
    binary bag-of-words features where each block favours its own ``features / classes`` words. The Planetoid-like
    default data of the graph models, and the generator of large graphs for benchmarks."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(nodes) % classes
    m = int(nodes * degree / 2)
    i = torch.randint(0, nodes, (m,), generator=g)
    same = torch.rand(m, generator=g) < homophily
    offset = torch.randint(1, classes, (m,), generator=g) if classes > 1 else torch.zeros(m, dtype=torch.long)
    target_class = torch.where(same, y[i], (y[i] + offset) % classes)
    per_class = nodes // classes
    j = target_class + classes * torch.randint(0, per_class, (m,), generator=g)  # a node of that class
    words = torch.arange(features) % classes  # the block each word belongs to
    p = torch.where(words.unsqueeze(0) == y.unsqueeze(1), 0.3, 0.03)  # [N, F]
    x = (torch.rand(nodes, features, generator=g) < p).float()
    masks = {k: torch.zeros(nodes, dtype=torch.bool) for k in ("train", "val", "test")}
    perm = torch.randperm(nodes, generator=g)
    cut = [0, 20 * classes, 20 * classes + nodes // 5, nodes]  # 20 per class, a fifth, the rest (Planetoid-like)
    for k, (a, b) in zip(masks, zip(cut[:-1], cut[1:], strict=True), strict=True):
        masks[k][perm[a:b]] = True
    return Graph.build(x, torch.stack([i, j]), y, masks, f"sbm-{nodes}",
                       tuple(f"block {c}" for c in range(classes)))


# ---------------------------------------------------------------------------------------------------------
# Splits


def sample_non_edges(num_nodes: int, count: int, forbidden: torch.Tensor, generator: torch.Generator | None = None,
                     distinct: bool = True) -> torch.Tensor:
    """``count`` node pairs ``[2, count]`` (``i < j``) that are not edges: keys ``i * N + j`` found in the sorted
    ``forbidden`` are refused and drawn again (rejection sampling). ``distinct``: no pair twice (held-out negatives);
    training negatives, drawn anew each step, may repeat, as PyTorch Geometric's do."""
    n = num_nodes
    possible = n * (n - 1) // 2 - len(forbidden)
    if count > possible:
        raise DataError(f"a graph of {n} nodes has {possible} non-edges; {count} cannot be drawn")
    chosen = torch.empty(0, dtype=torch.int64, device=forbidden.device)
    while len(chosen) < count:
        draw = max(2 * (count - len(chosen)), 64) if distinct else count - len(chosen)
        i = torch.randint(0, n, (draw,), generator=generator, device=forbidden.device)
        j = torch.randint(0, n, (draw,), generator=generator, device=forbidden.device)
        lo, hi = torch.minimum(i, j), torch.maximum(i, j)
        keys = (lo * n + hi)[lo != hi]
        keys = keys[~_contains(forbidden, keys)]
        if distinct:
            seen = torch.sort(chosen)[0]
            keys = keys[~_contains(seen, keys)]
            _, first = np.unique(keys.cpu().numpy(), return_index=True)  # distinct, in draw order
            keys = keys[torch.as_tensor(np.sort(first), device=keys.device)]
        chosen = torch.cat([chosen, keys])[:count]
    return torch.stack([chosen // n, chosen % n])


def _contains(sorted_keys: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Which of ``keys`` are in ``sorted_keys`` (a binary search each; no sort of either)."""
    if len(sorted_keys) == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    at = torch.searchsorted(sorted_keys, keys).clamp(max=len(sorted_keys) - 1)
    return sorted_keys[at] == keys


@dataclass
class LinkSplit:
    """The undirected edges split for link prediction: ``train`` (the message-passing graph), ``val`` and
    ``test`` edges, and as many non-edges for each of val and test, each ``[2, M]`` with ``i < j``."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    val_neg: torch.Tensor
    test_neg: torch.Tensor


def link_split(graph: Graph, val: float = 0.05, test: float = 0.10, seed: int = 0) -> LinkSplit:
    """Seeded split of the edges: ``floor(val * M)`` validation and ``floor(test * M)`` test edges (Kipf &
    Welling's counts), the rest train; negatives are pairs that are no edge of the whole graph, distinct across
    val and test."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DataError(f"edge_split=({val}, {test}): the validation and test shares must lie in [0, 1) and sum "
                        "below 1")
    m, n = graph.edges.shape[1], graph.num_nodes
    n_val, n_test = int(np.floor(val * m)), int(np.floor(test * m))
    if m - n_val - n_test < 1 or (val > 0 and n_val == 0) or (test > 0 and n_test == 0):
        raise DataError(f"{graph.name}: {m} edges are too few for edge_split=({val}, {test})")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(m, generator=g)
    e = graph.edges
    test_e, val_e, train_e = e[:, perm[:n_test]], e[:, perm[n_test : n_test + n_val]], e[:, perm[n_test + n_val :]]
    all_keys = torch.sort(e[0] * n + e[1])[0]
    negatives = sample_non_edges(n, n_val + n_test, all_keys, g)
    return LinkSplit(train_e, val_e, test_e, negatives[:, :n_val], negatives[:, n_val:])


def _node_masks(graph: Graph, seed: int) -> dict[str, torch.Tensor]:
    """The data's own node split, or a seeded 10 / 10 / 80 % random one (train / val / test) where it has none."""
    if all(k in graph.masks for k in ("train", "val", "test")):
        return graph.masks
    perm = torch.randperm(graph.num_nodes, generator=torch.Generator().manual_seed(seed))
    n = graph.num_nodes
    cuts = {"train": perm[: n // 10], "val": perm[n // 10 : n // 5], "test": perm[n // 5 :]}
    masks = {}
    for key, ids in cuts.items():
        masks[key] = torch.zeros(n, dtype=torch.bool)
        masks[key][ids] = True
    return masks


class GraphSource:
    """A map source of one example, the whole graph, seen through one split (see the module docstring):
    ``len`` is 1, ``shape`` is ``(F,)``, ``batch()`` gives the :class:`GraphBatch`."""

    def __init__(self, graph: Graph, adjacency: Adjacency, name: str, pos_edges=None, neg_edges=None,
                 node_mask=None) -> None:
        self.graph, self.adjacency, self.name = graph, adjacency, name
        self.pos_edges, self.neg_edges, self.node_mask = pos_edges, neg_edges, node_mask

    def __len__(self) -> int:
        return 1

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.graph.x.shape[1],)

    @property
    def classes(self):
        return self.graph.classes

    @property
    def y(self):
        return self.graph.y

    def _check(self, index) -> None:
        ids = range(1)[index] if isinstance(index, slice) else torch.as_tensor(index).flatten().tolist()
        if list(ids) != [0]:
            raise DataError(f"{self.name}: a graph source holds one example, the graph; index it with 0")

    def inputs(self, index=None) -> torch.Tensor:
        return self.graph.x

    def labels(self, index=None):
        return self.graph.y

    def batch(self, index=None) -> GraphBatch:
        if index is not None:
            self._check(index)
        return GraphBatch(self.graph.x, self.graph.y, graph=self.adjacency, pos_edges=self.pos_edges,
                          neg_edges=self.neg_edges, node_mask=self.node_mask)

    def subset(self, index, name: str | None = None) -> GraphSource:
        if len(torch.as_tensor(index).flatten()) == 0:
            return EmptyGraphSource(self, name or f"{self.name}/none")
        self._check(index)
        return self


class EmptyGraphSource(GraphSource):
    """No graph (a split left empty, such as the validation part of ``train_on_val``)."""

    def __init__(self, like: GraphSource, name: str) -> None:
        super().__init__(like.graph, like.adjacency, name)

    def __len__(self) -> int:
        return 0


def graph_splits(graph: Graph, task: str = "link", edge_split: tuple[float, float] = (0.05, 0.10),
                 seed: int = 0) -> Splits:
    """Train / val / test views of one graph for ``task`` (``link`` or ``node``; see the module docstring)."""
    if task not in GRAPH_TASKS:
        raise DataError(f"graph_task={task!r} is unknown; choose one of {', '.join(GRAPH_TASKS)}")
    masks = _node_masks(graph, seed) if graph.y is not None else {}
    if task == "link":
        split = link_split(graph, *edge_split, seed=seed)
        adjacency = Adjacency(torch.cat([split.train, split.train.flip(0)], dim=1), graph.num_nodes)
        views = {"train": (split.train, None), "val": (split.val, split.val_neg), "test": (split.test, split.test_neg)}
    else:
        adjacency = Adjacency(graph.edge_index, graph.num_nodes)
        views = {k: (None, None) for k in ("train", "val", "test")}
    sources = {k: GraphSource(graph, adjacency, f"{graph.name}/{k}", pos, neg, masks.get(k))
               for k, (pos, neg) in views.items()}
    return Splits(sources["train"], sources["val"], sources["test"], notes=list(graph.notes))


def is_graph_splits(splits) -> bool:
    return isinstance(getattr(splits, "train", None), GraphSource)
