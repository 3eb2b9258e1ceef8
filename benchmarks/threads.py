"""Training speed of the digits VAE by torch thread count, on a quiet machine and beside one busy process.

Each training runs in a fresh process (the demo's model, ``configs/vae-digits.yaml``, for ``--steps`` steps) with
``threads=1``, ``threads=2`` (torch's default on 2 cores: every core) and ``threads=0`` (aekit's default: the
cores idle when training starts). "busy" runs a pure-Python spin loop, one core's worth, beside each training.
The figure is the loop's ``train/samples_per_s``; the settings alternate within each repeat.

    .venv/bin/python benchmarks/threads.py --steps 1500 --repeats 3 --out benchmarks/results/threads.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import aekit_source, machine

WORKER = """
import json, sys, aekit
run = aekit.train("vae", "digits", sys.argv[1], steps=int(sys.argv[2]), threads=int(sys.argv[3]), evaluate=False,
                  progress=False, backbone="mlp", hidden=(256, 128), latent_dim=8, batch_size=64, lr=2e-3,
                  lr_warmup_steps=100)
import torch
print(json.dumps({"samples_per_s": run.metrics["train/samples_per_s"], "threads_used": torch.get_num_threads()}))
"""


def one_run(steps: int, threads: int, busy: bool) -> dict:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if spinner is not None:
            time.sleep(1.0)  # the spinner has its core before training starts
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run([sys.executable, "-c", WORKER, str(Path(tmp) / "run"), str(steps), str(threads)],
                                  capture_output=True, text=True, check=True)
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/threads.json")
    args = p.parse_args()
    settings = [(busy, threads) for busy in (False, True) for threads in (1, 2, 0)]
    runs: dict[str, list[dict]] = {f"{'busy' if b else 'quiet'} threads={t}": [] for b, t in settings}
    for _ in range(args.repeats):
        for busy, threads in settings:
            result = one_run(args.steps, threads, busy)
            key = f"{'busy' if busy else 'quiet'} threads={threads}"
            runs[key].append(result)
            print(key, result, flush=True)
    summary = {k: {"samples_per_s_median": statistics.median(r["samples_per_s"] for r in v),
                   "samples_per_s": [r["samples_per_s"] for r in v],
                   "threads_used": [r["threads_used"] for r in v]} for k, v in runs.items()}
    out = {"benchmark": "threads", "steps": args.steps, "repeats": args.repeats, "summary": summary,
           "machine": machine(), "aekit": aekit_source(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    for k, v in summary.items():
        print(f"{k:<20} median {v['samples_per_s_median']:>9.0f} samples/s  threads used {v['threads_used']}")


if __name__ == "__main__":
    main()
