"""Every sparse autoencoder on data with a known sparse code: feature recovery against L0.

The data (``aekit.data.sparse_feature_data``) hold F features with power-law frequencies, correlated within groups,
in superposition in d < F dimensions; one draw is cut into train, validation and test rows. Each architecture
trains on the train rows with the same budget. The TopK family is set to k = the data's mean L0; a penalised code
(ReLU-L1, gated, JumpReLU) has its sparsity coefficient chosen on the validation rows, the grid's value whose L0
lies closest to that k, so that all are compared at (about) the same L0. The test rows are read once per chosen
setting: L0, FVU, the mean matched correlation (MCC, Hungarian matching) and the mean per-feature F1.

    .venv/bin/python benchmarks/sae_synthetic.py --steps 3000
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import aekit
from aekit.data import sparse_feature_data
from aekit.metrics import feature_recovery, fraction_of_variance_unexplained, l0

COUNTED = ("topk-sae", "batchtopk-sae", "matryoshka-sae")
PENALISED = ("relu-sae", "gated-sae", "jumprelu-sae")
GRID = {"relu-sae": (0.1, 0.2, 0.3, 0.5), "gated-sae": (0.1, 0.2, 0.3, 0.5),  # coefficients tried on validation
        "jumprelu-sae": (0.1, 0.3, 1.0, 3.0)}


def train(name: str, x: torch.Tensor, args, **settings) -> torch.nn.Module:
    run = aekit.train(name, data=x.numpy(), out=None, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                      latent_dim=args.features, val_fraction=0.0, test_fraction=0.0, evaluate=False,
                      progress=False, figures=False, seed=args.seed, dead_tokens=args.dead_tokens, **settings)
    return run.model.eval()


def score(model, x: torch.Tensor, codes: torch.Tensor) -> dict[str, float]:
    z = model.embed(x)
    recovery = feature_recovery(codes, z)
    return {"l0": float(l0(z).mean()), "fvu": fraction_of_variance_unexplained(x, model.reconstruct(x)),
            "mcc": float(recovery["mcc"]), "f1": float(recovery["mean_f1"]),
            "dead_fraction": float(((z != 0).sum(0) == 0).float().mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=512)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--mean-active", type=float, default=10.0)
    parser.add_argument("--correlation", type=float, default=0.3)
    parser.add_argument("--rows", type=int, default=80000)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dead-tokens", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", nargs="*", default=[*COUNTED, *PENALISED])
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = sparse_feature_data(args.rows, features=args.features, dim=args.dim, mean_active=args.mean_active,
                               correlation=args.correlation, seed=args.seed)
    n_val = n_test = args.rows // 8
    train_x = data.x[: -n_val - n_test]
    val = slice(args.rows - n_val - n_test, args.rows - n_test)
    test = slice(args.rows - n_test, args.rows)
    k = round(float(l0(data.codes).mean()))
    print(f"data: {args.rows} rows, F={args.features} features in d={args.dim}, true L0 {l0(data.codes).mean():.2f}; "
          f"k={k}; {args.steps} steps of {args.batch_size}", flush=True)
    results = {}
    for name in args.models:
        start = time.perf_counter()
        if name in PENALISED:
            tried = {}
            for coefficient in GRID[name]:
                model = train(name, train_x, args, sparsity_coefficient=coefficient)
                tried[coefficient] = (score(model, data.x[val], data.codes[val]), model)
            coefficient = min(tried, key=lambda c: abs(tried[c][0]["l0"] - k))
            model = tried[coefficient][1]
            chosen = {"sparsity_coefficient": coefficient,
                      "val_l0": {c: round(s["l0"], 2) for c, (s, _) in tried.items()}}
        else:
            model, chosen = train(name, train_x, args, k=k), {"k": k}
        results[name] = {**score(model, data.x[test], data.codes[test]), **chosen,
                         "seconds": round(time.perf_counter() - start, 1)}
        print(json.dumps({name: results[name]}), flush=True)
    print("| model | setting | L0 | FVU | MCC | mean F1 | dead |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        setting = f"k={r['k']}" if "k" in r else f"lambda={r['sparsity_coefficient']}"
        print(f"| {name} | {setting} | {r['l0']:.1f} | {r['fvu']:.3f} | {r['mcc']:.3f} | {r['f1']:.3f} | "
              f"{r['dead_fraction']:.1%} |")


if __name__ == "__main__":
    main()
