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
from aekit.errors import ConfigError, TrainingDiverged
from aekit.io import atomic_write_text, load_tensors, save_model
from aekit.run_config import DataConfig, TrainConfig, load_splits, resolve_run


@dataclass
class RunResult:
    run_dir: Path
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
    """``torch.manual_seed`` for the generators a run on ``device`` uses. ``torch.manual_seed`` also queues a lazy
    seed for every accelerator backend that is not initialised (CUDA, XPU, MTIA), formatting a stack trace for
    each: about 0.3 ms, on every step of a CPU run."""
    torch.default_generator.manual_seed(value)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(value)


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    return (seed * 1_000_003 + step * 7919 + rank * 104_729) % (2**63 - 1)


class CSVLog:
    """``log.csv``: one row per logged step and split; on resume, rows past the checkpoint are dropped."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path, self.columns = path, columns
        if resume_step is not None and path.is_file():
            lines = path.read_text().splitlines()
            header = lines[0].split(",") if lines else columns
            kept = [ln for ln in lines[1:] if int(float(ln.split(",")[0])) <= resume_step]
            self.columns = header
            atomic_write_text(path, "\n".join([",".join(header), *kept]) + "\n")
        else:
            atomic_write_text(path, ",".join(columns) + "\n")

    def write(self, row: dict[str, Any]) -> None:
        def fmt(v: Any) -> str:
            return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

        with self.path.open("a") as f:
            f.write(",".join(fmt(row.get(c)) for c in self.columns) + "\n")


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
    with torch.random.fork_rng(devices=[]):
        reseed(step_seed(config.seed, step) + 1, torch.device(device))
        for start in range(0, n, config.batch_size):
            x = val.inputs(slice(start, min(n, start + config.batch_size))).to(device)
            logs = _float_logs(objective(forward(x), None).logs)  # the objective after every warm-up
            for k, v in logs.items():
                totals[k] = totals.get(k, 0.0) + v * x.shape[0]
    model.train(was_training)
    return {k: v / max(n, 1) for k, v in totals.items()}


def retain_cpu_memory() -> bool:
    """Keep freed memory in the process instead of handing it back to the OS after every step.

    glibc returns large freed blocks to the OS (``munmap``, heap trimming), so each training step page-faults
    its activations, gradients and bf16 weight copies back in. Raising the trim and mmap thresholds
    (``mallopt``) makes those blocks reusable: the MLP VAE's bf16-mixed step on one CPU thread falls from about
    6.2 to 4.2 ms (benchmarks/RESULTS.md). The setting is process-wide and stays after training; the process
    keeps its peak memory. Linux with glibc only; elsewhere it does nothing. Returns whether it applied."""
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


def module_call(fabric, model, precision: str):
    """What Fabric's wrapped module does on each call (inputs to the precision's dtype, the precision's autocast
    context, outputs back to the default dtype), done directly on aekit's inputs and output types. Fabric's
    generic wrapper walks and deep-copies the output dataclasses and hooks every tensor in them: about 2 ms of a
    4 ms bf16-mixed step of the MLP VAE on one CPU thread. Calls go to the strategy's module (DDP's wrapper when
    there is one), so gradient synchronisation is unchanged."""
    plugin = fabric.strategy.precision
    inner = getattr(model, "_forward_module", model)
    out_dtype = None if precision == "32-true" else torch.get_default_dtype()

    def call(x: torch.Tensor):
        x = plugin.convert_input(x)
        with plugin.forward_context():
            out = inner(x)
        return out if out_dtype is None else cast_floats(out, out_dtype)

    return call


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


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW, with PyTorch's fused kernel where the device supports it: one pass over each parameter instead
    of a chain of element-wise ops (the MLP VAE's training step on one CPU thread: 8.9-9.9 ms with the
    foreach kernel, 6.9-8.2 ms fused; benchmarks/RESULTS.md)."""
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without the fused kernel
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def _fit(
    fabric, run: dict[str, Any], out: Path, resume: bool, splits: Splits | None = None, instance=None
) -> dict[str, Any]:
    """The loop itself; runs on every DDP rank (each reads the data itself). ``instance``: a model the user
    built (with modules of their own), trained in place instead of one built from the config."""
    from aekit.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from aekit.registry import build_model, make_config

    config = from_dict(TrainConfig, run["train"])
    data_config = from_dict(DataConfig, run["data"])
    rank, world = fabric.global_rank, fabric.world_size
    fabric.seed_everything(config.seed, verbose=False)
    if config.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    splits = splits or load_splits(data_config)
    name = run["model"]["name"]
    model = instance or build_model(name, make_config(name, **{k: v for k, v in run["model"].items() if k != "name"}))
    objective = model.objective()
    if config.retain_cpu_memory and fabric.device.type == "cpu":
        retain_cpu_memory()
    model.to(fabric.device)
    optimizer = make_optimizer(model, config)

    n_train = len(splits.train)
    keep_best = bool(config.patience or config.keep_best)
    if keep_best and not len(splits.val):
        raise ConfigError("patience and keep_best need a validation split; set val_fraction > 0 and train_on_val=false")
    batch = min(config.batch_size, n_train)
    if batch % world:
        raise ConfigError(f"batch_size={batch} must be divisible by devices={world}")
    steps_per_epoch = max(1, n_train // (batch * config.accumulate))
    total_steps = config.steps or (config.epochs * steps_per_epoch if config.epochs else 1000)
    eval_every = config.eval_every or steps_per_epoch

    state = {"step": 0, "best_val": math.inf, "evals_since_best": 0, "skipped": 0, "train_time_s": 0.0,
             "examples": 0}
    checkpoint = latest_checkpoint(out) if resume else None
    if resume and checkpoint is None:
        raise ConfigError(f"{out}: no checkpoint to resume from; start the run without --resume")
    if checkpoint is not None:
        state.update({k: v for k, v in load_checkpoint(checkpoint, model, optimizer).items() if k in state})
    model, optimizer = fabric.setup(model, optimizer)
    average = WeightAverage(model.module, config.ema_decay) if config.ema_decay > 0 else None
    # a checkpoint without an average (ema_decay turned on at --resume): averaging starts from its weights
    if average is not None and checkpoint is not None and (checkpoint / "average.safetensors").is_file():
        average.load(load_tensors(checkpoint / "average.safetensors"), checkpoint)
    averaged = average.applied if average is not None else contextlib.nullcontext
    forward = module_call(fabric, model, config.precision)
    val_forward = module_call(fabric, model.module, config.precision)  # no DDP wrapper: nothing to synchronise

    log = None
    if rank == 0:
        with torch.no_grad():  # the names of the logged terms, from two examples
            probe = objective(val_forward(splits.train.inputs(slice(0, 2)).to(fabric.device)), 0).logs
        columns = ["step", "epoch", "split", "lr", "time_s", *sorted(probe)]
        log = CSVLog(out / "log.csv", columns, state["step"] if checkpoint is not None else None)

    def save(step: int) -> Path | None:
        path = None
        if rank == 0:
            path = save_checkpoint(out, model.module, optimizer, {**state, "step": step}, keep=config.keep_checkpoints,
                                   average=average.tensors() if average is not None else None)
        fabric.barrier()
        return path

    progress = None
    if rank == 0 and config.progress:
        from tqdm.auto import tqdm

        progress = tqdm(total=total_steps, initial=state["step"], desc=f"{name}", dynamic_ncols=True, leave=False,
                        mininterval=0.5, disable=None)  # None: off when stderr is not a terminal

    model.train()
    last_good = checkpoint
    stop_reason = "steps"
    step = state["step"]
    perm_epoch, perm = -1, None
    while step < total_steps:
        t0 = time.perf_counter()
        epoch, in_epoch = divmod(step, steps_per_epoch)
        if epoch != perm_epoch:  # the data order of an epoch depends on (seed, epoch) alone
            perm_epoch = epoch
            perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(step_seed(config.seed, -epoch - 1)))
        reseed(step_seed(config.seed, step, rank), fabric.device)
        lr = learning_rate(config, step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logs_sum: dict[str, float] = {}
        bad_terms: list[str] = []
        for micro in range(config.accumulate):
            first = (in_epoch * config.accumulate + micro) * batch
            index = perm[first : first + batch][rank::world]
            x = fabric.to_device(splits.train.inputs(index))
            with fabric.no_backward_sync(model, enabled=micro < config.accumulate - 1):
                loss = objective(forward(x), step)
                logs = _float_logs(loss.logs)
                bad = [k for k, v in logs.items() if not math.isfinite(v)]
                bad_terms += sorted(bad, key=lambda k: k == "loss")  # name a component (recon, kl) first
                if not bad_terms:
                    fabric.backward(loss.total / config.accumulate)
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / config.accumulate
        if world > 1:
            bad = fabric.all_reduce(torch.tensor(float(bool(bad_terms))), reduce_op="max")
            bad_terms = bad_terms or (["loss (on another rank)"] if float(bad) > 0 else [])
        if bad_terms:
            optimizer.zero_grad(set_to_none=True)
            term = bad_terms[0]
            if config.on_nan == "stop" or state["skipped"] >= config.max_skipped:
                kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written yet"
                if progress is not None:
                    progress.close()
                raise TrainingDiverged(
                    f"step {step}: loss term '{term}' is {logs_sum.get(term, float('nan'))}; {kept}; "
                    "lower lr, set grad_clip, or pass on_nan=skip"
                )
            state["skipped"] += 1
        else:
            if config.grad_clip > 0:
                fabric.clip_gradients(model, optimizer, max_norm=config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if average is not None:
                average.update(step)
        step += 1
        state["train_time_s"] += time.perf_counter() - t0
        state["examples"] += batch * config.accumulate
        state["step"] = step
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: f"{v:.4g}" for k, v in logs_sum.items() if k in ("loss", "recon", "kl")})
        if log is not None and (step % config.log_every == 0 or step == total_steps):
            log.write({"step": step, "epoch": epoch, "split": "train", "lr": lr, "time_s": state["train_time_s"],
                       **logs_sum})
            fabric.log_dict({f"train/{k}": v for k, v in logs_sum.items()}, step=step)
        if len(splits.val) and (step % eval_every == 0 or step == total_steps):
            with averaged():
                val = validation_logs(model.module, objective, splits, config, step, fabric.device, val_forward)
                improved = val["loss"] < state["best_val"]
                if improved and keep_best and rank == 0:
                    save_model(model.module, out / "best")
            if log is not None:
                log.write({"step": step, "epoch": epoch, "split": "val", "lr": lr, "time_s": state["train_time_s"],
                           **val})
            fabric.log_dict({f"val/{k}": v for k, v in val.items()}, step=step)
            if improved:
                state["best_val"], state["evals_since_best"] = val["loss"], 0
            else:
                state["evals_since_best"] += 1
            if config.patience and state["evals_since_best"] >= config.patience:
                stop_reason = "early_stopping"
                total_steps = step
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < total_steps:
            last_good = save(step)
    if progress is not None:
        progress.close()
    save(step)
    if rank == 0:
        final = model.module
        if keep_best and (out / "best" / "model.safetensors").is_file():
            final.load_state_dict(load_tensors(out / "best" / "model.safetensors"))
        elif average is not None:
            average.assign(average.shadow)  # the run is over: the model keeps the averaged weights
        save_model(final, out / "model")
    fabric.barrier()
    return {"train/steps": step, "train/stop_reason": stop_reason, "train/skipped_steps": state["skipped"],
            "train/wall_time_s": round(state["train_time_s"], 3),
            "train/samples_per_s": round(state["examples"] / max(state["train_time_s"], 1e-9), 1),
            "train/best_val_loss": state["best_val"] if math.isfinite(state["best_val"]) else None}


def _make_fabric(config: TrainConfig, out: Path):
    import importlib.util

    from lightning_fabric import Fabric

    loggers = []
    if importlib.util.find_spec("tensorboard") is not None:
        from lightning_fabric.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(root_dir=str(out / "tensorboard"), name="", version=""))
    accelerator = "cpu" if config.accelerator == "cpu" else config.accelerator
    strategy = "ddp_spawn" if config.devices > 1 else "auto"
    return Fabric(accelerator=accelerator, devices=config.devices, strategy=strategy, precision=config.precision,
                  loggers=loggers)


def _launched_fit(fabric, run: dict[str, Any], out: str, resume: bool) -> dict[str, Any]:
    return _fit(fabric, run, Path(out), resume)


def train(
    model: str | torch.nn.Module = "vae",
    data: str | DataConfig = "digits",
    out: str | os.PathLike = "runs/run",
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

    ``overrides`` are config keys of the model (``latent_dim=8``), the data (``val_fraction=0.2``) or the
    training (``steps=500``, ``lr=3e-4``, ``checkpoint_every=100``); ``config_file`` is a parsed recipe with
    ``model``/``data``/``train`` sections. With ``resume=True`` the run continues from its latest checkpoint.
    """
    from aekit.config import to_dict
    from aekit.io import default_device, load

    out = Path(out)
    instance = None
    if isinstance(model, torch.nn.Module):
        instance, model = model, model.name
        config_file = {**(config_file or {}), "model": to_dict(instance.config)}
    run, splits = resolve_run(model, data, out, resume, config_file, overrides)
    if instance is not None:
        wanted = {"name": instance.name, **to_dict(instance.config)}
        changed = sorted(k for k in wanted if run["model"].get(k) != wanted[k])
        if changed:
            got = {k: run["model"].get(k) for k in changed}
            raise ConfigError(
                f"the model passed in was built with {', '.join(f'{k}={wanted[k]}' for k in changed)} but the run "
                f"needs {got}; build the model to fit the data (and set model keys when building it)"
            )
    splits = splits or load_splits(from_dict(DataConfig, run["data"]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.json", json.dumps(run, indent=2) + "\n")
    config = from_dict(TrainConfig, run["train"])
    fabric = _make_fabric(config, out)
    if config.devices > 1:
        if instance is not None:
            raise ConfigError("a model instance trains on one device; pass a registered model name for devices > 1")
        summary = fabric.launch(_launched_fit, run, str(out), resume)
    else:
        summary = _fit(fabric, run, out, resume, splits, instance)
    device = "cpu" if config.accelerator == "cpu" else default_device()
    trained = instance.to(device).eval() if instance is not None else load(out / "model", map_location=device)
    metrics: dict[str, Any] = dict(summary or {})
    report = None
    if evaluate:
        from aekit.outputs import write_outputs

        metrics, report = write_outputs(trained, splits, out, config, metrics)
    return RunResult(run_dir=out, model=trained, metrics=metrics, report=report)


__all__ = ["DataConfig", "RunResult", "TrainConfig", "learning_rate", "load_splits", "train"]
