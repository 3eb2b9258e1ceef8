"""A model with step hooks, for the tests of the loop (imported by name, ``imports=hooked_models``, so that DDP
processes register it too)."""

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from aekit.models.ae import AE, AEConfig
from aekit.registry import register_model


def unit_columns(weight: torch.Tensor) -> None:
    weight.div_(weight.norm(dim=0, keepdim=True).clamp(min=1e-8))  # [out, D]: each column to norm 1


class Tracker(nn.Module):
    """Hooks at every point of the step: a schedule set at the start of each step; the decoder-column-parallel
    component of the decoder's gradient projected out before each optimiser step (the columns stay unit-norm to
    first order); after it, the columns renormalised and an all-reduced EMA of the codes' batch mean, read from
    the step's outputs. Its EMA is averaged under ``ema_decay``, its other buffers copied, and the averaged
    decoder's columns renormalised. Writes its state per rank to $HOOK_DIR when that is set."""

    average_buffers = {"ema": "average"}

    def __init__(self, latent_dim: int, decoder_layer: nn.Linear) -> None:
        super().__init__()
        self.decoder_layer = [decoder_layer]  # a reference, not a submodule
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("updates", torch.tensor(0))
        self.register_buffer("ema", torch.zeros(latent_dim))
        self.parallel = []  # |<w_j, grad_j>| after the projection, per optimiser step

    def on_train_step_start(self, ctx) -> None:
        assert ctx.outputs is None and ctx.batches is None and ctx.optimizer is None
        self.temperature.fill_(max(0.1, 1.0 - 0.01 * ctx.step))

    def before_optimizer_step(self, ctx) -> None:
        weight, grad = self.decoder_layer[0].weight, self.decoder_layer[0].weight.grad
        unit = weight / weight.norm(dim=0, keepdim=True)  # [out, D]
        grad -= (unit * grad).sum(0, keepdim=True) * unit
        self.parallel.append(float((unit * grad).sum(0).abs().max()))

    def after_optimizer_step(self, ctx) -> None:
        unit_columns(self.decoder_layer[0].weight)
        self.updates += 1
        local = torch.cat([out.latent.mean for out in ctx.outputs]).mean(0)  # [D]
        mean = ctx.all_reduce(local.clone(), "mean")
        gathered = ctx.all_gather(local)  # [world, D]
        self.ema.mul_(0.9).add_(0.1 * mean)
        first = ctx.broadcast(torch.full((2,), float(ctx.rank + 1)), src=0)
        if os.environ.get("HOOK_DIR"):
            state = {"updates": int(self.updates), "ema": self.ema.tolist(), "temperature": float(self.temperature),
                     "local_mean": local.tolist(), "world": ctx.world_size, "gathered": gathered.tolist(),
                     "broadcast": first.tolist(), "examples": sum(len(b) for b in ctx.batches),
                     "optimizer": ctx.optimizer, "parallel": max(self.parallel)}
            (Path(os.environ["HOOK_DIR"]) / f"rank{ctx.rank}.json").write_text(json.dumps(state))

    def after_average(self) -> None:
        unit_columns(self.decoder_layer[0].weight)


@dataclass(frozen=True)
class HookedConfig(AEConfig):
    pass


@register_model("hooked-ae", config=HookedConfig, description="an autoencoder with step hooks (tests)")
class HookedAE(AE):
    def __init__(self, config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        first = next(m for m in self.decoder.modules() if isinstance(m, nn.Linear))
        self.tracker = Tracker(config.latent_dim, first)
