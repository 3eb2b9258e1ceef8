"""What a run records, read from the device as rarely as possible.

A step's losses and logged terms stay tensors on the device: one fused finiteness check per step is the step's
only read from an accelerator (:class:`StepTerms`; on the CPU, where reading costs nothing, the terms are read
instead of launching kernels), and the logged values are read, all in one copy, only when a row of ``log.csv``
(every ``log_every`` steps) or the progress bar needs them (:func:`read_logs`). Validation sums its terms on the
device and reads them once. ``log.csv`` holds one row per logged step and split.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import torch

from aekit.data.base import Splits
from aekit.io import atomic_write_text
from aekit.run_config import TrainConfig
from aekit.training.step import reseed, step_seed


class CSVLog:
    """``log.csv``: one row per logged step and split. Columns follow the logged keys as they first appear (a new
    key rewrites the file with the wider header); on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path, self.columns = path, list(columns)
        self.rows: list[list[str]] = []
        if resume_step is not None and path.is_file():
            lines = path.read_text().splitlines()
            self.columns = lines[0].split(",") if lines else self.columns
            self.rows = [ln.split(",") for ln in lines[1:] if int(float(ln.split(",")[0])) <= resume_step]
        self._rewrite()

    def _rewrite(self) -> None:
        width = len(self.columns)
        lines = [",".join(self.columns), *(",".join(r + [""] * (width - len(r))) for r in self.rows)]
        atomic_write_text(self.path, "\n".join(lines) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        def fmt(v: Any) -> str:
            return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

        new = [k for k in row if k not in self.columns]
        cells = None
        if new:
            self.columns += new
        cells = [fmt(row.get(c)) for c in self.columns]
        self.rows.append(cells)
        if new:
            self._rewrite()
        else:
            with self.path.open("a") as f:
                f.write(",".join(cells) + "\n")


HOST_DEVICES = ("cpu",)  # where a tensor's value is read without a transfer


def _wide(value: torch.Tensor) -> torch.Tensor:
    """``value`` in float64 for sums (float32 on Apple GPUs, which have no float64)."""
    return value.to(torch.float32 if value.device.type == "mps" else torch.float64)


def _stacked(tensors: list[torch.Tensor]) -> torch.Tensor:
    """0-dim tensors as one vector, in their common floating dtype (so float32 values stay exact)."""
    dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    dtype = dtype if dtype.is_floating_point else torch.float32
    return torch.stack([t if t.dim() == 0 and t.dtype == dtype else t.reshape(()).to(dtype) for t in tensors])


def read_logs(logs: dict[str, torch.Tensor | float]) -> dict[str, float]:
    """The logged values as floats, every tensor among them read in one device-to-host copy."""
    keys = [k for k, v in logs.items() if torch.is_tensor(v)]
    read = dict(zip(keys, _stacked([logs[k].detach() for k in keys]).tolist(), strict=True)) if keys else {}
    return {k: read[k] if k in read else float(v) for k, v in logs.items()}


class StepTerms:
    """The losses and logged terms of one step's micro-batches, kept on the device.

    ``logs``: each logged term averaged over the micro-batches (a tensor, or a float where the objective logs a
    number such as a schedule's weight), in the objective's order. :meth:`finite` is one fused check of every
    loss and logged tensor; :meth:`first_nonfinite` names the culprit, reading the terms only on that path."""

    def __init__(self, micro_batches: int) -> None:
        self.scale = 1.0 / micro_batches
        self.logs: dict[str, torch.Tensor | float] = {}
        self.names: list[str] = []
        self.tensors: list[torch.Tensor] = []
        self.bad_numbers: list[tuple[str, float]] = []

    def add(self, losses: dict[str, torch.Tensor], logs: dict[str, Any]) -> None:
        """One micro-batch's losses and logs."""
        for name, value in logs.items():
            if torch.is_tensor(value):
                value = value.detach()
                self.names.append(name)
                self.tensors.append(value)
                if self.scale != 1.0:
                    value = _wide(value) * self.scale
            else:
                value = float(value)
                if not math.isfinite(value):
                    self.bad_numbers.append((name, value))
                value *= self.scale
            self.logs[name] = value if name not in self.logs else self.logs[name] + value
        for name, value in losses.items():
            self.names.append(f"{name} loss")
            self.tensors.append(value.detach())

    def finite(self) -> torch.Tensor | bool:
        """Whether every term is finite. On an accelerator a 0-dim bool tensor, not yet read: one fused check. In
        host memory (``HOST_DEVICES``) a bool, each term read: there a read costs nothing and a small kernel
        microseconds."""
        if self.bad_numbers:
            return False
        if self.tensors[0].device.type in HOST_DEVICES:
            return all(math.isfinite(t.item()) for t in self.tensors)
        return torch.isfinite(_stacked(self.tensors)).all()

    def first_nonfinite(self) -> tuple[str, float] | None:
        """The first term that is not finite and its value: a logged component (recon, kl) before the logged
        total, before an optimiser's loss."""
        values = _stacked(self.tensors).tolist()
        bad = [(name, v) for name, v in zip(self.names, values, strict=True) if not math.isfinite(v)]
        bad = sorted(bad + self.bad_numbers, key=lambda nv: (nv[0].endswith(" loss"), nv[0] == "loss"))
        return bad[0] if bad else None


@torch.no_grad()
def validation_logs(
    model, objective, splits: Splits, config: TrainConfig, step: int, device, forward=None
) -> dict[str, float]:
    """Mean of the objective's logged terms over (at most ``val_examples`` of) the validation split, scored with
    the objective its schedules end on (``objective(out, None)``: beta after its warm-up), so that the best
    validation loss is not one taken early in a warm-up. ``forward``: how to call the model (the training step's
    :func:`module_call`, so that validation runs in the training precision, as Lightning does); the model itself
    when None. The sums stay on the device until the end."""
    forward = forward or model
    was_training = model.training
    model.eval()
    val = splits.val
    n = len(val) if config.val_examples == 0 else min(len(val), config.val_examples)
    totals: dict[str, torch.Tensor | float] = {}
    seen = 0
    with torch.random.fork_rng(devices=[]):
        reseed(step_seed(config.seed, step) + 1, torch.device(device))
        for start in range(0, n, config.batch_size):
            batch = val.batch(slice(start, min(n, start + config.batch_size))).to(device)
            logs = objective(forward(batch), None, batch).logs  # the objective after every warm-up
            for k, v in logs.items():
                v = _wide(v.detach()) if torch.is_tensor(v) else float(v)
                totals[k] = totals.get(k, 0.0) + v * len(batch)
            seen += len(batch)  # examples (a graph source: one graph of N nodes)
    model.train(was_training)
    return {k: v / max(seen, 1) for k, v in read_logs(totals).items()}
