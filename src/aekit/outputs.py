"""What a run leaves for a person: ``metrics.json``, ``figures/`` and ``report.html``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aekit.data.base import Splits
from aekit.evaluation import embed_dataset, evaluate
from aekit.io import atomic_write_text
from aekit.progress import note


def write_figures(model, splits: Splits, run_dir: Path, seed: int = 0, examples: int | None = None,
                  heartbeat=None, metrics: dict[str, Any] | None = None) -> list[Path]:
    """The figures of the model's suites: inputs vs reconstructions (reconstruction; original, masked and
    reconstruction rows for a masked model), samples from the prior,
    one row per class for a model conditioned on labels (models with a prior), the figures of the codes
    (:func:`_latent_figures`, with the KL per unit of the test ``metrics``), and the training curves.
    ``heartbeat(what)`` is told of each figure.

    A figure that fails is left out with a note on stderr, and ``figures/failed.json`` names it and why, for the
    report: the run's metrics and model are already written, and one figure should not lose the others."""
    from aekit import report
    from aekit.report.html import FAILED_FIGURES

    heartbeat = heartbeat or (lambda what: None)
    figures = run_dir / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    batch = splits.test.batch(slice(0, 16)).to(device)
    planned: dict[str, Any] = {}  # figure name -> a function that draws it

    if "masked" in model.suites:
        def masked() -> Path:
            views = model.masked_views(batch)
            rows = {k: views[k].cpu() for k in ("original", "masked", "reconstruction") if k in views}
            return report.plot_image_rows(rows, figures / "masked.png", title=f"masker={model.config.masker}, "
                                          f"ratio {model.config.mask_ratio}")
        planned["masked.png"] = masked
    elif "reconstruction" in model.suites and batch.inputs.is_floating_point():
        planned["reconstructions.png"] = lambda: report.plot_reconstructions(
            batch.inputs.cpu(), model.reconstruct(batch).cpu(), figures / "reconstructions.png")
    if model.has_prior:
        generator = torch.Generator().manual_seed(seed)
        if getattr(model.config, "condition_dim", 0) and getattr(model.config, "condition", None) == "labels":
            classes = min(model.config.condition_dim, 10)

            def per_class() -> Path:
                samples = torch.cat([model.sample(8, generator=generator, condition=k).cpu() for k in range(classes)])
                return report.plot_samples(samples, figures / "samples_per_class.png", n=len(samples), columns=8,
                                           title=f"Samples of classes 0-{classes - 1}, one row per class")
            planned["samples_per_class.png"] = per_class
        else:
            planned["samples.png"] = lambda: report.plot_samples(model.sample(64, generator=generator).cpu(),
                                                                 figures / "samples.png")
    planned.update(_latent_figures(model, splits, figures, examples, (metrics or {}).get("test/kl_per_dim")))
    if (run_dir / "log.csv").is_file():
        planned["training_curves.png"] = lambda: report.plot_training_curves(run_dir / "log.csv",
                                                                             figures / "training_curves.png")

    written, failed = [], {}
    for name, draw in planned.items():
        heartbeat(name)
        try:
            written.append(draw())
        except Exception as exc:  # noqa: BLE001 - any failure of one figure is reported, the others still drawn
            failed[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}".rstrip(": ")
            note(f"figure {name} was not drawn ({failed[name]})")
    if failed:
        atomic_write_text(figures / FAILED_FIGURES, json.dumps(failed, indent=2) + "\n")
    else:
        (figures / FAILED_FIGURES).unlink(missing_ok=True)
    return written


def _latent_figures(model, splits: Splits, figures: Path, examples: int | None,
                    kl_per_unit: list[float] | None = None) -> dict[str, Any]:
    """The figures of the codes: a sparse code's latent density (of at most 10,000 test examples), the latent map
    (of at most 2,000), the units' figures (:func:`_unit_figures`), a graph's node embeddings; the test examples
    are embedded once for all (no more than the evaluation took: ``examples``)."""
    from aekit import report

    planned: dict[str, Any] = {}
    suites, test = set(model.suites), splits.test
    n_density = min(len(test), 10000, examples or 10000) if "sparsity" in suites else 0
    n_map = min(len(test), 2000, examples or 2000) if "representation" in suites else 0
    embedded: list[torch.Tensor] = []

    def codes(n: int) -> torch.Tensor:  # the first n test examples' embeddings [n, *Z], embedded once for both
        if not embedded:
            embedded.append(embed_dataset(model, test, limit=max(n_density, n_map)))
        return embedded[0][:n]

    if n_density:
        planned["latent_density.png"] = lambda: report.plot_latent_density(codes(n_density).reshape(n_density, -1),
                                                                            figures / "latent_density.png")
    if n_map:
        def latent_map() -> Path:
            y = test.labels(slice(0, n_map))
            return report.plot_latent_map(codes(n_map).flatten(1), None if y is None else y.numpy(),
                                          figures / "latent_map.png", class_names=test.classes)
        planned["latent_map.png"] = latent_map
        planned.update(_unit_figures(model, test, figures, lambda: codes(n_map), kl_per_unit))
    if "codebook" in suites:
        def code_usage() -> Path:
            n = min(len(test), 10000, examples or 10000)
            with torch.no_grad():
                codes = torch.cat([model.encode(test.batch(slice(i, min(i + 500, n))).to(model.device).inputs)
                                   .params["codes"].flatten(0, -2).cpu() for i in range(0, n, 500)])
            sizes, stages = model.bottleneck.codebook_sizes, getattr(model.bottleneck, "stages", 1)
            heads = len(sizes) // stages
            names = [" ".join(([f"stage {g // heads}"] if stages > 1 else []) + ([f"head {g % heads}"] if heads > 1
                              else [])) or "code" for g in range(len(sizes))]
            return report.plot_code_usage(codes, sizes, figures / "code_usage.png", names)
        planned["code_usage.png"] = code_usage
    if {"link-prediction", "node-classification"} & set(model.suites):  # a graph: its node embeddings
        def node_map() -> Path:
            y = splits.test.y
            return report.plot_latent_map(model.embed(splits.test.batch()).cpu(), None if y is None else y.numpy(),
                                          figures / "node_embeddings.png", class_names=splits.test.classes)
        planned["node_embeddings.png"] = node_map
    return planned


TRAVERSAL_STEPS = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # offsets from an input's code, in units of the spread
TRAVERSAL_UNITS = 10  # the units shown: those with the most KL (or spread), at most this many
TRAVERSAL_INPUTS = 3


def _unit_figures(model, test, figures: Path, codes, kl_per_unit: list[float] | None) -> dict[str, Any]:
    """Per-unit figures of a vector code: the KL each unit carries (from the test metrics), latent traversals
    of images (:func:`latent_traversals`) and, on a factor dataset, each unit's information about each factor
    (:func:`aekit.metrics.disentanglement.normalised_information`, the codes of ``codes()``, at most 2,000)."""
    from aekit import report
    from aekit.data.factors import factors_of, has_factors
    from aekit.metrics.disentanglement import normalised_information

    planned: dict[str, Any] = {}
    latent_shape = getattr(getattr(model, "bottleneck", None), "latent_shape", ())
    if len(latent_shape) != 1:  # a grid of latents, or no bottleneck of aekit's
        return planned
    kl = kl_per_unit if isinstance(kl_per_unit, list) and len(kl_per_unit) == latent_shape[0] else None
    if kl is not None:
        planned["unit_kl.png"] = lambda: report.plot_unit_kl(kl, figures / "unit_kl.png")

    def shown_units(z: torch.Tensor) -> list[int]:  # the most informative units first
        weight = torch.tensor(kl) if kl is not None else z.var(0)
        return weight.argsort(descending=True)[:TRAVERSAL_UNITS].tolist()

    def label(unit: int) -> str:
        return f"z{unit}" + (f" ({kl[unit]:.2f} nats)" if kl is not None else "")

    conditional = getattr(model.config, "condition_dim", 0)
    images_in = test.batch(slice(0, 1)).inputs.dim() == 4
    if getattr(model.bottleneck, "traversable", False) and not conditional and images_in:
        def traversals() -> Path:
            z = codes()
            units = shown_units(z)
            spread_out = torch.linspace(0, len(test) - 1, TRAVERSAL_INPUTS).long()  # inputs across the split
            inputs = test.batch(spread_out).inputs
            images = latent_traversals(model, inputs, units, _spread(model, z))
            return report.plot_latent_traversals(images, [label(u) for u in units], TRAVERSAL_STEPS,
                                                 figures / "latent_traversals.png")
        planned["latent_traversals.png"] = traversals
    if has_factors(test):
        def factor_information() -> Path:
            z = codes()
            units = shown_units(z)
            info = normalised_information(z[:, units], factors_of(test)[: len(z)])  # [U, K]
            return report.plot_factor_information(info, [label(u) for u in units], list(test.grid.names),
                                                  figures / "factor_information.png")
        planned["factor_information.png"] = factor_information
    return planned


def _spread(model, z: torch.Tensor) -> torch.Tensor:
    """``[D]``: how far one step of a traversal moves each unit: the prior's standard deviation, 1, under a
    standard normal prior, else the codes' standard deviation over the test examples."""
    from aekit.nn.priors import StandardNormal

    if isinstance(getattr(model.bottleneck, "prior", None), StandardNormal):
        return torch.ones(z.shape[1])
    return z.std(0)


@torch.no_grad()
def latent_traversals(model, x: torch.Tensor, units: list[int], spread: torch.Tensor,
                      steps: tuple[float, ...] = TRAVERSAL_STEPS) -> torch.Tensor:
    """``[I, U, T, *S]``: for each input of ``x [I, *S]``, each unit u of ``units`` and each step t, the mean of
    p(x | z) at the input's code with z_u moved by t * spread_u (Higgins et al. 2017, Fig. 1)."""
    model.eval()
    z = model.embed(x.to(model.device)).cpu()  # [I, D]
    offsets = torch.tensor(steps, dtype=z.dtype)  # [T]
    moved = z[:, None, None, :].repeat(1, len(units), len(steps), 1)  # [I, U, T, D]
    for i, u in enumerate(units):
        moved[:, i, :, u] += offsets * spread[u]
    flat = moved.flatten(0, 2).to(model.device)  # [I U T, D]
    images = model.likelihood.mean(model.decode(flat))  # [I U T, *S]
    return images.cpu().view(len(x), len(units), len(steps), *images.shape[1:])


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    path = run_dir / "metrics.json"
    atomic_write_text(path, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return path


def refresh_model_card(run_dir: Path, metrics: dict[str, Any]) -> None:
    """The run's saved model's card (``model/README.md``) with the run's test metrics."""
    from aekit.io import model_card, read_json

    if (run_dir / "model" / "config.json").is_file():
        atomic_write_text(run_dir / "model" / "README.md", model_card(read_json(run_dir / "model" / "config.json"),
                                                                      metrics))


def evaluate_run(model, splits: Splits, config, trained_examples: int, mode: str | None = None,
                 progress: bool = True) -> dict[str, Any]:
    """The test metrics of a trained run: the protocol of ``config`` (``nll_samples``, ``nll_examples``,
    ``probe_examples``) in full or a share of it, as ``mode`` (default ``config.evaluation``) chooses for a run
    that trained on ``trained_examples`` examples, each counted at the model's ``training_share`` of an
    evaluation forward (:func:`aekit.evaluation.budget.plan_evaluation`); a quick evaluation says so in one line."""
    from aekit.evaluation.budget import plan_evaluation

    mode = mode or config.evaluation
    trained = int(trained_examples * getattr(model, "training_share", 1.0))  # in evaluation forwards
    plan, full = plan_evaluation(mode, trained, len(splits.test), config.nll_samples if _has_nll(model) else 0,
                                 config.nll_examples or None, config.probe_examples, _length(splits.train))
    if plan.protocol == "quick" and progress:
        how = "chosen" if mode == "quick" else "in proportion to the training"
        note(f"a quick evaluation ({how}): {plan.describe(full)}; evaluation=full (--eval full) or "
             "`aekit evaluate RUN` takes the whole protocol")
    return evaluate(model, splits, seed=config.seed, progress=progress, **plan.kwargs())


def _length(data) -> int | None:
    """How many examples ``data`` holds; None for a stream, whose length is not known."""
    try:
        return len(data)
    except TypeError:
        return None


def _has_nll(model) -> bool:
    """Whether the model's evaluation estimates log p(x): a variational model with a stochastic bottleneck."""
    return "variational" in model.suites and getattr(getattr(model, "bottleneck", None), "stochastic", False)


def write_outputs(model, splits: Splits, run_dir: Path, config, metrics: dict[str, Any] | None = None):
    """Evaluate on the test split (:func:`evaluate_run`), then write metrics, figures and the report; returns
    (metrics, report path)."""
    from aekit.progress import Phase
    from aekit.report import write_report

    metrics = dict(metrics or {})
    metrics.update(evaluate_run(model, splits, config, int(metrics.get("train/examples") or 0),
                                progress=config.progress))
    write_metrics(run_dir, metrics)
    refresh_model_card(run_dir, metrics)
    if config.figures and len(splits.test):
        with Phase("figures", None, enabled=config.progress) as phase:
            write_figures(model, splits, run_dir, seed=config.seed,
                          examples=metrics.get("test/examples"), heartbeat=phase.heartbeat, metrics=metrics)
    return metrics, write_report(run_dir)
