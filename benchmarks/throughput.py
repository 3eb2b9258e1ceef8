"""Training throughput of aekit against the machine's fp32 matmul peak.

For each thread count: the peak is the median GFLOP/s of a large ``torch.matmul`` (n x n by n x n, 2 n^3
FLOPs); then each model trains with ``aekit.train`` (the real loop: data order, seeding, logging) for a
fixed number of steps, and the loop's own clock (``train/samples_per_s``, validation excluded) gives
samples/s. FLOPs per training example are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one
batch: the forward alone (reported as 3 x forward, the usual forward + backward convention) and the
forward + backward as actually executed. Matmuls and convolutions only; element-wise work is not counted.

    .venv/bin/python benchmarks/throughput.py --threads 1,2 --repeats 3 --out benchmarks/results/throughput.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, matmul_peak_gflops
from torch.utils.flop_counter import FlopCounterMode

import aekit

# name -> (dataset, model keys, batch size)
MODELS: dict[str, tuple[str, dict[str, Any], int]] = {
    "vae-mlp-28x28": ("binarized-mnist", {"backbone": "mlp", "hidden": [400], "latent_dim": 40,
                                          "likelihood": "bernoulli"}, 100),
    "vae-conv-28x28": ("binarized-mnist", {"backbone": "conv", "latent_dim": 16, "likelihood": "bernoulli"}, 128),
    "vae-conv-32x32x3": ("cifar10", {"backbone": "conv", "latent_dim": 64, "likelihood": "gaussian"}, 128),
}


def flops_per_example(model_keys: dict[str, Any], data_shape: tuple[int, ...], batch: int) -> dict[str, float]:
    """Counted FLOPs per example of one forward, and of one forward + backward, on a random batch."""
    model = aekit.build_model("vae", data_shape=data_shape, **model_keys)
    objective = model.objective()
    x = torch.rand(batch, *data_shape)
    with FlopCounterMode(display=False) as forward:
        loss = objective(model(x), 0).total
    with FlopCounterMode(display=False) as both:
        objective(model(x), 0).total.backward()
    del loss
    return {"forward": forward.get_total_flops() / batch, "forward_backward": both.get_total_flops() / batch}


def train_throughput(data: str, model_keys: dict[str, Any], batch: int, steps: int, root: str, workdir: Path,
                     seed: int) -> float:
    """samples/s of ``aekit.train`` over ``steps`` optimiser steps (its loop clock: validation excluded)."""
    run = aekit.train(
        "vae", data=data, out=workdir / f"run-{time.monotonic_ns()}", evaluate=False, root=root, steps=steps,
        batch_size=batch, eval_every=steps, progress=False, figures=False, accelerator="cpu", seed=seed,
        **model_keys,
    )
    return float(run.metrics["train/samples_per_s"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", default="1,2", help="comma-separated torch thread counts to measure")
    p.add_argument("--matmul-n", type=int, default=2048)
    p.add_argument("--matmul-runs", type=int, default=10)
    p.add_argument("--steps", type=int, default=0, help="training steps per run (0: 300 for the MLP, 60 for conv)")
    p.add_argument("--repeats", type=int, default=3, help="runs per measurement; the median is reported")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {', '.join(MODELS)}")
    p.add_argument("--root", default="/work/shared/datasets")
    p.add_argument("--out", default="benchmarks/results/throughput.json")
    args = p.parse_args(argv)

    names = args.models.split(",")
    shapes = {"binarized-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
    flops = {name: flops_per_example(MODELS[name][1], shapes[MODELS[name][0]], MODELS[name][2]) for name in names}
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "machine": machine(), "aekit_source": aekit_source(),
        "models": {name: {"data": MODELS[name][0], "batch_size": MODELS[name][2], **MODELS[name][1],
                          "flops_per_example": flops[name]} for name in names},
        "by_threads": {},
    }
    with tempfile.TemporaryDirectory(prefix="aekit-throughput-") as tmp:
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            peak = matmul_peak_gflops(args.matmul_n, args.matmul_runs)
            entry: dict[str, Any] = {"matmul_peak": peak, "models": {}}
            print(f"threads {threads}: matmul {args.matmul_n} peak {peak['gflops_median']} GFLOP/s", flush=True)
            for name in names:
                data, keys, batch = MODELS[name]
                steps = args.steps or (300 if keys["backbone"] == "mlp" else 60)
                rates = [train_throughput(data, keys, batch, steps, args.root, Path(tmp), seed=r)
                         for r in range(args.repeats)]
                rate = statistics.median(rates)
                achieved = 3 * flops[name]["forward"] * rate / 1e9
                entry["models"][name] = {
                    "steps": steps, "samples_per_s_runs": rates, "samples_per_s_median": rate,
                    "gflops_3x_forward": round(achieved, 2),
                    "gflops_counted_fwd_bwd": round(flops[name]["forward_backward"] * rate / 1e9, 2),
                    "fraction_of_peak_3x_forward": round(achieved / peak["gflops_median"], 4),
                }
                print(f"  {name}: {rate:.0f} samples/s, {achieved:.2f} GFLOP/s (3x fwd) = "
                      f"{100 * achieved / peak['gflops_median']:.1f}% of peak", flush=True)
            result["by_threads"][str(threads)] = entry
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
