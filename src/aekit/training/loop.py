"""The loop: :class:`Trainer` runs one model's training on Lightning Fabric, from set-up to the saved model.

Exact resumption: the data order of epoch e is a permutation seeded by (seed, e), and every step reseeds the
random generators from (seed, step, rank), so a run resumed from a checkpoint draws the same batches and the
same noise as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import torch

from aekit.config import from_dict
from aekit.data.base import Splits
from aekit.data.sample import sample_batch
from aekit.data.sources import StreamingSource
from aekit.errors import ConfigError, TrainingDiverged
from aekit.io import load_tensors, save_model
from aekit.optim import make_optimizers, set_learning_rates
from aekit.parts import AFTER_TRAINING_ROWS, DATA_INIT_ROWS, fit_after_training, init_from_data
from aekit.progress import Phase
from aekit.run_config import DataConfig, TrainConfig, load_splits
from aekit.training.averaging import WeightAverage
from aekit.training.batches import StepBatches
from aekit.training.hooks import StepHooks
from aekit.training.log import CSVLog, StepTerms, read_logs, validation_logs
from aekit.training.step import (
    LossCall,
    all_reduce_gradients,
    backward,
    learning_rate,
    module_call,
    no_sync,
    reseed,
    setup_on_strategy,
    step_seed,
)
from aekit.training.threads import retain_cpu_memory, set_threads

FINISHED_BEFORE = "_finished_before"  # in the summary: the run had no step left to train (a resumed finished run)


class Trainer:
    """The loop, in its named steps: :meth:`setup` (model, optimisers, checkpoint, log), :meth:`train_step`,
    :meth:`validate`, :meth:`save`, :meth:`finish`; :meth:`fit` runs them top to bottom."""

    def __init__(self, fabric, run: dict[str, Any], out: Path, resume: bool, splits: Splits | None = None,
                 instance=None, activation_source: dict[str, Any] | None = None) -> None:
        self.fabric, self.run, self.out, self.resume = fabric, run, out, resume
        self.activation_source = activation_source  # the activation store the data came from, for the saved model
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
            init_from_data(model, lambda: sample_batch(self.splits.train, DATA_INIT_ROWS, self.config.seed))
        if self.activation_source:
            model.activation_source = self.activation_source  # every saved model names the store it learnt
        self.objective = model.objective()
        model.to(self.fabric.device)
        optimizers, self.opt_settings = make_optimizers(model, self.config)
        return model, optimizers

    def setup_schedule(self) -> None:
        """Batch size, steps per epoch, total steps and validation period, for a map-style source or a stream."""
        config, train = self.config, self.splits.train
        self.keep_best = bool(config.patience or config.keep_best)
        if self.keep_best and not len(self.splits.val):
            raise ConfigError("patience and keep_best need a validation split; set val_fraction > 0 and "
                              "train_on_val=false")
        if isinstance(train, StreamingSource):  # each rank takes every world-th item (a batch each)
            length = train.length
            if not config.steps and not (config.epochs and length):
                raise ConfigError(f"{train.name}: a stream of unknown length trains for a number of steps; "
                                  "set steps")
            self.n_train = None
            self.batch = config.batch_size  # for the examples count: a stream's items are its own batches
            self.steps_per_epoch = max(1, (length // self.world) // config.accumulate) if length else 1 << 62
        else:
            self.n_train = len(train)
            self.batch = min(config.batch_size, self.n_train)
            if self.batch % self.world:
                raise ConfigError(f"batch_size={self.batch} must be divisible by devices={self.world}")
            self.steps_per_epoch = max(1, self.n_train // (self.batch * config.accumulate))
        self.micro_batches = StepBatches(train, self.data_config, config.accumulate, config.seed, self.rank,
                                         self.world, self.fabric.device, self.batch, self.steps_per_epoch)
        self.objective.dataset_size = self.n_train
        self.total_steps = config.steps or (config.epochs * self.steps_per_epoch if config.epochs else 1000)
        self.eval_every = config.eval_every or self.steps_per_epoch

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
        forward = module_call(fabric, self.forward_module, config.precision)
        self.loss_call = LossCall(forward, self.objective, self.name, config)
        self.val_forward = module_call(fabric, module, config.precision)  # no DDP wrapper: nothing to sync
        self.hooks = StepHooks(module, self.total_steps, fabric)

    def setup_log(self, checkpoint: Path | None) -> None:
        self.log, self.progress, self.stop_reason, self.best_state = None, None, "steps", None
        if self.rank != 0:
            return
        if self.out is not None:
            self.log = CSVLog(self.out / "log.csv", ["step", "epoch", "split", "lr", "time_s"],
                              self.state["step"] if checkpoint is not None else None)
        if self.config.progress:  # a bar on a terminal, else a line every 10 s
            self.progress = Phase(f"training {self.name}", self.total_steps, unit="steps",
                                  initial=self.state["step"])

    # -- the train step ----------------------------------------------------------------------------------------
    def active_optimizers(self, step: int) -> list[str]:
        return [n for n in self.optimizers if step % self.opt_settings[n].every == 0]

    def train_step(self, step: int) -> tuple[dict[str, torch.Tensor | float], float]:
        """One optimisation step; ``(logs, lr)``, the logs still on the device. Every micro-batch's backward runs,
        then one check of all the step's terms (on an accelerator, the step's one read from the device) decides
        between the optimiser steps and :meth:`skip_or_stop`."""
        config = self.config
        reseed(step_seed(config.seed, step, self.rank), self.fabric.device)
        lr = learning_rate(config, step, self.total_steps)
        set_learning_rates(self.optimizers, self.opt_settings, lr, config.lr)
        self.hooks.start(step)
        active = self.active_optimizers(step)
        by_hand = len(self.optimizers) > 1 and self.world > 1
        batches = self.micro_batches(step)
        self.last_examples = sum(len(b) for b in batches) * self.world
        terms, outputs = StepTerms(len(batches)), []
        for micro, batch in enumerate(batches):
            with no_sync(self.forward_module, enabled=by_hand or micro < len(batches) - 1):
                out, loss = self.loss_call(batch, step)
                missing = sorted(set(self.optimizers) - set(loss.losses))
                if missing:
                    raise ConfigError(f"the objective gives no loss for optimiser {missing[0]!r}; it gives "
                                      f"{', '.join(loss.losses)}")
                backward(self.fabric, loss.losses, active, self.params, 1.0 / config.accumulate)
            terms.add(loss.losses, loss.logs)
            if self.hooks.read_outputs:
                outputs.append(out)
        finite = terms.finite()
        if self.world > 1:  # every rank skips, or none
            flag = finite.float() if torch.is_tensor(finite) else torch.tensor(float(finite), device=self.fabric.device)
            finite = self.fabric.all_reduce(flag, reduce_op="min")
        if not finite:
            self.skip_or_stop(step, terms)
        else:
            if by_hand:
                all_reduce_gradients(self.fabric, [p for name in active for p in self.params[name]])
            self.optimizer_steps(step, active, outputs, batches)
        return terms.logs, lr

    def optimizer_steps(self, step: int, active: list[str], outputs: list, batches: list) -> None:
        hooks = self.hooks
        for name in active:
            optimizer = self.optimizers[name]
            hooks.before_step(step, name, outputs, batches)
            if self.config.grad_clip > 0:
                self.fabric.clip_gradients(self.forward_module, optimizer, max_norm=self.config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            hooks.after_step(step, name, outputs, batches)
        for name in set(self.optimizers) - set(active):  # gradients a resting optimiser's parameters received
            self.optimizers[name].zero_grad(set_to_none=True)
        if self.average is not None:
            self.average.update(step)

    def skip_or_stop(self, step: int, terms: StepTerms) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        if self.config.on_nan == "stop" or self.state["skipped"] >= self.config.max_skipped:
            term, value = terms.first_nonfinite() or ("loss (on another rank)", math.nan)
            kept = (f"the last good checkpoint is {self.last_good}" if self.last_good
                    else "no checkpoint was written yet")
            if self.progress is not None:
                self.progress.close()
            raise TrainingDiverged(f"step {step}: loss term '{term}' is {value}; {kept}; "
                                   "lower lr, set grad_clip, or pass on_nan=skip")
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
                self.average.apply()  # the run is over: the model keeps the averaged weights
            fit_after_training(final, lambda: sample_batch(self.splits.train, AFTER_TRAINING_ROWS, self.config.seed))
            if self.out is not None:
                save_model(final, self.out / "model")
        self.fabric.barrier()
        state = self.state
        return {"train/steps": step, "train/stop_reason": self.stop_reason, "train/skipped_steps": state["skipped"],
                "train/wall_time_s": round(state["train_time_s"], 3), "train/examples": state["examples"],
                "train/samples_per_s": round(state["examples"] / max(state["train_time_s"], 1e-9), 1),
                **self.best_summary(), FINISHED_BEFORE: step == self.start_step}

    def best_summary(self) -> dict[str, Any]:
        best = self.state["best_val"]
        if not math.isfinite(best):
            return {"train/best_val_loss": None} if self.config.monitor == "loss" else {}
        return {f"train/best_val_{self.config.monitor}": best if self.config.monitor_mode == "min" else -best}

    def fit(self) -> dict[str, Any]:
        self.setup()
        self.module.train()
        step = self.start_step = self.state["step"]
        with StopRequests(enabled=self.world == 1) as stop:
            while step < self.total_steps:
                if stop.requested:
                    self.stop_on_request(step, stop.requested)
                step = self.fit_step(step)
        return self.finish(step)

    def stop_on_request(self, step: int, signal_name: str) -> None:
        """Ctrl-C or SIGTERM between two steps: write a checkpoint of the steps done (a run in memory has none),
        say how to continue, and raise KeyboardInterrupt."""
        if self.progress is not None:
            self.progress.close()
        path = self.save(step)
        where = (f"; checkpoint {path}; continue with --resume (resume=True)" if path
                 else " (a run in memory keeps nothing)")
        print(f"aekit: {signal_name} at step {step} of {self.total_steps}{where}", file=sys.stderr, flush=True)
        raise KeyboardInterrupt(signal_name)

    def fit_step(self, step: int) -> int:
        """One training step, its logs, and the validation and checkpoint that fall on it; the next step."""
        config = self.config
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
        return step

    def report_train(self, step: int, epoch: int, lr: float, logs: dict[str, torch.Tensor | float]) -> None:
        """The progress bar's count every step; every ``log_every`` steps (and at the end) the logs, read from the
        device in one copy: the last step's values (averaged over its micro-batches) in ``log.csv``, the
        progress bar's figures and the loggers."""
        if self.progress is not None:
            self.progress.update(1)
        if step % self.config.log_every and step != self.total_steps or (self.log is None and self.progress is None):
            return
        logs = read_logs(logs)
        if self.progress is not None:
            self.progress.heartbeat(", ".join(f"{k} {v:.4g}" for k, v in logs.items() if k in ("loss", "recon", "kl")))
        if self.log is not None:
            self.log.write({"step": step, "epoch": epoch, "split": "train", "lr": lr,
                            "time_s": self.state["train_time_s"], **logs})
            self.fabric.log_dict({f"train/{k}": v for k, v in logs.items()}, step=step)


class StopRequests:
    """Within the block, Ctrl-C (SIGINT) and SIGTERM ask the loop to stop after the step under way, so that the
    checkpoint it writes is one of whole steps and resuming stays exact; a second Ctrl-C interrupts at once.
    Only in one process's main thread (several DDP processes would have to agree on the step to stop at)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested: str | None = None
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if self.enabled:
            for number in (signal.SIGINT, signal.SIGTERM):
                self.previous[number] = signal.signal(number, self.request)
        return self

    def request(self, number: int, frame) -> None:
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = "interrupted (Ctrl-C)" if number == signal.SIGINT else "stopped (SIGTERM)"

    def __exit__(self, *exc) -> None:
        for number, handler in self.previous.items():
            signal.signal(number, handler)
