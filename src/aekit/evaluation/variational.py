"""The ``variational`` suite: what a model with a posterior q(z|x) and a prior p(z) adds, the bound on log p(x),
its latent diagnostics and the importance-sampled estimate of log p(x) itself."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from aekit.evaluation.suite import Suite, SuiteState, own_stream, register_suite
from aekit.metrics import (
    active_units,
    aggregate_posterior_mmd,
    collapsed_units,
    importance_sampled_log_likelihood,
    kl_per_dimension,
    mean_sample_correlation_gap,
    mutual_information,
)

NLL_DECODES = 200_000  # decoder outputs per piece of the NLL: a few seconds on a CPU
MI_EXAMPLES = 2_000  # examples whose codes the mutual information is estimated from (it costs their number squared)
MMD_STREAM = 1  # the key of the prior draws' stream, apart from the NLL's (keyed by example positions)


def in_subset(state: SuiteState, k: int | None, offset: int, size: int) -> torch.Tensor:
    """``[size]`` bool: which of the pass's examples ``offset .. offset + size`` are among ``k`` test examples
    drawn once at random (:func:`aekit.evaluation.budget.subset_indices`: the same for every model on the same
    data, a smaller subset inside a larger one); all of them when ``k`` is 0, None or the whole set. A test set
    ordered by class (binarized MNIST's is ordered by digit) would make its first k examples a few classes."""
    from aekit.evaluation.budget import subset_indices

    n = len(state.ctx.test)
    if not k or k >= n:
        return torch.ones(size, dtype=torch.bool)
    key = f"subset_{k}"
    if key not in state.values:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[subset_indices(n, k)] = True
        state.values[key] = mask
    return state.values[key][offset : offset + size]


@register_suite("variational")
class Variational(Suite):
    """``elbo`` = -(recon + kl) per example, averaged; ``kl_per_dim``, the KL of each latent dimension averaged over
    the examples (and the positions of a grid of latents), where the bottleneck reports it; ``active_units``
    (Burda et al. 2016), the dimensions whose posterior mean E_q[z_d] varies over the test examples by more than
    0.01.

    Collapse diagnostics (:mod:`aekit.metrics.latent`): ``collapsed_units``, the units whose mean KL is below 0.01
    nats (the posterior is the prior whatever the input), where the bottleneck reports the KL per dimension; for a
    Gaussian posterior, ``mutual_information`` = I_q(x; z) in nats (He et al. 2019's estimator) over ``mi_examples``
    (at most 2,000) test examples drawn once at random (:func:`in_subset`), and ``mean_sample_gap``, the largest
    over the units of how much more a unit correlates with another in its posterior means than in its samples
    (Bonheme & Grzes 2023: passive units). Where the bottleneck has a prior, ``aggregate_mmd``: MMD_u^2 between one
    code drawn from the posterior of each of those examples (draws from the aggregate posterior q(z)) and as many
    draws from p(z), with the IMQ kernel summed over the widths C_s = s * 2 d, s from 0.1 to 10, a grid of latents
    flattened to one vector of d coordinates per example (:func:`aekit.metrics.aggregate_posterior_mmd`; near 0 when
    q(z) fills the prior). With ``nll_samples = K > 0``, ``nll`` = -log p(x) by importance sampling with K samples
    over ``nll_examples`` test examples drawn the same way (all when 0), its standard error ``nll_stderr``, and for
    a likelihood that is a distribution over the data's values (a Bernoulli on binary data, the 8-bit likelihoods
    on 8-bit data: :meth:`~aekit.nn.likelihoods.Likelihood.codes`) ``bits_per_dim`` = nll / (D ln 2).

    The estimate is made batch by batch inside the pass, from random streams of its own (seeded by the
    evaluation's seed and the position of the examples), so the other metrics are the same with or without it;
    ``nll_samples`` and ``nll_examples`` say how it was taken."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        terms = out.terms
        if "kl" in terms and terms["kl"].dim() == 1:
            state.add("elbo", -(terms["recon"] + terms["kl"]))
        if "kl_per_dim" in out.stats:
            state.keep("kl_per_dim", out.stats["kl_per_dim"])
        offset = sum(map(len, state.kept.get("means", [])))  # the pass's examples before this batch
        means = out.latent.mean.flatten(1)  # E_q[z | x]: the posterior means  [B, D]
        state.keep("means", means)
        logvar = out.latent.params.get("logvar") if isinstance(out.latent.params, dict) else None
        if logvar is not None or getattr(model.bottleneck, "prior", None) is not None:
            rows = in_subset(state, MI_EXAMPLES, offset, len(batch))  # one sample of each code, for the diagnostics
            state.keep("sampled", out.latent.z[0].flatten(1)[rows])  # [B, *L, D] -> [B, prod(L) D]
            state.keep("mi_means", means[rows])
            if logvar is not None:
                state.keep("logvar", logvar.flatten(1)[rows])
        if state.ctx.nll_samples > 0 and getattr(model.bottleneck, "stochastic", False):
            self.estimate_nll(model, batch, state, in_subset(state, state.ctx.nll_examples, offset, len(batch)))
            likelihood = getattr(model, "likelihood", None)
            target = batch.inputs if batch.target is None else batch.target
            state.values["coded"] = (state.values.get("coded", True) and likelihood is not None
                                     and likelihood.codes(target))  # -log p(x) a code length on every batch

    @staticmethod
    def estimate_nll(model, batch, state: SuiteState, chosen: torch.Tensor) -> None:
        """-log p(x) of the batch's ``chosen`` examples (``[B]`` bool), kept for the mean; in pieces of about
        ``NLL_DECODES`` decoder outputs, each from its own stream, so that progress shows between them."""
        ctx = state.ctx
        done = sum(map(len, state.kept.get("nll", [])))
        index = chosen.nonzero().squeeze(1).to(batch.inputs.device)  # [n]
        condition = model.condition_of(batch)
        piece = max(1, NLL_DECODES // ctx.nll_samples)
        for start in range(0, len(index), piece):
            rows = index[start : start + piece]
            with own_stream(ctx.seed, done + start, batch.inputs.device):
                log_px = importance_sampled_log_likelihood(model, batch.inputs[rows], n_samples=ctx.nll_samples,
                                                           condition=None if condition is None else condition[rows])
            state.keep("nll", -log_px.double())  # [rows]
            ctx.heartbeat(f"NLL with K={ctx.nll_samples:,}: {done + start + len(rows):,} examples")

    @staticmethod
    def collapse(state: SuiteState) -> dict[str, Any]:
        """The mutual information and the mean-sample gap of the kept codes (a Gaussian posterior's)."""
        logvar = state.rows("logvar")
        if logvar is None or len(logvar) < 2:
            return {}
        mu, z = state.rows("mi_means"), state.rows("sampled")
        return {"mutual_information": float(mutual_information(mu, logvar, z)), "mi_examples": len(logvar),
                "mean_sample_gap": float(mean_sample_correlation_gap(mu, z).max())}

    @staticmethod
    def aggregate_mmd(model, state: SuiteState) -> dict[str, Any]:
        """MMD_u^2 between the kept codes (draws from the aggregate posterior q(z)) and as many draws from the
        prior, taken with a generator of their own seeded by the evaluation's seed, so that nothing else moves."""
        codes, prior = state.rows("sampled"), getattr(model.bottleneck, "prior", None)
        if codes is None or prior is None or len(codes) < 2 or getattr(prior, "conditional", False):
            return {}  # a conditional prior p(z|u) has no marginal to draw from
        device = next(model.parameters()).device
        generator = torch.Generator(device=device)
        generator.manual_seed(int(np.random.SeedSequence(state.ctx.seed, spawn_key=(MMD_STREAM,)).generate_state(1)[0]))
        draws = prior.sample(len(codes), generator=generator, device=device).cpu()  # [N, *L, D]
        return {"aggregate_mmd": float(aggregate_posterior_mmd(codes, draws))}

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        metrics: dict[str, Any] = {}
        if "elbo" in state.sums:
            metrics["elbo"] = state.mean("elbo")
        metrics["active_units"] = active_units(state.rows("means"))
        kl_dims = state.rows("kl_per_dim")  # [N, *L, D]; a grid of latents counts each position as an example
        if kl_dims is not None:
            metrics["kl_per_dim"] = [round(float(v), 5) for v in kl_per_dimension(kl_dims.flatten(0, -2))]
            metrics["collapsed_units"] = int(collapsed_units(kl_dims.flatten(0, -2)).sum())
        metrics.update(self.collapse(state))
        metrics.update(self.aggregate_mmd(model, state))
        nll = state.rows("nll")  # [N], one estimate per example
        if nll is not None:
            metrics["nll"] = mean = float(nll.mean())
            if len(nll) > 1:  # how much the mean would move with another draw of as many test examples
                metrics["nll_stderr"] = float(nll.std() / math.sqrt(len(nll)))
            metrics["nll_samples"] = state.ctx.nll_samples
            metrics["nll_examples"] = len(nll)
            if state.values.get("coded", False):  # a distribution over the data's values: a code length
                metrics["bits_per_dim"] = mean / (math.prod(state.ctx.test.shape) * math.log(2))
        return metrics
