"""Quantised autoencoders at a CPU budget: codebook usage with default settings, and the rotation trick against the
straight-through estimator.

Every run is ``aekit.train(model, data, steps=..., batch_size=..., seed=...)`` with the model's defaults and only the
settings named in ``RUNS`` (none for the default runs), then :func:`aekit.evaluate` with the ``reconstruction`` and
``codebook`` suites on the whole validation and the whole test split (MNIST: 6,000 / 10,000; CIFAR-10, whose test
split is 5,000 images held out of the training file: 5,000 / 5,000). The splits are those the run trained with
(``aekit.load_data`` with its default fractions and split seed 0). Nothing is chosen on either split.

Runs (``--runs``; each for every seed of ``--seeds``):

    {model}-{data}              vq-vae, rvq-vae, fsq-ae, lfq-ae with defaults on mnist and cifar10
    vq-vae-cifar10-rotation     vq-vae with bottleneck.gradient=rotation (Fifty et al. 2024); the default is ste
    vq-vae-cifar10-noema        vq-vae with bottleneck.ema=false: the codebook learnt by its gradient term
    vq-vae-cifar10-noema-rotation   the same with the rotation trick

Recorded per run: the figures of both suites (``codebook_usage``, ``codebook_perplexity``, ``unused_codes``,
``code_entropy_bits``, ``recon``, ``mse``, ...), the training loop's own clock (``train/wall_time_s``), the whole
``aekit.train`` call's seconds (data, codebook start, loop), the load average around it and the aekit sources
the process ran (commit and hash, ``aekit``); for FSQ and LFQ, ``test/coordinates``: how many levels each FSQ
coordinate takes, or how often each LFQ bit is 1, on the test split. The JSON is rewritten after every run, and
runs already in it are skipped, so a stopped run of the script continues where it stopped.

    AEKIT_DATA=/work/shared/datasets .venv/bin/python benchmarks/vq_repro.py --steps 1500 --seeds 0 \\
        --out benchmarks/results/vq_repro.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
from _common import aekit_source, machine

import aekit
from aekit.evaluation.one_pass import batches

MODELS = ("vq-vae", "rvq-vae", "fsq-ae", "lfq-ae")
DATA = ("mnist", "cifar10")
RUNS: dict[str, tuple[str, str, dict[str, Any]]] = {
    **{f"{model}-{data}": (model, data, {}) for data in DATA for model in MODELS},
    "vq-vae-cifar10-rotation": ("vq-vae", "cifar10", {"bottleneck.gradient": "rotation"}),
    "vq-vae-cifar10-noema": ("vq-vae", "cifar10", {"bottleneck.ema": False}),
    "vq-vae-cifar10-noema-rotation": ("vq-vae", "cifar10", {"bottleneck.ema": False,
                                                            "bottleneck.gradient": "rotation"}),
}
SUITES = ("reconstruction", "codebook")


@torch.no_grad()
def coordinate_levels(model, data) -> dict[str, list[float]] | None:
    """For a scalar quantiser, how each coordinate of the code is used over ``data``: FSQ, the number of its levels
    taken at least once (``fsq_levels_used``, beside ``fsq_levels``); LFQ, the share of rows where each bit is 1
    (``lfq_bit_ones``). None for a codebook quantiser."""
    bottleneck = model.bottleneck
    if not hasattr(bottleneck, "levels") and not hasattr(bottleneck, "bits"):
        return None
    codes = torch.cat([model(batch).latent.params["codes"].reshape(-1) for batch in batches(data, 250)])
    if hasattr(bottleneck, "levels"):
        levels, basis = bottleneck.levels, bottleneck.basis
        digits = (codes.view(-1, 1) // basis) % levels  # [rows, d]
        return {"fsq_levels": levels.tolist(),
                "fsq_levels_used": [len(torch.unique(digits[:, i])) for i in range(len(levels))]}
    bits = (codes.view(-1, 1) >> torch.arange(bottleneck.bits)) & 1  # [rows, bits]
    return {"lfq_bit_ones": [round(float(v), 4) for v in bits.float().mean(0)]}


def one_run(run: str, seed: int, args, splits: aekit.data.Splits) -> dict[str, Any]:
    """Train one run of ``RUNS`` with ``seed`` and score it on the validation and the test split."""
    model_name, data, overrides = RUNS[run]
    load_before = os.getloadavg()
    start = time.perf_counter()
    result = aekit.train(model_name, data, None, evaluate=False, steps=args.steps, batch_size=args.batch_size,
                         seed=seed, threads=args.threads, progress=False, figures=False, **overrides)
    train_s = time.perf_counter() - start
    model = result.model.eval()
    start = time.perf_counter()
    metrics = {**aekit.evaluate(model, splits.val, split="val", suites=SUITES, seed=seed),
               **aekit.evaluate(model, splits, split="test", suites=SUITES, seed=seed)}
    metrics["test/coordinates"] = coordinate_levels(model, splits.test)
    return {"run": run, "model": model_name, "data": data, "settings": overrides, "seed": seed,
            "train_call_s": round(train_s, 1), "eval_s": round(time.perf_counter() - start, 1),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "likelihood": getattr(model.config, "likelihood", None), "latent_dim": model.config.latent_dim,
            "codebook_sizes": list(model.bottleneck.codebook_sizes),
            **{k: v for k, v in result.metrics.items() if k.startswith("train/") and not isinstance(v, (list, dict))},
            **metrics}


def row(r: dict[str, Any]) -> str:
    t = lambda key: r.get(f"test/{key}", float("nan"))  # noqa: E731
    return (f"{r['run']:32s} seed {r['seed']}  usage {t('codebook_usage'):.3f}  perplexity "
            f"{t('codebook_perplexity'):8.1f}  unused {t('unused_codes')!s:>5}  bits {t('code_entropy_bits'):6.2f}  "
            f"recon {t('recon'):9.2f}  mse {t('mse'):.5f}  loop {r.get('train/wall_time_s', 0):6.0f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads of every run (the train setting threads=)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/vq_repro.json"))
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    record: dict[str, Any] = {"results": []}
    if args.out.is_file():
        record = json.loads(args.out.read_text())
    source = aekit_source()  # the sources as this process imported them; others may change the tree later
    record.update({"args": {k: str(v) for k, v in vars(args).items()}, "machine": machine(), "aekit": source})
    done = {(r["run"], r["seed"]) for r in record["results"]}
    splits = {data: aekit.load_data(data) for data in {RUNS[run][1] for run in args.runs}}
    for run in args.runs:
        for seed in args.seeds:
            if (run, seed) in done:
                continue
            result = one_run(run, seed, args, splits[RUNS[run][1]])
            result.update(finished=time.strftime("%Y-%m-%d %H:%M:%S %Z"), aekit=source)
            record["results"].append(result)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(record, indent=2) + "\n")
            print(row(result), flush=True)
    for r in record["results"]:
        print(row(r))


if __name__ == "__main__":
    main()
