"""What a run is: its training and data configs, and how a recipe plus ``key=value`` overrides resolve into
the ``config.json`` of a run directory."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aekit.config import config_fields, from_dict, require, to_dict
from aekit.data.base import Splits
from aekit.errors import ConfigError
from aekit.io import read_json

LR_SCHEDULES = ("cosine", "constant", "multistep")
ON_NAN = ("stop", "skip")
PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``steps`` (optimiser updates) wins over ``epochs``; with neither, 1000 steps."""

    steps: int = 0
    epochs: int = 0
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    ema_decay: float = 0.0
    lr_warmup_steps: int = 0
    lr_schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    grad_clip: float = 0.0
    accumulate: int = 1
    eval_every: int = 0
    val_examples: int = 2000
    patience: int = 0
    keep_best: bool = False
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    deterministic: bool = False
    devices: int = 1
    accelerator: str = "auto"
    precision: str = "32-true"
    retain_cpu_memory: bool = True
    on_nan: str = "stop"
    max_skipped: int = 20
    log_every: int = 10
    progress: bool = True
    nll_samples: int = 1000
    nll_examples: int = 0
    figures: bool = True

    def __post_init__(self) -> None:
        for key in ("steps", "epochs", "lr_warmup_steps", "eval_every", "patience", "checkpoint_every", "nll_samples",
                    "nll_examples", "val_examples"):
            require(getattr(self, key) >= 0, f"{key}={getattr(self, key)} must be >= 0")
        for key in ("batch_size", "accumulate", "devices", "log_every", "keep_checkpoints", "max_skipped"):
            require(getattr(self, key) >= 1, f"{key}={getattr(self, key)} must be >= 1")
        require(self.lr > 0 and math.isfinite(self.lr), f"lr={self.lr} must be a positive number")
        require(self.weight_decay >= 0, f"weight_decay={self.weight_decay} must be >= 0")
        require(0 <= self.ema_decay < 1, f"ema_decay={self.ema_decay} must lie in [0, 1) (0 turns averaging off)")
        require(self.grad_clip >= 0, f"grad_clip={self.grad_clip} must be >= 0 (0 turns clipping off)")
        require(0 <= self.min_lr_ratio <= 1, f"min_lr_ratio={self.min_lr_ratio} must lie in [0, 1]")
        require(0 < self.lr_gamma <= 1, f"lr_gamma={self.lr_gamma} must lie in (0, 1]")
        require(list(self.lr_milestones) == sorted(set(self.lr_milestones)) and all(m > 0 for m in self.lr_milestones),
                f"lr_milestones={self.lr_milestones} must be increasing positive steps")
        require(self.lr_schedule in LR_SCHEDULES,
                f"lr_schedule={self.lr_schedule!r} is unknown; choose one of {', '.join(LR_SCHEDULES)}")
        require(self.precision in PRECISIONS,
                f"precision={self.precision!r} is unknown; choose one of {', '.join(PRECISIONS)}")
        require(self.on_nan in ON_NAN, f"on_nan={self.on_nan!r} is unknown; choose one of {', '.join(ON_NAN)}")
        require(self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps"),
                f"accelerator={self.accelerator!r} is unknown; choose auto, cpu, gpu or mps")


@dataclass(frozen=True)
class DataConfig:
    """Which data: a registered name (``digits``, ``mnist``, ...) or a path; ``root`` defaults to $AEKIT_DATA.

    ``train_on_val``: train on the training and validation parts together, with no validation (the usual last
    step once the settings have been chosen on validation); the test part is unchanged.
    """

    name: str = "digits"
    root: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    train_on_val: bool = False


def split_overrides(overrides: dict[str, Any], model_name: str) -> tuple[dict, dict, dict]:
    """Sort ``key=value`` overrides into model, data and train config keys; ``model.x``/``data.x``/``train.x``
    name the section explicitly."""
    from aekit.registry import model_entry

    sections = {
        "model": set(config_fields(model_entry(model_name).config_class)),
        "data": set(config_fields(DataConfig)) - {"name"},
        "train": set(config_fields(TrainConfig)),
    }
    out: dict[str, dict] = {"model": {}, "data": {}, "train": {}}
    for key, value in overrides.items():
        section, _, field = key.rpartition(".")
        candidates = [section] if section else [s for s in ("train", "data", "model") if field in sections[s]]
        if section and (section not in sections or field not in sections[section]):
            raise ConfigError(f"unknown key {key!r}; sections are model., data., train.")
        if not candidates:
            known = ", ".join(sorted(sections["model"] | sections["train"] | sections["data"]))
            raise ConfigError(f"unknown key {key!r} for {model_name}; known keys: {known}")
        out[candidates[0]][field] = value
    return out["model"], out["data"], out["train"]


def load_splits(data: DataConfig) -> Splits:
    from aekit.data import load_data

    splits = load_data(data.name, root=data.root, seed=data.split_seed, val_fraction=data.val_fraction,
                       test_fraction=data.test_fraction)
    return splits.with_val_in_train() if data.train_on_val else splits


def resolve_run(model: str, data: str | DataConfig, out: Path, resume: bool, config_file: dict | None,
                overrides: dict[str, Any]) -> tuple[dict[str, Any], Splits | None]:
    """The resolved ``config.json`` of a run (recipe file, then command-line overrides, then the data's shape),
    and the data when it had to be read to find that shape."""
    from aekit.registry import make_config

    saved = out / "config.json"
    if resume:
        if not saved.is_file():
            raise ConfigError(f"{out}: nothing to resume (no config.json); start the run without --resume")
        base = read_json(saved)
        model = base["model"]["name"]
    else:
        if (out / "checkpoints").exists() or (out / "model").exists():
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        base = {"model": {"name": model}, "data": {}, "train": {}}
        for section in ("model", "data", "train"):
            base[section].update((config_file or {}).get(section, {}))
        base["data"].setdefault("name", data.name if isinstance(data, DataConfig) else data)
        if isinstance(data, DataConfig):
            base["data"].update(to_dict(data))
    m, d, t = split_overrides(overrides, model)
    if resume and (m or d):
        keys = ", ".join(sorted({**m, **d}))
        raise ConfigError(f"{keys}: the model and data of a run are fixed; on --resume only training keys may change")
    base["model"].update(m)
    base["data"].update(d)
    base["train"].update(t)
    data_config = from_dict(DataConfig, base["data"], where="data")
    train_config = from_dict(TrainConfig, base["train"], where="train")
    model_values = {k: v for k, v in base["model"].items() if k != "name"}
    splits = None
    if not resume:
        make_config(model, **model_values)  # bad values fail here, before any data is read
        splits = load_splits(data_config)
        model_values["data_shape"] = list(splits.shape)
        if "likelihood" not in model_values:
            x = splits.train.inputs(slice(0, 2048))
            model_values["likelihood"] = "bernoulli" if bool(x.min() >= 0) and bool(x.max() <= 1) else "gaussian"
    model_config = make_config(model, **model_values)
    run = {"model": {"name": model, **to_dict(model_config)}, "data": to_dict(data_config),
           "train": to_dict(train_config)}
    return run, splits
