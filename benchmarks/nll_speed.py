"""Time of the test NLL by importance sampling: aekit's estimator against Pythae's ``VAE.get_nll``.

One model, the reproducibility VAE of ``vae_binarized_mnist.py`` (784-400-40, Bernoulli), built by Pythae with
a seed and copied into an aekit VAE (the same function: ``pythae_as_aekit``), scores the same binarized-MNIST
test images with the same K. aekit's estimator runs with its default chunk (``max_decoded``: 4096 decoder
outputs at a time on a CPU) and with the 65,536 of earlier versions. The variants alternate within each
repeat; the medians are reported. The weights are untrained: the time of the estimator does not depend on them.

    .venv-bench/bin/python benchmarks/nll_speed.py --examples 200 --samples 5000 --repeats 3 --threads 1 \
        --out benchmarks/results/nll_speed_t1.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine
from vae_binarized_mnist import nll_subset, pythae_as_aekit, pythae_vae

from aekit.data import load_data
from aekit.metrics import importance_sampled_log_likelihood


def aekit_estimate(model, x: torch.Tensor, samples: int, max_decoded: int | None, batch_size: int) -> float:
    """Mean log p(x) over ``x`` in batches, as ``aekit.evaluate`` scores it."""
    total = 0.0
    for start in range(0, len(x), batch_size):
        batch = x[start : start + batch_size]
        total += float(importance_sampled_log_likelihood(model, batch, samples, max_decoded=max_decoded).sum())
    return total / len(x)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="test images scored (a seeded random subset)")
    parser.add_argument("--samples", type=int, default=5000, help="importance samples K per image")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=250, help="images per batch (aekit.evaluate's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/nll_speed.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    test = nll_subset(load_data("binarized-mnist").test, args.examples, args.seed)
    x = test.inputs()
    torch.manual_seed(args.seed)
    pythae_model = pythae_vae().eval()
    model = pythae_as_aekit(pythae_model)

    variants = {
        "aekit (default chunk)": lambda: aekit_estimate(model, x, args.samples, None, args.batch_size),
        "aekit (max_decoded=65536)": lambda: aekit_estimate(model, x, args.samples, 65536, args.batch_size),
        "pythae get_nll": lambda: float(pythae_model.get_nll(x, n_samples=args.samples, batch_size=100)),
    }
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    log_px: dict[str, list[float]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, run in variants.items():
            torch.manual_seed(args.seed + repeat)
            start = time.perf_counter()
            with torch.no_grad():
                value = run()
            seconds[name].append(round(time.perf_counter() - start, 3))
            log_px[name].append(round(value, 4))
            print(f"repeat {repeat}: {name}: {seconds[name][-1]:.2f} s, mean log p(x) {value:.3f}", flush=True)

    medians = {name: statistics.median(runs) for name, runs in seconds.items()}
    pythae = medians["pythae get_nll"]
    result = {
        "setup": {key: value for key, value in vars(args).items() if key != "out"},
        "seconds": seconds,
        "median_seconds": medians,
        "ratio_to_pythae": {name: round(median / pythae, 3) for name, median in medians.items()},
        "mean_log_px": log_px,
        "machine": machine(),
        "aekit_source": aekit_source(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(json.dumps(result["ratio_to_pythae"], indent=1))
    return result


if __name__ == "__main__":
    main()
