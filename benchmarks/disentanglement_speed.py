"""Speed of the disentanglement metrics and of the factor datasets' rendering.

Metrics: each on 10,000 examples of a 10-unit representation (5 units a noisy copy of dSprites' 5 factors, 5 of
noise) against the dSprites factors (3, 6, 40, 32 and 32 levels), median and range over ``--runs`` runs (the
first call of each, which pays scikit-learn's import, left out). Rendering: images per second of batches of 256
random examples of each generated dataset, as the training loop asks for them (``source.inputs(index)``).

    .venv/bin/python benchmarks/disentanglement_speed.py --runs 5 --metrics ... --out results/disentanglement_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import torch
from _common import aekit_source, machine

from aekit.data.factors import FACTOR_DATASETS, FactorSampler, dsprites
from aekit.metrics import disentanglement as dm

METRICS: dict[str, Callable] = {
    "beta_vae": dm.beta_vae_score,
    "factor_vae": dm.factor_vae_score,
    "mig": dm.mig,
    "sap (discrete)": dm.sap,
    "sap (continuous)": partial(dm.sap, mode="continuous"),
    "dci (logistic)": partial(dm.dci, regressor="logistic"),
    "dci (gbt)": dm.dci,
    "modularity": dm.modularity,
    "explicitness": dm.explicitness,
    "infomec": dm.infomec,
    "total_correlation": lambda codes, factors: dm.total_correlation(codes),
}


def timed(fn: Callable[[], object], runs: int) -> dict[str, float]:
    """Wall seconds (median, min, max over ``runs``) and the median CPU seconds of the process, which a machine
    shared with other jobs inflates less than the wall time."""
    seconds, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return {"median_s": round(statistics.median(seconds), 3), "min_s": round(min(seconds), 3),
            "max_s": round(max(seconds), 3), "median_cpu_s": round(statistics.median(cpu), 3)}


def metric_speed(runs: int, gbt_runs: int, names: list[str]) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(0)
    factors = FactorSampler(dsprites().grid, seed=0).sample(10_000).astype(np.float64)  # [N, 5]
    codes = np.hstack([factors + rng.normal(0, 0.3, factors.shape), rng.normal(size=factors.shape)])  # [N, 10]
    dm.explicitness(codes[:200], factors[:200])  # pays the imports
    out = {}
    for name in names:
        fn = METRICS[name]
        out[name] = timed(lambda fn=fn: fn(codes, factors), gbt_runs if "gbt" in name else runs)
        print(f"{name:20s} {out[name]}", flush=True)
    return out


def render_speed(runs: int, batch: int = 256, batches: int = 40) -> dict[str, dict[str, float]]:
    """Images per second (and per CPU second) of ``inputs(index)`` on one thread, as a loader worker renders."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = {}
    for name, (_, make) in FACTOR_DATASETS.items():
        data = make()
        data.inputs(torch.arange(batch))  # builds the renderer's tables
        gen = torch.Generator().manual_seed(0)
        index = [torch.randint(0, len(data), (batch,), generator=gen) for _ in range(batches)]
        rates, cpu_rates = [], []
        for _ in range(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            for rows in index:
                data.inputs(rows)
            rates.append(batch * batches / (time.perf_counter() - start))
            cpu_rates.append(batch * batches / (time.process_time() - start_cpu))
        out[name] = {"median_images_per_s": round(statistics.median(rates)), "min": round(min(rates)),
                     "max": round(max(rates)), "median_images_per_cpu_s": round(statistics.median(cpu_rates))}
        print(f"{name:16s} {out[name]}", flush=True)
    torch.set_num_threads(threads)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--gbt-runs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--metrics", nargs="*", default=list(METRICS), choices=list(METRICS))
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # scikit-learn's convergence warnings
    result = {"render": {} if args.no_render else render_speed(args.runs),
              "metrics": metric_speed(args.runs, args.gbt_runs, args.metrics),
              "date": time.strftime("%Y-%m-%d"), "machine": machine(), "source": aekit_source()}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
