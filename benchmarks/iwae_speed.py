"""Speed of the IWAE (k = 50) training step and of the 5000-sample test NLL: aekit against Pythae, one model.

The model is the IWAE of Pythae's reproducibility table (``iwae_pythae.py``: 784-200-200-50 tanh MLPs, Bernoulli,
k = 50, batch 20), built by Pythae with a seed and copied into an aekit IWAE (the same function). In one process,
on ``--threads`` threads, each repeat times, alternating the libraries' order:

- ``--steps`` training steps of each: forward, objective, backward, Adam step, zero_grad, on the same batches of
  binarized-MNIST training images; Pythae's step is its trainer's (``model(inputs).loss.backward()``,
  ``torch.optim.Adam``), aekit's its loop's (``model(x)``, ``objective(out, step, batch)``, backward of the
  model's loss, the fused Adam its loop builds);
- the test NLL with K = ``--nll-samples`` of ``--nll-examples`` test images: aekit's
  ``importance_sampled_log_likelihood`` against Pythae's ``get_nll`` (one image at a time, 100 samples a batch).

Reported: the medians over the repeats and their spread (min, max), the ratio of the medians and each repeat's
ratio, samples/s, and the achieved GFLOP/s: the matmul FLOPs the MLPs need (counted by torch's FlopCounterMode
on aekit's step and estimator, which run the encoder once per image; Pythae's get_nll runs it once per sample
batch, so its own count is higher) over the time, beside the machine's fp32 matmul peak on the same threads,
measured in the same process (2048 x 2048).

    .venv-bench/bin/python benchmarks/iwae_speed.py --threads 1 --repeats 7 --out benchmarks/results/iwae_speed.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine, matmul_peak_gflops
from iwae_pythae import BATCH_SIZE, LR, ROWS, aekit_from_pythae, pythae_model
from torch.utils.flop_counter import FlopCounterMode
from vae_binarized_mnist import nll_subset

import aekit
from aekit.data.batch import Batch
from aekit.metrics import importance_sampled_log_likelihood
from aekit.optim import make_optimizers
from aekit.run_config import TrainConfig


def aekit_step(model, x: torch.Tensor) -> Callable[[int], None]:
    """aekit's training step, as its loop runs it on one device."""
    objective = model.objective()
    optimizer = make_optimizers(model, TrainConfig(lr=LR, optimizer="adam"))[0]["model"]

    def step(i: int) -> None:
        batch = Batch(x[i % len(x)])
        loss = objective(model(batch.inputs), i, batch)
        loss.losses["model"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def pythae_step(model, x: torch.Tensor) -> Callable[[int], None]:
    """Pythae's training step, as its BaseTrainer runs it (the reproducibility script's Adam, eps 1e-4)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR, eps=1e-4)

    def step(i: int) -> None:
        loss = model({"data": x[i % len(x)]}, epoch=1, dataset_size=len(x) * BATCH_SIZE, uses_ddp=False).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def matmul_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def summary(seconds: list[float], work: float, flops: float) -> dict[str, Any]:
    """Median, spread, samples/s (``work`` samples each run) and GFLOP/s (``flops`` each run)."""
    median = statistics.median(seconds)
    return {"seconds": [round(s, 4) for s in seconds], "median_s": round(median, 4),
            "min_s": round(min(seconds), 4), "max_s": round(max(seconds), 4),
            "samples_per_s": round(work / median, 1), "gflops": round(flops / median / 1e9, 2)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps", type=int, default=30, help="training steps per repeat and library")
    p.add_argument("--nll-samples", type=int, default=5000)
    p.add_argument("--nll-examples", type=int, default=20, help="test images per NLL repeat")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--root", default="/work/shared/datasets")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/iwae_speed.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    row = ROWS["iwae"]
    splits = aekit.load_data(row.data, root=args.root)
    x_train = splits.train.inputs(torch.arange(args.steps * BATCH_SIZE)).reshape(args.steps, BATCH_SIZE, 1, 28, 28)
    x_test = nll_subset(splits.test, args.nll_examples, args.seed).inputs()
    torch.manual_seed(args.seed)
    theirs = pythae_model(row)
    ours = aekit_from_pythae(row, theirs.state_dict()).train()
    steps = {"aekit": aekit_step(ours, x_train), "pythae": pythae_step(theirs, x_train)}
    nll = {"aekit": lambda: importance_sampled_log_likelihood(ours, x_test, args.nll_samples),
           "pythae": lambda: theirs.get_nll(x_test, n_samples=args.nll_samples, batch_size=100)}
    for name in steps:  # warm-up: allocator, kernels, Adam state
        for i in range(5):
            steps[name](i)
    step_flops = matmul_flops(lambda: steps["aekit"](0))  # forward + backward; Adam adds no matmul
    with torch.no_grad():
        nll_flops = matmul_flops(lambda: importance_sampled_log_likelihood(ours, x_test[:1], args.nll_samples))
    nll_flops *= len(x_test)
    train_s: dict[str, list[float]] = {"aekit": [], "pythae": []}
    nll_s: dict[str, list[float]] = {"aekit": [], "pythae": []}
    for repeat in range(args.repeats):
        for name in ("aekit", "pythae") if repeat % 2 == 0 else ("pythae", "aekit"):
            train_s[name].append(timed(lambda name=name: [steps[name](i) for i in range(args.steps)]) / args.steps)
            with torch.no_grad():
                nll_s[name].append(timed(nll[name]))
        print(f"repeat {repeat}: step ms " + ", ".join(f"{n} {t[-1] * 1e3:.1f}" for n, t in train_s.items())
              + "; NLL s " + ", ".join(f"{n} {t[-1]:.2f}" for n, t in nll_s.items()), flush=True)
    peak = matmul_peak_gflops(2048, runs=10)
    result: dict[str, Any] = {
        "benchmark": "iwae_speed", "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine(),
        "aekit_source": aekit_source(), "setup": {k: v for k, v in vars(args).items() if k != "out"},
        "matmul_peak": peak, "step_matmul_flops": step_flops, "nll_matmul_flops": nll_flops,
        "train_step": {n: summary(t, BATCH_SIZE, step_flops) for n, t in train_s.items()},
        "nll": {n: summary(t, len(x_test), nll_flops) for n, t in nll_s.items()},
    }
    for kind, times in (("train_step", train_s), ("nll", nll_s)):
        result[kind]["ratio_aekit_over_pythae"] = round(result[kind]["aekit"]["median_s"]
                                                        / result[kind]["pythae"]["median_s"], 3)
        result[kind]["ratio_per_repeat"] = [round(a / b, 3) for a, b in zip(times["aekit"], times["pythae"],
                                                                             strict=True)]
        for name in ("aekit", "pythae"):
            result[kind][name]["share_of_peak"] = round(result[kind][name]["gflops"] / peak["gflops_median"], 3)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("matmul_peak", "train_step", "nll")}, indent=1))
    return result


if __name__ == "__main__":
    main()
