"""One training loop for every model, on Lightning Fabric (CPU, GPU, DDP, mixed precision).

``train("vae", data="digits", out="runs/vae", steps=500)`` trains, checkpoints, evaluates and writes the run
directory. The package is split by concern, each module readable on its own:

- :mod:`~aekit.training.api`: ``train()``, which resolves a run and trains it in one process or several;
- :mod:`~aekit.training.loop`: :class:`Trainer`, the loop from set-up to the saved model;
- :mod:`~aekit.training.step`: the step's lr and seed, the model call in the run's precision, ``torch.compile``;
- :mod:`~aekit.training.batches`: which batches a step trains on (the key to exact resumption);
- :mod:`~aekit.training.hooks`: the parts' step hooks, and the runner for loops of one's own;
- :mod:`~aekit.training.averaging`: the weight average (``ema_decay``) and the parts' buffer policies;
- :mod:`~aekit.training.log`: ``log.csv``, the step's terms on the device, validation;
- :mod:`~aekit.training.threads`: torch threads and memory retention on CPU.
"""

from aekit.run_config import DataConfig, TrainConfig, load_splits
from aekit.training.api import RunResult, import_modules, launched_rank, train
from aekit.training.averaging import WeightAverage, buffer_policies
from aekit.training.batches import StepBatches, StreamCursor
from aekit.training.hooks import StepContext, StepHooks, run_step_hooks, step_hooks, watch_step_hooks
from aekit.training.log import CSVLog, StepTerms, read_logs, validation_logs
from aekit.training.loop import Trainer
from aekit.training.step import (
    LossCall,
    cast_floats,
    learning_rate,
    module_call,
    no_sync,
    reseed,
    setup_on_strategy,
    step_seed,
)
from aekit.training.threads import idle_cores, retain_cpu_memory, set_threads

__all__ = [
    "CSVLog", "DataConfig", "LossCall", "RunResult", "StepBatches", "StepContext", "StepHooks", "StepTerms",
    "StreamCursor", "TrainConfig", "Trainer", "WeightAverage", "buffer_policies", "cast_floats", "idle_cores",
    "import_modules", "launched_rank", "learning_rate", "load_splits", "module_call", "no_sync", "read_logs",
    "reseed", "retain_cpu_memory", "run_step_hooks", "set_threads", "setup_on_strategy", "step_hooks",
    "step_seed", "train", "validation_logs", "watch_step_hooks",
]
