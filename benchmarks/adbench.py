"""aekit's AE, DAE and VAE detectors against PyOD's AutoEncoder and VAE on the ADBench sets, side by side.

Protocol (ADBench's unsupervised setting, Han et al. 2022): for each seed a stratified 70 / 30 split of the set;
every detector fits on the 70 % without its labels (anomalies included) and scores the 30 %; ROC-AUC and
average precision of the scores, and the fit + score time. The libraries alternate within each set and seed, in
one process, one torch thread.

Matched settings (``--protocol matched``): the same layer sizes (AE: encoder d-64-32, decoder 32-64-d; VAE:
encoder d-64-32, latent 8, decoder 8-32-64-d), epochs, batch size, learning rate and standardisation (aekit's
``standardize``, PyOD's ``preprocessing``); each library keeps its other defaults (PyOD: batch norm and dropout
0.2 in the AE, weight decay 1e-5). ``--protocol defaults``: each library's own defaults, what users run.
``--protocol budget``: PyOD's ``AutoEncoder()`` defaults beside aekit's AE and VAE defaults trained for each
step budget of ``--budgets``: a fixed count (``1000``) or a rule ``eEfF`` (E epochs of the 128-row batches, at least
F steps and at most 1,000), to choose how the default budget scales with the data.

    .venv-bench/bin/python benchmarks/adbench.py --seeds 5 --max-rows 12000 --out benchmarks/results/adbench.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import aekit_source, machine
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split

from aekit.sklearn import AutoencoderDetector

ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "adbench"


def budget_steps(rule: str, n_train: int, batch: int = 128) -> int:
    """Steps of a budget rule: ``1000`` (fixed) or ``eEfF`` (E epochs, at least F steps, at most 1,000)."""
    if rule.isdigit():
        return int(rule)
    epochs, floor = rule[1:].split("f")
    return min(1000, max(int(floor), math.ceil(float(epochs) * n_train / batch)))


def detectors(protocol: str, n_train: int, epochs: int, batch: int, seed: int, budgets: tuple[str, ...] = ()
              ) -> dict:
    """name -> a function making a fresh detector with ``fit`` and a higher-is-anomalous ``score(X)``."""
    from pyod.models.auto_encoder import AutoEncoder
    from pyod.models.vae import VAE

    if protocol == "budget":
        made = {"pyod-ae": lambda: AutoEncoder(random_state=seed, verbose=0)}
        for rule in budgets:
            steps = budget_steps(rule, n_train)
            made[f"aekit-ae@{rule}"] = lambda steps=steps: AutoencoderDetector("ae", steps=steps, random_state=seed)
            made[f"aekit-vae@{rule}"] = lambda steps=steps: AutoencoderDetector("vae", steps=steps,
                                                                                 random_state=seed)
        return made

    steps = epochs * math.ceil(n_train / batch)
    if protocol == "matched":
        common = dict(steps=steps, batch_size=batch, lr=1e-3, random_state=seed)
        return {
            "aekit-ae": lambda: AutoencoderDetector("ae", hidden=(64,), latent_dim=32, **common),
            "aekit-dae": lambda: AutoencoderDetector("dae", hidden=(64,), latent_dim=32, noise="gaussian",
                                                     noise_level=0.1, **common),
            "aekit-vae": lambda: AutoencoderDetector("vae", hidden=(64, 32), latent_dim=8, nll_samples=20,
                                                     **common),
            "pyod-ae": lambda: AutoEncoder(hidden_neuron_list=[64, 32], epoch_num=epochs, batch_size=batch,
                                           lr=1e-3, random_state=seed, verbose=0),
            "pyod-vae": lambda: VAE(encoder_neuron_list=[64, 32], decoder_neuron_list=[32, 64], latent_dim=8,
                                    epoch_num=epochs, batch_size=batch, lr=1e-3, random_state=seed, verbose=0),
        }
    return {
        "aekit-ae": lambda: AutoencoderDetector("ae", random_state=seed),
        "aekit-vae": lambda: AutoencoderDetector("vae", random_state=seed),
        "pyod-ae": lambda: AutoEncoder(random_state=seed, verbose=0),
        "pyod-vae": lambda: VAE(random_state=seed, verbose=0),
    }


def anomaly_scores(detector, x_test: np.ndarray) -> np.ndarray:
    if isinstance(detector, AutoencoderDetector):
        return detector.anomaly_score(x_test)
    return detector.decision_function(x_test)  # PyOD: higher is more anomalous


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=str(ROOT))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--first-seed", type=int, default=0, help="seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-rows", type=int, default=0, help="skip sets with more rows (0: none skipped)")
    p.add_argument("--sets", default="", help="comma-separated name prefixes (e.g. 29_Pima); all when empty")
    p.add_argument("--protocol", choices=("matched", "defaults", "budget"), default="matched")
    p.add_argument("--budgets", default="1000", help="budget protocol: comma-separated rules (1000, e50f200, ...)")
    p.add_argument("--out", default="benchmarks/results/adbench.json")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    files = sorted(Path(args.root).glob("*.npz"), key=lambda f: int(f.name.split("_")[0]))
    if args.sets:
        files = [f for f in files if any(f.stem.startswith(s) for s in args.sets.split(","))]
    warm = np.random.default_rng(0).normal(size=(64, 4))
    budgets = tuple(args.budgets.split(","))
    for make in detectors(args.protocol, len(warm), 1, args.batch_size, 0, budgets).values():  # first calls
        anomaly_scores(make().fit(warm), warm)
    results: dict = {}
    skipped = []
    for path in files:
        data = np.load(path)
        x, y = data["X"].astype(np.float64), data["y"].astype(int)
        if args.max_rows and len(x) > args.max_rows:
            skipped.append({"set": path.stem, "rows": len(x)})
            continue
        per_set: dict = {}
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            x_tr, x_te, _, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=seed)
            for name, make in detectors(args.protocol, len(x_tr), args.epochs, args.batch_size, seed,
                                        budgets).items():
                start = time.perf_counter()
                detector = make().fit(x_tr)
                scores = anomaly_scores(detector, x_te)
                seconds = time.perf_counter() - start
                scores = np.nan_to_num(scores, nan=np.inf)
                entry = per_set.setdefault(name, {"roc_auc": [], "ap": [], "seconds": []})
                entry["roc_auc"].append(float(roc_auc_score(y_te, scores)))
                entry["ap"].append(float(average_precision_score(y_te, scores)))
                entry["seconds"].append(round(seconds, 3))
        results[path.stem] = {name: {"roc_auc": statistics.mean(v["roc_auc"]), "ap": statistics.mean(v["ap"]),
                                     "seconds": statistics.mean(v["seconds"]), "runs": v}
                              for name, v in per_set.items()}
        line = "  ".join(f"{n} {r['roc_auc']:.3f}/{r['seconds']:.1f}s" for n, r in results[path.stem].items())
        print(f"{path.stem:<22} {line}", flush=True)
    names = sorted({n for r in results.values() for n in r})
    summary = {n: {"mean_roc_auc": statistics.mean(r[n]["roc_auc"] for r in results.values()),
                   "mean_ap": statistics.mean(r[n]["ap"] for r in results.values()),
                   "total_seconds": sum(r[n]["seconds"] for r in results.values())} for n in names}
    out = {"benchmark": "adbench", "protocol": args.protocol, "budgets": budgets, "epochs": args.epochs,
           "batch_size": args.batch_size,
           "seeds": args.seeds, "first_seed": args.first_seed, "sets": results, "skipped": skipped, "summary": summary,
           "machine": machine(),
           "aekit": aekit_source(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "pyod": __import__("pyod").__version__}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for n, v in summary.items():
        print(f"{n:<10} mean ROC-AUC {v['mean_roc_auc']:.4f}  mean AP {v['mean_ap']:.4f}  "
              f"time {v['total_seconds']:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
