"""Graphs: the Planetoid reader and its restricted unpickler, user graphs, cleaning, and the two splits."""

import pickle

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from aekit.data import load_data
from aekit.data.graphs import (
    Adjacency,
    Graph,
    GraphBatch,
    graph_splits,
    link_split,
    read_graph_files,
    read_planetoid,
    stochastic_block_graph,
)
from aekit.errors import DataError
from tests.conftest import SHARED_DATASETS

PLANETOID = SHARED_DATASETS / "planetoid"
needs_cora = pytest.mark.skipif(not (PLANETOID / "ind.cora.x").is_file(), reason="Cora is not in ../shared")


@needs_cora
def test_cora_matches_the_published_planetoid_figures():
    g = read_planetoid(PLANETOID, "cora")
    assert g.x.shape == (2708, 1433) and g.edges.shape == (2, 5278)
    assert torch.bincount(g.y).tolist() == [351, 217, 418, 818, 426, 298, 180]
    train, val, test = (g.masks[k] for k in ("train", "val", "test"))
    assert int(train.sum()) == 140 and torch.equal(torch.nonzero(val)[:, 0], torch.arange(140, 640))
    assert int(test.sum()) == 1000 and int(torch.nonzero(test).min()) == 1708 and int(torch.nonzero(test).max()) == 2707
    assert (torch.bincount(g.y[train]) == 20).all()  # 20 labelled nodes per class
    assert set(g.x.unique().tolist()) == {0.0, 1.0} and int(g.x.sum()) == 49216


def _write_planetoid(folder, name, tx_rows, test_ids, extra=None):
    """A tiny Planetoid set: 4 train/val nodes (allx) then test nodes; 2 classes, 3 features."""
    rng = np.random.default_rng(0)
    allx = sp.csr_matrix(rng.integers(0, 2, (4, 3)).astype(np.float32))
    tx = sp.csr_matrix(np.arange(1, tx_rows * 3 + 1, dtype=np.float32).reshape(tx_rows, 3))
    ally = np.eye(2)[[0, 1, 0, 1]]
    ty = np.eye(2)[np.arange(tx_rows) % 2]
    graph = {0: [1], 1: [0, 2], 2: [1, 3], 3: [2], 4: [0]}
    for key, value in {"x": allx[:2], "allx": allx, "tx": tx, "y": ally[:2], "ally": ally, "ty": ty,
                       "graph": extra if extra is not None else graph}.items():
        with open(folder / f"ind.{name}.{key}", "wb") as f:
            pickle.dump(value, f, protocol=2)
    (folder / f"ind.{name}.test.index").write_text("\n".join(map(str, test_ids)) + "\n")


def test_test_rows_are_put_back_in_file_order(tmp_path):
    _write_planetoid(tmp_path, "toy", 3, [6, 4, 5])  # tx row k is node test.index[k] (Kipf's and PyG's reading)
    g = read_planetoid(tmp_path, "toy")
    assert g.x.shape == (7, 3)
    assert g.x[6].tolist() == [1, 2, 3] and g.x[4].tolist() == [4, 5, 6] and g.x[5].tolist() == [7, 8, 9]
    assert g.masks["test"].tolist() == [False] * 4 + [True] * 3


def test_isolated_test_ids_get_zero_rows_and_no_test_flag(tmp_path):
    _write_planetoid(tmp_path, "citeseer", 2, [4, 6])  # id 5 has no row in tx, as in CiteSeer
    g = read_planetoid(tmp_path, "citeseer")
    assert g.x.shape == (7, 3)
    assert g.x[5].tolist() == [0, 0, 0] and g.x[4].tolist() == [1, 2, 3] and g.x[6].tolist() == [4, 5, 6]
    assert g.masks["test"].tolist() == [False] * 4 + [True, False, True]


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_pickle_with_any_other_class_is_refused_unrun(tmp_path, capsys):
    _write_planetoid(tmp_path, "toy", 3, [4, 5, 6], extra={0: [_Evil()]})
    with pytest.raises(DataError, match=r"asks for (__builtin__|builtins)\.print, which is refused"):
        read_planetoid(tmp_path, "toy")
    assert "must never run" not in capsys.readouterr().out


def test_missing_planetoid_file_is_named(tmp_path):
    _write_planetoid(tmp_path, "toy", 3, [4, 5, 6])
    (tmp_path / "ind.toy.ty").unlink()
    with pytest.raises(DataError, match=r"ind\.toy\.ty: missing"):
        read_planetoid(tmp_path, "toy")


def test_build_cleans_self_loops_and_duplicates_and_keeps_isolated_nodes():
    edges = torch.tensor([[0, 1, 1, 2, 2], [1, 0, 1, 0, 0]])  # 1-1 a loop; 2-0 twice
    g = Graph.build(torch.ones(4, 2), edges)
    assert g.edges.tolist() == [[0, 0], [1, 2]]
    assert any("1 self-loops dropped" in n for n in g.notes)
    assert any("duplicate edges dropped" in n for n in g.notes)
    assert any("1 isolated nodes" in n for n in g.notes)
    assert g.edge_index.shape == (2, 4)


@pytest.mark.parametrize("x,edges,y,match", [
    (torch.ones(3, 2), torch.tensor([[0, 1], [1, 3]]), None, r"edge index 3 is out of range for 3 nodes"),
    (torch.ones(3, 2), torch.tensor([[0, -1], [1, 2]]), None, r"edge index -1 is out of range"),
    (torch.tensor([[1.0, float("nan")], [0, 0]]), torch.tensor([[0], [1]]), None, r"node 0 hold NaN"),
    (torch.ones(3, 2), torch.tensor([[0], [1]]), torch.tensor([0, 1]), r"3 nodes but 2 labels"),
    (torch.ones(3), torch.tensor([[0], [1]]), None, r"give a matrix"),
    (torch.ones(3, 2), torch.tensor([0, 1, 2]), None, r"give edge_index \[2, E\]"),
])
def test_bad_graphs_are_clear_errors(x, edges, y, match):
    with pytest.raises(DataError, match=match):
        Graph.build(x, edges, y)


def test_pyg_data_round_trip():
    pytest.importorskip("torch_geometric")
    g = stochastic_block_graph(nodes=40, features=8)
    data = g.to_pyg()
    back = Graph.from_pyg(data)
    assert torch.equal(back.edges, g.edges) and torch.equal(back.x, g.x) and torch.equal(back.y, g.y)
    assert torch.equal(back.masks["test"], g.masks["test"])


def test_graph_files_npz_and_edge_list_with_features(tmp_path):
    g = stochastic_block_graph(nodes=40, features=8)
    np.savez(tmp_path / "g.npz", x=g.x.numpy(), edge_index=g.edge_index.numpy(), y=g.y.numpy())
    from_npz = read_graph_files(tmp_path / "g.npz")
    assert torch.equal(from_npz.edges, g.edges) and torch.equal(from_npz.y, g.y)
    np.savetxt(tmp_path / "edges.csv", g.edges.t().numpy(), delimiter=",", fmt="%d", header="source,target",
               comments="")
    np.save(tmp_path / "x.npy", g.x.numpy())
    from_csv = read_graph_files(tmp_path / "edges.csv", tmp_path / "x.npy")
    assert torch.equal(from_csv.edges, g.edges) and from_csv.y is None
    splits = load_data(str(tmp_path / "g.npz"))  # a graph .npz is recognised by load_data
    assert splits.train.shape == (8,)
    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "edges.csv").rename(folder / "edges.csv")
    (tmp_path / "x.npy").rename(folder / "features.npy")
    np.savetxt(folder / "labels.csv", g.y.numpy(), fmt="%d")
    splits = load_data(str(folder), graph={"graph_task": "node"})  # a folder of edges, features and labels
    assert torch.equal(splits.test.y, g.y) and splits.test.batch().node_mask is not None
    with pytest.raises(DataError, match="needs a feature matrix"):
        read_graph_files(tmp_path / "edges.csv")


def test_link_split_counts_and_no_held_out_edge_in_the_message_graph():
    g = stochastic_block_graph(nodes=300, features=16)
    m, n = g.edges.shape[1], g.num_nodes
    split = link_split(g, 0.05, 0.10, seed=3)
    assert split.val.shape[1] == int(0.05 * m) and split.test.shape[1] == int(0.10 * m)
    assert split.train.shape[1] + split.val.shape[1] + split.test.shape[1] == m

    def keys(e):
        return set((e[0] * n + e[1]).tolist())

    assert not keys(split.train) & keys(split.val) and not keys(split.train) & keys(split.test)
    assert not keys(split.val) & keys(split.test)
    negatives = keys(split.val_neg) | keys(split.test_neg)
    assert not negatives & keys(g.edges)  # non-edges of the whole graph
    assert len(negatives) == split.val_neg.shape[1] + split.test_neg.shape[1]  # distinct
    assert (split.val_neg[0] < split.val_neg[1]).all()
    splits = graph_splits(g, "link", (0.05, 0.10), seed=3)
    mp = splits.train.batch().graph.edge_index
    for part in (splits.val, splits.test):
        b = part.batch()
        assert b.graph is splits.train.batch().graph  # every split passes messages on the training edges
        assert not keys(torch.stack([b.pos_edges[0], b.pos_edges[1]])) & keys(mp)
        assert not keys(b.pos_edges.flip(0)) & keys(mp)
    again = link_split(g, 0.05, 0.10, seed=3)
    assert torch.equal(again.test, split.test) and torch.equal(again.test_neg, split.test_neg)
    assert not torch.equal(link_split(g, 0.05, 0.10, seed=4).test, split.test)


def test_node_task_keeps_every_edge_and_the_node_split():
    g = stochastic_block_graph(nodes=200)
    splits = graph_splits(g, "node")
    b = splits.test.batch()
    assert isinstance(b, GraphBatch) and b.graph.edge_index.shape[1] == 2 * g.edges.shape[1]
    assert torch.equal(b.node_mask, g.masks["test"]) and b.pos_edges is None
    assert len(splits.train) == 1 and splits.train.shape == (g.x.shape[1],)
    with pytest.raises(DataError, match="index it with 0"):
        splits.train.batch(torch.tensor([1]))


def test_bad_split_settings_are_clear_errors():
    g = stochastic_block_graph(nodes=50)
    with pytest.raises(DataError, match="edge_split"):
        link_split(g, 0.6, 0.5)
    with pytest.raises(DataError, match="graph_task='edges' is unknown"):
        graph_splits(g, "edges")
    tiny = Graph.build(torch.ones(3, 1), torch.tensor([[0], [1]]))
    with pytest.raises(DataError, match="too few"):
        link_split(tiny, 0.05, 0.10)


def test_gcn_normalisation_by_hand():
    # a path 0 - 1 - 2: degrees with self-loops 2, 3, 2
    adj = Adjacency(torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]]), 3)
    a = adj.gcn_norm().to_dense()
    d = torch.tensor([2.0, 3.0, 2.0]).rsqrt()
    expected = (torch.eye(3) + torch.tensor([[0, 1, 0], [1, 0, 1], [0, 1, 0.0]])) * d[:, None] * d[None, :]
    assert torch.allclose(a, expected)
    assert adj.gcn_norm() is a or torch.equal(adj.gcn_norm().to_dense(), a)  # cached


def test_generated_graph_is_seeded_and_homophilous():
    g = stochastic_block_graph(nodes=400, classes=4, seed=1)
    same = (g.y[g.edges[0]] == g.y[g.edges[1]]).float().mean()
    assert 0.7 < float(same) < 0.9
    assert torch.equal(stochastic_block_graph(nodes=400, classes=4, seed=1).edges, g.edges)
