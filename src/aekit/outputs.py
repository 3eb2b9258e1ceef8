"""What a run leaves for a person: ``metrics.json``, ``figures/`` and ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aekit.data.base import Splits
from aekit.evaluation import embed_dataset, evaluate
from aekit.io import atomic_write_text


def write_figures(model, splits: Splits, run_dir: Path, seed: int = 0) -> list[Path]:
    """The figures of the model's suites: inputs vs reconstructions (reconstruction; original, masked and
    reconstruction rows for a masked model), samples from the prior,
    one row per class for a model conditioned on labels (models with a prior), the latent map (representation;
    a graph model's node embeddings by class), and the training curves."""
    from aekit.report import plot_image_rows, plot_latent_map, plot_reconstructions, plot_samples, plot_training_curves

    figures = run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    batch = splits.test.batch(slice(0, 16)).to(device)
    written = []
    if "masked" in model.suites:
        views = model.masked_views(batch)
        rows = {k: views[k].cpu() for k in ("original", "masked", "reconstruction") if k in views}
        written.append(plot_image_rows(rows, figures / "masked.png", title=f"masker={model.config.masker}, "
                                       f"ratio {model.config.mask_ratio}"))
    elif "reconstruction" in model.suites and batch.inputs.is_floating_point():
        x = batch.inputs
        written.append(plot_reconstructions(x.cpu(), model.reconstruct(batch).cpu(), figures / "reconstructions.png"))
    if model.has_prior:
        generator = torch.Generator().manual_seed(seed)
        if model.config.condition_dim and getattr(model.config, "condition", None) == "labels":
            classes = min(model.config.condition_dim, 10)
            samples = torch.cat([model.sample(8, generator=generator, condition=k).cpu() for k in range(classes)])
            written.append(plot_samples(samples, figures / "samples_per_class.png", n=len(samples), columns=8,
                                        title=f"Samples of classes 0-{classes - 1}, one row per class"))
        else:
            samples = model.sample(64, generator=generator).cpu()
            written.append(plot_samples(samples, figures / "samples.png"))
    if "representation" in model.suites:
        n = min(len(splits.test), 2000)
        z = embed_dataset(model, splits.test, limit=n).flatten(1)
        y = splits.test.labels(slice(0, n))
        y = None if y is None else y.numpy()
        written.append(plot_latent_map(z, y, figures / "latent_map.png", class_names=splits.test.classes))
    if {"link-prediction", "node-classification"} & set(model.suites):  # a graph: its node embeddings
        y = splits.test.y
        written.append(plot_latent_map(model.embed(splits.test.batch()).cpu(), None if y is None else y.numpy(),
                                       figures / "node_embeddings.png", class_names=splits.test.classes))
    if (run_dir / "log.csv").is_file():
        written.append(plot_training_curves(run_dir / "log.csv", figures / "training_curves.png"))
    return written


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    path = run_dir / "metrics.json"
    atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def write_outputs(model, splits: Splits, run_dir: Path, config, metrics: dict[str, Any] | None = None):
    """Evaluate on the test split, then write metrics, figures and the report; returns (metrics, report path)."""
    from aekit.report import write_report

    metrics = dict(metrics or {})
    metrics.update(
        evaluate(model, splits, nll_samples=config.nll_samples, nll_examples=config.nll_examples or None,
                 seed=config.seed)
    )
    write_metrics(run_dir, metrics)
    if config.figures and len(splits.test):
        write_figures(model, splits, run_dir, seed=config.seed)
    return metrics, write_report(run_dir)
