"""What a sparse autoencoder's reconstruction does downstream: the base model run with the reconstruction spliced
in place of the layer's activation.

A sparse autoencoder (or transcoder) trained on a layer's activations is judged by the model it came from as well
as by its own reconstruction error: :func:`spliced_metrics` runs the model on the same texts four times, as it
is (clean), with the layer's activation replaced by the autoencoder's reconstruction (spliced), by zeros (zero
ablation) and by its mean over the texts' tokens (mean ablation), and compares them.

- A language model (an output with ``logits``): the next-token cross-entropy of each run, the mean over the
  predicted tokens (padding left out), and the share of the loss gap recovered,
  :func:`~aekit.metrics.sparsity.cross_entropy_recovered`, against each ablation (Gao et al. 2024; Bricken et
  al. 2023).
- A sentence encoder (an output with ``last_hidden_state``): the embedding of each text, the mean of its tokens'
  last hidden states over the attention mask, L2-normalised (the pooling of sentence-transformers' MiniLM
  models); ``cosine``: the mean over the texts of cos(e_clean, e_run); ``pair_error``: the mean over the pairs
  of texts in a batch of |cos(e_i, e_j) - cos(e_i', e_j')|, how much the similarities a search ranks by move.

Only the positions the autoencoder was trained on are replaced: those of the attention mask, less each text's
first token where the store dropped it (``drop_first``); the rest keep their clean activation. The hook point
is the store's: ``output`` replaces the layer's output with its reconstruction, ``input`` the layer's input,
``both`` (a transcoder) replaces the layer's output with the transcoder's prediction from its input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F

from aekit.data.activations import (
    HOOKS,
    _first_output,
    _first_tensor,
    _run,
    _to_device,
    _with_first_output,
    find_layer,
    kept_tokens,
)
from aekit.errors import ConfigError, DataError
from aekit.metrics.sparsity import VarianceAccumulator, cross_entropy_recovered
from aekit.progress import Phase

Replace = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (activation [B, T, d], kept [B, T]) -> [B, T, d]
RUNS = ("spliced", "zero_ablated", "mean_ablated")

__all__ = ["RUNS", "splice", "spliced_metrics"]


@contextmanager
def splice(model: torch.nn.Module, layer: str, replace: Replace, *, hook: str = "output",
           mask: torch.Tensor | None = None, drop_first: bool = False):
    """While open, ``model``'s ``layer`` runs with its activation at the hook point (see the module) replaced by
    ``replace(activation, kept)``, ``kept [B, T]`` the positions to replace (``mask`` the batch's attention mask);
    for ``hook="both"`` ``replace`` gets the layer's input and gives its output."""
    if hook not in HOOKS:
        raise ConfigError(f"hook={hook!r} is unknown; choose one of {', '.join(HOOKS)}")
    module, seen = find_layer(model, layer), {}

    def swap(x: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
        keep = kept_tokens(x, mask, drop_first).unsqueeze(-1)
        return torch.where(keep, new.to(x.dtype), x)

    def on_input(_module, args: tuple, kwargs: dict):
        x, where = _first_tensor(args, kwargs)
        if hook == "both":
            seen["input"] = x
            return None
        x = swap(x, replace(x, kept_tokens(x, mask, drop_first)))
        return ((x, *args[1:]), kwargs) if isinstance(where, int) else (args, {**kwargs, where: x})

    def on_output(_module, _args, output: Any):
        y = _first_output(output)
        source = seen.pop("input") if hook == "both" else y
        return _with_first_output(output, swap(y, replace(source, kept_tokens(y, mask, drop_first))))

    handle = (module.register_forward_hook(on_output) if hook == "output"
              else module.register_forward_pre_hook(on_input, with_kwargs=True))
    handles = [handle] + ([module.register_forward_hook(on_output)] if hook == "both" else [])
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _measure_of(output: Any) -> str:
    if getattr(output, "logits", None) is not None:
        return "loss"
    if getattr(output, "last_hidden_state", None) is not None:
        return "embedding"
    raise DataError(f"the model returned a {type(output).__name__} with neither logits (a language model) nor "
                    "last_hidden_state (an encoder); splice into a Hugging Face causal LM or encoder")


def _next_token_loss(output: Any, batch: Mapping) -> tuple[float, int]:
    """The summed next-token cross-entropy of ``output.logits`` on ``batch["input_ids"]`` and the number of
    predicted tokens (both the token and the one before it unmasked)."""
    logits, ids = output.logits[:, :-1].float(), batch["input_ids"][:, 1:]
    mask = batch.get("attention_mask")
    valid = torch.ones_like(ids, dtype=torch.bool) if mask is None else (mask[:, 1:] * mask[:, :-1]).bool()
    loss = F.cross_entropy(logits[valid], ids[valid], reduction="sum")
    return float(loss), int(valid.sum())


def _embedding(output: Any, batch: Mapping) -> torch.Tensor:
    """``[B, d]``: each text's mean last hidden state over its attention mask, L2-normalised."""
    h = output.last_hidden_state.float()
    mask = batch.get("attention_mask")
    mask = torch.ones(h.shape[:2], device=h.device) if mask is None else mask.to(h.dtype)
    pooled = (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
    return F.normalize(pooled, dim=-1)


def _pair_error(a: torch.Tensor, b: torch.Tensor) -> tuple[float, int]:
    """The summed |cos(a_i, a_j) - cos(b_i, b_j)| over the pairs i < j of normalised rows, and their number."""
    i, j = torch.triu_indices(len(a), len(a), offset=1)
    return float(((a @ a.T) - (b @ b.T))[i, j].abs().sum()), len(i)


def _reconstruct(sae: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    width = getattr(getattr(sae, "config", None), "data_shape", (x.shape[-1],))[-1]
    if x.shape[-1] != width:
        raise DataError(f"the hooked activation has width {x.shape[-1]} and the autoencoder takes {width}; splice it "
                        "into the layer and hook point it was trained on")
    rows = x.reshape(-1, x.shape[-1]).float()
    return sae.reconstruct(rows.to(sae.device)).to(x.device).reshape(*x.shape[:-1], -1)


@torch.no_grad()
def spliced_metrics(model: torch.nn.Module, layer: str, sae: torch.nn.Module, batches: Iterable[Mapping], *,
                    hook: str = "output", drop_first: bool = False, progress: bool = False) -> dict[str, Any]:
    """The downstream metrics of the module docstring for ``sae`` spliced into ``model``'s ``layer`` on
    ``batches`` (a tokenizer's outputs; they are run twice, so they are kept). Keys: ``measure`` (``loss`` or
    ``embedding``), ``texts``, ``tokens`` (the positions replaced), ``fvu`` of the reconstruction on them; for a
    language model ``ce_clean``, ``ce_spliced``, ``ce_zero_ablated``, ``ce_mean_ablated``, ``predicted_tokens``
    and ``ce_recovered_zero`` / ``ce_recovered_mean``; for an encoder ``cosine_<run>`` and ``pair_error_<run>``
    for each run of :data:`RUNS`. ``progress``: show the passes on standard error."""
    batches = list(batches)
    if not batches:
        raise DataError("no texts to splice into; pass at least one batch of text")
    was_training, sae_training = model.training, sae.training
    model.eval(), sae.eval()
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:  # a forward pass a unit: the clean one and the three runs of each batch
        with Phase("splicing the reconstruction", (1 + len(RUNS)) * len(batches), unit="passes",
                   enabled=progress) as phase:
            clean, mean = _clean_pass(model, layer, [_to_device(b, device) for b in batches], hook, drop_first,
                                      phase)
            result = _spliced_passes(model, layer, sae, clean, mean, hook, drop_first, phase)
    finally:
        model.train(was_training), sae.train(sae_training)
    return result


def _clean_pass(model, layer: str, batches: list, hook: str, drop_first: bool, phase: Phase):
    """Each batch with its clean run's output measure, and the mean of the activation the runs replace."""
    total, count, clean = 0.0, 0, []
    for batch in batches:
        caught = {}

        def look(x: torch.Tensor, kept: torch.Tensor, caught=caught) -> torch.Tensor:
            caught["x"] = x[kept]
            return x

        source_hook = "input" if hook == "input" else "output"  # the activation a replacement stands in for
        with splice(model, layer, look, hook=source_hook, mask=batch.get("attention_mask"), drop_first=drop_first):
            output = _run(model, batch)
        total, count = total + caught["x"].double().sum(0), count + caught["x"].shape[0]
        clean.append((batch, _keep(output, batch)))
        phase.update(1)
    if not count:
        raise DataError("no token of the texts is replaced (all padding or first tokens); pass longer texts")
    return clean, (total / count).float()


def _keep(output: Any, batch: Mapping) -> Any:
    """What the clean run leaves to compare with: its loss (summed, and its tokens) or its embeddings."""
    return _next_token_loss(output, batch) if _measure_of(output) == "loss" else _embedding(output, batch)


def _spliced_passes(model, layer: str, sae, clean: list, mean: torch.Tensor, hook: str, drop_first: bool,
                    phase: Phase) -> dict[str, Any]:
    replacements: dict[str, Replace] = {
        "spliced": lambda x, kept: _reconstruct(sae, x),
        "zero_ablated": lambda x, kept: torch.zeros_like(x) if hook != "both" else torch.zeros(
            *x.shape[:-1], mean.shape[0], dtype=x.dtype, device=x.device),
        "mean_ablated": lambda x, kept: mean.to(x.device, x.dtype).expand(*x.shape[:-1], -1),
    }
    measure = "loss" if isinstance(clean[0][1], tuple) else "embedding"
    sums = {name: 0.0 for name in ("clean", *RUNS, *(f"pair_{r}" for r in RUNS))}
    counts = {"predicted": 0, "texts": 0, "pairs": 0, "tokens": 0}
    variance = VarianceAccumulator()
    for batch, kept_clean in clean:
        mask = batch.get("attention_mask")
        for run in RUNS:
            replace, seen = replacements[run], {}

            def replace_and_score(x, kept, replace=replace, run=run, seen=seen):
                new = replace(x, kept)
                if run == "spliced":
                    seen["x"], seen["x_hat"] = x[kept], new[kept]
                return new

            with splice(model, layer, replace_and_score, hook=hook, mask=mask, drop_first=drop_first):
                output = _run(model, batch)
            if run == "spliced":
                counts["tokens"] += seen["x"].shape[0]
                if hook != "both":  # a transcoder's target is the output, which the pass does not keep
                    variance.add(seen["x"].float(), seen["x_hat"].float())
            if measure == "loss":
                sums[run] += _next_token_loss(output, batch)[0]
            else:
                e = _embedding(output, batch)
                sums[run] += float((e * kept_clean).sum())
                pair, n_pairs = _pair_error(kept_clean, e)
                sums[f"pair_{run}"] += pair
                counts["pairs"] += n_pairs if run == "spliced" else 0
            phase.update(1)
        if measure == "loss":
            loss, n = kept_clean
            sums["clean"] += loss
            counts["predicted"] += n
        counts["texts"] += len(batch["input_ids"]) if "input_ids" in batch else 0
    return _summary(measure, sums, counts, variance, hook)


def _summary(measure: str, sums: dict, counts: dict, variance: VarianceAccumulator, hook: str) -> dict[str, Any]:
    result: dict[str, Any] = {"measure": measure, "texts": counts["texts"], "tokens": counts["tokens"]}
    if hook != "both":
        result["fvu"] = variance.fvu
    if measure == "loss":
        n = max(counts["predicted"], 1)
        ce = {run: sums[run] / n for run in ("clean", *RUNS)}
        result.update({f"ce_{run}": value for run, value in ce.items()}, predicted_tokens=counts["predicted"])
        for ablation in ("zero", "mean"):
            try:
                result[f"ce_recovered_{ablation}"] = cross_entropy_recovered(
                    ce["clean"], ce["spliced"], ce[f"{ablation}_ablated"])
            except ValueError:
                result[f"ce_recovered_{ablation}"] = float("nan")
        return result
    for run in RUNS:
        result[f"cosine_{run}"] = sums[run] / max(counts["texts"], 1)
        result[f"pair_error_{run}"] = sums[f"pair_{run}"] / max(counts["pairs"], 1)
    return result
