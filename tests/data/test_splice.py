"""A reconstruction spliced into the model it came from: the language model's cross-entropy against its own loss
and hand-made ablations, the encoder's embeddings against hand-pooled ones, transcoders, and the CLI."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

import aekit  # noqa: E402
from aekit.cli import main  # noqa: E402
from aekit.data import collect_activations  # noqa: E402
from aekit.errors import ConfigError, DataError  # noqa: E402
from aekit.evaluation.splice import spliced_metrics  # noqa: E402


class Exact(torch.nn.Module):
    """A stand-in autoencoder whose reconstruction is ``fn`` of its input: the identity, or a layer itself."""

    def __init__(self, fn=None) -> None:
        super().__init__()
        self.fn = fn or (lambda x: x)
        self.device = torch.device("cpu")

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _padded_batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    batches = []
    for lengths in ((10, 7, 4), (8, 10)):
        ids = torch.randint(5, 100, (len(lengths), 10), generator=g)
        mask = (torch.arange(10) < torch.tensor(lengths)[:, None]).long()
        batches.append({"input_ids": ids, "attention_mask": mask})
    return batches


def _hf_loss(model, batches, replace=None) -> float:
    """The token-weighted mean of Hugging Face's own next-token loss (padding labelled -100) over ``batches``,
    with ``replace(output [B, T, d], kept [B, T])`` applied to layer 0's output."""
    total = count = 0
    for b in batches:
        kept = b["attention_mask"].bool().clone()
        kept[:, 0] = False  # drop_first: right padding, so the first token is position 0
        handle = model.model.layers[0].register_forward_hook(
            lambda _m, _a, out, kept=kept: replace(out, kept)) if replace else None
        labels = b["input_ids"].masked_fill(b["attention_mask"] == 0, -100)
        with torch.no_grad():
            loss = model(**b, labels=labels).loss
        if handle:
            handle.remove()
        n = int((labels[:, 1:] != -100).sum())
        total, count = total + float(loss) * n, count + n
    return total / count


def test_the_clean_loss_is_the_models_own_and_an_exact_reconstruction_recovers_all_of_it(llama):
    batches = _padded_batches()
    m = spliced_metrics(llama, "model.layers.0", Exact(), batches, drop_first=True)
    assert m["measure"] == "loss" and m["texts"] == 5 and m["tokens"] == 39 - 5
    assert m["predicted_tokens"] == 39 - 5
    assert m["ce_clean"] == pytest.approx(_hf_loss(llama, batches), rel=1e-5)
    assert m["ce_spliced"] == pytest.approx(m["ce_clean"], rel=1e-6) and m["fvu"] == 0
    assert m["ce_recovered_zero"] == pytest.approx(1.0) and m["ce_recovered_mean"] == pytest.approx(1.0)
    # the layer named as AutoModel names it is found in the causal LM's base model
    assert spliced_metrics(llama, "layers.0", Exact(), batches, drop_first=True)["ce_clean"] == m["ce_clean"]


def test_ablations_replace_the_kept_positions_by_zeros_and_by_their_mean(llama):
    batches = _padded_batches()
    m = spliced_metrics(llama, "model.layers.0", Exact(lambda x: 0.5 * x), batches, drop_first=True)
    rows = []
    for b in batches:  # the clean activations of the kept positions
        kept = b["attention_mask"].bool().clone()
        kept[:, 0] = False
        handle = llama.model.layers[0].register_forward_hook(lambda _m, _a, out, kept=kept: rows.append(out[kept]))
        with torch.no_grad():
            llama(**b)
        handle.remove()
    mean = torch.cat(rows).double().mean(0).float()

    def by(value):
        return lambda out, kept: torch.where(kept[..., None], value(out), out)

    zero, mean_ablated = _hf_loss(llama, batches, by(torch.zeros_like)), _hf_loss(llama, batches, by(lambda o: mean))
    halved = _hf_loss(llama, batches, by(lambda o: 0.5 * o))
    assert m["ce_zero_ablated"] == pytest.approx(zero, rel=1e-5)
    assert m["ce_mean_ablated"] == pytest.approx(mean_ablated, rel=1e-5)
    assert m["ce_spliced"] == pytest.approx(halved, rel=1e-5)
    assert m["ce_recovered_zero"] == pytest.approx((zero - halved) / (zero - m["ce_clean"]), rel=1e-4)
    assert m["fvu"] == pytest.approx(float((0.25 * (torch.cat(rows) ** 2).sum()) /
                                           ((torch.cat(rows) - mean) ** 2).sum()), rel=1e-4)


def test_a_transcoder_replaces_the_output_with_its_prediction_from_the_input(llama):
    batches = _padded_batches()
    mlp = copy.deepcopy(llama.model.layers[1].mlp)  # a copy: the hooked layer itself would call its hook again
    exact = spliced_metrics(llama, "model.layers.1.mlp", Exact(mlp), batches, hook="both")
    assert exact["ce_spliced"] == pytest.approx(exact["ce_clean"], rel=1e-6) and "fvu" not in exact
    wrong = spliced_metrics(llama, "model.layers.1.mlp", Exact(lambda x: 3 * mlp(x)), batches, hook="both")
    assert abs(wrong["ce_spliced"] - wrong["ce_clean"]) > 1e-4
    inputs = spliced_metrics(llama, "model.layers.1.mlp", Exact(), batches, hook="input")
    assert inputs["ce_spliced"] == pytest.approx(inputs["ce_clean"], rel=1e-6)


def test_the_encoders_embeddings_are_mean_pooled_and_compared_by_cosine(bert):
    batches = _padded_batches()
    m = spliced_metrics(bert, "encoder.layer.1", Exact(), batches)
    assert m["measure"] == "embedding" and m["cosine_spliced"] == pytest.approx(1.0)
    assert m["pair_error_spliced"] == pytest.approx(0.0, abs=1e-6)
    assert m["cosine_zero_ablated"] == 0.0  # the last layer zeroed: every embedding the zero vector
    # the last layer's output is the last hidden state: mean-ablated, every text's embedding is the mean's direction
    rows, embeddings = [], []
    for b in batches:
        with torch.no_grad():
            h = bert(**b).last_hidden_state
        mask = b["attention_mask"].bool()
        rows.append(h[mask])
        embeddings.append(F.normalize((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=-1))
    direction = F.normalize(torch.cat(rows).double().mean(0).float(), dim=0)
    assert m["cosine_mean_ablated"] == pytest.approx(float((torch.cat(embeddings) @ direction).mean()), rel=1e-5)
    e = embeddings[0]  # every pair of the mean-ablated run has cosine 1
    pairs = [float(1 - e[i] @ e[j]) for i in range(3) for j in range(i + 1, 3)]
    pairs += [float(1 - embeddings[1][0] @ embeddings[1][1])]
    assert m["pair_error_mean_ablated"] == pytest.approx(sum(pairs) / 4, rel=1e-4)


def test_a_wrong_width_or_layer_is_refused(llama):
    batches = _padded_batches()
    sae = aekit.build_model("topk-sae", data_shape=(16,), k=2)
    with pytest.raises(DataError, match="width 32 and the autoencoder takes 16"):
        spliced_metrics(llama, "model.layers.0", sae, batches)
    with pytest.raises(ConfigError, match="nearest: .*model.layers.0"):
        spliced_metrics(llama, "model.layers.9", Exact(), batches)
    with pytest.raises(DataError, match="no texts"):
        spliced_metrics(llama, "model.layers.0", Exact(), [])


def test_cli_splices_a_run_trained_on_a_store_into_its_model(bert_folder, tmp_path, capsys):
    text = tmp_path / "lines.txt"
    text.write_text("\n".join(["the cat sat", "a dog ran on the mat", "the mat"] * 4))
    assert main(["activations", "--model", str(bert_folder), "--layer", "encoder.layer.0", "--text", str(text),
                 "--out", str(tmp_path / "store")]) == 0
    assert main(["train", "topk-sae", "--data", str(tmp_path / "store"), "--out", str(tmp_path / "run"),
                 "--steps", "3", "--no-eval", "k=2", "progress=false"]) == 0
    capsys.readouterr()
    out = tmp_path / "splice.json"
    assert main(["splice", str(tmp_path / "run"), "--text", str(text), "--texts", "6", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "at encoder.layer.0 (output) on 6 texts" in printed and "cosine_spliced:" in printed
    record = json.loads(out.read_text())
    assert record["measure"] == "embedding" and record["texts"] == 6 and -1 <= record["cosine_spliced"] <= 1
    assert main(["splice", str(tmp_path / "run"), "--text", str(text), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "exists" in error and json.loads(out.read_text()) == record
    assert main(["splice", str(tmp_path / "run"), "--text", str(tmp_path / "none.txt")]) == 2
    assert "none.txt: no such file" in capsys.readouterr().err
    assert main(["splice", str(tmp_path / "run"), "--text", str(text), "--model", str(tmp_path / "lm.gguf")]) == 2
    assert "lm.gguf: no such GGUF file" in capsys.readouterr().err
    aekit.save_model(aekit.build_model("topk-sae", data_shape=(32,), k=2), tmp_path / "plain")
    assert main(["splice", str(tmp_path / "plain"), "--text", str(text)]) == 2
    assert "pass --model and --layer" in capsys.readouterr().err


def test_the_positions_replaced_are_those_the_store_kept(llama, tmp_path):
    store = collect_activations(llama, "model.layers.0", _padded_batches(), tmp_path / "s", drop_first=True)
    spliced = spliced_metrics(llama, "model.layers.0", Exact(), _padded_batches(), drop_first=True)
    assert store.tokens == spliced["tokens"] == 34
