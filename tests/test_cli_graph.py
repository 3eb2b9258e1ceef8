"""Graph autoencoders from the command line: train and evaluate on a graph, resume, and bad graphs as one-line
errors."""

import json
import pickle

import numpy as np
import pytest
from test_cli import aekit_here, assert_clean_error

from aekit.data.graphs import stochastic_block_graph


@pytest.fixture(scope="module")
def graph_file(tmp_path_factory):
    g = stochastic_block_graph(nodes=150, classes=3, features=16, seed=0)
    path = tmp_path_factory.mktemp("graph") / "g.npz"
    np.savez(path, x=g.x.numpy(), edge_index=g.edge_index.numpy(), y=g.y.numpy(),
             **{f"{k}_mask": v.numpy() for k, v in g.masks.items()})
    return path


def test_train_vgae_writes_link_and_node_metrics_and_the_embedding_figure(graph_file, tmp_path, capsys):
    run = tmp_path / "run"
    result = aekit_here(capsys, "train", "vgae", "--data", graph_file, "--out", run, "--steps", "8", "threads=1")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["test/auc"] <= 1 and 0 <= metrics["test/ap"] <= 1 and "test/node_acc" in metrics
    assert "train/best_val_auc" in metrics and (run / "figures" / "node_embeddings.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["monitor"] == "auc" and config["data"]["graph_task"] == "link"  # the model's recipe
    result = aekit_here(capsys, "train", "--out", run, "--resume", "--steps", "10")
    assert result.returncode == 0, result.stderr
    assert json.loads((run / "metrics.json").read_text())["train/steps"] == 10


def test_graphmae_on_the_node_split(graph_file, tmp_path, capsys):
    run = tmp_path / "run"
    result = aekit_here(capsys, "train", "graphmae", "--data", graph_file, "--out", run, "--steps", "5",
                        "hidden=16", "heads=2", "threads=1")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert "test/node_acc" in metrics and "test/auc" not in metrics
    assert json.loads((run / "config.json").read_text())["data"]["row_normalize"] is True


def test_bad_graphs_are_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.ones((4, 2), np.float32), edge_index=np.array([[0, 1], [1, 9]]))
    assert_clean_error(aekit_here(capsys, "train", "gae", "--data", bad, "--out", tmp_path / "r1", "--steps", "1"),
                       "edge index 9 is out of range for 4 nodes")
    labels = tmp_path / "labels.npz"
    np.savez(labels, x=np.ones((4, 2), np.float32), edge_index=np.array([[0, 1], [1, 2]]), y=np.array([0, 1]))
    assert_clean_error(aekit_here(capsys, "train", "gae", "--data", labels, "--out", tmp_path / "r2"),
                       "4 nodes but 2 labels")
    assert_clean_error(aekit_here(capsys, "train", "graphmae", "--data", "sbm", "--out", tmp_path / "r3",
                                  "mask_rate=1.5"), "mask_rate=1.5 must lie in (0, 1)")
    assert_clean_error(aekit_here(capsys, "train", "vgae", "--data", "sbm", "--out", tmp_path / "r4",
                                  "edge_split=[0.5,0.6]"), "edge_split")
    assert_clean_error(aekit_here(capsys, "train", "vgae", "--data", "digits", "--out", tmp_path / "r5"),
                       "a graph model trains on a graph")
    folder = tmp_path / "planetoid"
    folder.mkdir()
    for key in ("x", "tx", "allx", "y", "ty", "ally", "graph"):
        with open(folder / f"ind.evil.{key}", "wb") as f:
            pickle.dump(np.zeros(2) if key != "graph" else {0: [SystemExit]}, f, protocol=2)
    (folder / "ind.evil.test.index").write_text("1\n")
    assert_clean_error(aekit_here(capsys, "train", "gae", "--data", folder, "--out", tmp_path / "r6"),
                       "which is refused")
