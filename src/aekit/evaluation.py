"""Evaluate a trained autoencoder on held-out data: the numbers in ``metrics.json``."""

from __future__ import annotations

import math
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
        idx = slice(start, min(start + batch_size, n))
        yield data.inputs(idx), data.labels(idx)


@torch.no_grad()
def embed_dataset(model, data: Dataset, batch_size: int = 500, limit: int | None = None) -> torch.Tensor:
    device = next(model.parameters()).device
    return torch.cat([model.embed(x.to(device)).cpu() for x, _ in _batches(data, batch_size, limit)])


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
) -> dict[str, Any]:
    """All metrics of ``model`` on the test split (or on ``data`` itself when it is a Dataset).

    Keys are flat, prefixed by the split: ``test/recon`` (-log p(x|z) per example), ``test/mse``, ``test/psnr``,
    ``test/bce`` (data in [0, 1]); for a variational model ``test/elbo``, ``test/kl``, ``test/active_units``,
    ``test/kl_per_dim``; with ``nll_samples = K > 0`` ``test/nll`` = -log p(x) by importance sampling with K
    samples, averaged over the examples, with its standard error over them ``test/nll_stderr``, and for discrete
    likelihoods ``test/bits_per_dim`` = nll / (D ln 2); with labels
    ``test/linear_probe_acc`` and ``test/knn_acc`` (probes fit on train embeddings).
    """
    test = data.test if isinstance(data, Splits) else data
    if len(test) == 0:
        return {f"{split}/examples": 0}
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    count = 0
    means, kl_dims = [], []
    in_unit_range = True
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for x, _ in _batches(test, batch_size):
            x = x.to(device)
            out = model(x)
            x_hat = model.reconstruct(x)
            terms = {k: v for k, v in out.terms.items()}
            if "kl" in terms:
                terms["elbo"] = -(terms["recon"] + terms["kl"])
                kl_dims.append(out.latent.stats["kl_per_dim"].cpu())
            terms["mse"] = mse(x, x_hat)
            terms["psnr"] = psnr(x, x_hat)
            in_unit_range = in_unit_range and bool(x.min() >= 0) and bool(x.max() <= 1)
            if in_unit_range:
                terms["bce"] = bce(x, x_hat)
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.sum())
            means.append(out.latent.mean.cpu())
            count += x.shape[0]
        metrics: dict[str, Any] = {f"{split}/{k}": v / count for k, v in sums.items() if k != "bce" or in_unit_range}
        metrics[f"{split}/examples"] = count
        mu = torch.cat(means)
        metrics[f"{split}/active_units"] = active_units(mu) if kl_dims else int((mu.var(0) > 0.01).sum())
        if kl_dims:
            metrics[f"{split}/kl_per_dim"] = [round(float(v), 5) for v in kl_per_dimension(torch.cat(kl_dims))]
        if nll_samples > 0 and getattr(model.bottleneck, "stochastic", False):
            nll = -torch.cat([
                importance_sampled_log_likelihood(model, x.to(device), n_samples=nll_samples).double().cpu()
                for x, _ in _batches(test, max(1, batch_size // 2), nll_examples)
            ])  # [N], one estimate per example
            metrics[f"{split}/nll"] = mean = float(nll.mean())
            if len(nll) > 1:  # how much the mean would move with another draw of as many test examples
                metrics[f"{split}/nll_stderr"] = float(nll.std() / math.sqrt(len(nll)))
            metrics[f"{split}/nll_samples"] = nll_samples
            if model.config.likelihood in ("bernoulli", "logistic"):  # discrete data: a code length
                metrics[f"{split}/bits_per_dim"] = mean / (math.prod(test.shape) * math.log(2))
    if isinstance(data, Splits) and test.y is not None and data.train.y is not None:
        z_train = embed_dataset(model, data.train, limit=probe_examples)
        y_train = data.train.labels(slice(0, len(z_train)))
        if len(torch.unique(y_train)) > 1:
            metrics[f"{split}/linear_probe_acc"] = linear_probe_accuracy(z_train, y_train, mu, test.y)
            metrics[f"{split}/knn_acc"] = knn_accuracy(z_train, y_train, mu, test.y)
    return {k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in metrics.items()}
