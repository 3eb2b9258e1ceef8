"""Reproductions on Cora (``--data``: another Planetoid graph): GAE and VGAE link prediction (Kipf & Welling
2016, Table 1) and GraphMAE node classification (Hou et al. 2022, Table 1), each over seeds, every recipe as the
model's defaults.

    AEKIT_DATA=../shared/datasets python benchmarks/graph_repro.py --models gae vgae --seeds 10
    AEKIT_DATA=../shared/datasets python benchmarks/graph_repro.py --models graphmae --seeds 10

Seed s draws the edge split (``split_seed=s``) and the initialisation and training noise (``seed=s``). One JSON line
per run is appended to ``--out`` as soon as it ends, so a long reproduction can be stopped and resumed (runs already
in the file are skipped).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import aekit

KEYS = ("test/auc", "test/ap", "test/node_acc", "test/node_acc_std", "train/best_val_auc", "train/wall_time_s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", nargs="+", default=["gae", "vgae"])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results/graph_repro.jsonl")
    parser.add_argument("--set", nargs="*", default=[], help="extra key=value settings, e.g. recon=sampled")
    parser.add_argument("--tag", default="")
    parser.add_argument("--data", default="cora", help="cora, citeseer or pubmed (Planetoid files)")
    args = parser.parse_args()
    out = Path(args.out)
    done = set()
    if out.is_file():
        done = {(r["model"], r["seed"], r.get("tag", ""), r.get("data", "cora"))
                for r in map(json.loads, out.read_text().splitlines())}
    extra = dict(kv.split("=", 1) for kv in args.set)
    for model in args.models:
        for seed in range(args.seeds):
            if (model, seed, args.tag, args.data) in done:
                continue
            t0 = time.perf_counter()
            result = aekit.train(model, data=args.data, out=None, seed=seed, split_seed=seed, threads=args.threads,
                                 progress=False, **extra)
            row = {"model": model, "data": args.data, "seed": seed, "tag": args.tag, "settings": extra,
                   "process_s": round(time.perf_counter() - t0, 1), "machine": platform.processor() or "cpu",
                   **{k: result.metrics[k] for k in KEYS if k in result.metrics}}
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
