"""Activations of a model's layer, captured by a forward hook and written to an activation store.

Sparse autoencoders and transcoders are trained on the activations of one layer of a model (a Hugging Face model
or any ``torch.nn.Module``). :func:`capture` runs one batch through the model and returns the layer's
activations, one row per token; :func:`collect_activations` does so over many batches and writes the rows,
shuffled, to a store on disk (:mod:`aekit.data.store`), which :class:`ActivationStore` reads back and
``aekit train ... --data STORE`` trains on.

The hook point is the layer's ``output`` (element 0 of a tuple, as Hugging Face layers return), its ``input``
(its first positional argument), or ``both``: the input as ``inputs`` and the output as ``target``, a transcoder's
pair. Activations ``[B, T, d]`` become tokens ``[B*T, d]``; where a batch carries an ``attention_mask`` the
padding tokens are dropped, and ``drop_first`` drops each sequence's first token (BOS). With ``loss_fn`` the
gradient of a downstream loss with respect to the hooked activation (``output``; ``input`` for ``input`` and
``both``) is stored beside it as ``gradient``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

from aekit.data.base import first_nonfinite
from aekit.data.formats import PathLike
from aekit.data.store import ActivationStore, StoreWriter, is_store
from aekit.errors import ConfigError, DataError

HOOKS = ("output", "input", "both")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SHARD_BYTES = 128 * 2**20  # a shard's size when shard_tokens is not given

LossFn = Callable[[Any, Any], torch.Tensor]  # (model output, batch) -> a scalar loss

__all__ = ["HOOKS", "ActivationStore", "capture", "collect_activations", "find_layer", "is_store"]


class _StopForward(Exception):
    """Raised by the hook once the layer has run, so that the layers after it are not computed."""


def find_layer(model: torch.nn.Module, layer: str) -> torch.nn.Module:
    """The submodule of ``model`` named ``layer`` (dotted, as ``named_modules()`` names it), or of its Hugging Face
    ``base_model`` (a layer named in ``AutoModel`` is found again in the ``AutoModelForCausalLM`` around it)."""
    try:
        return model.get_submodule(layer)
    except AttributeError:
        base = getattr(model, "base_model", model)
        if base is not model and isinstance(base, torch.nn.Module):
            try:
                return base.get_submodule(layer)
            except AttributeError:
                pass
        names = [name for name, _ in model.named_modules() if name]
        nearest = difflib.get_close_matches(layer, names, n=4, cutoff=0.0)
        raise ConfigError(f"layer {layer!r} not in {type(model).__name__}; nearest: {', '.join(nearest) or 'none'}"
                          ) from None


def _first_tensor(args: tuple, kwargs: dict) -> tuple[torch.Tensor, int | str]:
    """A layer's first positional argument (else its first tensor keyword argument) and where it was."""
    if args and torch.is_tensor(args[0]):
        return args[0], 0
    for key, value in kwargs.items():
        if torch.is_tensor(value):
            return value, key
    raise DataError("the hooked layer was called without a tensor argument; hook its output instead")


def _first_output(output: Any) -> torch.Tensor:
    """A layer's output tensor: itself, or element 0 of a tuple (or of a Hugging Face ``ModelOutput``)."""
    value = output[0] if isinstance(output, (tuple, list)) or hasattr(output, "to_tuple") else output
    if not torch.is_tensor(value):
        raise DataError(f"the hooked layer returned a {type(value).__name__}, not a tensor; hook another layer")
    return value


def _with_first_output(output: Any, value: torch.Tensor) -> Any:
    if isinstance(output, (tuple, list)):
        return type(output)([value, *output[1:]])
    if hasattr(output, "to_tuple"):
        output[next(iter(output.keys()))] = value
        return output
    return value


def _run(model: torch.nn.Module, batch: Any) -> Any:
    """``model`` on ``batch``: a mapping as keyword arguments (a tokenizer's output), a tuple as positional ones."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def _to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: _to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(value, device) for value in batch)
    return batch


def kept_tokens(x: torch.Tensor, mask: torch.Tensor | None, drop_first: bool) -> torch.Tensor:
    """``[B, T]`` bool: the positions of activations ``x [B, T, d]`` that are stored, those the ``attention_mask``
    keeps (all without one), less each sequence's first kept one with ``drop_first``."""
    if x.dim() != 3:
        raise DataError(f"the hooked activation has shape {tuple(x.shape)}; expected [batch, tokens, width]")
    keep = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask.to(x.device).bool()
    if keep.shape != x.shape[:2]:
        raise DataError(f"an attention_mask of shape {tuple(keep.shape)} beside activations of shape "
                        f"{tuple(x.shape)}; the layer does not keep the [batch, tokens] layout")
    if drop_first:  # the first kept position of each sequence (left padding comes before it)
        keep = keep.clone()
        has_any = keep.any(dim=1)
        first = keep.int().argmax(dim=1)  # [B]
        keep[has_any.nonzero().flatten(), first[has_any]] = False
    return keep


def _tokens(x: torch.Tensor, mask: torch.Tensor | None, drop_first: bool) -> torch.Tensor:
    """Activations ``[B, T, d]`` as the rows ``[N, d]`` of the tokens kept (``[B, d]`` stay as they are)."""
    return x if x.dim() == 2 else x[kept_tokens(x, mask, drop_first)]  # [B, T, d] -> [N, d]


def capture(model: torch.nn.Module, layer: str, batch: Any, *, hook: str = "output", drop_first: bool = False,
            stop_early: bool = True, loss_fn: LossFn | None = None) -> dict[str, torch.Tensor]:
    """The activations of ``layer`` on one ``batch``: ``inputs`` ``[N, d]`` (N the tokens kept), with ``target``
    for ``hook="both"`` and ``gradient`` (d loss / d inputs, where ``loss_fn(model_output, batch)`` gives the
    loss), on the CPU.

    stop_early: stop the forward pass once the layer has run (not with ``loss_fn``, which needs the rest).
    """
    if hook not in HOOKS:
        raise ConfigError(f"hook={hook!r} is unknown; choose one of {', '.join(HOOKS)}")
    module = find_layer(model, layer)
    device = next(iter(model.parameters()), torch.empty(0)).device
    batch = _to_device(batch, device)
    caught: dict[str, torch.Tensor] = {}
    grad_at = None if loss_fn is None else ("output" if hook == "output" else "input")

    def on_input(_module: torch.nn.Module, args: tuple, kwargs: dict):
        x, where = _first_tensor(args, kwargs)
        caught["input"] = x.detach()
        if grad_at == "input":  # a leaf in the graph: the gradient stops here, nothing upstream is differentiated
            caught["leaf"] = x = x.detach().requires_grad_(True)
            if isinstance(where, int):
                args = (x, *args[1:])
            else:
                kwargs = {**kwargs, where: x}
        return args, kwargs

    def on_output(_module: torch.nn.Module, _args: tuple, output: Any):
        y = _first_output(output)
        caught["output"] = y.detach()
        if grad_at == "output":
            caught["leaf"] = y = y.detach().requires_grad_(True)
            output = _with_first_output(output, y)
        if stop_early and loss_fn is None:
            raise _StopForward
        return output

    handles = [module.register_forward_hook(on_output)]
    if hook != "output":
        handles.append(module.register_forward_pre_hook(on_input, with_kwargs=True))
    try:
        if loss_fn is None:
            with torch.no_grad():
                _run(model, batch)
        else:
            with torch.enable_grad():
                loss = loss_fn(_run(model, batch), batch)
                (caught["gradient"],) = torch.autograd.grad(loss, caught["leaf"])
    except _StopForward:
        pass
    except RuntimeError as err:
        if loss_fn is None or "leaf" not in caught:
            raise
        raise DataError(f"the loss does not depend on the output of layer {layer!r} ({str(err).splitlines()[0]}); "
                        "give a loss_fn computed from the model's output") from None
    finally:
        for handle in handles:
            handle.remove()
    mask = batch.get("attention_mask") if isinstance(batch, Mapping) else None
    names = {"inputs": "output" if hook == "output" else "input", "target": "output" if hook == "both" else None,
             "gradient": "gradient" if loss_fn is not None else None}
    return {key: _tokens(caught[name], mask, drop_first).cpu() for key, name in names.items() if name}


def _model_name(model: torch.nn.Module) -> str:
    """The name a Hugging Face model was loaded by (``config._name_or_path``), else its class name."""
    config = getattr(model, "config", None)
    return getattr(model, "name_or_path", "") or getattr(config, "_name_or_path", "") or type(model).__name__


def collect_activations(
    model: torch.nn.Module,
    layer: str,
    batches: Iterable[Any],
    out_dir: PathLike,
    *,
    hook: str = "output",
    tokens: int | None = None,
    shard_tokens: int | None = None,
    dtype: str = "float32",
    shuffle: bool = True,
    buffer_shards: int = 4,
    seed: int = 0,
    model_name: str | None = None,
    source: str | None = None,
    drop_first: bool = False,
    stop_early: bool = True,
    loss_fn: LossFn | None = None,
) -> ActivationStore:
    """Capture ``layer``'s activations on each of ``batches`` (what ``model`` takes: a tokenizer's output, a tensor)
    and write them to the store ``out_dir``, appending where it holds a store of the same model, layer, hook point,
    width and dtype. Returns the store.

    tokens: stop once this many tokens are written (default: every batch). shard_tokens: rows per shard (default:
    about 128 MiB a shard). dtype: ``float32``, ``float16`` or ``bfloat16``, as stored. shuffle: mix the rows
    through a buffer of ``buffer_shards`` shards' worth (:class:`~aekit.data.store.ShuffleBuffer`) with ``seed``.
    model_name, source: the base model's and the data's names, recorded in ``store.json``. The model runs in eval
    mode (dropout off) and is put back in its mode after. See :func:`capture` for ``hook``, ``drop_first``,
    ``stop_early`` and ``loss_fn``.
    """
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r} is unknown; choose one of {', '.join(DTYPES)}")
    for key, value in (("tokens", tokens), ("shard_tokens", shard_tokens), ("buffer_shards", buffer_shards)):
        if value is not None and value < 1:
            raise ConfigError(f"{key}={value} must be at least 1")
    find_layer(model, layer)  # a wrong name fails before any batch is run
    was_training, writer, written = model.training, None, 0
    model.eval()
    try:
        for i, batch in enumerate(batches):
            rows = capture(model, layer, batch, hook=hook, drop_first=drop_first, stop_early=stop_early,
                           loss_fn=loss_fn)
            for key, value in rows.items():
                bad = first_nonfinite(value.float().numpy())
                if bad is not None:
                    raise DataError(f"layer {layer!r} gave NaN or Inf ({key}) at token {bad[0]} of batch {i}; the "
                                    "model overflows or its weights are broken: nothing of this batch was stored")
            rows = {key: value[:None if tokens is None else tokens - written].to(DTYPES[dtype])
                    for key, value in rows.items()}
            if not len(rows["inputs"]):
                continue
            if writer is None:
                width = rows["inputs"].shape[1]
                row_bytes = sum(v[:1].numel() * v.element_size() for v in rows.values())
                meta = {"model": model_name or _model_name(model), "layer": layer, "hook": hook, "dtype": dtype,
                        "width": width, "tensors": list(rows), "drop_first": drop_first,
                        "sources": [source] if source else []}
                if "target" in rows:
                    meta["target_width"] = rows["target"].shape[1]
                writer = StoreWriter(out_dir, meta, shard_tokens or max(1, SHARD_BYTES // row_bytes),
                                     shuffle=shuffle, buffer_shards=buffer_shards, seed=seed)
            writer.add(rows)
            written += len(rows["inputs"])
            if tokens is not None and written >= tokens:
                break
    finally:
        model.train(was_training)
    if writer is None or not written:
        raise DataError(f"no tokens were captured from layer {layer!r}: the batches were empty or all padding; "
                        "pass batches of text")
    writer.close()
    return ActivationStore(out_dir)
