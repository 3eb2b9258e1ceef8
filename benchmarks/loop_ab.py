"""One training of the reference MLP VAE (784-400-40, batch 100, Bernoulli) on a ``.npy`` of 28x28 images, one
thread, printing the loop's own samples/s and seconds: run it under two source trees in turn to compare their
loops (``PYTHONPATH=TREE/src``), as RESULTS.md runs 46-47 do.

    PYTHONPATH=/tmp/new/src .venv/bin/python benchmarks/loop_ab.py /tmp/bin20k.npy /tmp/ab-run 1500
"""
import dataclasses
import json
import sys

import torch

import aekit
from aekit.training import TrainConfig

torch.set_num_threads(1)
# sources from before the thread setting take the count set above
extra = {"threads": 1} if "threads" in {f.name for f in dataclasses.fields(TrainConfig)} else {}
extra["retain_cpu_memory"] = True
run = aekit.train("vae", sys.argv[1], sys.argv[2], steps=int(sys.argv[3]), batch_size=100, hidden=[400],
                  latent_dim=40, likelihood="bernoulli", lr=1e-4, progress=False, evaluate=False, eval_every=10**9,
                  accelerator="cpu", **extra)
print(json.dumps({"samples_per_s": run.metrics["train/samples_per_s"], "loop_s": run.metrics["train/wall_time_s"]}))
