"""Posterior collapse and the inverse-Lipschitz decoder: a VAE on statically binarized MNIST with the plain MLP
decoder against the ``inverse-lipschitz`` backbone (Kinoshita et al. 2023) at several constants L, the same
budget, encoder, optimiser and seeds; the collapse diagnostics of the ``variational`` suite on the validation and
the test split.

Each (recipe, seed) trains in a process of its own with one torch thread:

    vae, latent_dim 32, MLP encoder (512, 256), Adam at the training defaults, batch 100, ``--steps`` steps,
    decoder: backbone=mlp (256, 512), or backbone=inverse-lipschitz with backbone.inverse_lipschitz=L
    (two Brenier maps of input-convex networks of 2 x 256, an orthonormal embedding between them)

then is scored by ``aekit.evaluation.evaluate(..., suites=("variational",), seed=0)`` on both splits: active units
(Burda et al.), collapsed units (mean KL < 0.01 nats), I_q(x; z) and the aggregate posterior's MMD to the prior
over the first 2,000 examples, the ELBO. Every recipe is reported; none is chosen.

    AEKIT_DATA=/work/shared/datasets .venv/bin/python benchmarks/collapse_il.py --steps 3000 --seeds 0 1 2 \\
        --lipschitz 0 1 4 --workers 2 --out benchmarks/results/collapse_il.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine

KEYS = ("elbo", "kl", "recon", "active_units", "collapsed_units", "mutual_information", "aggregate_mmd")


def run_one(recipe: str, lipschitz: float | None, seed: int, steps: int) -> dict[str, Any]:
    """Train one recipe with one seed, in this process, and score it on the validation and test splits."""
    torch.set_num_threads(1)
    import aekit
    from aekit.data import load_data
    from aekit.evaluation import evaluate

    options = {} if lipschitz is None else {"backbone": "inverse-lipschitz", "backbone.inverse_lipschitz": lipschitz}
    start = time.perf_counter()
    result = aekit.train("vae", "binarized-mnist", None, evaluate=False, steps=steps, seed=seed, latent_dim=32,
                         batch_size=100, progress=False, **options)
    seconds = time.perf_counter() - start
    splits = load_data("binarized-mnist")
    row: dict[str, Any] = {"recipe": recipe, "seed": seed, "train_seconds": round(seconds, 1)}
    for split in ("val", "test"):
        metrics = evaluate(result.model.eval(), getattr(splits, split), suites=("variational",), seed=0, split=split)
        row[split] = {k: metrics[f"{split}/{k}"] for k in KEYS if f"{split}/{k}" in metrics}
    return row


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and range over the seeds of each metric, per recipe and split."""
    out: dict[str, Any] = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        out[recipe] = {split: {k: {"mean": statistics.fmean(r[split][k] for r in mine),
                                   "min": min(r[split][k] for r in mine), "max": max(r[split][k] for r in mine)}
                               for k in KEYS if k in mine[0][split]} for split in ("val", "test")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--lipschitz", type=float, nargs="+", default=[0.0, 1.0, 4.0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/collapse_il.json"))
    args = parser.parse_args()
    recipes = [("mlp", None)] + [(f"inverse-lipschitz L={L:g}", L) for L in args.lipschitz]
    jobs = [(name, L, seed, args.steps) for seed in args.seeds for name, L in recipes]
    rows = []
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for future in as_completed([pool.submit(run_one, *job) for job in jobs]):
            rows.append(future.result())
            print(json.dumps(rows[-1]), flush=True)  # each run as it ends
    order = {(name, seed): i for i, (name, _, seed, _) in enumerate(jobs)}
    rows.sort(key=lambda row: order[row["recipe"], row["seed"]])
    result = {"date": datetime.date.today().isoformat(), "machine": machine(), "aekit": aekit_source(),
              "steps": args.steps, "seeds": args.seeds, "rows": rows, "summary": summary(rows)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
