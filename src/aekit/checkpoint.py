"""Training checkpoints: model, optimiser, schedule, RNG states and step, written atomically.

Layout: ``RUN/checkpoints/step-00000100/`` with ``config.json`` + ``model.safetensors`` (loadable by
``aekit.load``), ``optimizer.safetensors`` (every named optimiser's tensors, ``opt.NAME.ID.SLOT``, and the RNG
states), ``state.json`` and, with ``ema_decay``, ``average.safetensors``;
``RUN/checkpoints/latest`` names the newest.
A checkpoint is written into a temporary folder that is renamed when complete, so a crash (even SIGKILL)
leaves every earlier checkpoint intact. No pickles.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aekit.errors import DataError
from aekit.io import atomic_write_text, load_tensors, read_json, save_model, save_tensors


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state dict into tensors (for safetensors) and plain values (for JSON)."""
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for param_id, slots in state["state"].items():
        for name, value in slots.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{name}"] = value
            else:
                scalars[f"{param_id}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        param_id, name = key.split(".", 1)
        state.setdefault(int(param_id), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    np_state = np.random.get_state()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(np_state[1].astype(np.int64))}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    py_state = random.getstate()
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def restore_rng(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    np_meta = meta["numpy"]
    np.random.set_state((np_meta[0], tensors["rng.numpy"].numpy().astype(np.uint32), *np_meta[1:]))
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    run_dir: Path, model, optimizers: dict[str, torch.optim.Optimizer], state: dict[str, Any], keep: int = 2,
    average: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step-{state['step']}`` atomically and point ``latest`` at it; keep the newest ``keep``.
    ``average``: the averaged weights of a run with ``ema_decay`` (``average.safetensors``)."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']:08d}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tmp)
    tensors, metas = {}, {}
    for opt_name, optimizer in optimizers.items():
        opt_tensors, metas[opt_name] = optimizer_tensors(optimizer)
        tensors.update({f"opt.{opt_name}.{k}": v for k, v in opt_tensors.items()})
    rng_tensors, rng_meta = rng_state()
    save_tensors({**tensors, **rng_tensors}, tmp / "optimizer.safetensors")
    if average is not None:
        save_tensors(average, tmp / "average.safetensors")
    atomic_write_text(tmp / "state.json", json.dumps({**state, "optimizers": metas, "rng": rng_meta}, indent=1))
    final = root / name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    atomic_write_text(root / "latest", name + "\n")
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = Path(run_dir) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not (path / "state.json").is_file():
        raise DataError(
            f"{pointer}: names {path.name}, which is missing or incomplete; point it at an existing step-* folder"
        )
    return path


def load_checkpoint(path: Path, model, optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, Any]:
    """Restore model, optimisers and RNG states in place; return the trainer state (step, best loss, ...).
    A checkpoint written before optimisers had names holds one, ``model``'s."""
    state = read_json(path / "state.json")
    model.load_state_dict(load_tensors(path / "model.safetensors"))
    tensors = load_tensors(path / "optimizer.safetensors")
    metas = state.get("optimizers") or {"model": state["optimizer"]}
    named = "optimizers" in state
    if set(metas) != set(optimizers):
        raise DataError(f"{path}: holds the optimisers {', '.join(sorted(metas))} but the model trains "
                        f"{', '.join(sorted(optimizers))}; resume with the model the run was started with")
    for name, optimizer in optimizers.items():
        prefix = f"opt.{name}." if named else "opt."
        restore_optimizer(optimizer, {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)},
                          metas[name])
    restore_rng({k: v for k, v in tensors.items() if k.startswith("rng.")}, state["rng"])
    return state
