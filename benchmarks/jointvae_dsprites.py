"""JointVAE against a beta-VAE with a capacity on dSprites at a small CPU budget: how well a code recovers the
shape (3 classes), and MIG.

Both train with the same steps, batch, encoder and decoder, and the capacity objective of Dupont (2018, dSprites:
gamma 150, C_z rising to 40 nats); JointVAE has 6 Gaussian units and one 3-way concrete unit (C_c rising to 1.1 nats,
capped at log 3), the beta-VAE 6 Gaussian units only. Capacities reach their maxima at 2/3 of the run (the paper:
300,000 steps). Shape accuracy: JointVAE's categorical unit (argmax) against the shape, the categories matched to
the shapes one to one for the most agreements (Hungarian); the beta-VAE's (continuous) code is cut into 3 clusters
by k-means and matched the same way (chance: 1/3). MIG comes from the `disentanglement` suite. The networks are
the library's defaults (MLP 512-256), not the paper's convolutional ones.

    AEKIT_DATA=/work/shared/datasets .venv/bin/python benchmarks/jointvae_dsprites.py --steps 3000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from _common import aekit_source, machine

import aekit
from aekit.data import load_data

SETTINGS = {"joint-vae": {"latent_dim": 9, "discrete": [3], "capacity_disc": 1.1},
            "beta-vae": {"latent_dim": 6}}


def matched_accuracy(predicted: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Accuracy of ``predicted`` classes against ``truth`` under the one-to-one relabelling that agrees most."""
    from scipy.optimize import linear_sum_assignment

    counts = np.zeros((k, k))
    np.add.at(counts, (predicted, truth), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(truth))


def shape_accuracy(name: str, model, splits, n: int, seed: int) -> dict[str, float]:
    test = splits.test
    index = np.random.default_rng(seed).choice(len(test), size=min(n, len(test)), replace=False)
    batch = test.batch(torch.as_tensor(index))
    with torch.no_grad():
        outs = [model(batch.inputs[i:i + 500]) for i in range(0, len(index), 500)]
    codes = torch.cat([out.latent.mean for out in outs]).numpy()
    kls = {f"test_{k}": round(float(torch.cat([out.terms[k] for out in outs]).mean()), 3)
           for k in ("kl", "kl_disc") if k in outs[0].terms}  # nats: where each channel's capacity went
    shape = batch.factors[:, 0].numpy()
    if name == "joint-vae":
        predicted = codes[:, -3:].argmax(1)  # the one-hot block of the 3-way unit
        kls["category_counts"] = np.bincount(predicted, minlength=3).tolist()
    else:
        from sklearn.cluster import KMeans

        predicted = KMeans(3, n_init=10, random_state=seed).fit_predict(codes)
    return {"shape_accuracy": round(matched_accuracy(predicted, shape, 3), 4), **kls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--examples", type=int, default=5000, help="test examples for the shape accuracy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    splits = load_data("dsprites")
    ramp = 2 * args.steps // 3
    results = {}
    for name, settings in SETTINGS.items():
        start = time.perf_counter()
        run = aekit.train(name, data="dsprites", out=None, steps=args.steps, batch_size=args.batch_size,
                          seed=args.seed, evaluate=False, progress=False, figures=False,
                          capacity=40.0, capacity_steps=ramp, gamma=150.0,
                          **({"capacity_disc_steps": ramp} if name == "joint-vae" else {}), **settings)
        seconds = time.perf_counter() - start
        model = run.model.eval()
        metrics = aekit.evaluate(model, splits, suites=("disentanglement",), seed=args.seed)
        results[name] = {**shape_accuracy(name, model, splits, args.examples, args.seed),
                         "mig": round(metrics["test/mig"], 4), "train_seconds": round(seconds, 1)}
        print(json.dumps({name: results[name]}), flush=True)
    print(json.dumps({"settings": vars(args), "results": results, "machine": machine(), "source": aekit_source()},
                     indent=2))


if __name__ == "__main__":
    main()
