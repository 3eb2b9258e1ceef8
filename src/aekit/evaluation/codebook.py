"""The ``codebook`` suite: how a quantised model uses its codes over the whole split (every quantiser of
:mod:`aekit.nn.quantize` gives ``codes [B, *L, G]`` in its output's ``params``)."""

from __future__ import annotations

import math
from typing import Any

import torch

from aekit.evaluation.suite import Suite, SuiteState, register_suite
from aekit.nn.quantize.codebook import perplexity


def column_usage(codes: torch.Tensor, size: int) -> dict[str, float]:
    """For one code column over a split, ``codes [N]`` of a codebook of ``size`` entries: ``used`` (entries chosen
    at least once), ``usage`` = used / size, ``perplexity`` = exp H(p) of the empirical distribution p, and
    ``entropy_bits`` = H(p) / ln 2 (what a code costs under that distribution, the bar a prior over codes must
    beat)."""
    counts = torch.unique(codes, return_counts=True)[1]
    exp_entropy = float(perplexity(counts))
    return {"used": len(counts), "usage": len(counts) / size, "perplexity": exp_entropy,
            "entropy_bits": math.log2(exp_entropy)}


@register_suite("codebook")
class CodebookUsage(Suite):
    """Over the split's codes (a grid's positions as rows; each column, a head or a residual stage, apart):

    - ``codebook_usage``: the share of each column's entries used at least once, the mean over columns;
    - ``codebook_perplexity``: exp of the entropy of each column's code distribution, the mean over columns (K
      for uniform use, 1 for a collapsed codebook);
    - ``unused_codes``: the entries never used over the split, summed over columns (codebooks of <= 2^20
      entries);
    - ``code_entropy_bits``: the entropies of the columns in bits, summed: the bits per code position of a code
      distribution without context, and ``code_capacity_bits`` = sum_g log2 K_g;
    - ``stage{s}_usage`` for a residual quantiser of several stages: the usage of stage s alone."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        codes = out.latent.params.get("codes")
        if codes is not None:
            state.keep("codes", codes.reshape(-1, codes.shape[-1]))

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        codes = state.rows("codes")
        if codes is None:
            return {}
        sizes = model.bottleneck.codebook_sizes
        columns = [column_usage(codes[:, g], size) for g, size in enumerate(sizes)]
        results: dict[str, Any] = {
            "codebook_usage": sum(c["usage"] for c in columns) / len(columns),
            "codebook_perplexity": sum(c["perplexity"] for c in columns) / len(columns),
            "code_entropy_bits": sum(c["entropy_bits"] for c in columns),
            "code_capacity_bits": sum(math.log2(size) for size in sizes)}
        if max(sizes) <= 1 << 20:
            results["unused_codes"] = sum(size - c["used"] for c, size in zip(columns, sizes, strict=True))
        stages = getattr(model.bottleneck, "stages", 1)
        if stages > 1:
            per_stage = len(columns) // stages
            for s in range(stages):
                stage = columns[s * per_stage:(s + 1) * per_stage]
                results[f"stage{s}_usage"] = sum(c["usage"] for c in stage) / len(stage)
        return results


PRIOR_LOG_PROB_EXAMPLES = 500  # test examples a prior without an exact training loss is scored on


@register_suite("code-prior")
class CodePriorLikelihood(Suite):
    """A prior over codes on the split's codes: ``bits_per_code`` = -log2 p(k) / T, the log-likelihood of each
    example's T code tokens in bits per token (the autoregressive prior's exact loss over the whole split; for the
    masked prior, the exact log-likelihood along one random order of each of the first
    :data:`PRIOR_LOG_PROB_EXAMPLES` examples, said in ``bits_per_code_examples``), beside ``unigram_bits_per_code``,
    the entropy of the split's codes without context (per token, the mean over the columns): the bits a prior
    saves are the difference."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        state.keep("codes", out.codes)
        state.add("nll", out.terms["nll"])

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        codes = state.rows("codes")  # [N, T]
        t, columns = codes.shape[1], model.columns
        sizes = model.network.net.sizes
        per_column = codes.view(len(codes), -1, columns)  # [N, prod(L), G]
        unigram = sum(column_usage(per_column[..., g].flatten(), sizes[g])["entropy_bits"] for g in range(columns))
        results: dict[str, Any] = {"unigram_bits_per_code": unigram / columns}
        if model.config.network == "autoregressive":
            results["bits_per_code"] = state.mean("nll") / (t * math.log(2))
            results["bits_per_code_examples"] = len(codes)
            return results
        subset = codes[:PRIOR_LOG_PROB_EXAMPLES].to(model.device)
        generator = torch.Generator().manual_seed(state.ctx.seed)
        with torch.no_grad():
            log_p = torch.cat([model.network.log_prob(chunk, generator) for chunk in subset.split(100)])
        results["bits_per_code"] = float(-log_p.mean()) / (t * math.log(2))
        results["bits_per_code_examples"] = len(subset)
        return results
