"""What a run is: its training and data configs, and how a recipe plus ``key=value`` overrides resolve into
the ``config.json`` of a run directory."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aekit.config import config_fields, from_dict, merge, require, to_dict
from aekit.data.base import Splits
from aekit.errors import ConfigError, ShapeConfigError, did_you_mean
from aekit.io import read_json

LR_SCHEDULES = ("cosine", "constant", "multistep")
ON_NAN = ("stop", "skip")
STRATEGIES = ("auto", "ddp", "ddp_spawn", "fsdp")
PRECISIONS = ("32-true", "64-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class TrainConfig:
    """How to train. ``steps`` (optimiser updates) wins over ``epochs``; with neither, 1000 steps.

    ``compile``: run each micro-batch's forward and objective under ``torch.compile`` with ``compile_backend``
    (``inductor``; ``aot_eager`` compiles fast and generates no kernels) and ``compile_mode``.

    ``evaluation``: how much of the test protocol (``nll_samples`` on ``nll_examples``, probes fit on
    ``probe_examples``, every test example) the run's evaluation takes: ``full``, ``quick`` (a share) or ``auto``
    (full when it costs no more than the training did; :mod:`aekit.evaluation.budget`)."""

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
    monitor: str = "loss"
    monitor_mode: str = "min"
    checkpoint_every: int = 0
    keep_checkpoints: int = 2
    seed: int = 0
    deterministic: bool = False
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int = 0
    accelerator: str = "auto"
    precision: str = "32-true"
    retain_cpu_memory: bool = False
    on_nan: str = "stop"
    max_skipped: int = 20
    log_every: int = 10
    progress: bool = True
    nll_samples: int = 1000
    nll_examples: int = 0
    probe_examples: int = 10000
    evaluation: str = "auto"
    figures: bool = True
    optimizer: str = "adamw"
    optimizers: dict[str, dict[str, Any]] = field(default_factory=dict)
    imports: tuple[str, ...] = ()
    no_decay_1d: bool = False
    layer_decay: float = 1.0
    compile: bool = False
    compile_mode: str = "default"
    compile_backend: str = "inductor"

    def __post_init__(self) -> None:
        for key in ("steps", "epochs", "lr_warmup_steps", "eval_every", "patience", "checkpoint_every", "nll_samples",
                    "nll_examples", "val_examples", "probe_examples"):
            require(getattr(self, key) >= 0, f"{key}={getattr(self, key)} must be >= 0")
        for key in ("batch_size", "accumulate", "devices", "num_nodes", "log_every", "keep_checkpoints",
                    "max_skipped"):
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
        require(self.optimizer in ("adamw", "adam", "rmsprop"), f"optimizer={self.optimizer!r} is unknown; choose "
                "adamw (decoupled weight decay), adam (L2) or rmsprop (L2)")
        require(self.monitor_mode in ("min", "max"), f"monitor_mode={self.monitor_mode!r} must be min or max")
        require(self.on_nan in ON_NAN, f"on_nan={self.on_nan!r} is unknown; choose one of {', '.join(ON_NAN)}")
        require(self.threads >= 0, f"threads={self.threads} must be >= 0 (0: one per idle core)")
        require(0 < self.layer_decay <= 1, f"layer_decay={self.layer_decay} must lie in (0, 1] (1: off)")
        require(self.strategy in STRATEGIES,
                f"strategy={self.strategy!r} is unknown; choose one of {', '.join(STRATEGIES)}")
        require(isinstance(self.optimizers, dict) and all(isinstance(v, dict) for v in self.optimizers.values()),
                "optimizers must map optimiser names to settings, e.g. optimizers.discriminator.lr=1e-4")
        require(self.accelerator in ("auto", "cpu", "gpu", "cuda", "mps"),
                f"accelerator={self.accelerator!r} is unknown; choose auto, cpu, gpu or mps")
        require(self.evaluation in ("auto", "quick", "full"),
                f"evaluation={self.evaluation!r} is unknown; choose auto (in proportion to the run), quick or full")
        require(self.compile_mode in COMPILE_MODES,
                f"compile_mode={self.compile_mode!r} is unknown; choose one of {', '.join(COMPILE_MODES)}")


@dataclass(frozen=True)
class DataConfig:
    """Which data: a registered name (``digits``, ``mnist``, ...) or a path; ``root`` defaults to $AEKIT_DATA.

    ``inputs``/``labels``: which arrays of an ``.npz`` (or tensors of a safetensors file) are the inputs and the
    labels (``labels`` beside a ``.npy``: the path of its labels ``.npy``); ``memmap``: read a ``.npy`` or
    safetensors data set from disk batch by batch instead of into memory (``true``), into memory (``false``), or
    (unset) from disk where the file is over a quarter of the memory available, saying so; ``image_size > 0``:
    read a folder of images batch by batch, each resized (shorter side) and centre-cropped to ``image_size``
    square.

    ``augment``: the training batches' augmentations, ``crop`` (random resized crop of area share in
    ``crop_scale``) and ``flip`` (left-right, probability 1/2), MAE's pre-training pair; validation and test
    batches are never augmented.

    A graph (``cora``, a Planetoid folder, a graph ``.npz``) is split by ``graph_task``: ``link`` holds out
    ``edge_split`` (validation, test) shares of its edges, ``node`` keeps every edge and the data's node split;
    ``row_normalize`` divides each node's features by their sum.

    ``given_as``: the data path as it was typed, where ``name`` holds it made absolute (set by aekit).

    ``train_on_val``: train on the training and validation parts together, with no validation (the usual last
    step once the settings have been chosen on validation); the test part is unchanged.
    """

    name: str = "digits"
    root: str | None = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    train_on_val: bool = False
    inputs: str | None = None
    labels: str | None = None
    memmap: bool | None = None
    image_size: int = 0
    augment: tuple[str, ...] = ()
    crop_scale: tuple[float, ...] = (0.2, 1.0)
    graph_task: str = "link"
    edge_split: tuple[float, ...] = (0.05, 0.10)
    row_normalize: bool = False
    given_as: str = ""

    def __post_init__(self) -> None:
        from aekit.data.graphs import GRAPH_TASKS
        from aekit.data.images import AUGMENTATIONS

        require(self.graph_task in GRAPH_TASKS,
                f"graph_task={self.graph_task!r} is unknown; choose one of {', '.join(GRAPH_TASKS)}")
        require(len(self.edge_split) == 2 and all(0 <= f < 1 for f in self.edge_split) and sum(self.edge_split) < 1,
                f"edge_split={self.edge_split} must be two shares (validation, test) in [0, 1) summing below 1")

        require(self.image_size >= 0, f"image_size={self.image_size} must be >= 0 (0: the images as they are)")
        unknown = [a for a in self.augment if a not in AUGMENTATIONS]
        require(not unknown, f"augment={unknown[0] if unknown else ''!r} is unknown; choose from "
                f"{', '.join(AUGMENTATIONS)}")
        require(len(self.crop_scale) == 2 and 0 < self.crop_scale[0] <= self.crop_scale[1] <= 1,
                f"crop_scale={self.crop_scale} must be two shares 0 < low <= high <= 1")


NESTED = {"train": ("optimizers",), "model": ("terms",)}  # dict-valued keys set with dots: optimizers.disc.lr=1e-4


def split_overrides(overrides: dict[str, Any], model_name: str) -> tuple[dict, dict, dict]:
    """Sort ``key=value`` overrides into model, data and train config keys; ``model.x``/``data.x``/``train.x``
    name the section explicitly, and dotted keys set nested settings (``optimizers.discriminator.lr=1e-4``) and a
    model part's own (``likelihood.bins=32``, into the model's ``options``)."""
    from aekit.registry import model_entry

    part_options = getattr(model_entry(model_name).config_class, "part_options", ())
    sections = {
        "model": set(config_fields(model_entry(model_name).config_class)),
        "data": set(config_fields(DataConfig)) - {"name"},
        "train": set(config_fields(TrainConfig)),
    }
    out: dict[str, dict] = {"model": {}, "data": {}, "train": {}}
    for key, value in overrides.items():
        path = key.split(".")
        explicit = path[0] in sections and len(path) > 1
        section_names = [path[0]] if explicit else ["train", "data", "model"]
        path = path[1:] if explicit else path
        candidates = [s for s in section_names if path[0] in sections[s]
                      or (s == "model" and len(path) == 2 and path[0] in part_options)]
        if not candidates:
            if explicit:
                raise ConfigError(f"unknown key {key!r}: {path[0]!r} is not a {section_names[0]} key")
            known = sections["model"] | sections["train"] | sections["data"]
            hint = did_you_mean(path[0], known)
            listing = ("; `aekit models " + model_name + "` lists them all") if hint else \
                f"; known keys: {', '.join(sorted(known))}"
            raise ConfigError(f"unknown key {key!r} for {model_name}{hint}{listing}")
        section = candidates[0]
        if len(path) == 1:
            out[section][path[0]] = value
            continue
        if section == "model" and path[0] in part_options and len(path) == 2:
            out["model"].setdefault("options", {}).setdefault(path[0], {})[path[1]] = literal(value)
            continue
        if path[0] not in NESTED.get(section, ()):
            raise ConfigError(f"{key!r}: {path[0]} takes no dotted settings; write {path[0]}=VALUE")
        if section == "model" and path[0] == "terms" and len(path) == 2:
            path = [*path, "weight"]  # terms.kl=4 is the weight; terms.kl.schedule=linear one of its settings
        target = out[section].setdefault(path[0], {})
        for part in path[1:-1]:
            target = target.setdefault(part, {})
        target[path[-1]] = literal(value) if path[0] == "terms" else value
    return out["model"], out["data"], out["train"]


def literal(value: Any) -> Any:
    """A command-line string as the number or boolean it spells (``"32"`` -> 32), a bracketed list as the list of
    those (``"[8,4]"`` -> [8, 4]), else as it is."""
    if not isinstance(value, str):
        return value
    if value.startswith("[") and value.endswith("]"):
        return [literal(item.strip()) for item in value[1:-1].split(",") if item.strip()]
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


IN_MEMORY = "in-memory"  # the data name of a run given arrays, a Dataset, a data source or a stream


def with_resolved_paths(data: dict[str, Any]) -> dict[str, Any]:
    """The data settings with a path (the data's, a labels file's) made absolute, so that the run directory can be
    evaluated, resumed or reported from any folder; what was typed is kept as ``given_as``. A registered name
    stays a name."""
    from aekit.data import list_datasets

    data = dict(data)
    name = data.get("name")
    registered = {n for n, _ in list_datasets()}
    if isinstance(name, str) and name not in registered and name != IN_MEMORY and Path(name).expanduser().exists():
        resolved = str(Path(name).expanduser().resolve())
        if resolved != name:
            data["given_as"], data["name"] = name, resolved
    labels = data.get("labels")
    if isinstance(labels, str) and Path(labels).expanduser().is_file():  # a labels file beside a .npy
        data["labels"] = str(Path(labels).expanduser().resolve())
    return data


def load_splits(data: DataConfig) -> Splits:
    from aekit.data import load_data

    if data.name == IN_MEMORY:
        raise ConfigError("this run was trained on data given in memory; pass the same data again (data=...)")
    keys = {k: getattr(data, k) for k in ("inputs", "labels", "image_size") if getattr(data, k)}
    if data.memmap is not None:
        keys["memmap"] = data.memmap
    graph = {"graph_task": data.graph_task, "edge_split": tuple(data.edge_split), "row_normalize": data.row_normalize}
    splits = load_data(data.name, root=data.root, seed=data.split_seed, val_fraction=data.val_fraction,
                       test_fraction=data.test_fraction, graph=graph, **keys)
    return splits.with_val_in_train() if data.train_on_val else splits


def splits_of(data: Any, config: DataConfig) -> Splits:
    """Splits of data given in memory: arrays or tensors (``x``, or ``(x, y)``), a Dataset or other map source
    (split with the config's fractions and seed), Splits as they are, or a stream (an iterable, a DataLoader, an
    IterableDataset, a :class:`~aekit.data.sources.StreamingSource`), which is all training data."""
    import numpy as np
    import torch

    from aekit.data.base import MapSource, random_split
    from aekit.data.formats import as_dataset
    from aekit.data.graphs import Graph, graph_splits
    from aekit.data.sources import StreamingSource

    if isinstance(data, Splits):
        return data
    if hasattr(data, "edge_index") and hasattr(data, "x") and not isinstance(data, Graph):  # a PyG Data
        data = Graph.from_pyg(data, name=IN_MEMORY)
    if isinstance(data, Graph):
        graph = data.row_normalized() if config.row_normalize else data
        return graph_splits(graph, config.graph_task, tuple(config.edge_split), config.split_seed)
    if isinstance(data, (np.ndarray, torch.Tensor)) or (isinstance(data, tuple) and len(data) == 2):
        x, y = data if isinstance(data, tuple) else (data, None)
        x, y = (np.asarray(v.detach().cpu() if isinstance(v, torch.Tensor) else v) if v is not None else None
                for v in (x, y))
        data = as_dataset(x, y, IN_MEMORY, "the array passed as data", owned=False)
    if isinstance(data, MapSource):
        splits = random_split(data, config.val_fraction, config.test_fraction, config.split_seed)
        return splits.with_val_in_train() if config.train_on_val else splits
    if not isinstance(data, StreamingSource):
        if not hasattr(data, "__iter__"):
            raise ConfigError(f"data of type {type(data).__name__} is not a data set; pass a name, a path, arrays, "
                              "a Dataset or an iterable of batches")
        data = StreamingSource(data)
    from aekit.data.base import Dataset

    empty = Dataset(torch.zeros(0, *data.shape), None, f"{data.name}/none")
    return Splits(data, empty, empty)


def _data_recipe(model: str, model_class: type, data: Any, given: Any, config_file: dict | None
                 ) -> tuple[dict[str, dict], str | None]:
    """The model's recipe for the data set (``Model.data_recipes``) and a line saying which it took; nothing for
    a model without recipes, and no line where a recipe file is given (that file is the recipe)."""
    from aekit.data.registry import known_dataset

    recipes = getattr(model_class, "data_recipes", {})
    if not recipes:
        return {}, None
    name = None if given is not None else known_dataset(data.name if isinstance(data, DataConfig) else str(data))
    if name in recipes:
        return recipes[name], None if config_file else f"{model}: the recipe for {name}"
    return {}, None if config_file else (f"{model}: no recipe is known for this data; the one for "
                                         f"{model_class.default_recipe} (known: {', '.join(recipes)})")


def resolve_run(model: str, data: str | DataConfig, out: Path | None, resume: bool, config_file: dict | None,
                overrides: dict[str, Any], given: Any = None) -> tuple[dict[str, Any], Splits | None]:
    """The resolved ``config.json`` of a run (recipe file, then command-line overrides, then the data's shape),
    and the data when it had to be read to find that shape. ``given``: data passed in memory (``data`` is then
    :data:`IN_MEMORY`). ``out`` None: a run in memory, which cannot resume."""
    from aekit.registry import make_config

    if resume and out is None:
        raise ConfigError("resume needs the run directory the run was written to; pass out=...")
    recipe_notes: list[str] = []
    if resume:
        saved = out / "config.json"
        if not saved.is_file():
            raise ConfigError(f"{out}: nothing to resume (no config.json); start the run without --resume")
        base = read_json(saved)
        model = base["model"]["name"]
    else:
        if out is not None and ((out / "checkpoints").exists() or (out / "model").exists()):
            raise ConfigError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
        from aekit.registry import model_entry

        model_class = model_entry(model).model_class
        base = {"model": {"name": model}, "data": dict(getattr(model_class, "data_defaults", {})),
                "train": dict(getattr(model_class, "train_defaults", {}))}  # the model's recipe, then the user's
        recipe, note = _data_recipe(model, model_class, data, given, config_file)
        recipe_notes.extend([note] if note else [])
        for section in ("model", "data", "train"):
            base[section].update(recipe.get(section, {}))
            base[section].update((config_file or {}).get(section, {}))
        base["data"].setdefault("name", data.name if isinstance(data, DataConfig) else data)
        if given is not None:
            base["data"]["name"] = IN_MEMORY
        if isinstance(data, DataConfig):
            base["data"].update(to_dict(data))
    m, d, t = split_overrides(overrides, model)
    if resume and (m or d):
        keys = ", ".join(sorted({**m, **d}))
        raise ConfigError(f"{keys}: the model and data of a run are fixed; on --resume only training keys may change")
    base["model"] = merge(base["model"], m)
    base["data"].update(d)
    if not resume:
        base["data"] = with_resolved_paths(base["data"])
    base["train"] = merge(base["train"], t)
    data_config = from_dict(DataConfig, base["data"], where="data")
    train_config = from_dict(TrainConfig, base["train"], where="train")
    model_values = {k: v for k, v in base["model"].items() if k != "name"}
    splits = None
    if not resume:
        from aekit.registry import model_entry

        try:
            make_config(model, **model_values)  # bad values fail here, before any data is read
        except ShapeConfigError:
            if "data_shape" in model_values:
                raise  # otherwise: checked again below, against the data's shape
        splits = load_splits(data_config) if given is None else splits_of(given, data_config)
        model_values, notes = model_entry(model).model_class.fit_to_data(model_values, splits)
        for note in [*recipe_notes, *getattr(splits, "notes", []), *notes]:
            print(f"aekit: {note}", file=sys.stderr)
    elif given is not None:
        splits = splits_of(given, data_config)
    model_config = make_config(model, **model_values)
    run = {"model": {"name": model, **to_dict(model_config)}, "data": to_dict(data_config),
           "train": to_dict(train_config)}
    return run, splits
