"""One training loop for every model, on Lightning Fabric (CPU, GPU, DDP, mixed precision).

``train("vae", data="digits", out="runs/vae", steps=500)`` trains, checkpoints, evaluates and writes the
run directory: ``config.json`` (resolved), ``checkpoints/``, ``model/``, ``log.csv``, ``metrics.json``,
``figures/`` and ``report.html``.

Exact resumption: the data order of epoch e is a permutation seeded by (seed, e), and every step reseeds
the random generators from (seed, step, rank), so a run resumed from a checkpoint draws the same batches
and the same noise as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aekit.config import from_dict
from aekit.data.base import Splits
from aekit.data.batch import Batch
from aekit.data.images import augment
from aekit.data.sources import StreamingSource
from aekit.errors import ConfigError, TrainingDiverged
from aekit.io import atomic_write_text, load_tensors, save_model
from aekit.optim import make_optimizers, set_learning_rates
from aekit.run_config import IN_MEMORY, DataConfig, TrainConfig, load_splits, resolve_run


@dataclass
class RunResult:
    run_dir: Path | None
    model: Any
    metrics: dict[str, Any]
    report: Path | None


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


def _float_logs(logs: dict[str, Any]) -> dict[str, float]:
    return {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in logs.items()}


@torch.no_grad()
def validation_logs(
    model, objective, splits: Splits, config: TrainConfig, step: int, device, forward=None
) -> dict[str, float]:
    """Mean of the objective's logged terms over (at most ``val_examples`` of) the validation split, scored with
    the objective its schedules end on (``objective(out, None)``: beta after its warm-up), so that the best
    validation loss is not one taken early in a warm-up. ``forward``: how to call the model (the training step's
    :func:`module_call`, so that validation runs in the training precision, as Lightning does); the model itself
    when None."""
    forward = forward or model
    was_training = model.training
    model.eval()
    val = splits.val
    n = len(val) if config.val_examples == 0 else min(len(val), config.val_examples)
    totals: dict[str, float] = {}
    seen = 0
    with torch.random.fork_rng(devices=[]):
        reseed(step_seed(config.seed, step) + 1, torch.device(device))
        for start in range(0, n, config.batch_size):
            batch = val.batch(slice(start, min(n, start + config.batch_size))).to(device)
            logs = _float_logs(objective(forward(batch), None, batch).logs)  # the objective after every warm-up
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * len(batch)
            seen += len(batch)  # examples (a graph source: one graph of N nodes)
    model.train(was_training)
    return {k: v / max(seen, 1) for k, v in totals.items()}


def idle_cores(interval: float = 0.05) -> float | None:
    """How many of this machine's cores were idle over the last ``interval`` seconds (Linux ``/proc/stat``), or
    None where that cannot be read."""
    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0)  # total, idle + iowait

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    cores = os.cpu_count() or 1
    return cores * (idle1 - idle0) / max(total1 - total0, 1)


def set_threads(threads: int) -> int:
    """The number of torch threads for a CPU run. ``threads > 0``: that many. ``0``: the cores this process may
    use that are idle now, at least one. torch's default, every core, collapses when another process keeps a
    core busy: each parallel region waits for its slowest thread, and the descheduled one arrives late."""
    if threads <= 0:
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        idle = idle_cores()
        threads = usable if idle is None else max(1, min(usable, int(idle + 0.25)))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def retain_cpu_memory() -> bool:
    """Keep freed memory in the process instead of handing it back to the OS after every step (opt-in:
    ``retain_cpu_memory=true``).

    glibc returns large freed blocks to the OS (``munmap``, heap trimming), so each training step page-faults
    its activations, gradients and bf16 weight copies back in. Raising the trim and mmap thresholds
    (``mallopt``) makes those blocks reusable by the next step. The setting is process-wide and stays after
    training, and the process keeps its peak memory, which is why it is not the default. Linux with glibc only;
    elsewhere it does nothing. Returns whether it applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl, ...)
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    trimmed = libc.mallopt(m_trim_threshold, 1 << 30)
    mapped = libc.mallopt(m_mmap_threshold, 32 << 20)  # glibc's largest allowed value on 64-bit
    return bool(trimmed and mapped)


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


class WeightAverage:
    """Polyak averaging: an exponential moving average of the trainable parameters, updated after each optimiser
    step ``t`` with decay ``min(ema_decay, (1 + t) / (10 + t))`` (the ramp keeps the first, random weights from
    dominating the average). The averaged weights are what validation, ``keep_best``, the saved model and the
    evaluation use; checkpoints carry them (``average.safetensors``), so ``--resume`` stays exact. The average
    of 16-bit weights (``bf16-true``, ``16-true``) is kept in float32: a step of ``1 - ema_decay`` times the
    difference is below half a bfloat16 ulp, so a 16-bit average would stall."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.names, self.live = zip(*[(n, p) for n, p in model.named_parameters() if p.requires_grad], strict=True)
        self.shadow = [p.detach().to(torch.promote_types(p.dtype, torch.float32), copy=True) for p in self.live]

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
            raise ConfigError(f"{where}: no averaged weights for {', '.join(missing)}; resume with ema_decay=0")
        for name, shadow in zip(self.names, self.shadow, strict=True):
            shadow.copy_(tensors[name])

    @torch.no_grad()
    def assign(self, tensors: list[torch.Tensor]) -> None:
        torch._foreach_copy_(self.live, tensors)

    @contextlib.contextmanager
    def applied(self):
        """The model holds the averaged weights inside the block and its own again after it."""
        own = [p.detach().clone() for p in self.live]
        self.assign(self.shadow)
        try:
            yield
        finally:
            self.assign(own)


@dataclass
class StepContext:
    """What a step hook is given: the step, the optimiser that just stepped (None at the start of a step), the
    process's rank and the world size, ``all_reduce(tensor, op)`` ("sum" or "mean" over the ranks), so that
    a hook's state (an EMA codebook) stays identical on every rank, and the run's total steps (for schedules that
    span the run)."""

    step: int
    optimizer: str | None
    rank: int
    world_size: int
    all_reduce: Any
    total_steps: int = 0


def step_hooks(model: torch.nn.Module, name: str) -> list:
    """The bound ``name`` methods of every part that defines one (``on_train_step_start``,
    ``after_optimizer_step``), in module order. A hook runs without grad; its state lives in buffers, so it is
    in the checkpoint and in the saved model."""
    return [getattr(m, name) for m in model.modules() if callable(getattr(m, name, None))]


class StreamCursor:
    """Where a run is in a stream: ``take(n, position)`` gives the n items from ``position`` on, restarting the
    stream at its end (a new epoch). After a resume the first ``take`` skips the items the run had consumed, so a
    stream that yields the same items each pass continues where it stopped."""

    def __init__(self, source) -> None:
        self.source, self.position, self.iterator = source, 0, iter(source)

    def _next(self) -> Batch:
        try:
            item = next(self.iterator)
        except StopIteration:
            self.iterator = iter(self.source)
            try:
                item = next(self.iterator)
            except StopIteration:
                raise ConfigError(f"{self.source.name}: the stream yields nothing (a spent generator?); pass an "
                                  "iterable that can be iterated again") from None
        self.position += 1
        return item

    def take(self, n: int, position: int) -> list[Batch]:
        while self.position < position:
            self._next()
        return [self._next() for _ in range(n)]


class Trainer:
    """The loop, in its named steps: :meth:`setup` (model, optimisers, checkpoint, log), :meth:`train_step`,
    :meth:`validate`, :meth:`save`, :meth:`finish`; :meth:`fit` runs them top to bottom."""

    def __init__(self, fabric, run: dict[str, Any], out: Path, resume: bool, splits: Splits | None = None,
                 instance=None) -> None:
        self.fabric, self.run, self.out, self.resume = fabric, run, out, resume
        self.config = from_dict(TrainConfig, run["train"])
        self.rank, self.world = fabric.global_rank, fabric.world_size
        self.data_config = from_dict(DataConfig, run["data"])
        self.splits = splits or load_splits(self.data_config)
        self.instance = instance

    # -- set-up ------------------------------------------------------------------------------------------------
    def setup(self) -> None:
        """Seeds and threads, the model and its optimisers, the schedule, a checkpoint to resume, the log."""
        self.setup_process()
        model, optimizers = self.setup_model()
        self.setup_schedule()
        checkpoint = self.restore(model, optimizers)
        self.wrap(model, optimizers, checkpoint)
        self.setup_log(checkpoint)

    def setup_process(self) -> None:
        config, fabric = self.config, self.fabric
        fabric.seed_everything(config.seed, verbose=False)
        if config.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        if fabric.device.type == "cpu":
            set_threads(config.threads)
            if config.retain_cpu_memory:
                retain_cpu_memory()

    def setup_model(self):
        from aekit.registry import build_model, make_config

        self.name = name = self.run["model"]["name"]
        model = self.instance or build_model(
            name, make_config(name, **{k: v for k, v in self.run["model"].items() if k != "name"}))
        if not self.resume:
            model.initial_weights()
        self.objective = model.objective()
        model.to(self.fabric.device)
        optimizers, self.opt_settings = make_optimizers(model, self.config)
        return model, optimizers

    def setup_schedule(self) -> None:
        """Batch size, steps per epoch, total steps and validation period, for a map-style source or a stream."""
        config, train = self.config, self.splits.train
        self.stream = train if isinstance(train, StreamingSource) else None
        self.keep_best = bool(config.patience or config.keep_best)
        if self.keep_best and not len(self.splits.val):
            raise ConfigError("patience and keep_best need a validation split; set val_fraction > 0 and "
                              "train_on_val=false")
        if self.stream is not None:
            self.setup_stream(train)
        else:
            self.n_train = len(train)
            self.batch = min(config.batch_size, self.n_train)
            if self.batch % self.world:
                raise ConfigError(f"batch_size={self.batch} must be divisible by devices={self.world}")
            self.steps_per_epoch = max(1, self.n_train // (self.batch * config.accumulate))
        self.objective.dataset_size = self.n_train
        self.total_steps = config.steps or (config.epochs * self.steps_per_epoch if config.epochs else 1000)
        self.eval_every = config.eval_every or self.steps_per_epoch
        self._perm_epoch, self._perm = -1, None  # the epoch whose data order is held

    def restore(self, model, optimizers) -> Path | None:
        """The trainer state, and the model's and optimisers' from the latest checkpoint on ``--resume``."""
        from aekit.checkpoint import latest_checkpoint, load_checkpoint

        self.state = {"step": 0, "best_val": math.inf, "evals_since_best": 0, "skipped": 0, "train_time_s": 0.0,
                      "examples": 0}
        if self.resume and self.out is None:
            raise ConfigError("resume needs the run directory the run was written to; pass out=...")
        checkpoint = latest_checkpoint(self.out) if self.resume else None
        if self.resume and checkpoint is None:
            raise ConfigError(f"{self.out}: no checkpoint to resume from; start the run without --resume")
        if checkpoint is not None:
            restored = load_checkpoint(checkpoint, model, optimizers)
            self.state.update({k: v for k, v in restored.items() if k in self.state})
        self.last_good = checkpoint
        return checkpoint

    def wrap(self, model, optimizers, checkpoint: Path | None) -> None:
        """The model and optimisers on the strategy; the weight average; the calls and hooks of the step."""
        config, fabric = self.config, self.fabric
        module, self.forward_module, wrapped = setup_on_strategy(fabric, model, list(optimizers.values()))
        self.module, self.optimizers = module, dict(zip(optimizers, wrapped, strict=True))
        self.params = {n: [p for _, p in ps] for n, ps in module.parameter_groups().items()}
        self.average = WeightAverage(module, config.ema_decay) if config.ema_decay > 0 else None
        # a checkpoint without an average (ema_decay turned on at --resume): averaging starts from its weights
        if self.average is not None and checkpoint is not None and (checkpoint / "average.safetensors").is_file():
            self.average.load(load_tensors(checkpoint / "average.safetensors"), checkpoint)
        self.forward = module_call(fabric, self.forward_module, config.precision)
        self.val_forward = module_call(fabric, module, config.precision)  # no DDP wrapper: nothing to sync
        self.start_hooks = step_hooks(module, "on_train_step_start")
        self.after_hooks = step_hooks(module, "after_optimizer_step")

    def setup_log(self, checkpoint: Path | None) -> None:
        self.log, self.progress, self.stop_reason, self.best_state = None, None, "steps", None
        if self.rank != 0:
            return
        if self.out is not None:
            self.log = CSVLog(self.out / "log.csv", ["step", "epoch", "split", "lr", "time_s"],
                              self.state["step"] if checkpoint is not None else None)
        if self.config.progress:
            from tqdm.auto import tqdm

            self.progress = tqdm(total=self.total_steps, initial=self.state["step"], desc=self.name,
                                 dynamic_ncols=True, leave=False, mininterval=0.5,
                                 disable=None)  # None: off when stderr is no terminal

    def setup_stream(self, train: StreamingSource) -> None:
        """A stream: each rank takes every world-th of its items (a batch each), ``accumulate`` items a step."""
        config = self.config
        length = train.length
        if not config.steps and not (config.epochs and length):
            raise ConfigError(f"{train.name}: a stream of unknown length trains for a number of steps; set steps")
        self.n_train = None
        self.batch = config.batch_size  # for the examples count: a stream's items are its own batches
        self.steps_per_epoch = max(1, (length // self.world) // config.accumulate) if length else 1 << 62
        self.cursor = StreamCursor(train.shard(self.rank, self.world) if self.world > 1 else train)

    def context(self, step: int, optimizer: str | None) -> StepContext:
        def all_reduce(tensor: torch.Tensor, op: str = "mean") -> torch.Tensor:
            return tensor if self.world == 1 else self.fabric.all_reduce(tensor, reduce_op=op)

        return StepContext(step, optimizer, self.rank, self.world, all_reduce, self.total_steps)

    # -- the train step ----------------------------------------------------------------------------------------
    def micro_batches(self, step: int) -> list[Batch]:
        """This rank's ``accumulate`` batches of ``step``: slices of the permutation of epoch (seed, epoch), or
        the stream's next items."""
        config = self.config
        if self.stream is not None:
            batches = [b.to(self.fabric.device) for b in self.cursor.take(config.accumulate, step * config.accumulate)]
            return [augment(b, self.data_config.augment, self.data_config.crop_scale) for b in batches]
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        if epoch != self._perm_epoch:  # the data order of an epoch depends on (seed, epoch) alone
            self._perm_epoch = epoch
            self._perm = torch.randperm(self.n_train,
                                        generator=torch.Generator().manual_seed(step_seed(config.seed, -epoch - 1)))
        batches = []
        for micro in range(config.accumulate):
            first = (in_epoch * config.accumulate + micro) * self.batch
            index = self._perm[first : first + self.batch][self.rank :: self.world]
            batches.append(self.splits.train.batch(index).to(self.fabric.device))
        if self.data_config.augment:  # the step's seed drew the data order; it draws the augmentations too
            batches = [augment(b, self.data_config.augment, self.data_config.crop_scale) for b in batches]
        return batches

    def active_optimizers(self, step: int) -> list[str]:
        return [n for n in self.optimizers if step % self.opt_settings[n].every == 0]

    def backward(self, losses: dict[str, torch.Tensor], active: list[str]) -> None:
        """Each active optimiser's loss into its own parameters (``inputs=``); one optimiser: the usual backward."""
        scale = 1.0 / self.config.accumulate
        if len(self.optimizers) == 1:
            self.fabric.backward(losses["model"] * scale)
            return
        for i, name in enumerate(active):
            self.fabric.backward(losses[name] * scale, inputs=self.params[name], retain_graph=i < len(active) - 1)

    def all_reduce_gradients(self, active: list[str]) -> None:
        """The mean gradient over the ranks, for models with several optimisers: DDP's reducer expects one
        backward over every parameter per forward, so those steps run without it (``no_sync``) and
        the complete gradients are averaged here, one flat all-reduce per optimiser."""
        for name in active:
            grads = [p.grad for p in self.params[name] if p.grad is not None]
            if not grads:
                continue
            flat = self.fabric.all_reduce(torch.cat([g.reshape(-1) for g in grads]), reduce_op="mean")
            offset = 0
            for g in grads:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()

    def train_step(self, step: int) -> tuple[dict[str, float], float]:
        config = self.config
        reseed(step_seed(config.seed, step, self.rank), self.fabric.device)
        lr = learning_rate(config, step, self.total_steps)
        set_learning_rates(self.optimizers, self.opt_settings, lr, config.lr)
        with torch.no_grad():
            for hook in self.start_hooks:
                hook(self.context(step, None))
        active = self.active_optimizers(step)
        by_hand = len(self.optimizers) > 1 and self.world > 1
        logs_sum: dict[str, float] = {}
        bad_terms: list[str] = []
        batches = self.micro_batches(step)
        self.last_examples = sum(len(b) for b in batches) * self.world
        for micro, batch in enumerate(batches):
            last = micro == config.accumulate - 1
            with no_sync(self.forward_module, enabled=by_hand or not last):
                loss = self.objective(self.forward(batch), step, batch)
                missing = sorted(set(self.optimizers) - set(loss.losses))
                if missing:
                    raise ConfigError(f"the objective gives no loss for optimiser {missing[0]!r}; it gives "
                                      f"{', '.join(loss.losses)}")
                logs = _float_logs(loss.logs)
                bad = [k for k, v in logs.items() if not math.isfinite(v)]
                bad += [f"{k} loss" for k, v in loss.losses.items() if k != "model" and not torch.isfinite(v)]
                bad_terms += sorted(bad, key=lambda k: k == "loss")  # name a component (recon, kl) first
                if not bad_terms:
                    self.backward(loss.losses, active)
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / config.accumulate
        if self.world > 1:
            bad = self.fabric.all_reduce(torch.tensor(float(bool(bad_terms))), reduce_op="max")
            bad_terms = bad_terms or (["loss (on another rank)"] if float(bad) > 0 else [])
        if bad_terms:
            self.skip_or_stop(step, bad_terms[0], logs_sum)
        else:
            if by_hand:
                self.all_reduce_gradients(active)
            self.optimizer_steps(step, active)
        return logs_sum, lr

    def optimizer_steps(self, step: int, active: list[str]) -> None:
        for name in active:
            optimizer = self.optimizers[name]
            if self.config.grad_clip > 0:
                self.fabric.clip_gradients(self.forward_module, optimizer, max_norm=self.config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            with torch.no_grad():
                for hook in self.after_hooks:
                    hook(self.context(step, name))
        for name in set(self.optimizers) - set(active):  # gradients a resting optimiser's parameters received
            self.optimizers[name].zero_grad(set_to_none=True)
        if self.average is not None:
            self.average.update(step)

    def skip_or_stop(self, step: int, term: str, logs: dict[str, float]) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        if self.config.on_nan == "stop" or self.state["skipped"] >= self.config.max_skipped:
            kept = (f"the last good checkpoint is {self.last_good}" if self.last_good
                    else "no checkpoint was written yet")
            if self.progress is not None:
                self.progress.close()
            raise TrainingDiverged(
                f"step {step}: loss term '{term}' is {logs.get(term, float('nan'))}; {kept}; "
                "lower lr, set grad_clip, or pass on_nan=skip"
            )
        self.state["skipped"] += 1

    # -- validation --------------------------------------------------------------------------------------------
    def validate(self, step: int, epoch: int, lr: float) -> None:
        averaged = self.average.applied if self.average is not None else contextlib.nullcontext
        with averaged():
            val = validation_logs(self.module, self.objective, self.splits, self.config, step,
                                  self.fabric.device, self.val_forward)
            monitored = self.monitored(val)
            improved = monitored < self.state["best_val"]
            if improved and self.keep_best and self.rank == 0:
                if self.out is None:  # a run in memory keeps its best weights in memory
                    self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
                else:
                    save_model(self.module, self.out / "best")
        if self.log is not None:
            self.log.write({"step": step, "epoch": epoch, "split": "val", "lr": lr,
                            "time_s": self.state["train_time_s"], **val})
        self.fabric.log_dict({f"val/{k}": v for k, v in val.items()}, step=step)
        if improved:
            self.state["best_val"], self.state["evals_since_best"] = monitored, 0
        else:
            self.state["evals_since_best"] += 1
        if self.config.patience and self.state["evals_since_best"] >= self.config.patience:
            self.stop_reason = "early_stopping"
            self.total_steps = step

    def monitored(self, val: dict[str, float]) -> float:
        """The validation value that decides the best weights and early stopping, as a number to minimise."""
        config = self.config
        if config.monitor not in val:
            raise ConfigError(f"monitor={config.monitor!r} is not among the validation logs "
                              f"({', '.join(val)}); choose one of them")
        value = val[config.monitor]
        return value if config.monitor_mode == "min" else -value

    # -- checkpoints and the end -------------------------------------------------------------------------------
    def save(self, step: int) -> Path | None:
        from aekit.checkpoint import save_checkpoint

        path = None
        if self.out is None:  # a run in memory writes nothing
            return None
        if self.rank == 0:
            path = save_checkpoint(self.out, self.module, self.optimizers, {**self.state, "step": step},
                                   keep=self.config.keep_checkpoints,
                                   average=self.average.tensors() if self.average is not None else None)
        self.fabric.barrier()
        return path

    def finish(self, step: int) -> dict[str, Any]:
        if self.progress is not None:
            self.progress.close()
        self.save(step)
        if self.rank == 0:
            final = self.module
            best = self.best_state
            if best is None and self.keep_best and self.out is not None and (self.out / "best").is_dir():
                best = load_tensors(self.out / "best" / "model.safetensors")
            if self.keep_best and best is not None:
                final.load_state_dict(best)
            elif self.average is not None:
                self.average.assign(self.average.shadow)  # the run is over: the model keeps the averaged weights
            if self.out is not None:
                save_model(final, self.out / "model")
        self.fabric.barrier()
        state = self.state
        return {"train/steps": step, "train/stop_reason": self.stop_reason, "train/skipped_steps": state["skipped"],
                "train/wall_time_s": round(state["train_time_s"], 3),
                "train/samples_per_s": round(state["examples"] / max(state["train_time_s"], 1e-9), 1),
                **self.best_summary()}

    def best_summary(self) -> dict[str, Any]:
        best = self.state["best_val"]
        if not math.isfinite(best):
            return {"train/best_val_loss": None} if self.config.monitor == "loss" else {}
        return {f"train/best_val_{self.config.monitor}": best if self.config.monitor_mode == "min" else -best}

    def fit(self) -> dict[str, Any]:
        self.setup()
        self.module.train()
        config, step = self.config, self.state["step"]
        while step < self.total_steps:
            t0 = time.perf_counter()
            epoch = step // self.steps_per_epoch
            logs, lr = self.train_step(step)
            step += 1
            self.state["train_time_s"] += time.perf_counter() - t0
            self.state["examples"] += self.last_examples
            self.state["step"] = step
            self.report_train(step, epoch, lr, logs)
            if len(self.splits.val) and (step % self.eval_every == 0 or step == self.total_steps):
                self.validate(step, epoch, lr)
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < self.total_steps:
                self.last_good = self.save(step)
        return self.finish(step)

    def report_train(self, step: int, epoch: int, lr: float, logs: dict[str, float]) -> None:
        if self.progress is not None:
            self.progress.update(1)
            self.progress.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k in ("loss", "recon", "kl")})
        if self.log is not None and (step % self.config.log_every == 0 or step == self.total_steps):
            self.log.write({"step": step, "epoch": epoch, "split": "train", "lr": lr,
                            "time_s": self.state["train_time_s"], **logs})
            self.fabric.log_dict({f"train/{k}": v for k, v in logs.items()}, step=step)


def _fit(
    fabric, run: dict[str, Any], out: Path, resume: bool, splits: Splits | None = None, instance=None
) -> dict[str, Any]:
    """Train on every DDP rank (each reads the data itself). ``instance``: a model the user built (with modules of
    their own), trained in place instead of one built from the config."""
    return Trainer(fabric, run, out, resume, splits, instance).fit()


def _make_fabric(config: TrainConfig, out: Path | None):
    import importlib.util

    from lightning_fabric import Fabric

    if config.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"accelerator={config.accelerator} but no CUDA GPU is visible to torch; use "
                          "accelerator=cpu (or auto), or install a CUDA build of torch")
    if config.accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("accelerator=mps but no Apple GPU is available; use accelerator=cpu (or auto)")
    loggers = []
    if out is not None and importlib.util.find_spec("tensorboard") is not None:
        from lightning_fabric.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(root_dir=str(out / "tensorboard"), name="", version=""))
    strategy = config.strategy
    if strategy == "auto":  # processes of their own on one machine; torchrun and SLURM start them for "ddp"
        launched = "LOCAL_RANK" in os.environ or "SLURM_NTASKS" in os.environ
        strategy = "ddp" if launched and (config.devices > 1 or config.num_nodes > 1) else (
            "ddp_spawn" if config.devices > 1 else "auto")
    try:
        return Fabric(accelerator=config.accelerator, devices=config.devices, num_nodes=config.num_nodes,
                      strategy=strategy, precision=config.precision, loggers=loggers)
    except (ValueError, RuntimeError) as exc:  # a combination Fabric refuses (FSDP on a CPU, ...)
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"strategy={config.strategy} accelerator={config.accelerator} devices={config.devices} "
                          f"num_nodes={config.num_nodes}: {first}") from None


def import_modules(names) -> None:
    """Import the user's modules that register models or parts (``imports=mypkg.models``), in this process and,
    through the run's config, in every DDP process it starts."""
    import importlib

    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    for name in names or ():
        try:
            importlib.import_module(name.strip())
        except ImportError as exc:
            raise ConfigError(f"imports={name}: cannot import it ({exc}); put the module on PYTHONPATH") from None


def launched_rank() -> int:
    """This process's global rank when torchrun or SLURM started it (``RANK``, ``SLURM_PROCID``), else 0."""
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))


def _launched_fit(fabric, run: dict[str, Any], out: str, resume: bool, splits: Splits | None = None):
    import_modules(run["train"].get("imports"))
    return _fit(fabric, run, Path(out), resume, splits)


def train(
    model: str | torch.nn.Module = "vae",
    data: Any = "digits",
    out: str | os.PathLike | None = "runs/run",
    *,
    resume: bool = False,
    config_file: dict | None = None,
    evaluate: bool = True,
    **overrides: Any,
) -> RunResult:
    """Train ``model`` on ``data`` and write the run directory ``out``.

    ``model`` is a registered name, or a model built with ``aekit.build_model`` (user-made encoder or decoder
    modules included), which is then trained in place on one device; reload such a run with
    ``aekit.load(out, encoder=..., decoder=...)``.

    ``data`` is a registered name or a path (read again on ``resume``), a :class:`DataConfig`, or data in memory:
    arrays or tensors (``x`` or ``(x, y)``), a Dataset or other map source (split by ``val_fraction``,
    ``test_fraction`` and ``split_seed``), Splits, or a stream (an iterable of batches, a ``DataLoader``, an
    ``IterableDataset``, a ``StreamingSource``: all training data; train it for ``steps``). Data in memory is not
    saved with the run: pass it again to resume.

    ``overrides`` are config keys of the model (``latent_dim=8``), the data (``val_fraction=0.2``) or the
    training (``steps=500``, ``lr=3e-4``, ``checkpoint_every=100``); ``config_file`` is a parsed recipe with
    ``model``/``data``/``train`` sections. With ``resume=True`` the run continues from its latest checkpoint.

    ``out=None`` trains in memory and writes nothing (no checkpoints, log, model or report; ``keep_best`` keeps the
    best weights in memory); the result holds the trained model and, with ``evaluate``, the test metrics.
    """
    from aekit.io import check_out_dir

    out = None if out is None else check_out_dir(out)
    run, splits, given, instance = _resolve(model, data, out, resume, config_file, overrides)
    rank = launched_rank()
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if rank == 0:
            atomic_write_text(out / "config.json", json.dumps(run, indent=2) + "\n")
    config = from_dict(TrainConfig, run["train"])
    summary, trained = _fit_on_fabric(config, run, out, resume, splits, given, instance)
    if rank != 0:  # another node's process of a torchrun or SLURM launch: rank 0 evaluates and reports
        return RunResult(run_dir=out, model=None, metrics=summary, report=None)
    trained = _trained_model(config, out, trained, instance)
    report = None
    if evaluate and out is None:
        from aekit.evaluation import evaluate as evaluate_model

        summary.update(evaluate_model(trained, splits, nll_samples=config.nll_samples,
                                      nll_examples=config.nll_examples or None, seed=config.seed))
    elif evaluate:
        from aekit.outputs import write_outputs

        summary, report = write_outputs(trained, splits, out, config, summary)
    return RunResult(run_dir=out, model=trained, metrics=summary, report=report)


def _resolve(model, data, out: Path | None, resume: bool, config_file: dict | None, overrides: dict[str, Any]):
    """``(run, splits, given, instance)``: the resolved run config, its data, the data given in memory (else
    None) and the model instance given (else None), with the user's modules imported first."""
    from aekit.config import to_dict
    from aekit.io import read_json

    given = None
    if not isinstance(data, (str, os.PathLike, DataConfig)):  # arrays, a Dataset, a source or a stream
        given, data = data, IN_MEMORY
    elif isinstance(data, os.PathLike):
        data = str(data)
    instance = None
    if isinstance(model, torch.nn.Module):
        instance, model = model, model.name
        config_file = {**(config_file or {}), "model": to_dict(instance.config)}
    saved = read_json(out / "config.json") if resume and out is not None and (out / "config.json").is_file() else {}
    for source in (saved.get("train", {}), (config_file or {}).get("train", {}), overrides):
        import_modules(source.get("imports", source.get("train.imports")))
    run, splits = resolve_run(model, data, out, resume, config_file, overrides, given)
    if instance is not None:
        wanted = {"name": instance.name, **to_dict(instance.config)}
        changed = sorted(k for k in wanted if run["model"].get(k) != wanted[k])
        if changed:
            got = {k: run["model"].get(k) for k in changed}
            raise ConfigError(
                f"the model passed in was built with {', '.join(f'{k}={wanted[k]}' for k in changed)} but the run "
                f"needs {got}; build the model to fit the data (and set model keys when building it)"
            )
    return run, splits or load_splits(from_dict(DataConfig, run["data"])), given, instance


def _fit_on_fabric(config: TrainConfig, run: dict[str, Any], out: Path | None, resume: bool, splits: Splits,
                   given: Any, instance) -> tuple[dict[str, Any], Any]:
    """The loop in this process, or launched in several: ``(summary, the trained module or None)``."""
    fabric = _make_fabric(config, out)
    if config.devices > 1 or config.num_nodes > 1:
        if instance is not None:
            raise ConfigError("a model instance trains on one device; pass a registered model name for devices > 1")
        if out is None:
            raise ConfigError("a run on several processes needs a run directory to meet in; pass out=...")
        summary = fabric.launch(_launched_fit, run, str(out), resume, None if given is None else splits)
        return dict(summary or {}), None
    trainer = Trainer(fabric, run, out, resume, splits, instance)
    return dict(trainer.fit()), trainer.module


def _trained_model(config: TrainConfig, out: Path | None, trained, instance):
    """The model a run hands back, on the evaluation device: the user's instance, the saved model as
    ``aekit.load`` gives it back, or the one trained in memory (in the default dtype, as a loaded one is)."""
    from aekit.io import default_device, load

    device = "cpu" if config.accelerator == "cpu" else default_device()
    if instance is not None:
        trained = instance
    elif out is not None:
        trained = load(out / "model")
    else:
        trained = trained.to(torch.get_default_dtype())
    return trained.to(device).eval()


__all__ = ["DataConfig", "RunResult", "TrainConfig", "learning_rate", "load_splits", "train"]
