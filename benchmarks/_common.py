"""What every benchmark records beside its numbers: the machine and the aekit sources it ran."""

from __future__ import annotations

import hashlib
import json
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

import aekit


def aekit_source() -> dict[str, str]:
    """The commit and a hash of the aekit sources as run (the working tree may differ from the commit)."""
    src = Path(aekit.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*.py")):
        digest.update(path.relative_to(src).as_posix().encode() + path.read_bytes())
    head = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    return {"commit": head, "src_sha256": digest.hexdigest()[:16]}


def machine() -> dict[str, Any]:
    model_name = ""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        model_name = next((ln.split(":", 1)[1].strip() for ln in lscpu.splitlines() if ln.startswith("Model name")), "")
    except OSError:
        pass
    return {"cpu": model_name, "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


def matmul_peak_gflops(n: int, runs: int) -> dict[str, Any]:
    """Median GFLOP/s of ``a @ b`` for n x n fp32 matrices, after two warm-up products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(2):
        torch.matmul(a, b)
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        torch.matmul(a, b)
        rates.append(2 * n**3 / (time.perf_counter() - start) / 1e9)
    return {"n": n, "gflops_runs": [round(r, 1) for r in rates], "gflops_median": round(statistics.median(rates), 1)}


def pythae_fit(model: torch.nn.Module, dataset: Any, output_dir: str | Path, batch_size: int, epochs: int,
               lr: float, seed: int, optimizer: str = "Adam", optimizer_params: dict[str, Any] | None = None):
    """Train a Pythae model with its ``BaseTrainer`` as its reproducibility scripts do (CPU, no checkpoints or
    predictions along the way): ``(the best model in evaluation mode, the training's wall seconds)``."""
    from pythae.trainers import BaseTrainer, BaseTrainerConfig

    start = time.perf_counter()
    trainer = BaseTrainer(model=model, train_dataset=dataset, training_config=BaseTrainerConfig(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size, num_epochs=epochs, learning_rate=lr,
        steps_saving=None, steps_predict=None, no_cuda=True, seed=seed, optimizer_cls=optimizer,
        optimizer_params=optimizer_params))
    trainer.train()
    return trainer._best_model.eval(), time.perf_counter() - start


def save_json(result: dict[str, Any], path: str | Path) -> Path:
    """Write a benchmark's result as indented JSON (lists for tuples and sets), making its folder."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=list) + "\n")
    return out
