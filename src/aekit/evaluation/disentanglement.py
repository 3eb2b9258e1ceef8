"""The ``disentanglement`` suite: the metrics of :mod:`aekit.metrics.disentanglement` on a model's codes of a
ground-truth factor dataset's test split (:mod:`aekit.data.factors`), each value beside the settings it was
computed with."""

from __future__ import annotations

import warnings
from typing import Any

from aekit.data.factors import factors_of
from aekit.evaluation.suite import Suite, SuiteState, register_suite
from aekit.evaluation.variational import in_subset
from aekit.metrics.disentanglement import BINS, disentanglement_metrics, total_correlation

METRIC_EXAMPLES = 10_000  # test examples the metrics are computed on: every metric in seconds at this size
DCI_REGRESSOR = "logistic"  # the fast one; gradient-boosted trees take minutes on dSprites' 32- and 40-level factors
SAP_MODE = "discrete"
PRUNE = 0.05  # FactorVAE's threshold on a unit's variance


@register_suite("disentanglement")
class Disentanglement(Suite):
    """On ``metric_examples`` (at most 10,000) test examples drawn once at random (the same for every model, as
    :func:`~aekit.evaluation.variational.in_subset`), the point embeddings (the posterior means, ``out.latent.mean``
    flattened) against the examples' factors: ``beta_vae``, ``factor_vae``, ``mig``, ``sap``,
    ``dci_disentanglement``, ``dci_completeness``, ``dci_informativeness``, ``modularity``, ``explicitness``,
    ``infom``, ``infoc``, ``infoe`` (:func:`aekit.metrics.disentanglement.disentanglement_metrics`, seeded with the
    evaluation's seed, DCI with the fast ``logistic`` regressor), and ``total_correlation_mean``, the Gaussian total
    correlation of the mean codes, with ``total_correlation_sampled``, that of one code drawn from each posterior,
    for a stochastic bottleneck. Each metric's settings are recorded beside it (``mig_bins``, ``dci_regressor``,
    ``sap_mode``, ``factor_vae_prune``, ...). Test data without factors is refused at the first batch."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        if "factors" not in state.values:
            state.values["factors"] = factors_of(state.ctx.test)  # [N, K]; a one-line error for data without
        offset = state.values.get("seen", 0)
        state.values["seen"] = offset + len(batch)
        rows = in_subset(state, METRIC_EXAMPLES, offset, len(batch))
        state.keep("rows", rows)
        state.keep("codes", out.latent.mean.flatten(1)[rows])  # [B, *L, D] -> [b, prod(L) D]
        if getattr(model.bottleneck, "stochastic", False):
            state.keep("sampled", out.latent.z[0].flatten(1)[rows])

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        codes = state.rows("codes")
        if codes is None or len(codes) < 2:
            return {}
        factors = state.values["factors"][state.rows("rows")]
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # the probes' solvers stop at their iteration cap on codes that say little
            warnings.simplefilter("ignore", ConvergenceWarning)
            metrics = disentanglement_metrics(codes, factors, bins=BINS, sap_mode=SAP_MODE,
                                              dci_regressor=DCI_REGRESSOR, prune=PRUNE, seed=state.ctx.seed)
        metrics["total_correlation_mean"] = metrics.pop("total_correlation")
        sampled = state.rows("sampled")
        if sampled is not None:
            metrics["total_correlation_sampled"] = total_correlation(sampled)
        return {**metrics, "metric_examples": len(codes)}
