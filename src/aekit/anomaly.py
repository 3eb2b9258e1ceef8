"""Anomaly scores of any aekit autoencoder, and why a score is high: per-element maps and attributions.

    scores = anomaly_scores(model, x, "elbo")                 # [B], higher = more anomalous, in nats
    maps = anomaly_maps(model, x, "combined")                 # [B, *S]: where in each example
    attributions = integrated_gradients(model, x, "recon")   # [B, *S], summing to score(x) - score(baseline)
    shares = reconstruction_attributions(model, x)           # [B, *S], summing to the recon score

**Scores** (``criterion``): ``recon`` = -log p(x | z = embed(x)) (half the squared error for a unit Gaussian
likelihood, plus a constant); ``elbo`` = the negative ELBO, -E_q[log p(x|z)] + KL(q(z|x) || p(z)), averaged
over ``n_samples`` posterior samples; ``nll`` = -log p(x) by importance sampling (Burda et al. 2016);
``combined`` = the sum of the ``combined`` map, the ceVAE's combination of reconstruction and density
(Zimmerer et al. 2018). Every score draws its samples from a fixed seed, so an example gets the same score
call after call and the score is a deterministic function of x (what gradients and attributions need).

**Maps** (``kind``, one value per input element, the shape of x): ``recon-error`` = |x - E[x | z = embed(x)]|;
``gradient`` = |d score(x) / dx| of the model's own score (``elbo`` for a model with a posterior, ``recon``
otherwise): how strongly each element moves the score (Zimmerer et al. 2019, "A case for the score");
``combined`` = ``recon-error * gradient``, large where an element is badly reconstructed *and* drives the density.

**Attributions**: each element's -log p(x_i | z), an exact split of the ``recon`` score; and integrated
gradients (Sundararajan, Taly & Yan 2017),

    IG_i(x) = (x_i - x'_i) * int_0^1 d score(x' + a (x - x')) / dx_i da,

by the midpoint rule with ``steps`` points, from a baseline x' (zeros: the mean row for standardised tables, a
black image for images). They satisfy completeness, sum_i IG_i = score(x) - score(x') up to the quadrature
error, so each feature's share of a score can be read off in nats.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Callable, Iterator

import torch

from aekit.errors import ConfigError, DataError

CRITERIA = ("recon", "elbo", "nll", "combined")
MAPS = ("recon-error", "gradient", "combined")
DIFFERENTIABLE = ("recon", "elbo", "nll")  # the scores integrated gradients and the gradient map may take


def has_posterior(model) -> bool:
    return bool(getattr(getattr(model, "bottleneck", None), "stochastic", False))


def check_criterion(model, criterion: str, allowed: tuple[str, ...] = CRITERIA, what: str = "criterion") -> None:
    """A one-line error unless ``model`` is an autoencoder that can be scored by ``criterion`` (one of ``allowed``)."""
    if not hasattr(model, "likelihood") or not hasattr(model, "bottleneck"):
        raise ConfigError(f"{getattr(model, 'name', type(model).__name__)} is not an encoder -> bottleneck -> "
                          "decoder autoencoder; anomaly scores need one (ae, vae, ce-vae, ...)")
    if criterion not in allowed:
        raise ConfigError(f"{what}={criterion!r} is unknown here; choose one of {', '.join(allowed)}")
    if criterion in ("elbo", "nll", "combined") and not has_posterior(model):
        raise ConfigError(f"{what}={criterion} needs a model with a posterior (vae, ce-vae, ...); {model.name} has "
                          "none: use recon")


def score_function(model, criterion: str = "recon", n_samples: int = 1, seed: int = 0, per_row: bool = False
                   ) -> Callable[[torch.Tensor], torch.Tensor]:
    """A differentiable ``x [B, *S] -> [B]`` for one of :data:`DIFFERENTIABLE`, with its posterior samples drawn
    from ``seed`` at every call (the same x gives the same value). ``per_row``: each row's samples come from a
    stream of its own, seeded by ``seed`` and the row's values (:func:`row_noise`), so that a row's score does not
    depend on the rows scored with it; a gradient or a path integral over x needs the batch's stream instead, whose
    samples do not move with x."""
    from aekit.metrics import importance_sampled_log_likelihood

    check_criterion(model, criterion, DIFFERENTIABLE)

    def score(x: torch.Tensor) -> torch.Tensor:
        k = max(1, n_samples)
        eps = row_noise(x, k, tuple(model.bottleneck.latent_shape), seed) if per_row and criterion != "recon" \
            else None
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            if criterion == "recon":
                z = model.encode(x).mean  # [B, D]; not embed(), which keeps no graph
                return model.likelihood.nll(model.decode(z).unsqueeze(0), x)[0]
            if criterion == "elbo":
                out = model(x, n_samples=k, eps=eps)
                return out.terms["recon"] + out.terms["kl"]
            return -importance_sampled_log_likelihood(model, x, n_samples=k, differentiable=True, eps=eps)

    return score


def row_noise(x: torch.Tensor, n_samples: int, latent_shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Standard-normal draws ``[S, B, *latent_shape]``, each row's from a generator seeded by ``seed`` and the
    row's own bytes: a deterministic function of the row, whichever rows are scored with it."""
    rows = x.detach().to("cpu", torch.float32).contiguous().view(x.shape[0], -1).numpy()
    draws = [torch.randn(n_samples, *latent_shape,
                         generator=torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(row.tobytes())))
             for row in rows]
    return torch.stack(draws, 1).to(x.device, x.dtype) if draws else x.new_zeros(n_samples, 0, *latent_shape)


def _as_input(model, x) -> torch.Tensor:
    x = torch.as_tensor(x, dtype=torch.float32, device=model.device)
    model.check_input(x)
    if not torch.isfinite(x).all():
        raise DataError("the inputs hold NaN or infinite values; clean or impute them before scoring")
    return x


@contextlib.contextmanager
def _evaluating(model) -> Iterator[None]:
    """The model in eval mode (no dropout, no context masks) for the block, then back as it was."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _gradient(score: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d score(x) / dx per example, ``[B, *S]`` (each example's score depends on its own row only)."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(score(x).sum(), x)
    return grad


def anomaly_maps(model, x, kind: str = "combined", n_samples: int = 1, seed: int = 0) -> torch.Tensor:
    """Per-element anomaly map ``[B, *S]`` of ``kind`` (:data:`MAPS`), for inputs ``x [B, *S]``."""
    if kind not in MAPS:
        raise ConfigError(f"kind={kind!r} is unknown; choose one of {', '.join(MAPS)}")
    check_criterion(model, "recon")
    x = _as_input(model, x)
    with _evaluating(model):
        maps = {}
        if kind in ("recon-error", "combined"):
            maps["recon-error"] = (x - model.reconstruct(x)).abs()
        if kind in ("gradient", "combined"):
            own = "elbo" if has_posterior(model) else "recon"
            maps["gradient"] = _gradient(score_function(model, own, n_samples, seed), x).abs()
        return maps["recon-error"] * maps["gradient"] if kind == "combined" else maps[kind]


@torch.no_grad()
def anomaly_scores(model, x, criterion: str = "recon", n_samples: int = 100, seed: int = 0,
                   batch_size: int = 1024) -> torch.Tensor:
    """Anomaly score per example ``[B]`` (higher = more anomalous, in nats; ``combined``: the combined map's
    sum), in batches of ``batch_size``; non-finite scores (an overflowing likelihood) become +inf. Progress is
    shown within :func:`aekit.progress.shown` (``aekit detect``)."""
    from aekit.progress import Phase

    check_criterion(model, criterion)
    x = _as_input(model, x)
    with _evaluating(model), Phase(f"scoring by {criterion}", len(x), unit="rows", enabled=None) as phase:
        parts = []
        for i in range(0, len(x), batch_size):
            rows = x[i : i + batch_size]
            if criterion == "combined":
                parts.append(anomaly_maps(model, rows, "combined", n_samples=1, seed=seed).flatten(1).sum(1))
            else:
                parts.append(score_function(model, criterion, n_samples, seed, per_row=True)(rows))
            phase.update(len(rows))
        scores = torch.cat(parts) if parts else x.new_zeros(0)
    return torch.where(torch.isfinite(scores), scores, torch.full_like(scores, math.inf))


@torch.no_grad()
def reconstruction_attributions(model, x) -> torch.Tensor:
    """Each element's -log p(x_i | z = embed(x)), ``[B, *S]``: an exact split of the ``recon`` score (its sum)."""
    check_criterion(model, "recon")
    x = _as_input(model, x)
    with _evaluating(model):
        return -model.likelihood.log_prob_elementwise(model.decode(model.embed(x)), x)


def integrated_gradients(model, x, criterion: str = "recon", baseline=None, steps: int = 32, n_samples: int = 1,
                         seed: int = 0) -> torch.Tensor:
    """Integrated-gradients attribution of the score ``criterion`` to each input element, ``[B, *S]``; the
    ``baseline`` (default zeros) has x's shape or one example's."""
    if steps < 1:
        raise ConfigError(f"steps={steps} must be >= 1")
    x = _as_input(model, x)
    x0 = torch.zeros_like(x) if baseline is None else torch.as_tensor(baseline, dtype=x.dtype, device=x.device)
    if x0.shape != x.shape:
        if tuple(x0.shape) != tuple(x.shape[1:]):
            raise DataError(f"baseline of shape {tuple(x0.shape)} fits neither the inputs {tuple(x.shape)} nor one "
                            f"example {tuple(x.shape[1:])}")
        x0 = x0.expand_as(x)
    score = score_function(model, criterion, n_samples, seed)
    with _evaluating(model):
        total = torch.zeros_like(x)
        for k in range(steps):
            a = (k + 0.5) / steps
            total += _gradient(score, x0 + a * (x - x0))
    return (x - x0) * total / steps
