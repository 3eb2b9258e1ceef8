"""Named optimisers: a model declares its trainable parameters by optimiser name (``model``, and e.g.
``discriminator``); each name gets its own AdamW (or Adam with L2 weight decay: ``optimizer=adam``) with its own
lr, betas, eps, weight decay and update period.

Within an optimiser, parameter groups carry an ``lr_scale`` (layer-wise lr decay, Clark et al. 2020, as used
to fine-tune MAE encoders) and may take no weight decay (``no_decay_1d``: biases, norms and the tokens a model
names in ``no_weight_decay()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aekit.config import from_dict, require
from aekit.errors import ConfigError


@dataclass(frozen=True)
class OptimizerConfig:
    """One named optimiser's settings; ``lr`` and ``weight_decay`` default to the training config's.

    ``every``: the optimiser steps on training steps divisible by ``every`` (``every=5`` on ``model``: five
    discriminator updates per model update); ``eps``: Adam's term added to the root of the second moment (1e-8, as
    torch's; Burda et al.'s IWAE recipe uses 1e-4: ``optimizers.model.eps=1e-4``)."""

    lr: float | None = None
    betas: tuple[float, ...] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float | None = None
    every: int = 1

    def __post_init__(self) -> None:
        require(self.lr is None or self.lr > 0, f"lr={self.lr} must be positive")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                f"betas={self.betas} must be two numbers in [0, 1)")
        require(self.eps > 0 and self.eps < float("inf"), f"eps={self.eps} must be a finite number > 0")
        require(self.weight_decay is None or self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        require(self.every >= 1, f"every={self.every} must be >= 1")


def optimizer_configs(config, names: list[str]) -> dict[str, OptimizerConfig]:
    """The settings of each of ``names`` from ``config.optimizers`` (a dict of dicts), defaults filled in."""
    unknown = sorted(set(config.optimizers) - set(names))
    if unknown:
        raise ConfigError(f"optimizers.{unknown[0]}: this model has no optimiser {unknown[0]!r}; it has "
                          f"{', '.join(names)}")
    out = {}
    for name in names:
        values = dict(config.optimizers.get(name, {}))
        c = from_dict(OptimizerConfig, values, where=f"optimizers.{name}")
        out[name] = OptimizerConfig(lr=c.lr or config.lr, betas=c.betas, eps=c.eps,
                                    weight_decay=config.weight_decay if c.weight_decay is None else c.weight_decay,
                                    every=c.every)
    return out


def check_groups(model: torch.nn.Module, groups: dict[str, list[tuple[str, torch.nn.Parameter]]]) -> None:
    """Optimiser groups must be disjoint and cover every trainable parameter."""
    seen: dict[int, str] = {}
    for name, params in groups.items():
        for pname, p in params:
            if id(p) in seen:
                raise ConfigError(f"parameter {pname} is in both optimisers {seen[id(p)]!r} and {name!r}; "
                                  "give each parameter one optimiser")
            seen[id(p)] = name
    missing = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if missing:
        raise ConfigError(f"parameter {missing[0]} (and {len(missing) - 1} more) is in no optimiser group; add it "
                          "to parameter_groups() or freeze it")


def _param_groups(model, params, weight_decay: float, no_decay_1d: bool, layer_decay: float) -> list[dict]:
    """AdamW groups keyed by (lr_scale, weight decay)."""
    no_decay_names = set(getattr(model, "no_weight_decay", lambda: ())())
    layers = getattr(model, "layer_of", None)
    if layer_decay < 1.0 and layers is None:
        raise ConfigError(f"layer_decay={layer_decay}: {getattr(model, 'name', 'this model')} has no layers to "
                          "decay the lr over; set layer_decay=1")
    grouped: dict[tuple[float, float], list] = {}
    for pname, p in params:
        scale = 1.0
        if layer_decay < 1.0:
            layer, n_layers = layers(pname)
            scale = layer_decay ** (n_layers - layer)
        decay = weight_decay
        if no_decay_1d and (p.ndim <= 1 or pname in no_decay_names):
            decay = 0.0
        grouped.setdefault((scale, decay), []).append(p)
    return [{"params": ps, "lr_scale": scale, "weight_decay": decay} for (scale, decay), ps in grouped.items()]


# ``optimizer=``: AdamW (decoupled weight decay), Adam (L2 decay), RMSprop (Hinton's; alpha 0.99, L2 decay)
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop}


def make_optimizers(model: torch.nn.Module, config) -> tuple[dict[str, torch.optim.Optimizer],
                                                             dict[str, OptimizerConfig]]:
    """One optimiser of ``config.optimizer`` (AdamW by default) per named parameter group of the model, with
    PyTorch's fused kernel where the device has it
    (one pass over each parameter instead of a chain of element-wise ops)."""
    groups = model.parameter_groups()
    check_groups(model, groups)
    settings = optimizer_configs(config, list(groups))
    optimizers = {}
    for name, params in groups.items():
        s = settings[name]
        param_groups = _param_groups(model, params, s.weight_decay, config.no_decay_1d, config.layer_decay)
        kwargs = dict(lr=s.lr, eps=s.eps, weight_decay=s.weight_decay)
        if config.optimizer != "rmsprop":
            kwargs["betas"] = tuple(s.betas)
        kind = OPTIMIZERS[config.optimizer]
        try:
            optimizers[name] = kind(param_groups, fused=True, **kwargs)
        except (RuntimeError, ValueError, TypeError):  # a device, dtype or optimiser without the fused kernel
            optimizers[name] = kind(param_groups, **kwargs)
    return optimizers, settings


def set_learning_rates(optimizers: dict[str, torch.optim.Optimizer], settings: dict[str, OptimizerConfig],
                       lr: float, base_lr: float) -> None:
    """Each group's lr: the schedule's ``lr`` (for the training config's ``base_lr``) scaled to its optimiser's lr,
    times the group's ``lr_scale``."""
    for name, optimizer in optimizers.items():
        base = lr if settings[name].lr == base_lr else lr * (settings[name].lr / base_lr)
        for group in optimizer.param_groups:
            group["lr"] = base * group.get("lr_scale", 1.0)
