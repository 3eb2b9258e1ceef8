"""The pieces of one training step: its learning rate and seed, the model and optimisers on Fabric's strategy,
the model call in the run's precision, the forward and objective (compiled where asked), and the backward into
each optimiser's parameters.

Fabric's generic helpers (its wrapped module's call, ``torch.manual_seed``) are replaced here by direct
equivalents because for a small model their cost is of the order of the whole step.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
from typing import Any

import torch

from aekit.data.batch import Batch
from aekit.errors import ConfigError
from aekit.run_config import TrainConfig


def learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Linear warm-up to ``lr`` over ``lr_warmup_steps``, then cosine decay to ``lr * min_lr_ratio``
    (``cosine``), ``lr`` (``constant``), or ``lr`` times ``lr_gamma`` at each of ``lr_milestones`` (``multistep``)."""
    if step < config.lr_warmup_steps:
        return config.lr * (step + 1) / config.lr_warmup_steps
    if config.lr_schedule == "constant":
        return config.lr
    if config.lr_schedule == "multistep":
        return config.lr * config.lr_gamma ** sum(step >= m for m in config.lr_milestones)
    span = max(1, total_steps - config.lr_warmup_steps)
    progress = min(1.0, (step - config.lr_warmup_steps) / span)
    floor = config.lr * config.min_lr_ratio
    return floor + (config.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def reseed(value: int, device: torch.device) -> None:
    """``torch.manual_seed`` for the generators a run on ``device`` uses: ``torch.manual_seed`` also queues a lazy
    seed for every accelerator backend that is not initialised (CUDA, XPU, MTIA), formatting a stack trace for
    each, on every step."""
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(value)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


def cast_floats(obj: Any, dtype: torch.dtype) -> Any:
    """``obj`` with every floating tensor in it (through dicts, lists, tuples and dataclasses) cast to ``dtype``;
    containers are rebuilt shallowly, tensors already of ``dtype`` are returned as they are."""
    if torch.is_tensor(obj):
        return obj.to(dtype) if obj.is_floating_point() and obj.dtype != dtype else obj
    if isinstance(obj, dict):
        return {k: cast_floats(v, dtype) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cast_floats(v, dtype) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: cast_floats(getattr(obj, f.name), dtype)
                                           for f in dataclasses.fields(obj) if f.init})
    return obj


def module_call(fabric, module, precision: str):
    """A call of ``module`` as Fabric's wrapped module makes it (inputs to the precision's dtype, the precision's
    autocast context, outputs back to the default dtype), done directly on aekit's batches and output types:
    Fabric's generic wrapper walks and copies the output dataclasses and hooks every tensor in them, a cost of the
    order of a small model's whole step. ``module`` is the strategy's module (DDP's wrapper when there is one), so
    gradient synchronisation is unchanged."""
    plugin = fabric.strategy.precision
    out_dtype = None if precision == "32-true" else torch.get_default_dtype()

    def call(batch: Batch):
        inputs = plugin.convert_input(batch.inputs)
        if inputs is not batch.inputs:
            batch = dataclasses.replace(batch, inputs=inputs)
        with plugin.forward_context():
            out = module(batch)
        return out if out_dtype is None else cast_floats(out, out_dtype)

    return call


def setup_on_strategy(fabric, model: torch.nn.Module, optimizers: list[torch.optim.Optimizer]):
    """``(module, forward_module, optimizers)``: the model converted to the precision and moved to the device,
    the strategy's wrapper of it (DDP's, or the module itself), and the optimisers as the strategy sets them up,
    all through Fabric's public strategy API. Sharded strategies (FSDP) wrap module and optimisers together, and
    go through ``fabric.setup`` and its module wrapper."""
    from lightning_fabric.strategies import FSDPStrategy

    if isinstance(fabric.strategy, FSDPStrategy):
        wrapped, *optimizers = fabric.setup(model, *optimizers)
        return wrapped.module, wrapped, optimizers
    module = fabric.to_device(fabric.strategy.precision.convert_module(model))
    forward_module = fabric.strategy.setup_module(module)
    optimizers = fabric.setup_optimizers(*optimizers)
    return module, forward_module, list(optimizers) if isinstance(optimizers, (list, tuple)) else [optimizers]


def no_sync(forward_module, enabled: bool):
    """DDP's ``no_sync`` (gradients kept local) when ``enabled`` and the module is DDP-wrapped."""
    if enabled and isinstance(forward_module, torch.nn.parallel.DistributedDataParallel):
        return forward_module.no_sync()
    return contextlib.nullcontext()


def backward(fabric, losses: dict[str, torch.Tensor], active: list[str], params: dict[str, list], scale: float) -> None:
    """Each active optimiser's loss (times ``scale``) into its own parameters (``inputs=``); with one optimiser,
    the usual backward."""
    if len(params) == 1:
        fabric.backward(losses["model"] * scale)
        return
    for i, name in enumerate(active):
        fabric.backward(losses[name] * scale, inputs=params[name], retain_graph=i < len(active) - 1)


def all_reduce_gradients(fabric, params: list[torch.Tensor]) -> None:
    """The mean gradient over the ranks, for models with several optimisers: DDP's reducer expects one backward
    over every parameter per forward, so those steps run without it (``no_sync``) and the complete gradients are
    averaged here, in one flat all-reduce."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = fabric.all_reduce(torch.cat([g.reshape(-1) for g in grads]), reduce_op="mean")
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class LossCall:
    """One micro-batch's forward and objective, ``(output, loss)``: eagerly, or under ``torch.compile``
    (``compile=true``; the backward and the optimiser step stay outside it).

    The step is an argument of the compiled function: torch recompiles once when it first changes, then treats
    it as symbolic (schedules that branch on it recompile where the branch changes). Where compilation fails
    (an operation torch cannot trace or a backend error), the call runs eagerly, for this micro-batch and the rest
    of the run, after one warning naming the model; an error the eager call raises too is raised as it is.
    For an objective that routes gradients (:attr:`~aekit.objectives.Objective.routes_gradients`), the compiled
    backward keeps every buffer it saves (no donated buffers), so that a backward pass per network may run over
    one forward; other objectives keep torch's default, which frees them.
    """

    def __init__(self, forward, objective, name: str, config: TrainConfig) -> None:
        self.name = name

        def loss_of(batch: Batch, step: int):
            out = forward(batch)
            return out, objective(out, step, batch)

        self.eager = self.call = loss_of
        self.keep_buffers = bool(getattr(objective, "routes_gradients", False))
        if config.compile:
            backends = torch._dynamo.list_backends(exclude_tags=())
            if config.compile_backend not in backends:
                raise ConfigError(f"compile_backend={config.compile_backend!r} is not a torch.compile backend; "
                                  f"choose one of {', '.join(backends)}")
            self.call = torch.compile(loss_of, backend=config.compile_backend, mode=config.compile_mode)

    def __call__(self, batch: Batch, step: int):
        if self.call is self.eager:
            return self.eager(batch, step)
        try:
            if not self.keep_buffers:
                return self.call(batch, step)
            with torch._functorch.config.patch(donated_buffer=False):
                return self.call(batch, step)
        except torch._dynamo.exc.TorchDynamoException as exc:
            self.call = self.eager
            result = self.eager(batch, step)  # an error of the model or the data raises here, uncompiled
            cause = getattr(exc, "inner_exception", None) or exc  # a backend's own error, under dynamo's
            reason = next((line for line in str(cause).splitlines() if line.strip()), type(cause).__name__)
            warnings.warn(f"compile=true: torch.compile cannot compile {self.name}'s forward and objective "
                          f"({reason[:200]}); it trains uncompiled; set compile=false to skip compiling",
                          UserWarning, stacklevel=2)
            return result
