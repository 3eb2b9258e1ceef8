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


class Tracker(nn.Module):
    """Hooks of every kind the loop calls: a schedule set at the start of each step, decoder columns renormalised
    and an all-reduced EMA of the codes' batch mean after each optimiser step. Writes its state per rank to
    $HOOK_DIR when that is set."""

    def __init__(self, latent_dim: int, decoder_layer: nn.Linear) -> None:
        super().__init__()
        self.decoder_layer = [decoder_layer]  # a reference, not a submodule
        self.register_buffer("temperature", torch.tensor(1.0))
        self.register_buffer("updates", torch.tensor(0))
        self.register_buffer("ema", torch.zeros(latent_dim))
        self.last_mean = None

    def on_train_step_start(self, ctx) -> None:
        self.temperature.fill_(max(0.1, 1.0 - 0.01 * ctx.step))

    def after_optimizer_step(self, ctx) -> None:
        weight = self.decoder_layer[0].weight  # [out, D]: unit-norm columns
        weight.div_(weight.norm(dim=0, keepdim=True).clamp(min=1e-8))
        self.updates += 1
        mean = ctx.all_reduce(self.last_mean.clone(), "mean")
        self.ema.mul_(0.9).add_(0.1 * mean)
        if os.environ.get("HOOK_DIR"):
            state = {"updates": int(self.updates), "ema": self.ema.tolist(), "temperature": float(self.temperature),
                     "local_mean": self.last_mean.tolist(), "world": ctx.world_size}
            (Path(os.environ["HOOK_DIR"]) / f"rank{ctx.rank}.json").write_text(json.dumps(state))


@dataclass(frozen=True)
class HookedConfig(AEConfig):
    pass


@register_model("hooked-ae", config=HookedConfig, description="an autoencoder with step hooks (tests)")
class HookedAE(AE):
    def __init__(self, config, *args, **kwargs) -> None:
        super().__init__(config, *args, **kwargs)
        first = next(m for m in self.decoder.modules() if isinstance(m, nn.Linear))
        self.tracker = Tracker(config.latent_dim, first)

    def forward(self, x, *args, **kwargs):
        out = super().forward(x, *args, **kwargs)
        self.tracker.last_mean = out.latent.mean.detach().mean(0)
        return out
