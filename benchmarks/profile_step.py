"""Where the training step of the reference MLP VAE spends its time, against what its matmuls cost alone.

Profiles ``--steps`` training steps of the binarized-MNIST VAE (784-400-40, Bernoulli, fused AdamW, batch 100)
with the torch profiler, grouped by operator and input shape, then times each large matmul shape of the step
on its own and the machine's fp32 matmul peak (2048 x 2048). Prints a table and writes a JSON.

    .venv/bin/python benchmarks/profile_step.py --threads 1 --out benchmarks/results/profile_step_t1.json

``--bf16`` runs the forward under CPU bfloat16 autocast with the outputs cast back to float32, as aekit's
``precision=bf16-mixed`` step does (``aekit.training.module_call``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import aekit_source, machine, matmul_peak_gflops
from vae_binarized_mnist import BATCH_SIZE, HIDDEN, LATENT_DIM

import aekit
from aekit.training import cast_floats, retain_cpu_memory

SHAPES = {  # (M, K) x (K, N) of the step's large matmuls: forward, weight gradients, input gradient
    "encoder forward 100x784 . 784x400": ((100, 784), (784, 400)),
    "decoder forward 100x400 . 400x784": ((100, 400), (400, 784)),
    "encoder weight grad 400x100 . 100x784": ((400, 100), (100, 784)),
    "decoder weight grad 784x100 . 100x400": ((784, 100), (100, 400)),
    "decoder input grad 100x784 . 784x400": ((100, 784), (784, 400)),
}


def median_ms(fn, repeats: int = 5, calls: int = 200) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--root", default=None, help="folder holding binarized_mnist/ (default: $AEKIT_DATA)")
    parser.add_argument("--bf16", action="store_true", help="the bf16-mixed step (autocast forward)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    retain_cpu_memory()

    x = aekit.data.load_data("binarized-mnist", root=args.root).train.inputs()
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 28, 28), backbone="mlp", hidden=(HIDDEN,), latent_dim=LATENT_DIM,
                              activation="relu", likelihood="bernoulli")
    objective = model.objective()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.0, fused=True)
    order = torch.randperm(len(x))

    def step(i: int) -> None:
        first = (i * BATCH_SIZE) % (len(x) - BATCH_SIZE)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(x.index_select(0, order[first : first + BATCH_SIZE]))
        objective(cast_floats(out, torch.float32) if args.bf16 else out, 0).total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for i in range(200):
        step(i)
    start = time.perf_counter()
    for i in range(args.steps * 3):
        step(i)
    step_ms = (time.perf_counter() - start) / (args.steps * 3) * 1e3

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for i in range(args.steps):
            step(i)
    rows = []
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key.startswith("aten::") and event.self_cpu_time_total > 0:
            rows.append({"op": event.key, "shapes": str(event.input_shapes), "calls_per_step": event.count / args.steps,
                         "self_ms_per_step": event.self_cpu_time_total / 1e3 / args.steps})
    rows.sort(key=lambda r: -r["self_ms_per_step"])
    profiled_ms = sum(r["self_ms_per_step"] for r in rows)
    matmul_ms = sum(r["self_ms_per_step"] for r in rows if r["op"] in ("aten::mm", "aten::addmm"))
    adam_ms = sum(r["self_ms_per_step"] for r in rows if "adam" in r["op"])

    alone = {}
    for name, (a_shape, b_shape) in SHAPES.items():
        a, b = torch.randn(*a_shape), torch.randn(*b_shape)
        ms = median_ms(lambda a=a, b=b: a.mm(b))
        alone[name] = {"ms": round(ms, 3), "gflops": round(2 * a_shape[0] * a_shape[1] * b_shape[1] / ms / 1e6, 1)}
    peak = matmul_peak_gflops(2048, runs=10)["gflops_median"]

    precision = "bf16-mixed" if args.bf16 else "32-true"
    print(f"{precision} step (no profiler): {step_ms:.2f} ms; profiled ops: {profiled_ms:.2f} ms, of which matmuls "
          f"{matmul_ms:.2f} ms, AdamW {adam_ms:.2f} ms")
    print(f"{'op':28} {'input shapes':52} {'calls':>5} {'ms/step':>8}")
    for r in rows[:16]:
        print(f"{r['op']:28} {r['shapes'][:52]:52} {r['calls_per_step']:5.1f} {r['self_ms_per_step']:8.3f}")
    print(f"matmuls alone (fp32 peak {peak:.1f} GFLOP/s):")
    for name, v in alone.items():
        print(f"  {name:40} {v['ms']:.3f} ms  {v['gflops']:.1f} GFLOP/s")
    result = {"benchmark": "profile_step", "precision": precision, "machine": machine(), "aekit_source": aekit_source(),
              "step_ms": round(step_ms, 3), "profiled_ms": round(profiled_ms, 3), "matmul_ms": round(matmul_ms, 3),
              "adamw_ms": round(adam_ms, 3), "ops": rows[:30], "matmuls_alone": alone,
              "peak_gflops": round(peak, 1)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
