"""Text for a language model whose activations are collected: a local Hugging Face model folder loaded offline,
and the lines of a text file (or a ``.jsonl``'s text field) tokenised in batches, read lazily."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from aekit.data.formats import PathLike
from aekit.errors import DataError


def load_hf_model(path: PathLike, quiet: bool = False, head: str = "base") -> tuple[Any, Any]:
    """The model and tokenizer of a local Hugging Face model folder, or of a GGUF file (dequantised by transformers'
    GGUF loader, which needs the ``gguf`` package), offline.

    head: ``base`` (``AutoModel``, the layers alone), ``causal`` (``AutoModelForCausalLM``, with the language-model
    head, for a loss) or ``auto`` (causal where the config names a ``...ForCausalLM`` architecture or the file is a
    GGUF, else base). quiet: turn off transformers' progress bars and warnings (for a command whose stderr is its
    own)."""
    path = Path(path).expanduser()
    gguf = path.suffix.lower() == ".gguf"
    if gguf and not path.is_file():
        raise DataError(f"{path}: no such GGUF file; pass a .gguf file or a local Hugging Face model folder")
    if not gguf and not (path / "config.json").is_file():
        raise DataError(f"{path}: no config.json; pass a local Hugging Face model folder (save_pretrained writes one) "
                        "or a .gguf file")
    if head not in ("base", "causal", "auto"):
        raise DataError(f"head={head!r} is unknown; choose base, causal or auto")
    try:
        from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer
    except ImportError:
        raise DataError("collecting activations of a Hugging Face model needs transformers; pip install "
                        "transformers") from None
    if quiet:
        from transformers.utils import logging

        logging.disable_progress_bar()
        logging.set_verbosity_error()
    if head == "auto":
        architectures = [] if gguf else json.loads((path / "config.json").read_text()).get("architectures") or []
        head = "causal" if gguf or any(a.endswith("ForCausalLM") for a in architectures) else "base"
    where, extra = (path.parent, {"gguf_file": path.name}) if gguf else (path, {})
    try:
        auto = AutoModelForCausalLM if head == "causal" else AutoModel
        # the GGUF loader's own progress bar ignores transformers' switch: quiet, its stderr goes nowhere
        with contextlib.redirect_stderr(io.StringIO()) if quiet and gguf else contextlib.nullcontext():
            model = auto.from_pretrained(where, local_files_only=True, **extra)
            tokenizer = AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
    except ImportError as err:
        raise DataError(f"{path}: {str(err).strip().splitlines()[0]}") from None
    except (OSError, ValueError, KeyError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a loadable Hugging Face model and tokenizer ({reason}); pass a folder that "
                        "holds both, or a .gguf file") from None
    if tokenizer.pad_token is None:  # decoder-only tokenizers often have none; padding is masked out anyway
        if tokenizer.eos_token is None:
            raise DataError(f"{path}: the tokenizer has neither a pad nor an end-of-sequence token to pad batches with")
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def read_texts(path: PathLike, field: str = "text") -> Iterator[str]:
    """The non-blank lines of a text file, or the ``field`` of each line of a ``.jsonl`` file, one at a time."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a text file (one text a line) or a .jsonl with a {field!r} field")
    is_jsonl = path.suffix.lower() == ".jsonl"
    with open(path, encoding="utf-8") as f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if not is_jsonl:
                    yield line.rstrip("\n")
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataError(f"{path}: line {number} is not JSON ({err.msg}); give one object a line") from None
                if not isinstance(record, dict) or not isinstance(record.get(field), str):
                    raise DataError(f"{path}: line {number} holds no text field {field!r}; pass --text-field NAME")
                yield record[field]
        except UnicodeDecodeError as err:
            raise DataError(f"{path}: not UTF-8 text ({err.reason}); pass a text file") from None


def text_batches(tokenizer: Any, texts: Iterator[str], batch_size: int, max_length: int) -> Iterator[dict]:
    """``texts`` tokenised ``batch_size`` at a time, padded and cut at ``max_length`` tokens, as tensors."""
    if batch_size < 1 or max_length < 1:
        raise DataError(f"batch size {batch_size} and max length {max_length} must be at least 1")
    texts = iter(texts)
    while chunk := list(itertools.islice(texts, batch_size)):
        yield dict(tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"))
