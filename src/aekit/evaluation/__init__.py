"""Evaluate a trained autoencoder on held-out data: the numbers in ``metrics.json``, by suite.

:func:`evaluate` makes one pass over the test split: each batch goes through the model once, ``out =
model(batch)``, and that output is handed to every suite the model names (``model.suites``). A suite is an object
with two methods, registered under a name:

- ``update(model, batch, out, state)`` reads one test batch and its output, and adds what it needs to its
  :class:`SuiteState` (running means with ``state.add``, rows to keep with ``state.keep``); what the output does
  not hold it computes from the same batch (``model.embed(batch)``, ``model.reconstruct(batch)``);
- ``compute(model, state) -> metrics`` turns the state into metrics once the pass is over, named without the split
  (``evaluate`` writes ``test/NAME``). By default (:class:`Suite`) every running mean is a metric.

For instance, the share of a code's entries near zero::

    from aekit.evaluation import Suite, register_suite

    @register_suite("near-zero")
    class NearZero(Suite):
        def update(self, model, batch, out, state):
            z = out.latent.z[0]  # [B, D], the code
            state.add("zero_share", (z.abs() < 1e-3).float().mean(1))  # [B], one value per example

A model then lists ``"near-zero"`` in its ``suites``, and ``metrics.json`` holds ``test/zero_share``.

Whatever its suites, the pass reports the mean of every per-example term ``[B]`` of ``out.terms`` (``recon`` =
-log p(x|z), ``kl``, ``adv``, ...) and of every 0-dim statistic of ``out.stats`` (weighted by batch size), and
``examples``. A 0-dim term is a whole-batch term (an MMD, a total correlation): its value depends on the batch
size, so it is averaged over the batches of the evaluation's ``batch_size`` only (the last, partial batch left
out) and ``batch_terms_batch_size`` states that size (:class:`~aekit.evaluation.one_pass.BatchTerms`). The suites:

- ``reconstruction``: ``mse``, ``psnr`` and, for data in [0, 1], ``bce`` of the reconstruction E[x | z];
- ``variational``: ``elbo``, ``kl_per_dim``, ``active_units`` (Burda et al. 2016) and, with ``nll_samples``,
  the importance-sampled ``nll`` with its standard error and ``bits_per_dim``;
- ``classification``: a classifier's accuracy and cross-entropy;
- ``masked``: a masked model's pixel errors on the hidden and on the visible patches, and the share hidden;
- ``representation``: linear-probe and k-NN accuracy of the point embeddings (labels needed; the probes are fit
  on embeddings of the training split) and, for a model without a posterior, its active code dimensions;
- ``link-prediction``: a graph model's ROC-AUC and average precision on the test edges;
- ``node-classification``: a linear probe on frozen node embeddings over the node split, mean and std over seeds;
- ``sparsity``: a sparse code's ``l0``, ``fvu`` and ``explained_variance`` over the split, and its dead and dense
  latents.
- ``codebook``: a quantised model's code usage over the split: the share of entries used, the perplexity, the
  dead entries, the code entropy in bits, and each residual stage's usage.
- ``disentanglement``: on a ground-truth factor dataset, the BetaVAE and FactorVAE scores, MIG, SAP, DCI, modularity,
  explicitness, InfoMEC and the total correlation of the codes, each beside its settings.

Later families add theirs (anomaly) with :func:`register_suite`.
"""

from aekit.evaluation import (  # noqa: F401  (registers the suites)
    classification,
    codebook,
    disentanglement,
    graph,
    masked,
    reconstruction,
    representation,
    sparsity,
    variational,
)
from aekit.evaluation.one_pass import BatchTerms, embed_dataset, evaluate
from aekit.evaluation.suite import SUITES, EvalContext, Suite, SuiteState, own_stream, register_suite

__all__ = ["SUITES", "BatchTerms", "EvalContext", "Suite", "SuiteState", "embed_dataset", "evaluate", "own_stream",
           "register_suite"]
