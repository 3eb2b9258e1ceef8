"""Bounds and estimates of log p(x), in nats per example."""

from __future__ import annotations

import math

import torch

from aekit.data.batch import Batch
from aekit.errors import ConfigError


@torch.no_grad()
def elbo_terms(model, x: torch.Tensor, n_samples: int = 1) -> dict[str, torch.Tensor]:
    """Per-example ``recon`` (-E_q log p(x|z)), ``kl`` and ``elbo = -(recon + kl)``, each ``[B]``."""
    out = model(x, n_samples=n_samples)
    recon, kl = out.terms["recon"], out.terms["kl"]
    return {"recon": recon, "kl": kl, "elbo": -(recon + kl)}


def importance_sampled_log_likelihood(
    model, x: torch.Tensor, n_samples: int = 5000, chunk_size: int | None = None, max_decoded: int | None = None,
    condition: torch.Tensor | None = None, differentiable: bool = False, eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(x) per example ``[B]`` by importance sampling with q(z|x) as proposal (Burda et al. 2016):

        log p(x) ~= log (1/K) sum_k p(x|z_k) p(z_k) / q(z_k|x),  z_k ~ q(z|x).

    The K samples are drawn in chunks (at most ``max_decoded`` decoder outputs at a time) and merged with a
    running log-sum-exp, so memory stays bounded for K up to thousands. The estimate is a lower bound in
    expectation that tightens to log p(x) as K grows; with K = 1 it is the single-sample ELBO. The samples and
    densities are the bottleneck's own (``importance_samples``), so any posterior and prior it pairs serve, a
    hierarchy of layers included.

    ``max_decoded`` defaults to 4096 on a CPU, where a chunk's decoder outputs then stay in the cache (an
    MNIST chunk is 13 MB), and to 65,536 on an accelerator, whose throughput grows with the chunk.
    ``differentiable=True`` keeps the graph (for gradients of log p(x) with respect to x); by default none is built.
    ``eps`` passes the standard-normal noise of all K samples in, ``[K, B, *L, D]`` (per-row streams).
    """
    if n_samples < 1:
        raise ConfigError(f"n_samples={n_samples} must be >= 1")
    with torch.set_grad_enabled(differentiable and torch.is_grad_enabled()):
        return _log_likelihood(model, x, n_samples, chunk_size, max_decoded, condition, eps)


def _log_likelihood(model, x, n_samples, chunk_size, max_decoded, condition, eps=None) -> torch.Tensor:
    bottleneck = model.bottleneck
    if not getattr(bottleneck, "stochastic", False):
        raise ConfigError(f"{model.name} has a deterministic bottleneck: log p(x) is not defined for it")
    condition = model.check_condition(condition, x.shape[0])
    latent = model.encode(x, condition=condition)
    given = Batch(x, condition=condition)  # what a prior that depends on the input or the condition reads
    batch = x.shape[0]
    max_decoded = max_decoded or (4096 if x.device.type == "cpu" else 65536)
    chunk = chunk_size or max(1, min(n_samples, max_decoded // max(batch, 1)))
    total = torch.full((batch,), -math.inf, device=x.device, dtype=x.dtype)
    done = 0
    while done < n_samples:
        k = min(chunk, n_samples - done)
        z, log_q, log_p = bottleneck.importance_samples(latent.params, k, None if eps is None else eps[done : done + k],
                                                        given)  # [k, B, *L, D], [k, B], [k, B]
        log_px_z = -model.likelihood.nll(model.decode(z, condition), x)  # [k, B]
        log_w = log_px_z + log_p - log_q  # [k, B]
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        done += k
    return total - math.log(n_samples)
