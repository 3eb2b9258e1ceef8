"""Test bits/dim of one conv VAE on CIFAR-10 under three likelihoods, same network, seed and CPU budget.

The likelihoods, each scoring the 8-bit images scaled to [0, 1]:

* ``logistic-mixture``: PixelCNN++'s discretised logistic mixture (RGB channels coupled), a distribution over the
  256 levels of each value: -log2 P(x) / D is a code length, bits/dim as the literature reports it.
* ``gaussian-learned``: a Gaussian with a learned sigma per data dimension (started at ``--sigma``, 0.1: Adam moves
  each free log sigma by about lr a step, so from 1 it cannot fall below ~0.5 in 600 steps), a density. Its
  bits/dim is the standard dequantisation bound (Theis et al. 2016, arXiv:1511.01844, sec. 3.1): for x on the
  levels k/255 (bin width w = 1/255) and u ~ U(-w/2, w/2), log P(x) = log E_u[w p(x + u)] >= E_u log p(x + u)
  + log w, so

      bits/dim <= -E_u log p(x + u) / (D ln 2) + log2 255,

  with log p(x + u) estimated by importance sampling on the test images plus one draw of u each.
* ``bernoulli``: a Bernoulli on the [0, 1] intensities, as many use it; it is not a distribution over 8-bit
  values (its "probabilities" of grey levels do not sum to 1 over them), so its nll / (D ln 2) is a cross-entropy
  printed for comparison only, not a bits/dim.

The test NLL is aekit's importance-sampled estimate (:func:`aekit.metrics.importance_sampled_log_likelihood`,
Burda et al. 2016) with ``--nll-samples`` samples over ``--test-examples`` held-out images (the same for every
model); the ELBO over the same images is reported beside it. Training sees CIFAR-10's 50,000-image training file
split 80/10/10 (the held-out 10% is the test set; the official test batch is not in the shared data folder).

    .venv/bin/python benchmarks/cifar_bits_per_dim.py --likelihoods logistic-mixture --steps 600 \
        --test-examples 500 --nll-samples 50 --out benchmarks/results/cifar_bits_per_dim_mixture_2026-12-07.json

(one process a likelihood, or several with ``--likelihoods``; ``--sigma`` sets the Gaussian's starting sigma).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine

import aekit
from aekit.data import load_data
from aekit.evaluation.budget import subset_indices
from aekit.metrics import importance_sampled_log_likelihood

LIKELIHOODS = ("logistic-mixture", "gaussian-learned", "bernoulli")
NETWORK = {"backbone": "conv", "channels": [32, 64, 128], "latent_dim": 32}
BIN = 1 / 255  # the width of one 8-bit level in the data's [0, 1] scale


def train(likelihood: str, args: argparse.Namespace) -> tuple[Any, float]:
    """The conv VAE with ``likelihood`` after ``args.steps`` steps of ``args.batch_size``; and the loop's seconds."""
    options = {"likelihood": {"components": args.components}} if likelihood == "logistic-mixture" else {}
    run = aekit.train("vae", data="cifar10", out=None, evaluate=False, likelihood=likelihood, options=options,
                      sigma=args.sigma,
                      steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed, progress=False,
                      figures=False, threads=torch.get_num_threads(), **NETWORK)
    return run.model, float(run.metrics["train/wall_time_s"])


@torch.no_grad()
def test_scores(model, x: torch.Tensor, likelihood: str, args: argparse.Namespace) -> dict[str, float]:
    """-log p(x) by importance sampling and the ELBO, per example in nats, and what they give in bits/dim."""
    model.eval()
    dims = math.prod(x.shape[1:])
    torch.manual_seed(args.seed)
    if likelihood.startswith("gaussian"):  # a density: score the dequantised images x + u
        x = x + (torch.rand_like(x) - 0.5) * BIN
    nll, elbo = [], []
    for rows in x.split(args.eval_batch):
        nll.append(-importance_sampled_log_likelihood(model, rows, n_samples=args.nll_samples).double())
        out = model(rows)
        elbo.append(-(out.terms["recon"] + out.terms["kl"]).double())
    nll_t, elbo_t = torch.cat(nll), torch.cat(elbo)
    offset = math.log2(1 / BIN) if likelihood.startswith("gaussian") else 0.0  # the dequantisation bound's + log2 255
    to_bits = 1 / (dims * math.log(2))
    return {"nll_nats": float(nll_t.mean()), "nll_stderr_nats": float(nll_t.std() / math.sqrt(len(nll_t))),
            "elbo_nats": float(elbo_t.mean()), "bits_per_dim_is": float(nll_t.mean()) * to_bits + offset,
            "bits_per_dim_elbo": -float(elbo_t.mean()) * to_bits + offset,
            "bits_per_dim_stderr": float(nll_t.std() / math.sqrt(len(nll_t))) * to_bits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--likelihoods", nargs="+", default=list(LIKELIHOODS), choices=LIKELIHOODS)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--components", type=int, default=5, help="the logistic mixture's K")
    parser.add_argument("--sigma", type=float, default=0.1,
                        help="the Gaussian's starting sigma (one free log sigma per dimension moves ~lr a step)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-examples", type=int, default=1000)
    parser.add_argument("--nll-samples", type=int, default=50)
    parser.add_argument("--eval-batch", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    test = load_data("cifar10").test
    x = test.inputs(subset_indices(len(test), args.test_examples))  # [N, 3, 32, 32] in [0, 1]
    results: dict[str, Any] = {"setup": {**vars(args), "out": str(args.out), "network": NETWORK,
                                         "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())},
                               "machine": machine(), "source": aekit_source(), "runs": {}}
    for likelihood in args.likelihoods:
        model, loop_s = train(likelihood, args)
        start = time.perf_counter()
        scores = test_scores(model, x, likelihood, args)
        results["runs"][likelihood] = {**scores, "train_loop_s": loop_s, "eval_s": time.perf_counter() - start}
        print(likelihood, json.dumps(results["runs"][likelihood]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
