"""The activation store: activations captured from small random Hugging Face models (no downloads), written to
shuffled shards, read back row by row and as a stream, and trained on."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

transformers = pytest.importorskip("transformers")

import aekit  # noqa: E402
from aekit.cli import main  # noqa: E402
from aekit.data import ActivationStore, capture, collect_activations, load_data  # noqa: E402
from aekit.data.base import random_split  # noqa: E402
from aekit.data.store import ShuffleBuffer  # noqa: E402
from aekit.errors import ConfigError, DataError  # noqa: E402

LAYER = "encoder.layer.1.output"



def _batches(n: int = 4, size: int = 3, length: int = 8, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Token batches whose sequences end in padding of varying length (at least one token each)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.randint(1, length + 1, (size,), generator=g)
        mask = (torch.arange(length)[None] < lengths[:, None]).long()  # [B, T]
        out.append({"input_ids": torch.randint(0, 100, (size, length), generator=g), "attention_mask": mask})
    return out


def _direct(model, batch: dict, hidden: int) -> torch.Tensor:
    """``hidden_states[hidden]`` of the kept tokens, computed without hooks: ``[N, d]``."""
    with torch.no_grad():
        states = model(**batch, output_hidden_states=True).hidden_states[hidden]  # [B, T, d]
    return states[batch["attention_mask"].bool()]


def _sorted_rows(x: torch.Tensor) -> torch.Tensor:
    """The rows of ``x`` in a canonical order (lexicographic), to compare multisets of rows."""
    for column in reversed(range(x.shape[1])):
        x = x[torch.sort(x[:, column], stable=True).indices]
    return x


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_stored_rows_are_the_layer_output_without_padding(bert, tmp_path):
    batches = _batches()
    store = collect_activations(bert, LAYER, batches, tmp_path / "s", shuffle=False, shard_tokens=10)
    expected = torch.cat([_direct(bert, b, 2) for b in batches])
    assert store.tokens == len(expected) == sum(int(b["attention_mask"].sum()) for b in batches)
    assert torch.equal(store.dataset().inputs(), expected)  # exact: the same float32 values, padding dropped


def test_drop_first_drops_the_first_kept_token_of_each_sequence(bert):
    batch = {"input_ids": torch.randint(0, 100, (2, 5)), "attention_mask": torch.tensor([[1, 1, 1, 0, 0],
                                                                                          [0, 0, 1, 1, 1]])}
    rows = capture(bert, LAYER, batch, drop_first=True)["inputs"]
    with torch.no_grad():
        states = bert(**batch, output_hidden_states=True).hidden_states[2]
    assert torch.equal(rows, torch.stack([states[0, 1], states[0, 2], states[1, 3], states[1, 4]]))


def test_transcoder_pairs_are_the_layer_input_and_output(bert, tmp_path):
    batches = _batches(2)
    store = collect_activations(bert, "encoder.layer.1", batches, tmp_path / "s", hook="both", shuffle=False)
    batch = store.dataset().batch(None)
    assert torch.equal(batch.inputs, torch.cat([_direct(bert, b, 1) for b in batches]))
    assert torch.equal(batch.target, torch.cat([_direct(bert, b, 2) for b in batches]))
    assert store.meta["tensors"] == ["inputs", "target"] and store.meta["target_width"] == 32


def test_shards_are_bounded_and_rows_mixed_across_batches(bert, tmp_path):
    batches = _batches(8)
    store = collect_activations(bert, LAYER, batches, tmp_path / "s", shard_tokens=12, buffer_shards=3, seed=1)
    rows = [shard["rows"] for shard in store.meta["shards"]]
    assert max(rows) == 12 and all(r == 12 for r in rows[:-1]) and sum(rows) == store.tokens
    by_batch = [_direct(bert, b, 2) for b in batches]
    first = ActivationStore(store.path).dataset().inputs(slice(0, 12))
    origin = [next(i for i, rows in enumerate(by_batch) if (rows == row).all(1).any()) for row in first]
    assert len(set(origin)) >= 2  # one shard draws on several input batches
    everything = torch.cat(by_batch)
    assert torch.equal(_sorted_rows(store.dataset().inputs()), _sorted_rows(everything))
    assert not torch.equal(store.dataset().inputs(), everything)


def test_shuffle_buffer_gives_every_row_once():
    buffer = ShuffleBuffer(4, 12, torch.Generator().manual_seed(0))
    chunks = [c["inputs"] for start in range(0, 30, 7)
              for c in buffer.add({"inputs": torch.arange(start, min(start + 7, 30))[:, None]})]
    chunks += [c["inputs"] for c in buffer.drain()]
    assert all(len(c) == 4 for c in chunks[:-1]) and sorted(torch.cat(chunks).flatten().tolist()) == list(range(30))


def test_memmap_and_stream_read_the_same_rows(bert, tmp_path):
    store = collect_activations(bert, "encoder.layer.1", _batches(), tmp_path / "s", hook="both", shard_tokens=9)
    mapped = store.dataset().batch(None)
    stream = store.stream(batch_size=5, buffer_tokens=11, seed=3)
    passes = [list(stream), list(stream)]
    assert all(len(b) == 5 for b in passes[0][:-1]) and stream.length == len(passes[0])
    for batches in passes:
        streamed = torch.cat([torch.cat([b.inputs, b.target], 1) for b in batches])
        assert torch.equal(_sorted_rows(streamed), _sorted_rows(torch.cat([mapped.inputs, mapped.target], 1)))
    assert not torch.equal(passes[0][0].inputs, passes[1][0].inputs)  # each pass in a new order


def test_metadata_round_trip_and_append(bert, tmp_path):
    folder = tmp_path / "s"
    first = collect_activations(bert, LAYER, _batches(2), folder, model_name="tiny-bert", source="a.txt",
                                shard_tokens=8, dtype="bfloat16")
    meta = json.loads((folder / "store.json").read_text())
    assert {k: meta[k] for k in ("model", "layer", "hook", "dtype", "width", "sources", "complete")} == {
        "model": "tiny-bert", "layer": LAYER, "hook": "output", "dtype": "bfloat16", "width": 32,
        "sources": ["a.txt"], "complete": True}
    assert meta["num_shards"] == len(meta["shards"]) and meta["aekit_version"] == aekit.__version__
    second = collect_activations(bert, LAYER, _batches(2, seed=1), folder, model_name="tiny-bert", source="b.txt",
                                 shard_tokens=8, dtype="bfloat16")
    assert second.tokens == first.tokens + sum(int(b["attention_mask"].sum()) for b in _batches(2, seed=1))
    assert second.meta["created"] == meta["created"] and second.meta["sources"] == ["a.txt", "b.txt"]
    assert second.meta["shards"][:len(meta["shards"])] == meta["shards"]  # the first run's shards untouched
    assert second.dataset().inputs().dtype == torch.float32  # bfloat16 read as float32


def test_wrong_layer_names_the_nearest(bert):
    with pytest.raises(ConfigError, match=r"layer 'encoder.layer.9.output' not in BertModel; nearest: "
                                          r"encoder.layer.1.output"):
        capture(bert, "encoder.layer.9.output", _batches(1)[0])


def test_appending_another_model_is_refused_and_changes_nothing(bert, tmp_path):
    folder = tmp_path / "s"
    collect_activations(bert, LAYER, _batches(1), folder)
    before = _digest(folder)
    narrow = transformers.BertModel(transformers.BertConfig(hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                                            intermediate_size=32, vocab_size=100))
    with pytest.raises(DataError, match=r"holds activations of model 'BertModel' layer .*width 32.*but .*width 16.*"
                                        r"new directory"):
        collect_activations(narrow, LAYER, _batches(1), folder)
    with pytest.raises(DataError, match="layer 'encoder.layer.0.output'"):
        collect_activations(bert, "encoder.layer.0.output", _batches(1), folder)
    assert _digest(folder) == before


def test_interrupted_store_gives_a_clear_error(bert, tmp_path):
    folder = tmp_path / "s"
    collect_activations(bert, LAYER, _batches(1), folder, shard_tokens=4)
    (folder / "store.json").unlink()  # as if the run stopped before its first store.json
    with pytest.raises(DataError, match="no store.json .*interrupted"):
        ActivationStore(folder)
    with pytest.raises(DataError, match="shard files but no store.json"):
        collect_activations(bert, LAYER, _batches(1), folder)


def test_nan_activations_are_refused(bert, tmp_path):
    broken = transformers.BertModel(bert.config).eval()
    broken.load_state_dict(bert.state_dict())
    with torch.no_grad():
        broken.encoder.layer[1].output.dense.weight[0, 0] = float("nan")
    with pytest.raises(DataError, match="gave NaN or Inf .*batch 0"):
        collect_activations(broken, LAYER, _batches(1), tmp_path / "broken")
    store = collect_activations(bert, LAYER, _batches(1), tmp_path / "s", shuffle=False)
    from safetensors.torch import load_file, save_file

    shard = store.files[0]
    tensors = load_file(shard)
    tensors["inputs"][3, 5] = float("inf")
    save_file(tensors, shard)
    with pytest.raises(DataError, match=r"example 3 .*holds NaN or Inf"):
        store.dataset().batch(torch.arange(5))


def test_gradient_of_the_next_token_loss(llama, tmp_path):
    batch = _batches(1, size=2)[0]
    batch["labels"] = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    store = collect_activations(llama, "model.layers.0", [batch], tmp_path / "s", shuffle=False,
                                loss_fn=lambda output, batch: output.loss)
    held = {}

    def keep(module, args, output):
        held["h"] = output[0] if isinstance(output, tuple) else output
        held["h"].retain_grad()

    handle = llama.model.layers[0].register_forward_hook(keep)
    llama(**batch).loss.backward()
    handle.remove()
    llama.zero_grad()
    mask = batch["attention_mask"].bool()
    read = store.dataset().batch(None)
    assert torch.equal(read.inputs, held["h"].detach()[mask])
    torch.testing.assert_close(read.gradient, held["h"].grad[mask], rtol=1e-5, atol=1e-7)
    assert store.meta["tensors"] == ["inputs", "gradient"]


def test_in_memory_splits_keep_target_and_gradient(llama, tmp_path):
    batch = _batches(2, size=3)[0]
    store = collect_activations(llama, "model.layers.1", [batch], tmp_path / "s", hook="both",
                                loss_fn=lambda output, batch: output.logits.square().mean())
    data = store.dataset().in_memory()
    splits = random_split(data, 0.2, 0.2, seed=0)
    merged = splits.with_val_in_train().train
    for part in (splits.train, splits.test, merged):
        b = part.batch(torch.arange(len(part)))
        assert b.target.shape == b.inputs.shape == b.gradient.shape
    assert len(merged) == len(splits.train) + len(splits.val)
    mapped = load_data(str(store.path), val_fraction=0.2, test_fraction=0.2).train.batch(slice(0, 2))
    assert mapped.target is not None and mapped.gradient is not None


def test_training_on_a_store_records_its_provenance(bert, tmp_path):
    store = collect_activations(bert, LAYER, _batches(6, size=4), tmp_path / "s", model_name="tiny-bert",
                                source="lines.txt")
    run = aekit.train("ae", data=str(store.path), out=tmp_path / "run", backbone="dictionary", bottleneck="topk",
                      latent_dim=16, likelihood="gaussian", steps=5, progress=False, figures=False,
                      **{"bottleneck.k": 2})
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["activations"]
    assert {k: saved[k] for k in ("model", "layer", "hook", "dtype", "tokens", "width")} == {
        "model": "tiny-bert", "layer": LAYER, "hook": "output", "dtype": "float32", "tokens": store.tokens,
        "width": 32}
    assert "## Trained on activations" in (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"activations of layer {LAYER} (output) of tiny-bert, {store.tokens} tokens of width 32" in \
        (tmp_path / "run" / "report.html").read_text()
    assert aekit.load(tmp_path / "run").activation_source == saved == run.model.activation_source
    assert run.metrics["test/l0"] == 2.0


def test_cli_writes_a_store_and_trains_on_it(bert_folder, tmp_path, capsys):
    hf = bert_folder
    text = tmp_path / "lines.jsonl"
    text.write_text("\n".join(json.dumps({"text": t}) for t in ["the cat sat", "a dog ran on the mat", "the"] * 6))
    out = tmp_path / "store"
    capsys.readouterr()
    assert main(["activations", "--model", str(hf), "--layer", LAYER, "--text", str(text), "--out", str(out),
                 "--batch-size", "4", "--tokens", "50", "--shard-tokens", "16"]) == 0
    assert ActivationStore(out).tokens == 50 and ActivationStore(out).meta["sources"] == ["lines.jsonl"]
    assert main(["activations", "--model", str(hf), "--layer", "encoder.layer.7", "--text", str(text), "--out",
                 str(tmp_path / "other")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "nearest: encoder.layer.1" in error
    assert main(["activations", "--model", str(tmp_path / "missing"), "--layer", LAYER, "--text", str(text),
                 "--out", str(tmp_path / "other")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert main(["train", "ae", "--data", str(out), "--out", str(tmp_path / "run"), "--steps", "2", "--no-eval",
                 "backbone=dictionary", "bottleneck=topk", "bottleneck.k=2", "latent_dim=16", "likelihood=gaussian",
                 "progress=false"]) == 0
    assert aekit.load(tmp_path / "run").activation_source["tokens"] == 50


def test_a_model_of_another_width_is_refused(bert, tmp_path):
    store = collect_activations(bert, LAYER, _batches(2), tmp_path / "s")
    model = aekit.build_model("ae", data_shape=[16], backbone="dictionary", bottleneck="topk", latent_dim=16,
                              likelihood="gaussian", options={"bottleneck": {"k": 2}})
    with pytest.raises(ConfigError, match=r"data_shape=\[16\] but the run needs \{'data_shape': \[32\]\}"):
        aekit.train(model, data=store.dataset(), out=None, steps=1, progress=False)
