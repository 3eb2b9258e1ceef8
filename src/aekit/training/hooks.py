"""Step hooks: the points of a training step at which a model's parts act outside the gradient.

Any part (submodule) may define ``on_train_step_start(ctx)``, ``before_optimizer_step(ctx)`` and
``after_optimizer_step(ctx)``. They do what a gradient step cannot: set a schedule at the start of a step (a
masking ratio), edit the complete gradient before the optimiser uses it (project the decoder-parallel component
out of a sparse autoencoder's decoder gradient), or update weights and statistics after it (unit-norm decoder
columns, an EMA codebook read from the step's outputs). A hook runs without grad; its state lives in buffers, so
checkpoints and saved models carry it, and ``ctx``'s collectives keep it identical on every rank.

aekit's loop runs them. A loop of one's own runs them with :class:`StepHooks` or :func:`run_step_hooks`; a model
whose parts have hooks warns once when it is trained twice while they never ran, so that they are not left out
unnoticed.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from aekit.errors import ConfigError

START, BEFORE, AFTER = "on_train_step_start", "before_optimizer_step", "after_optimizer_step"
POINTS = (START, BEFORE, AFTER)


@dataclass
class StepContext:
    """What a step hook is given.

    ``step``: the step, from 0; ``optimizer``: the name of the optimiser about to step (``before_optimizer_step``)
    or that just stepped (``after_optimizer_step``), None at the start of a step; ``rank`` and ``world_size``;
    ``total_steps``: the run's steps, for schedules that span the run (0 where unknown); ``outputs`` and
    ``batches``: the model outputs of the step's micro-batches and the batches they came from, one per
    micro-batch, None at the start of a step. The outputs are those the forward returned, not detached copies:
    the backward has freed their graph, so a hook reads them and never back-propagates through them.
    """

    step: int
    optimizer: str | None = None
    rank: int = 0
    world_size: int = 1
    total_steps: int = 0
    outputs: list[Any] | None = None
    batches: list[Any] | None = None
    fabric: Any = None  # the Lightning Fabric whose processes the collectives span (None: one process)

    def all_reduce(self, tensor: torch.Tensor, op: str = "mean") -> torch.Tensor:
        """``tensor`` reduced over the ranks (``sum``, ``mean``, ``max``, ``min``). Several ranks reduce in place:
        use the tensor returned, and pass a copy where the original must stay."""
        return tensor if self.world_size == 1 else self.fabric.all_reduce(tensor, reduce_op=op)

    def broadcast(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        """Rank ``src``'s ``tensor`` on every rank (in place where there are several, as :meth:`all_reduce`).
        A tensor collective rather than Fabric's ``broadcast``, which pickles its object."""
        if self.world_size == 1:
            return tensor
        tensor = tensor.contiguous()
        torch.distributed.broadcast(tensor, src)
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's ``tensor``, stacked in rank order: ``[world_size, *tensor.shape]``."""
        return tensor.unsqueeze(0) if self.world_size == 1 else self.fabric.all_gather(tensor)


def step_hooks(model: torch.nn.Module, point: str) -> list:
    """The bound ``point`` methods of every part that defines one, in module order."""
    return [getattr(m, point) for m in model.modules() if callable(getattr(m, point, None))]


class StepHooks:
    """A model's step hooks, found once, for a loop that trains it (aekit's, or one's own)::

        hooks = aekit.StepHooks(model)
        for step, batch in enumerate(batches):
            hooks.start(step)
            out = model(batch)
            objective(out, step, batch).total.backward()
            hooks.before_step(step, outputs=[out], batches=[batch])
            optimizer.step()
            optimizer.zero_grad()
            hooks.after_step(step, outputs=[out], batches=[batch])

    ``before_step`` and ``after_step`` run once per optimiser that steps, named by ``optimizer``. On several
    processes pass the run's Lightning ``fabric``, whose collectives ``ctx.all_reduce`` and the others use.
    """

    def __init__(self, model: torch.nn.Module, total_steps: int = 0, fabric: Any = None) -> None:
        self.hooks = {point: step_hooks(model, point) for point in POINTS}
        self.watches = [m.__dict__[WATCH] for m in model.modules() if WATCH in m.__dict__]
        self.total_steps, self.fabric = total_steps, fabric
        self.rank, self.world_size = (fabric.global_rank, fabric.world_size) if fabric is not None else (0, 1)

    @property
    def read_outputs(self) -> bool:
        """Whether a hook runs before or after an optimiser step, where ``ctx.outputs`` is given."""
        return bool(self.hooks[BEFORE] or self.hooks[AFTER])

    def run(self, point: str, step: int, optimizer: str | None = None, outputs: list | None = None,
            batches: list | None = None) -> None:
        """Every part's ``point`` hook, without grad."""
        if point not in self.hooks:
            raise ConfigError(f"step hook point {point!r} is unknown; choose one of {', '.join(POINTS)}")
        for watch in self.watches:
            watch.ran = True
        if not self.hooks[point]:
            return
        ctx = StepContext(step, optimizer, self.rank, self.world_size, self.total_steps, outputs, batches,
                          self.fabric)
        with torch.no_grad():
            for hook in self.hooks[point]:
                hook(ctx)

    def start(self, step: int) -> None:
        self.run(START, step)

    def before_step(self, step: int, optimizer: str = "model", outputs: list | None = None,
                    batches: list | None = None) -> None:
        self.run(BEFORE, step, optimizer, outputs, batches)

    def after_step(self, step: int, optimizer: str = "model", outputs: list | None = None,
                   batches: list | None = None) -> None:
        self.run(AFTER, step, optimizer, outputs, batches)


def run_step_hooks(model: torch.nn.Module, point: str, step: int, optimizer: str | None = None,
                   outputs: list | None = None, batches: list | None = None, total_steps: int = 0,
                   fabric: Any = None) -> None:
    """Run ``model``'s ``point`` hooks (``on_train_step_start``, ``before_optimizer_step``,
    ``after_optimizer_step``) once, as aekit's loop does: ``run_step_hooks(model, "after_optimizer_step",
    step, optimizer="model", outputs=[out], batches=[batch])``. A loop that runs them every step keeps a
    :class:`StepHooks`, which finds the hooks once."""
    StepHooks(model, total_steps, fabric).run(point, step, optimizer, outputs, batches)


# The warning for a model trained without its hooks: a forward hook counts the training forwards (training mode,
# grad enabled, the forward done) until hooks run; at the second, a model whose parts have hooks warns once.
WATCH = "_step_hook_watch"


@dataclass
class _Watch:
    ran: bool = False
    forwards: int = 0
    done: bool = False  # warned, or found nothing to warn about


def watch_step_hooks(model: torch.nn.Module) -> None:
    """Make ``model`` warn (once) when it is trained twice while its parts' step hooks never ran."""
    model.__dict__[WATCH] = _Watch()
    model.register_forward_hook(_count_training_forward)


def _count_training_forward(module: torch.nn.Module, args, output) -> None:
    watch = module.__dict__.get(WATCH)
    if watch is None or watch.ran or watch.done or not module.training or not torch.is_grad_enabled():
        return
    watch.forwards += 1
    if watch.forwards < 2:
        return
    watch.done = True
    hooked = {name or "the model": [p for p in POINTS if callable(getattr(m, p, None))]
              for name, m in module.named_modules()}
    hooked = {name: points for name, points in hooked.items() if points}
    if hooked:
        parts = "; ".join(f"{name} ({', '.join(points)})" for name, points in hooked.items())
        warnings.warn(f"{getattr(module, 'name', type(module).__name__)} is being trained without its step hooks, "
                      f"which aekit.train runs: {parts}; in a training loop of your own, run them with "
                      "aekit.StepHooks(model) (.start(step), .before_step(step), .after_step(step)) or "
                      "aekit.run_step_hooks(model, point, step)", UserWarning, stacklevel=_outside_torch())


def _outside_torch() -> int:
    """The stack level of the first caller outside this file and torch's module call."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename in (__file__, torch.nn.modules.module.__file__):
        frame, level = frame.f_back, level + 1
    return level
