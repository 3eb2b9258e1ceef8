"""Evaluate a trained autoencoder on held-out data: the numbers in ``metrics.json``, by suite.

A suite is a plain function ``suite(model, data, context) -> metrics`` over one pass of the test split's
outputs; each model names the suites that apply to it (``model.suites``):

- ``reconstruction``: the model's per-example loss terms (``recon`` = -log p(x|z), ``kl``, ``adv``, ...), and
  ``mse``, ``psnr`` and, for data in [0, 1], ``bce`` of the reconstruction E[x | z] (any data shape);
- ``variational``: ``elbo``, ``kl_per_dim``, ``active_units`` (Burda et al. 2016) and, with ``nll_samples``,
  the importance-sampled ``nll`` with its standard error and ``bits_per_dim``;
- ``classification``: a classifier's accuracy and cross-entropy;
- ``masked``: a masked model's pixel errors on the hidden and on the visible patches, and the share hidden;
- ``representation``: linear-probe and k-NN accuracy of the point embeddings (labels needed) and, for a model
  without a posterior, the number of latent dimensions with variance over 0.01.

- ``link-prediction``: a graph model's ROC-AUC and average precision on the test edges;
- ``node-classification``: a linear probe on frozen node embeddings over the node split, mean and std over seeds.

Later families add theirs (codebook, sparsity, disentanglement, anomaly) with
:func:`register_suite`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from aekit.data.base import Dataset, Splits
from aekit.metrics import (
    active_units,
    bce,
    importance_sampled_log_likelihood,
    kl_per_dimension,
    knn_accuracy,
    linear_probe_accuracy,
    mse,
    psnr,
)


def _batches(data: Dataset, batch_size: int, limit: int | None = None):
    n = len(data) if limit is None else min(limit, len(data))
    for start in range(0, n, batch_size):
        yield data.batch(slice(start, min(start + batch_size, n)))


@torch.no_grad()
def embed_dataset(model, data: Dataset, batch_size: int = 500, limit: int | None = None) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.embed(b.to(device)).cpu() for b in _batches(data, batch_size, limit)])


@dataclass
class EvalContext:
    """What every suite may use: the settings, and one pass of the test split's outputs (``sums`` of per-example
    values, the posterior ``means``, ``kl_dims`` where the KL has a closed form per dimension)."""

    splits: Splits | None
    test: Dataset
    split: str
    nll_samples: int
    nll_examples: int | None
    batch_size: int
    probe_examples: int
    probe_seeds: int = 10
    count: int = 0
    sums: dict[str, float] = field(default_factory=dict)
    means: torch.Tensor | None = None
    kl_dims: torch.Tensor | None = None
    in_unit_range: bool = True


SUITES: dict[str, Callable[..., dict[str, Any]]] = {}


def register_suite(name: str) -> Callable:
    def add(fn: Callable) -> Callable:
        if name in SUITES:
            raise ValueError(f"evaluation suite {name!r} is registered twice")
        SUITES[name] = fn
        return fn

    return add


def _one_pass(model, ctx: EvalContext) -> None:
    """Score every test batch once: per-example terms and reconstruction errors summed, posterior means kept."""
    device = next(model.parameters()).device
    means, kl_dims = [], []
    for batch in _batches(ctx.test, ctx.batch_size):
        batch = batch.to(device)
        x = batch.inputs
        out = model(batch)
        values = {k: v for k, v in out.terms.items() if v.dim() == 1}
        if "kl" in values:
            values["elbo"] = -(values["recon"] + values["kl"])
        if "kl_per_dim" in out.stats:
            kl_dims.append(out.stats["kl_per_dim"].cpu())
        if x.is_floating_point() and "reconstruction" in model.suites:
            x_hat = model.reconstruct(batch)
            values["mse"], values["psnr"] = mse(x, x_hat), psnr(x, x_hat)
            ctx.in_unit_range = ctx.in_unit_range and bool(x.min() >= 0) and bool(x.max() <= 1)
            if ctx.in_unit_range:
                values["bce"] = bce(x, x_hat)
        for key, value in values.items():
            ctx.sums[key] = ctx.sums.get(key, 0.0) + float(value.sum())
        if {"representation", "variational"} & set(model.suites):
            means.append(model.embed(batch).cpu().flatten(1))  # the embeddings the probes read
        ctx.count += len(batch)
    ctx.means = torch.cat(means) if means else None
    ctx.kl_dims = torch.cat(kl_dims) if kl_dims else None
    if not ctx.in_unit_range:
        ctx.sums.pop("bce", None)


@register_suite("reconstruction")
def reconstruction_suite(model, ctx: EvalContext) -> dict[str, Any]:
    return {f"{ctx.split}/{k}": v / ctx.count for k, v in ctx.sums.items() if k not in ("elbo",)}


@register_suite("variational")
def variational_suite(model, ctx: EvalContext) -> dict[str, Any]:
    split = ctx.split
    metrics: dict[str, Any] = {}
    if "elbo" in ctx.sums:
        metrics[f"{split}/elbo"] = ctx.sums["elbo"] / ctx.count
    metrics[f"{split}/active_units"] = active_units(ctx.means)
    if ctx.kl_dims is not None:
        metrics[f"{split}/kl_per_dim"] = [round(float(v), 5) for v in kl_per_dimension(ctx.kl_dims)]
    if ctx.nll_samples > 0 and getattr(model.bottleneck, "stochastic", False):
        device = next(model.parameters()).device
        nll = -torch.cat([
            importance_sampled_log_likelihood(model, b.inputs.to(device), n_samples=ctx.nll_samples,
                                              condition=model.condition_of(b.to(device))).double().cpu()
            for b in _batches(ctx.test, max(1, ctx.batch_size // 2), ctx.nll_examples)
        ])  # [N], one estimate per example
        metrics[f"{split}/nll"] = mean = float(nll.mean())
        if len(nll) > 1:  # how much the mean would move with another draw of as many test examples
            metrics[f"{split}/nll_stderr"] = float(nll.std() / math.sqrt(len(nll)))
        metrics[f"{split}/nll_samples"] = ctx.nll_samples
        if model.config.likelihood in ("bernoulli", "logistic"):  # discrete data: a code length
            metrics[f"{split}/bits_per_dim"] = mean / (math.prod(ctx.test.shape) * math.log(2))
    return metrics


@register_suite("representation")
def representation_suite(model, ctx: EvalContext) -> dict[str, Any]:
    split = ctx.split
    metrics: dict[str, Any] = {}
    if "variational" not in model.suites and hasattr(model, "bottleneck"):  # the codes' spread, without a posterior
        metrics[f"{split}/active_units"] = int((ctx.means.var(0) > 0.01).sum()) if len(ctx.means) > 1 else 0
    splits = ctx.splits
    if splits is not None and ctx.test.y is not None and splits.train.y is not None:
        z_train = embed_dataset(model, splits.train, limit=ctx.probe_examples).flatten(1)
        y_train = splits.train.labels(slice(0, len(z_train)))
        if len(torch.unique(y_train)) > 1:
            metrics[f"{split}/linear_probe_acc"] = linear_probe_accuracy(z_train, y_train, ctx.means, ctx.test.y)
            metrics[f"{split}/knn_acc"] = knn_accuracy(z_train, y_train, ctx.means, ctx.test.y)
    return metrics


@register_suite("classification")
def classification_suite(model, ctx: EvalContext) -> dict[str, Any]:
    """Top-1 accuracy and the mean cross-entropy (label smoothing included) of a classifier."""
    if "correct" not in ctx.sums:
        return {}
    return {f"{ctx.split}/accuracy": ctx.sums["correct"] / ctx.count, f"{ctx.split}/ce": ctx.sums["ce"] / ctx.count}


@register_suite("masked")
def masked_suite(model, ctx: EvalContext) -> dict[str, Any]:
    """A masked model's loss (``recon``) and its errors on the hidden and on the visible patches, in pixels (with
    norm_pix_loss un-normalised) or, for a feature target, in the target's units; and the share hidden."""
    device = next(model.parameters()).device
    sums = {"recon": 0.0, "masked_mse": 0.0, "visible_mse": 0.0, "mask_ratio": 0.0}
    pixels = model.config.target == "pixels"
    for batch in _batches(ctx.test, ctx.batch_size):
        x = batch.inputs.to(device)
        out = model(x)
        sums["recon"] += float(out.terms["recon"].sum())
        if pixels:
            per_patch = (model.predicted_pixels(x, out) - model.patchify(x)).pow(2).mean(-1)  # [B, L]
        else:
            per_patch = model.patch_errors(x, out.pred)
        hidden = out.mask
        sums["masked_mse"] += float(model.hidden_mean(per_patch, hidden).sum())
        sums["visible_mse"] += float(model.hidden_mean(per_patch, 1 - hidden).sum())
        sums["mask_ratio"] += float(hidden.mean(1).sum())
    return {f"{ctx.split}/{k}": v / ctx.count for k, v in sums.items()}


@register_suite("link-prediction")
def link_prediction_suite(model, ctx: EvalContext) -> dict[str, Any]:
    """ROC-AUC and average precision of the held-out edges against as many non-edges (Kipf & Welling 2016)."""
    from aekit.metrics.graph import link_scores

    batch = ctx.test.batch()
    if batch.pos_edges is None or batch.neg_edges is None:
        return {}
    device = next(model.parameters()).device
    z = model.embed(batch)
    edges = (batch.pos_edges.to(device), batch.neg_edges.to(device))
    scores = link_scores(model.decoder(z, edges[0]), model.decoder(z, edges[1]))
    return {f"{ctx.split}/{k}": v for k, v in scores.items()} | {f"{ctx.split}/edges": int(edges[0].shape[1])}


@register_suite("node-classification")
def node_classification_suite(model, ctx: EvalContext) -> dict[str, Any]:
    """Linear probe on the frozen node embeddings over the data's node split, GraphMAE's protocol
    (:func:`aekit.metrics.graph.node_probe_accuracy`): mean and std over ``probe_seeds`` seeds."""
    from aekit.metrics.graph import node_probe_accuracy

    splits = ctx.splits
    if splits is None or ctx.test.y is None or ctx.test.batch().node_mask is None:
        return {}
    masks = [getattr(splits, part).batch().node_mask for part in ("train", "val", "test")]
    if any(m is None for m in masks):
        return {}
    z = model.embed(ctx.test.batch()).cpu()
    c = model.config
    result = node_probe_accuracy(z, ctx.test.y, *masks, seeds=ctx.probe_seeds, epochs=getattr(c, "probe_epochs", 300),
                                 lr=getattr(c, "probe_lr", 0.01), weight_decay=getattr(c, "probe_weight_decay", 1e-4))
    return {f"{ctx.split}/node_acc": result["acc"], f"{ctx.split}/node_acc_std": result["acc_std"],
            f"{ctx.split}/node_acc_last": result["acc_last"],
            f"{ctx.split}/node_val_acc": result["val_acc"], f"{ctx.split}/node_accs": result["accs"]}


@torch.no_grad()
def evaluate(
    model,
    data: Splits | Dataset,
    nll_samples: int = 0,
    nll_examples: int | None = None,
    batch_size: int = 250,
    probe_examples: int = 10000,
    seed: int = 0,
    split: str = "test",
    suites: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """The metrics of ``model``'s suites (or of ``suites``) on the test split, or on ``data`` itself when it is a
    Dataset. Keys are flat, prefixed by the split: ``test/recon`` (-log p(x|z) per example), ``test/mse``,
    ``test/psnr``, ``test/bce``; ``test/elbo``, ``test/kl``, ``test/active_units``, ``test/kl_per_dim``; with
    ``nll_samples = K > 0`` ``test/nll`` = -log p(x) by importance sampling with K samples, averaged over the
    examples, with its standard error ``test/nll_stderr`` and, for discrete likelihoods, ``test/bits_per_dim`` =
    nll / (D ln 2); with labels ``test/linear_probe_acc`` and ``test/knn_acc`` (probes fit on train embeddings).
    """
    test = data.test if isinstance(data, Splits) else data
    if len(test) == 0:
        return {f"{split}/examples": 0}
    suites = tuple(suites or model.suites)
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        from aekit.errors import ConfigError

        raise ConfigError(f"evaluation suite {unknown[0]!r} is unknown; choose from {', '.join(SUITES)}")
    model.eval()
    ctx = EvalContext(data if isinstance(data, Splits) else None, test, split, nll_samples, nll_examples,
                      batch_size, probe_examples)
    metrics: dict[str, Any] = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _one_pass(model, ctx)
        metrics[f"{split}/examples"] = ctx.count
        for name in suites:
            metrics.update(SUITES[name](model, ctx))
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
