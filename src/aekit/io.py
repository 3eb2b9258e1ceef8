"""Save and load models: a directory with ``config.json``, ``model.safetensors`` and a model card (Hugging Face's
layout, so a folder can be pushed to the Hub as it is and loaded back by its id). No pickles."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import torch

from aekit.errors import AekitError, ConfigError, DataError
from aekit.files import write_atomically

FORMAT = "aekit-model/1"


def atomic_write_text(path: Path, text: str) -> None:
    write_atomically(path, lambda file: file.write(text.encode("utf-8")))


def save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    """safetensors file written to a temporary name, then renamed (a crash leaves the old file intact)."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    write_atomically(path, lambda file: file.write(data))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise DataError(f"{path}: no such file; point at a model directory holding config.json and model.safetensors")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises several types for a corrupt header
        raise DataError(f"{path}: not a readable safetensors file ({exc}); the file is corrupt or truncated") from None


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno}); the file is corrupt") from None


def save_model(model, path: str | os.PathLike, metrics: dict[str, Any] | None = None) -> Path:
    """Write the folder a model is shared as, Hugging Face's layout: ``config.json`` (model name and config, and
    ``activations``: the activation store it was trained on, where ``model.activation_source`` names one),
    ``model.safetensors`` and ``README.md``, a model card with the model's settings and ``metrics`` (a run's
    ``metrics.json``) where given. The same as ``model.save_pretrained(path)``."""
    from aekit.config import to_dict

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    save_tensors(model.state_dict(), path / "model.safetensors", metadata={"format": FORMAT})
    meta = {"format": FORMAT, "model": model.name, "config": to_dict(model.config)}
    activations = getattr(model, "activation_source", None)
    if activations:
        meta["activations"] = activations
    atomic_write_text(path / "config.json", json.dumps(meta, indent=2) + "\n")
    atomic_write_text(path / "README.md", model_card(meta, metrics))
    return path


def model_card(meta: dict[str, Any], metrics: dict[str, Any] | None = None) -> str:
    """A model card (README.md) for a saved model: what it is, how to load it, its test metrics and settings."""
    name, config = meta["model"], meta.get("config", {})
    lines = ["---", "library_name: aekit", f"tags: [aekit, autoencoder, {name}]", "---", "",
             f"# An aekit `{name}`", "",
             f"A `{name}` model of aekit, the autoencoder library, for data of shape "
             f"{tuple(config.get('data_shape') or ())}, saved as `config.json` + `model.safetensors` (no pickles).",
             "", "```python", "import aekit", "", 'model = aekit.load("THIS_FOLDER_OR_HUB_ID")  # or '
             'aekit.models.Model.from_pretrained(...)', "```", ""]
    lines += _activations_card(meta.get("activations"))
    shown = {k: v for k, v in (metrics or {}).items() if k.startswith("test/") and isinstance(v, (int, float, str))}
    if shown:
        lines += ["## Test metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| `{k}` | {v:.6g} |" if isinstance(v, float) else f"| `{k}` | {v} |" for k, v in shown.items()]
        lines.append("")
    lines += ["## Settings", "", "```json", json.dumps(config, indent=2), "```", ""]
    return "\n".join(lines)


def _activations_card(source: dict[str, Any] | None) -> list[str]:
    """The model card's section on the activation store a model was trained on (none where there was none)."""
    if not source:
        return []
    sources = ", ".join(source.get("sources") or []) or "not named"
    return ["## Trained on activations", "",
            f"Activations of layer `{source.get('layer')}` ({source.get('hook')}) of `{source.get('model')}`: "
            f"{source.get('tokens')} tokens of width {source.get('width')}, stored as {source.get('dtype')}; text: "
            f"{sources}.", ""]


def resolve_model_dir(path: str | os.PathLike, revision: str | None = None, cache_dir: str | os.PathLike | None = None,
                      local_files_only: bool = False) -> Path:
    """A model directory, a run directory whose trained model sits in ``model/``, or a Hugging Face Hub id
    (``owner/name``, at ``revision``) where no folder ``owner`` is here, fetched through ``huggingface_hub`` into
    its cache (``cache_dir``; ``local_files_only``: from the cache only, as offline)."""
    path = Path(path)
    if not path.exists():
        if _is_hub_id(str(path)) and not path.parent.is_dir():  # runs/typo is a folder's, not a Hub id
            return _from_hub(str(path), revision, cache_dir, local_files_only)
        raise DataError(f"{path}: no such file or folder; pass a model or run directory, or a Hub id owner/name")
    if (path / "model" / "config.json").is_file():
        return path / "model"
    if (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        return path
    raise DataError(f"{path}: holds no config.json + model.safetensors (nor model/ inside); is it a trained run?")


def _is_hub_id(text: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}", text) is not None


def _from_hub(repo_id: str, revision: str | None, cache_dir, local_files_only: bool) -> Path:
    """The folder of a Hub model's snapshot: config.json, model.safetensors and the card, nothing else."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise DataError(f"{repo_id}: no such folder here; to load it from the Hugging Face Hub, pip install "
                        "huggingface_hub") from None
    try:
        folder = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only,
                                   allow_patterns=["config.json", "model.safetensors", "README.md"])
    except Exception as exc:  # offline, unknown repo, no access: huggingface_hub raises many types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{repo_id}: no such folder here, and the Hugging Face Hub did not give it ({reason}); check "
                        "the path or the Hub id") from None
    folder = Path(folder)
    if not ((folder / "config.json").is_file() and (folder / "model.safetensors").is_file()):
        raise DataError(f"{repo_id}: the Hub snapshot holds no config.json + model.safetensors; is it an aekit model?")
    return folder


def check_out_dir(path: str | os.PathLike) -> Path:
    """``path`` as a folder aekit can write into (it need not exist yet), checked before any work starts.

    An existing file, a path below a file, or a folder the user may not write into is a ConfigError that
    names the offending path, so that a run fails at once rather than after training.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path}: is a file, not a folder; choose another output folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{path}: {existing} is a file, so no folder can be made inside it; choose another "
                          "output folder")
    # access(2) also answers for root, for whom mode bits do not matter but a read-only file system does.
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{path}: {existing} is not writable; choose an output folder you may write into")
    return path


def default_device() -> torch.device:
    """The GPU when there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu", *, revision: str | None = None,
         cache_dir: str | os.PathLike | None = None, local_files_only: bool = False, **parts: Any):
    """Rebuild a saved model: ``aekit.load("runs/vae")``, a model folder, or a Hugging Face Hub id
    (``aekit.load("owner/name", revision=...)``, which needs ``huggingface_hub``; a folder of that name here wins).
    User-made encoders/decoders are passed as ``parts``."""
    from aekit.registry import build_model, make_config

    directory = resolve_model_dir(path, revision, cache_dir, local_files_only)
    meta = read_json(directory / "config.json")
    if meta.get("format") != FORMAT or "model" not in meta:
        raise DataError(f"{directory / 'config.json'}: not an aekit model config (format {meta.get('format')!r})")
    config = make_config(meta["model"], **meta.get("config", {}))
    model = build_model(meta["model"], config, **parts)
    state = load_tensors(directory / "model.safetensors")
    _check_weights_fit(model, state, directory, parts)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "mismatch"
        raise AekitError(f"{directory}: weights do not fit the config ({first})") from None
    model.activation_source = meta.get("activations")  # the activation store it was trained on, or None
    model = model.to(map_location).eval()
    if (directory / "samplers").is_dir():  # ex-post samplers fitted to it (aekit.sampling)
        from aekit.sampling import load_samplers

        load_samplers(model, directory)
    return model


# The parts a user may build, in the order they are named in an error.
_USER_PARTS = ("encoder", "decoder", "bottleneck", "likelihood")


def _check_weights_fit(model: torch.nn.Module, state: dict[str, torch.Tensor], directory: Path,
                       parts: dict[str, Any]) -> None:
    """A load error that names the parts whose saved weights do not fit, and says how to pass them back."""
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    saved = {key: tuple(value.shape) for key, value in state.items()}
    misfits = {key for key in expected.keys() | saved.keys() if expected.get(key) != saved.get(key)}
    if not misfits:
        return
    names = sorted({key.partition(".")[0] for key in misfits},
                   key=lambda name: (_USER_PARTS.index(name) if name in _USER_PARTS else len(_USER_PARTS), name))
    example = min(misfits, key=lambda key: (names.index(key.partition(".")[0]), key))
    detail = _misfit(example, saved.get(example), expected.get(example))
    passed = [name for name in names if name in parts]
    missing = [name for name in names if name in _USER_PARTS and name not in parts]
    if "bottleneck" in missing and "encoder" in names:
        missing.remove("bottleneck")  # a bottleneck is sized from the encoder's out_features
    wanted = ", ".join(f"{name}=..." for name in missing)
    if passed:
        verb = "does" if len(passed) == 1 else "do"
        also = f"; and pass {wanted} too" if missing else ""
        raise AekitError(f"{directory}: the {', '.join(f'{name}=' for name in passed)} passed in {verb} not fit the "
                         f"saved weights ({detail}); pass the modules the model was trained with{also}")
    if not missing:
        raise AekitError(f"{directory}: the weights of the {', '.join(names)} do not fit the config ({detail})")
    raise AekitError(
        f"{directory}: the saved {', '.join(names)} weights do not fit the model rebuilt from config.json ({detail}); "
        f"it was built with user modules: pass the same ones back, aekit.load(path, {wanted})"
    )


def _misfit(key: str, saved: tuple[int, ...] | None, expected: tuple[int, ...] | None) -> str:
    if expected is None:
        return f"{key}: saved with shape {list(saved)}, absent from the rebuilt model"
    if saved is None:
        return f"{key}: not saved, the rebuilt model has it with shape {list(expected)}"
    return f"{key}: saved with shape {list(saved)}, the rebuilt model's is {list(expected)}"
