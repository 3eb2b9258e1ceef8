"""The ``classification`` suite: a classifier's accuracy and cross-entropy."""

from __future__ import annotations

from aekit.evaluation.suite import Suite, SuiteState, register_suite


@register_suite("classification")
class Classification(Suite):
    """Top-1 ``accuracy`` and the mean cross-entropy ``ce`` (label smoothing included), from the per-example
    ``correct`` and ``ce`` terms of a classifier's output; none without labels."""

    def update(self, model, batch, out, state: SuiteState) -> None:
        if "correct" in out.terms:
            state.add("accuracy", out.terms["correct"])
            state.add("ce", out.terms["ce"])
