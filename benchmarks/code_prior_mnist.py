"""Priors over a VQ-VAE's codes on MNIST, at a CPU budget: how many bits per code each saves over the codes' own
distribution, and what they generate.

A ``vq-vae`` with its default settings (a 7 x 7 grid of 512-entry codes, EMA, k-means start, restarts) is
trained for ``--vq-steps``; then the ``autoregressive`` and the ``masked`` (MaskGIT, cosine schedule) priors, each
of ``--width`` x ``--depth``, for ``--prior-steps`` on its codes. Each is scored on the whole test split by the
``code-prior`` suite: ``bits_per_code`` (-log2 p(k) per token; the masked prior's along one random order, on 500
test examples) and ``unigram_bits_per_code`` (the codes' entropy without context). The run folders keep the
reports, whose ``figures/samples.png`` shows 64 samples of each prior. No setting is tuned (one recipe each).

    AEKIT_DATA=../shared/datasets .venv/bin/python benchmarks/code_prior_mnist.py --vq-steps 1500 \
        --prior-steps 1500 --out benchmarks/results/code_prior_mnist.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import aekit_source, machine

import aekit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vq-steps", type=int, default=1500)
    parser.add_argument("--prior-steps", type=int, default=1500)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--runs", default="runs/code_prior_mnist")
    parser.add_argument("--out", default="benchmarks/results/code_prior_mnist.json")
    args = parser.parse_args()
    runs = Path(args.runs)
    quiet = dict(progress=False, batch_size=128, seed=0)
    start = time.perf_counter()
    vq = aekit.train("vq-vae", "mnist", runs / "vq-vae", steps=args.vq_steps, **quiet)
    results = {"vq-vae": {"wall_s": round(time.perf_counter() - start, 1),
                          **{k: vq.metrics[k] for k in ("test/recon", "test/mse", "test/codebook_usage",
                                                         "test/codebook_perplexity", "test/code_entropy_bits")}}}
    for network in ("autoregressive", "masked"):
        start = time.perf_counter()
        run = aekit.train("code-prior", "mnist", runs / network, init=str(runs / "vq-vae"), network=network,
                          width=args.width, depth=args.depth, steps=args.prior_steps, **quiet)
        results[network] = {"wall_s": round(time.perf_counter() - start, 1),
                            **{k: run.metrics[k] for k in ("test/bits_per_code", "test/unigram_bits_per_code",
                                                           "test/bits_per_code_examples", "test/nll")}}
        print(network, results[network], flush=True)
    record = {"args": vars(args), "machine": machine(), "aekit": aekit_source(), "results": results}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
