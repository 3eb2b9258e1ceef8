"""Throughput of the activation store (tokens/s) against the forward pass of the model it is collected from.

A random BERT of all-MiniLM-L6-v2's shape (hidden 384, 6 layers, 12 heads, intermediate 1536; no download) runs on
``--batches`` batches of ``--batch-size`` x ``--length`` random token ids. Each figure is in tokens per second:

- ``forward_full``: the whole model's forward (``torch.no_grad``), no hooks;
- ``forward_to_layer``: :func:`aekit.data.capture` of ``--layer``, which stops the forward after it;
- ``write``: the captured rows written to a store alone (:class:`aekit.data.store.StoreWriter`: shuffle buffer,
  safetensors shards, ``store.json``), the forward not counted;
- ``collect``: :func:`aekit.data.collect_activations` end to end (forward to the layer, capture, write);
- ``read_memmap``: batches of ``--read-batch`` random tokens from ``ActivationStore.dataset()``, as training takes
  them (the shards in the page cache, as right after writing);
- ``read_stream``: one pass of ``ActivationStore.stream(--read-batch)``.

Each figure is the median of ``--repeats`` runs, interleaved. The store is not the bottleneck when ``write`` and
both reads run well above ``forward_to_layer``.

    .venv/bin/python benchmarks/store_speed.py --batches 8
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
from _common import aekit_source, machine

from aekit.data import ActivationStore, capture, collect_activations
from aekit.data.store import StoreWriter


def _rate(tokens: int, seconds: float) -> float:
    return round(tokens / seconds, 1)


def _timed(work) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _round(model, batches: list[dict], args: argparse.Namespace, meta: dict, folder: Path) -> dict[str, float]:
    """The seconds each stage takes once, writing into ``folder``."""
    rows: list[dict[str, torch.Tensor]] = []

    def forward_full() -> None:
        with torch.no_grad():
            for b in batches:
                model(**b)

    def write() -> None:
        writer = StoreWriter(folder / "write", meta, args.shard_tokens)
        for r in rows:
            writer.add(r)
        writer.close()

    seconds = {
        "forward_full": _timed(forward_full),
        "forward_to_layer": _timed(lambda: rows.extend(capture(model, args.layer, b) for b in batches)),
        "write": _timed(write),
        "collect": _timed(lambda: collect_activations(model, args.layer, batches, folder / "collect",
                                                      shard_tokens=args.shard_tokens)),
    }
    store = ActivationStore(folder / "collect")
    data = store.dataset()
    g = torch.Generator().manual_seed(0)
    reads = [torch.randperm(len(data), generator=g)[:args.read_batch] for _ in range(args.reads)]
    seconds["read_memmap"] = _timed(lambda: [data.batch(i) for i in reads])
    seconds["read_stream"] = _timed(lambda: sum(map(len, store.stream(args.read_batch))))
    return seconds


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)
    model = BertModel(config).eval()
    g = torch.Generator().manual_seed(0)
    batches = [{"input_ids": torch.randint(0, config.vocab_size, (args.batch_size, args.length), generator=g),
                "attention_mask": torch.ones(args.batch_size, args.length, dtype=torch.long)}
               for _ in range(args.batches)]
    tokens = args.batches * args.batch_size * args.length
    meta = {"model": "random-minilm", "layer": args.layer, "hook": "output", "dtype": "float32",
            "width": config.hidden_size, "tensors": ["inputs"], "drop_first": False, "sources": []}
    with torch.no_grad():
        model(**batches[0])  # warm-up
    with tempfile.TemporaryDirectory() as folder:
        # Rounds of every stage in turn, so that a slow spell of the machine reaches each figure alike.
        rounds = [_round(model, batches, args, meta, Path(folder) / f"round{i}") for i in range(args.repeats)]
        store = ActivationStore(Path(folder) / "round0" / "collect")
        size = round(sum(f.stat().st_size for f in store.files) / 2**20, 1)
    rates = {}
    for name in rounds[0]:
        counted = args.reads * args.read_batch if name == "read_memmap" else tokens
        rates[name] = _rate(counted, statistics.median(r[name] for r in rounds))
    return {"tokens": tokens, "tokens_per_s": rates, "shards": len(store.files), "store_mib": size}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--layer", default="encoder.layer.3.output")
    parser.add_argument("--shard-tokens", type=int, default=16384)
    parser.add_argument("--read-batch", type=int, default=4096)
    parser.add_argument("--reads", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the median of this many runs")
    args = parser.parse_args()
    result = {"benchmark": "store_speed", "date": time.strftime("%Y-%m-%d"), "settings": vars(args), **run(args),
              "machine": machine(), "aekit": aekit_source()}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
