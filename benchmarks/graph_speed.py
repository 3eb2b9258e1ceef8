"""Graph autoencoder speed, side by side with PyTorch Geometric in one process, on Cora.

1. ``vgae``: aekit's VGAE recipe (``aekit.train``, the training loop with a validation AUC/AP every epoch) against
   PyTorch Geometric's own ``examples/autoencoder.py`` loop (GCNConv(cached=True) encoder, ``VGAE.recon_loss`` with
   negative sampling, ``kl_loss`` / N, ``model.test`` on the validation edges every epoch), on the same split, the
   same sizes (GCN 32 -> 16), Adam lr 0.01 and the same number of epochs. aekit runs with ``recon=sampled`` (the
   same loss as PyG's) and with its default ``recon=dense`` (the reference's weighted full-adjacency loss).
2. ``graphmae``: one GraphMAE training epoch (forward, backward, Adam step) of aekit's model against a
   straightforward PyG implementation of the same model (``GATConv`` layers, 4 x 128 heads, PReLU, feature and
   attention dropout, a 1-head GATConv decoder, re-masking, scaled cosine error) on the same masks.
3. ``large``: a generated graph with 1,000,000 undirected edges (100,000 nodes, stochastic block model) trained
   full-batch by aekit's VGAE with ``recon=sampled``: step time and the process's peak memory.
4. ``dense``: the dense loss's softplus sum over every pair, through autograd against aekit's blockwise form.

    AEKIT_DATA=../shared/datasets python benchmarks/graph_speed.py vgae --repeats 5 --threads 2
    AEKIT_DATA=../shared/datasets python benchmarks/graph_speed.py graphmae --repeats 5 --threads 2
    python benchmarks/graph_speed.py large --threads 2
    python benchmarks/graph_speed.py dense --repeats 20 --threads 2

Timings alternate aekit and PyG run by run; the medians and their ratio are printed as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn.functional as F

import aekit
from aekit.data.graphs import link_split, read_planetoid
from aekit.data.registry import _dataset_folder, dataset_info


def cora(row_normalize: bool = True):
    graph = read_planetoid(_dataset_folder(dataset_info("cora"), None), "cora")
    return graph.row_normalized() if row_normalize else graph


# ---------------------------------------------------------------------------------------------------------
# 1. VGAE


def pyg_vgae_loop(graph, split, epochs: int, seed: int) -> float:
    """PyG's examples/autoencoder.py (VGAE branch), on aekit's split; returns the loop's seconds."""
    from torch_geometric.nn import GCNConv
    from torch_geometric.nn.models import VGAE

    class VariationalGCNEncoder(torch.nn.Module):
        def __init__(self, in_channels, out_channels):
            super().__init__()
            self.conv1 = GCNConv(in_channels, 2 * out_channels, cached=True)
            self.conv_mu = GCNConv(2 * out_channels, out_channels, cached=True)
            self.conv_logstd = GCNConv(2 * out_channels, out_channels, cached=True)

        def forward(self, x, edge_index):
            x = self.conv1(x, edge_index).relu()
            return self.conv_mu(x, edge_index), self.conv_logstd(x, edge_index)

    torch.manual_seed(seed)
    mp = torch.cat([split.train, split.train.flip(0)], dim=1)
    model = VGAE(VariationalGCNEncoder(graph.x.shape[1], 16))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    t0 = time.perf_counter()
    for _ in range(epochs):
        model.train()
        optimizer.zero_grad()
        z = model.encode(graph.x, mp)
        loss = model.recon_loss(z, split.train) + (1 / graph.num_nodes) * model.kl_loss()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            z = model.encode(graph.x, mp)
            model.test(z, split.val, split.val_neg)
    return time.perf_counter() - t0


def aekit_vgae_loop(graph, epochs: int, seed: int, threads: int, recon: str) -> float:
    result = aekit.train("vgae", data=graph, out=None, steps=epochs, seed=seed, split_seed=seed, threads=threads,
                         recon=recon, progress=False, evaluate=False)
    return result.metrics["train/wall_time_s"]


def bench_vgae(args) -> dict:
    graph = cora(row_normalize=True)  # the PyG example's NormalizeFeatures
    split = link_split(graph, 0.05, 0.10, seed=0)
    times = {"pyg": [], "aekit_sampled": [], "aekit_dense": []}
    for repeat in range(args.repeats):
        times["pyg"].append(pyg_vgae_loop(graph, split, args.epochs, repeat))
        times["aekit_sampled"].append(aekit_vgae_loop(graph, args.epochs, 0, args.threads, "sampled"))
        times["aekit_dense"].append(aekit_vgae_loop(graph, args.epochs, 0, args.threads, "dense"))
    return summarise(times, "pyg", args)


# ---------------------------------------------------------------------------------------------------------
# 2. GraphMAE


def pyg_graphmae(features: int):
    """GraphMAE's Cora model written plainly with PyG's GATConv."""
    from torch_geometric.nn import GATConv

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = torch.nn.ModuleList([GATConv(features, 128, heads=4, dropout=0.1),
                                            GATConv(512, 128, heads=4, dropout=0.1)])
            self.acts = torch.nn.ModuleList([torch.nn.PReLU(), torch.nn.PReLU()])
            self.enc_to_dec = torch.nn.Linear(512, 512, bias=False)
            self.dec = GATConv(512, features, heads=1, dropout=0.1)
            self.mask_token = torch.nn.Parameter(torch.zeros(1, features))

        def forward(self, x, edge_index, token_nodes, replaced, sources, hidden):
            x_tilde = x.clone()
            x_tilde[token_nodes] = self.mask_token
            x_tilde[replaced] = x[sources]
            h = x_tilde
            for conv, act in zip(self.enc, self.acts, strict=True):
                h = act(conv(F.dropout(h, 0.2, self.training), edge_index))
            rep = self.enc_to_dec(h)
            rep = rep.clone()
            rep[hidden] = 0
            recon = self.dec(F.dropout(rep, 0.2, self.training), edge_index)
            cos = (F.normalize(x[hidden], dim=-1) * F.normalize(recon[hidden], dim=-1)).sum(-1)
            return (1 - cos).pow(3).mean()

    return Model()


def bench_graphmae(args) -> dict:
    from aekit.data.graphs import graph_splits

    graph = cora(row_normalize=True)
    batch = graph_splits(graph, "node").train.batch()
    torch.manual_seed(0)
    ours = aekit.build_model("graphmae", data_shape=(graph.x.shape[1],))
    peer = pyg_graphmae(graph.x.shape[1])
    opt_ours = torch.optim.Adam(ours.parameters(), lr=1e-3, weight_decay=2e-4)
    opt_peer = torch.optim.Adam(peer.parameters(), lr=1e-3, weight_decay=2e-4)
    n = graph.num_nodes

    def peer_step():
        perm = torch.randperm(n)
        hidden = perm[: n // 2]
        n_replace = int(0.05 * len(hidden))
        loss = peer(graph.x, graph.edge_index, hidden[n_replace:], hidden[:n_replace],
                    torch.randperm(n)[:n_replace], hidden)
        opt_peer.zero_grad()
        loss.backward()
        opt_peer.step()

    def our_step():
        loss = ours(batch).terms["recon"]
        opt_ours.zero_grad()
        loss.backward()
        opt_ours.step()

    times = {"pyg": [], "aekit": []}
    for step in (peer_step, our_step):
        for _ in range(3):
            step()  # warm-up
    for _ in range(args.repeats):
        for name, step in (("pyg", peer_step), ("aekit", our_step)):
            t0 = time.perf_counter()
            for _ in range(args.epochs):
                step()
            times[name].append((time.perf_counter() - t0) / args.epochs)
    return summarise(times, "pyg", args)


# ---------------------------------------------------------------------------------------------------------
# 3. A graph of a million edges


def bench_large(args) -> dict:
    from aekit.data.graphs import stochastic_block_graph

    t0 = time.perf_counter()
    graph = stochastic_block_graph(nodes=100_000, classes=10, features=64, degree=20.03, seed=0)
    built = time.perf_counter() - t0
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = aekit.train("vgae", data=graph, out=None, steps=args.epochs, recon="sampled", threads=args.threads,
                         eval_every=args.epochs, progress=False, evaluate=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"nodes": graph.num_nodes, "edges": int(graph.edges.shape[1]), "generate_s": round(built, 1),
            "steps": args.epochs, "step_s": round(result.metrics["train/wall_time_s"] / args.epochs, 3),
            "peak_rss_mib": round(peak / 1024), "rss_before_training_mib": round(before / 1024),
            "threads": args.threads}


def summarise(times: dict[str, list[float]], peer: str, args) -> dict:
    medians = {k: statistics.median(v) for k, v in times.items()}
    out = {"threads": args.threads, "epochs": args.epochs, "repeats": args.repeats,
           "median_s": {k: round(v, 4) for k, v in medians.items()},
           "spread_s": {k: [round(min(v), 4), round(max(v), 4)] for k, v in times.items()}}
    out["ratio_vs_" + peer] = {k: round(v / medians[peer], 3) for k, v in medians.items() if k != peer}
    return out


def bench_dense(args) -> dict:
    """The dense loss's softplus sum over every node pair, forward and backward: through autograd on the N x N
    logits against aekit's blockwise sum with its own gradient, on random codes of Cora's, CiteSeer's and a
    5,000-node graph's size (latent 16)."""
    from aekit.nn.graph import InnerProductDecoder

    decoder, out = InnerProductDecoder(), {}
    for nodes in (2708, 3327, 5000):
        z0 = torch.randn(nodes, 16, generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {"autograd": [], "blockwise": []}
        for _ in range(args.repeats):
            for name, f in (("autograd", lambda z: F.softplus(z @ z.t()).sum()), ("blockwise", decoder.softplus_sum)):
                z = z0.clone().requires_grad_()
                start = time.perf_counter()
                f(z).backward()
                times[name].append(time.perf_counter() - start)
        medians = {k: statistics.median(v) for k, v in times.items()}
        out[nodes] = {"median_ms": {k: round(1000 * v, 2) for k, v in medians.items()},
                      "spread_ms": {k: [round(1000 * min(v), 2), round(1000 * max(v), 2)] for k, v in times.items()},
                      "ratio": round(medians["blockwise"] / medians["autograd"], 3)}
    return {"threads": args.threads, "repeats": args.repeats, "nodes": out}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("which", choices=["vgae", "graphmae", "large", "dense"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=0, help="vgae: 200; graphmae: 10 per timing; large: 5")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.epochs = args.epochs or {"vgae": 200, "graphmae": 10, "large": 5, "dense": 0}[args.which]
    torch.set_num_threads(args.threads)
    result = {"vgae": bench_vgae, "graphmae": bench_graphmae, "large": bench_large,
              "dense": bench_dense}[args.which](args)
    print(json.dumps({"benchmark": args.which, "date": time.strftime("%Y-%m-%d"), **result}, indent=1))


if __name__ == "__main__":
    main()
