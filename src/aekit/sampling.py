"""Ex-post samplers with a trained model: fit one on the model's training latents, score its samples, save it
beside the model and load it back (:mod:`aekit.samplers` holds the samplers themselves).

A sampler is fitted to the posterior means (``model.embed``) of up to :data:`aekit.parts.AFTER_TRAINING_ROWS`
training examples, with the validation examples' latents for held-out statistics, and attaches to the model as
``model.samplers[name]``; ``model.sample(n, sampler=name)`` then decodes its draws. It is saved in the model's
folder as ``samplers/<name>.safetensors`` (its tensors) and ``samplers/<name>.json`` (format, name, options, the
fit's statistics and the sample-quality score); :func:`aekit.load` attaches every saved sampler again. No pickles.

Sample quality: precision and recall (Kynkäänniemi et al. 2019, k = 3; :func:`aekit.metrics.samples.
precision_recall`) of up to :data:`QUALITY_ROWS` decoded samples against as many held-out test images, both in
the feature space of the model's own encoder (their posterior means).
"""

from __future__ import annotations

import inspect
import json
import time
from pathlib import Path
from typing import Any

import torch

from aekit.errors import ConfigError, DataError
from aekit.parts import AFTER_TRAINING_ROWS, PartContext, build_part, get_part, part_names
from aekit.samplers import Sampler

SAMPLER_FORMAT = "aekit-sampler/1"
SAMPLERS_DIR = "samplers"  # inside the model's folder
QUALITY_ROWS = 2000  # test images and samples each, for precision and recall
EMBED_CHUNK = 1024  # examples embedded at a time


def check_model(model: Any, name: str) -> None:
    """A ConfigError (one line) where ``name`` is no registered sampler (listing them), where ``model`` has no
    continuous latents a sampler can fit and decode, or no prior for ``name = prior``."""
    from aekit.models.base import Autoencoder
    from aekit.nn.quantize.base import Quantizer

    get_part("samplers", name)

    if getattr(model, "data_kind", "array") == "graph":
        raise ConfigError(f"{model.name} is a graph model: its latents are node embeddings with no decoder to draw a "
                          "new graph from; fit samplers to an autoencoder of arrays (vae, ae, rae, ...)")
    if not isinstance(model, Autoencoder):
        raise ConfigError(f"{model.name} ({type(model).__name__}) has no latent space to decode samples from; fit "
                          "samplers to an encoder -> bottleneck -> decoder model (vae, ae, rae, ...)")
    if isinstance(model.bottleneck, Quantizer):
        raise ConfigError(f"{model.name}'s codes are discrete ({type(model.bottleneck).__name__}), which a continuous "
                          "sampler does not fit; train a prior over its codes: aekit train code-prior init=RUN")
    if model.config.condition_dim:
        raise ConfigError(f"{model.name} is conditional (condition_dim={model.config.condition_dim}); samplers fit "
                          "unconditional models only")
    if name == "prior" and model.bottleneck.prior is None:
        others = ", ".join(n for n in part_names("samplers") if n != "prior")
        raise ConfigError(f"{model.name} has no prior (its bottleneck is deterministic) for sampler=prior; fit an "
                          f"ex-post sampler instead: {others}")


def build_sampler(model: Any, name: str, **options: Any) -> Sampler:
    """Sampler ``name`` sized for ``model``'s latents and bound to it, with ``options`` (its settings); records its
    ``name`` and its ``options`` in full (defaults included, as JSON values)."""
    check_model(model, name)
    context = PartContext(latent_shape=tuple(model.bottleneck.latent_shape), model=model.name)
    sampler = build_part("samplers", name, context=context, **options)
    if callable(getattr(sampler, "bind", None)):
        sampler.bind(model)
    params = inspect.signature(get_part("samplers", name).factory).parameters.values()
    defaults = {p.name: p.default for p in params if p.name not in ("self", "context")}
    sampler.name = name
    sampler.options = {key: list(value) if isinstance(value, tuple) else value
                       for key, value in {**defaults, **options}.items()}
    sampler.fit_stats, sampler.quality = {}, {}
    return sampler.to(model.device)


@torch.no_grad()
def latents(model: Any, x: torch.Tensor) -> torch.Tensor:
    """The posterior means of ``x [N, *S]``, flattened: ``[N, d]``, embedded in chunks."""
    chunks = [model.embed(chunk.to(model.device)).flatten(1) for chunk in x.split(EMBED_CHUNK)]  # [n, *L, D] -> [n, d]
    return torch.cat(chunks) if chunks else torch.zeros(0, 1)


@torch.no_grad()
def decode_latents(model: Any, z: torch.Tensor) -> torch.Tensor:
    """E[x | z] for flat latents ``z [n, d]``, in the data's shape ``[n, *S]``."""
    z = z.to(model.device).view(len(z), *model.bottleneck.latent_shape)  # [n, d] -> [n, *L, D]
    return model.likelihood.mean(model.decode(z))


def as_splits(data: Any):
    """Train, validation and test splits of ``data``: a registered dataset's name or a path (split as a run's
    defaults split it), Splits, or data in memory (:func:`aekit.run_config.splits_of`)."""
    import os

    from aekit.run_config import DataConfig, load_splits, splits_of

    if isinstance(data, (str, os.PathLike)):
        return load_splits(DataConfig(name=str(data)))
    return splits_of(data, DataConfig())


def rows_of(source: Any, rows: int, seed: int) -> torch.Tensor:
    """Up to ``rows`` inputs of a map source, drawn under ``seed`` (none from an empty one)."""
    from aekit.data.sample import sample_batch

    if len(source) == 0:
        return torch.zeros(0)
    return sample_batch(source, rows, seed).inputs


def fit_sampler(model: Any, name: str, data: Any, *, steps: int | None = None, seed: int = 0,
                **options: Any) -> Sampler:
    """Fit sampler ``name`` (with ``options``) to ``model``'s latents of ``data``'s training examples (up to
    :data:`AFTER_TRAINING_ROWS`), for ``steps`` (the sampler's default when None), under ``seed``; score its
    samples against the test split where it has examples (:func:`sample_quality`); attach it as
    ``model.samplers[name]`` and return it. ``model.fit_sampler(name, data=...)`` calls it."""
    if steps is not None and steps < 0:
        raise ConfigError(f"steps={steps}: give a number of fitting steps >= 0 (0: none for a sampler fitted by EM)")
    sampler = build_sampler(model, name, **options)
    splits = as_splits(data)
    if tuple(splits.shape) != tuple(model.config.data_shape):
        raise DataError(f"examples of shape {tuple(splits.shape)} do not fit {model.name}, which takes "
                        f"{tuple(model.config.data_shape)}; fit the sampler on the model's own training data")
    was_training = model.training
    model.eval()
    try:
        z_train = latents(model, rows_of(splits.train, AFTER_TRAINING_ROWS, seed))
        if len(z_train) < 2:
            raise DataError(f"{len(z_train)} training examples: a sampler needs at least 2 latents to fit; give the "
                            "data the model was trained on")
        z_val = latents(model, rows_of(splits.val, AFTER_TRAINING_ROWS, seed)) if len(splits.val) else z_train[:0]
        started = time.perf_counter()
        stats = sampler.fit(z_train, z_val, sampler.default_steps if steps is None else steps,
                            torch.Generator().manual_seed(seed))
        sampler.fit_stats = {**stats, "train_latents": len(z_train), "val_latents": len(z_val),
                             "fit_seconds": round(time.perf_counter() - started, 3)}
        if len(splits.test) > 3:
            sampler.quality = sample_quality(model, sampler, rows_of(splits.test, QUALITY_ROWS, seed), seed=seed)
    finally:
        model.train(was_training)
    model.samplers[name] = sampler
    return sampler


@torch.no_grad()
def sample_quality(model: Any, sampler: Sampler, x_test: torch.Tensor, n: int | None = None, seed: int = 0,
                   k: int = 3) -> dict[str, Any]:
    """Precision and recall (Kynkäänniemi et al. 2019) of ``n`` decoded samples (as many as test images when
    None) against ``x_test [N, *S]``, in the feature space of the model's encoder (posterior means), with ``k``
    neighbours."""
    from aekit.metrics.samples import precision_recall

    n = len(x_test) if n is None else n
    samples = decode_latents(model, sampler.sample(n, torch.Generator().manual_seed(seed)))  # [n, *S]
    scores = precision_recall(latents(model, x_test), latents(model, samples), k=k)
    return {**scores, "k": k, "samples": n, "test_examples": len(x_test), "features": "posterior means"}


def save_sampler(sampler: Sampler, model_dir: str | Path) -> Path:
    """Write ``<model_dir>/samplers/<name>.safetensors`` and ``<name>.json``; returns the JSON's path."""
    from aekit.io import atomic_write_text, save_tensors

    folder = Path(model_dir) / SAMPLERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    save_tensors(sampler.state_dict(), folder / f"{sampler.name}.safetensors", metadata={"format": SAMPLER_FORMAT})
    meta = {"format": SAMPLER_FORMAT, "name": sampler.name, "options": sampler.options, "fit": sampler.fit_stats,
            "quality": sampler.quality}
    atomic_write_text(folder / f"{sampler.name}.json", json.dumps(meta, indent=2) + "\n")
    return folder / f"{sampler.name}.json"


def load_sampler(model: Any, path: Path) -> Sampler:
    """The sampler saved as ``path`` (its JSON) for ``model``, rebuilt from its options with its tensors."""
    from aekit.io import load_tensors, read_json

    meta = read_json(path)
    if meta.get("format") != SAMPLER_FORMAT:
        raise DataError(f"{path}: not an aekit sampler config (format {meta.get('format')!r})")
    sampler = build_sampler(model, meta["name"], **meta.get("options", {}))
    sampler.load_state_dict(load_tensors(path.with_suffix(".safetensors")))
    sampler.fit_stats, sampler.quality = meta.get("fit", {}), meta.get("quality", {})
    return sampler.eval()


def load_samplers(model: Any, model_dir: str | Path) -> None:
    """Attach every sampler saved in ``<model_dir>/samplers`` to ``model`` (:func:`aekit.load` calls it)."""
    folder = Path(model_dir) / SAMPLERS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        model.samplers[path.stem] = load_sampler(model, path)


def run_sampler(run_dir: str | Path, model: Any, name: str, options: dict[str, Any], *, steps: int | None = None,
                seed: int = 0, refit: bool = False) -> tuple[Sampler, bool]:
    """Sampler ``name`` of the run in ``run_dir``: the saved one (already attached by :func:`aekit.load`), or,
    the first time (or with ``refit``), one fitted on the run's training data and saved in its model folder.
    Returns ``(sampler, fitted now)``; options that differ from the saved sampler's are a ConfigError."""
    from aekit.config import from_dict
    from aekit.io import read_json, resolve_model_dir
    from aekit.progress import note
    from aekit.run_config import DataConfig, load_splits

    check_model(model, name)
    saved = model.samplers.get(name)
    if saved is not None and not refit:
        changed = {key: value for key, value in options.items() if saved.options.get(key) != value}
        if changed or steps is not None:
            raise ConfigError(f"sampler {name} is saved with options {saved.options}; pass --refit to fit it again "
                              f"with {changed or {'steps': steps}}")
        return saved, False
    run = read_json(Path(run_dir) / "config.json")
    if not isinstance(run.get("data"), dict):
        raise DataError(f"{Path(run_dir) / 'config.json'}: no data section; pass the run directory that training "
                        "wrote, or fit in Python: model.fit_sampler(name, data=...)")
    build_sampler(model, name, **options)  # a bad option is refused before the data are read
    note(f"fitting sampler {name} on {run_dir}'s training latents ...")
    splits = load_splits(from_dict(DataConfig, run["data"]))
    sampler = fit_sampler(model, name, splits, steps=steps, seed=seed, **options)
    save_sampler(sampler, resolve_model_dir(run_dir))
    add_to_report(Path(run_dir), model, sampler, seed)
    return sampler, True


def add_to_report(run_dir: Path, model: Any, sampler: Sampler, seed: int = 0) -> Path:
    """64 decoded draws of a fitted ``sampler`` as ``figures/sampler_NAME.png`` of the run (its precision and
    recall in the title), and the run's report written again to show it where the run has one."""
    from aekit.report import plot_samples, write_report

    quality = sampler.quality or {}
    title = f"Samples of the ex-post sampler {sampler.name}" + (
        f": precision {quality['precision']:.2f}, recall {quality['recall']:.2f}" if quality else "")
    samples = model.sample(64, generator=torch.Generator().manual_seed(seed), sampler=sampler.name).cpu()
    path = plot_samples(samples, run_dir / "figures" / f"sampler_{sampler.name}.png", title=title)
    if (run_dir / "report.html").is_file():
        write_report(run_dir)
    return path
