"""``train()``: a model, data and settings in; a trained model, its run directory and its metrics out.

``train("vae", data="digits", out="runs/vae", steps=500)`` trains, checkpoints, evaluates and writes the run
directory: ``config.json`` (resolved), ``checkpoints/``, ``model/``, ``log.csv``, ``metrics.json``, ``figures/``
and ``report.html``. The run is resolved here (registered names, recipes, data in memory, a model instance), then
trained by :class:`~aekit.training.loop.Trainer` in this process or in each process Fabric launches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aekit.config import from_dict
from aekit.data.base import Splits
from aekit.errors import ConfigError
from aekit.io import atomic_write_text
from aekit.run_config import IN_MEMORY, DataConfig, TrainConfig, load_splits, resolve_run
from aekit.training.loop import FINISHED_BEFORE, Trainer


@dataclass
class RunResult:
    run_dir: Path | None
    model: Any
    metrics: dict[str, Any]
    report: Path | None


def _fit(
    fabric, run: dict[str, Any], out: Path, resume: bool, splits: Splits | None = None, instance=None,
    activation_source: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train on every DDP rank (each reads the data itself). ``instance``: a model the user built (with modules of
    their own), trained in place instead of one built from the config; ``activation_source``: the activation store
    the data came from, which the saved model names."""
    return Trainer(fabric, run, out, resume, splits, instance, activation_source).fit()


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


def _launched_fit(fabric, run: dict[str, Any], out: str, resume: bool, splits: Splits | None = None,
                  activation_source: dict[str, Any] | None = None):
    import_modules(run["train"].get("imports"))
    return _fit(fabric, run, Path(out), resume, splits, activation_source=activation_source)


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
    finished_before = summary.pop(FINISHED_BEFORE, False)
    if rank != 0:  # another node's process of a torchrun or SLURM launch: rank 0 evaluates and reports
        return RunResult(run_dir=out, model=None, metrics=summary, report=None)
    trained = _trained_model(config, out, trained, instance)
    report = None
    if finished_before and out is not None and (out / "metrics.json").is_file():
        from aekit.io import read_json
        from aekit.progress import note

        note(f"{out} had trained its {summary['train/steps']} steps already: its metrics and report stand as they "
             "were (`aekit evaluate RUN` evaluates it again; raise steps= to train on)")
        report = out / "report.html" if (out / "report.html").is_file() else None
        return RunResult(run_dir=out, model=trained, metrics=read_json(out / "metrics.json"), report=report)
    if evaluate and out is None:
        from aekit.outputs import evaluate_run

        summary.update(evaluate_run(trained, splits, config, int(summary.get("train/examples") or 0),
                                    progress=config.progress))
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
    source = _activation_source(run, given)
    if config.devices > 1 or config.num_nodes > 1:
        if instance is not None:
            raise ConfigError("a model instance trains on one device; pass a registered model name for devices > 1")
        if out is None:
            raise ConfigError("a run on several processes needs a run directory to meet in; pass out=...")
        summary = fabric.launch(_launched_fit, run, str(out), resume, None if given is None else splits, source)
        return dict(summary or {}), None
    trainer = Trainer(fabric, run, out, resume, splits, instance, source)
    return dict(trainer.fit()), trainer.module


def _activation_source(run: dict[str, Any], given: Any) -> dict[str, Any] | None:
    """The activation store a run trains on, as its saved model records it (``activations`` in ``config.json``):
    the store at the run's data path, or the one a source given in memory was read from; None for other data."""
    from aekit.data.store import ActivationStore, is_store

    name = run["data"].get("name")
    if given is None and isinstance(name, str) and is_store(name):
        return ActivationStore(name).provenance()
    train = getattr(given, "train", None)  # Splits given
    return getattr(given, "activation_source", None) or getattr(train, "activation_source", None)


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
