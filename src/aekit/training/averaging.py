"""Polyak averaging of the weights (``ema_decay``), with each part choosing what happens to its buffers.

Buffers are not trained, so by default the averaged model takes the live ones (the last step's running
statistics, counters, schedules). A part whose buffers are learnt state of their own, such as an EMA codebook,
says ``average_buffers = "average"`` (or a dict from buffer name to ``"average"`` / ``"copy"``), and its floating
buffers are averaged like the weights; the part's submodules follow it unless they say otherwise. A part whose
weights obey a constraint that averaging breaks (unit-norm decoder columns drift below norm 1) defines
``after_average(self)``, called on the model once it holds the averaged weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch

from aekit.errors import ConfigError

AVERAGE, COPY = "average", "copy"


def buffer_policies(model: torch.nn.Module) -> dict[str, str]:
    """Each floating buffer's policy under the average, ``average`` or ``copy``, by its name in ``model``."""
    policies: dict[str, str] = {}
    seen: set[int] = set()

    def visit(module: torch.nn.Module, prefix: str, inherited: str) -> None:
        if id(module) in seen:
            return
        seen.add(id(module))
        own = getattr(module, "average_buffers", None)
        default = own if isinstance(own, str) else inherited
        for name, buffer in module.named_buffers(recurse=False):
            policy = own.get(name, default) if isinstance(own, dict) else default
            if policy not in (AVERAGE, COPY):
                raise ConfigError(f"{type(module).__name__}.average_buffers gives {name!r} the policy {policy!r}; "
                                  f"use {AVERAGE!r} or {COPY!r}")
            if buffer.is_floating_point():
                policies[prefix + name] = policy
        for name, child in module.named_children():
            visit(child, f"{prefix}{name}.", default)

    visit(model, "", COPY)
    return policies


class WeightAverage:
    """An exponential moving average of the trainable parameters (and of the buffers whose parts ask for it),
    updated after each optimiser step ``t`` with decay ``min(ema_decay, (1 + t) / (10 + t))`` (the ramp keeps the
    first, random weights from dominating the average). The averaged weights are what validation, ``keep_best``,
    the saved model and the evaluation use; checkpoints carry them (``average.safetensors``: the raw averages,
    before any ``after_average``), so ``--resume`` stays exact. The average of 16-bit weights (``bf16-true``,
    ``16-true``) is kept in float32: a step of ``1 - ema_decay`` times the difference is below half a bfloat16
    ulp, so a 16-bit average would stall."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        tracked = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        buffers = dict(model.named_buffers())
        tracked += [(n, buffers[n]) for n, policy in buffer_policies(model).items() if policy == AVERAGE]
        self.names, self.live = zip(*tracked, strict=True)
        self.shadow = [p.detach().to(torch.promote_types(p.dtype, torch.float32), copy=True) for p in self.live]
        self.finishers = [m.after_average for m in model.modules() if callable(getattr(m, "after_average", None))]

    @torch.no_grad()
    def update(self, step: int) -> None:
        live = [p if p.dtype == s.dtype else p.to(s.dtype) for p, s in zip(self.live, self.shadow, strict=True)]
        torch._foreach_lerp_(self.shadow, live, 1.0 - min(self.decay, (1 + step) / (10 + step)))

    def tensors(self) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.shadow, strict=True))

    @torch.no_grad()
    def load(self, tensors: dict[str, torch.Tensor], where: Path) -> None:
        missing = sorted(set(self.names) - set(tensors))
        if missing:
            raise ConfigError(f"{where}: no averaged values for {', '.join(missing)}; resume with ema_decay=0")
        for name, shadow in zip(self.names, self.shadow, strict=True):
            shadow.copy_(tensors[name])

    @torch.no_grad()
    def apply(self) -> None:
        """The model takes the averaged weights and buffers, then each part's ``after_average``."""
        torch._foreach_copy_(self.live, self.shadow)
        for finish in self.finishers:
            finish()

    @contextlib.contextmanager
    def applied(self):
        """The model holds the averaged weights inside the block and its own again after it (what
        ``after_average`` changes must therefore be averaged tensors)."""
        own = [p.detach().clone() for p in self.live]
        self.apply()
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.live, own)
