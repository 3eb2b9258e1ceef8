"""The graph suites: ``link-prediction`` and ``node-classification``, each on the test split's one batch, the
whole graph."""

from __future__ import annotations

from typing import Any

from aekit.evaluation.suite import Suite, SuiteState, register_suite


@register_suite("link-prediction")
class LinkPrediction(Suite):
    """``auc`` and ``ap``: ROC-AUC and average precision of the held-out edges against as many non-edges
    (Kipf & Welling 2016), scored by the decoder on the node embeddings; ``edges``, how many were held out."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        from aekit.metrics.graph import link_scores

        if batch.pos_edges is None or batch.neg_edges is None:
            return
        z = model.embed(batch)  # [N, D]
        state.values.update(link_scores(model.decoder(z, batch.pos_edges), model.decoder(z, batch.neg_edges)))
        state.values["edges"] = int(batch.pos_edges.shape[1])

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        return dict(state.values)


@register_suite("node-classification")
class NodeClassification(Suite):
    """A linear probe on the frozen node embeddings over the data's node split, GraphMAE's protocol
    (:func:`aekit.metrics.graph.node_probe_accuracy`): ``node_acc`` and ``node_acc_std``, mean and std over
    ``probe_seeds`` seeds, each seed's ``node_accs``, ``node_acc_last`` and ``node_val_acc``."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        if batch.node_mask is not None:
            state.keep("z", model.embed(batch))  # [N, D]

    def compute(self, model, state: SuiteState) -> dict[str, Any]:
        from aekit.metrics.graph import node_probe_accuracy

        ctx, z = state.ctx, state.rows("z")
        if ctx.splits is None or ctx.test.y is None or z is None:
            return {}
        masks = [getattr(ctx.splits, part).batch().node_mask for part in ("train", "val", "test")]
        if any(m is None for m in masks):
            return {}
        c = model.config
        result = node_probe_accuracy(z, ctx.test.y, *masks, seeds=ctx.probe_seeds,
                                     epochs=getattr(c, "probe_epochs", 300), lr=getattr(c, "probe_lr", 0.01),
                                     weight_decay=getattr(c, "probe_weight_decay", 1e-4))
        return {"node_acc": result["acc"], "node_acc_std": result["acc_std"], "node_acc_last": result["acc_last"],
                "node_val_acc": result["val_acc"], "node_accs": result["accs"]}
