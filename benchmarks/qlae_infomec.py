"""Latent quantisation against a VQ-VAE and a beta-VAE on dSprites, by InfoMEC and MIG, at a CPU budget.

Hsu et al. (2023, "Disentanglement via Latent Quantization") report that a quantised latent space with a scalar
codebook per coordinate (QLAE) is more modular and explicit (InfoM, InfoE) than a VQ-VAE's or a beta-VAE's. Three
models share the ``conv`` backbone (channels 32, 64, 128, hidden 256), 10 latents (twice dSprites' 5 factors, as
the paper), a Bernoulli likelihood, Adam(W) at lr 1e-3, ``--steps`` steps of batch 64 and seed 0:

    qlae       10 coordinates of 10 learnt values each, weight decay 0.1 (its defaults)
    vq-vae     one 10-d code per image from 512 entries (EMA, k-means start, restarts: its defaults)
    beta-vae   beta = 4 (its default)

Each is scored by the ``disentanglement`` suite on 10,000 test images drawn at random (the same for every model):
InfoM, InfoE, InfoC (binned mutual information, 20 bins), MIG (20 bins) and DCI with the fast logistic regressor.
No setting is tuned (one recipe per model).

    AEKIT_DATA=../shared/datasets .venv/bin/python benchmarks/qlae_infomec.py --steps 1500 \
        --out benchmarks/results/qlae_infomec.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import aekit_source, machine

import aekit
from aekit.data import load_data

KEYS = ("infom", "infoe", "infoc", "mig", "dci_disentanglement", "dci_completeness", "dci_informativeness")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--models", nargs="+", default=["qlae", "vq-vae", "beta-vae"])
    parser.add_argument("--out", default="benchmarks/results/qlae_infomec.json")
    args = parser.parse_args()
    shared = dict(backbone="conv", channels=(32, 64, 128), hidden=(256,), latent_dim=10, likelihood="bernoulli",
                  steps=args.steps, batch_size=64, seed=0, progress=False, figures=False, evaluate=False)
    splits = load_data("dsprites")
    results = {}
    for name in args.models:
        start = time.perf_counter()
        run = aekit.train(name, splits, None, **shared)
        wall = time.perf_counter() - start
        scores = aekit.evaluate(run.model, splits, suites=("disentanglement", "reconstruction"), seed=0)
        results[name] = {"train_wall_s": round(wall, 1), **{k: scores[f"test/{k}"] for k in KEYS},
                         "mse": scores["test/mse"]}
        print(name, results[name], flush=True)
    record = {"args": vars(args), "machine": machine(), "aekit": aekit_source(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
