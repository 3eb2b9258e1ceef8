"""Burda et al.'s (2016) Table 1 models on dynamically binarized MNIST at a CPU budget: one and two stochastic
layers, VAE and IWAE, and the ladder VAE on the two-layer sizes, all at the same number of epochs.

Networks (the authors' released code, yburda/iwae ``experiments.py``): tanh everywhere;
one layer  784-200-200-(50) / 50-200-200-784;
two layers 784-200-200-(100), 100-100-100-(50) / 50-100-100-(100), 100-200-200-784 (Gaussian layers, Bernoulli x).
The authors train 3,280 epochs with batch 20 and Adam (lr 1e-3 falling to 1e-4 over 3^i-epoch stages); here every
model gets the same few epochs, batch 100 (``--batch-size 20 --eps 1e-4``: the authors' batch and Adam epsilon),
AdamW without weight decay at lr 1e-3 on a cosine schedule, seed 0:
the comparison is between the models at equal budget, not against the table's absolute numbers. The test NLL is
aekit's importance-sampled estimate with K = 5000 over the first ``--nll-examples`` test images (binarized once),
the estimator of Table 1. No setting was tuned: each test figure is read once.

    AEKIT_DATA=../shared/datasets .venv/bin/python benchmarks/hierarchical_burda.py --epochs 4 \\
        --out benchmarks/results/hierarchical_burda.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from _common import machine

import aekit

ONE_LAYER = dict(latent_dim=50, hidden=(200, 200))
TWO_LAYERS = dict(latent_dim=100, upper_latents=(50,), hidden=(200, 200), transition_hidden=(100, 100))
WARMUP = dict(beta_schedule="linear", warmup_steps=1000)
RUNS = {  # label: (model, settings)
    "vae-1l-k1": ("vae", ONE_LAYER),
    "iwae-1l-k5": ("iwae", {**ONE_LAYER, "n_samples": 5}),
    "vae-2l-k1": ("hierarchical-vae", TWO_LAYERS),
    "iwae-2l-k5": ("hierarchical-iwae", {**TWO_LAYERS, "n_samples": 5}),
    "iwae-2l-k50": ("hierarchical-iwae", {**TWO_LAYERS, "n_samples": 50}),
    "ladder-2l-k1": ("ladder-vae", TWO_LAYERS),
    # Sonderby et al.'s warm-up: the KL's weight rising from 0 to 1 over the first half of the run (2 of 4 epochs)
    "vae-2l-k1-warmup": ("hierarchical-vae", {**TWO_LAYERS, **WARMUP}),
    "ladder-2l-k1-warmup": ("ladder-vae", {**TWO_LAYERS, **WARMUP}),
    # the same two with ReLU in place of tanh, warmed up
    "vae-2l-k1-relu-warmup": ("hierarchical-vae", {**TWO_LAYERS, **WARMUP, "activation": "relu"}),
    "ladder-2l-k1-relu-warmup": ("ladder-vae", {**TWO_LAYERS, **WARMUP, "activation": "relu"}),
}
# Burda et al. 2016, Table 1, MNIST (NLL in nats, K = 5000), after 3,280 epochs.
REFERENCE = {"vae-1l-k1": 86.76, "iwae-1l-k5": 85.54, "vae-2l-k1": 85.33, "iwae-2l-k5": 83.89, "iwae-2l-k50": 82.90}


def units_above(kl_per_dim: list[float], sizes: list[int], threshold: float = 0.01) -> list[int]:
    """Per layer (bottom first), the units whose mean KL is at least ``threshold`` nats."""
    counts, start = [], 0
    for size in sizes:
        counts.append(sum(v >= threshold for v in kl_per_dim[start : start + size]))
        start += size
    return counts


def run_one(label: str, epochs: int, nll_examples: int, out: Path, batch_size: int = 100, eps: float = 1e-8) -> dict:
    name, settings = RUNS[label]
    start = time.perf_counter()
    run = aekit.train(name, "dynamic-binarized-mnist", out / label, epochs=epochs, batch_size=batch_size, lr=1e-3,
                      optimizers={"model": {"eps": eps}}, likelihood="bernoulli", seed=0, nll_samples=5000,
                      nll_examples=nll_examples, progress=False, figures=False, **{"activation": "tanh", **settings})
    seconds = time.perf_counter() - start
    m = run.metrics
    sizes = [settings["latent_dim"], *settings.get("upper_latents", ())]
    return {"label": label, "model": name, "settings": {k: list(v) if isinstance(v, tuple) else v
                                                        for k, v in settings.items()},
            "nll": m["test/nll"], "nll_stderr": m["test/nll_stderr"], "elbo": m.get("test/elbo"),
            "kl_layers": [m[f"test/kl_layer{i + 1}"] for i in range(len(sizes))] if len(sizes) > 1 else None,
            "units_kl_above_0.01": units_above(m["test/kl_per_dim"], sizes),
            "active_units_layer1": m["test/active_units"], "seconds": seconds, "reference_nll": REFERENCE.get(label)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--nll-examples", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=100, help="the authors': 20")
    p.add_argument("--eps", type=float, default=1e-8, help="Adam's epsilon; the authors': 1e-4")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated labels of RUNS")
    p.add_argument("--out", default="benchmarks/results/hierarchical_burda.json")
    p.add_argument("--workdir", default="benchmarks/out/hierarchical_burda")
    args = p.parse_args()
    torch.set_num_threads(1)
    results = []
    for label in args.runs.split(","):
        results.append(run_one(label, args.epochs, args.nll_examples, Path(args.workdir), args.batch_size, args.eps))
        print(json.dumps(results[-1]), flush=True)
        record = {"machine": machine(), "epochs": args.epochs, "batch_size": args.batch_size, "eps": args.eps,
                  "runs": results}
        Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
