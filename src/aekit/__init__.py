"""aekit: the autoencoder family built from shared parts.

    import aekit
    model = aekit.build_model("vae", data_shape=(1, 28, 28), latent_dim=16)
    run = aekit.train("vae", data="digits", out="runs/vae", steps=500)
    model = aekit.load("runs/vae")

Heavy modules (torch, Lightning Fabric) load on first use, so ``aekit --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "build_model": "aekit.registry",
    "list_models": "aekit.registry",
    "make_config": "aekit.registry",
    "register_model": "aekit.registry",
    "load": "aekit.io",
    "save_model": "aekit.io",
    "load_data": "aekit.data",
    "list_datasets": "aekit.data",
    "Batch": "aekit.data",
    "Graph": "aekit.data.graphs",
    "train": "aekit.training",
    "TrainConfig": "aekit.training",
    "StepHooks": "aekit.training",
    "run_step_hooks": "aekit.training",
    "init_from_data": "aekit.parts",
    "fit_after_training": "aekit.parts",
    "evaluate": "aekit.evaluation",
    "AekitError": "aekit.errors",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'aekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (what ``__getattr__`` loads on first use) beside the module's own names, for ``dir(aekit)``
    and tab completion."""
    return sorted(set(globals()) | set(_LAZY))
