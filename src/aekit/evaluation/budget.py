"""How much evaluation a run gets: the whole protocol, or a share of it in proportion to the training.

A run's evaluation should not outlast its training: 50 steps of a VAE take half a second, while the protocol of
its recipe (a 5,000-sample importance-sampled NLL on 10,000 test images) takes minutes. ``evaluation`` chooses:

- ``full``: the protocol as configured, every test example, ``probe_examples`` for the probes, the NLL with
  ``nll_samples`` on ``nll_examples`` (all by default);
- ``quick``: the floor that keeps the numbers useful, ``MIN_EXAMPLES`` test and probe examples and an NLL on
  ``MIN_NLL_EXAMPLES`` examples with ``MIN_NLL_SAMPLES`` samples (or the protocol's own, where smaller);
- ``auto`` (the default): ``full`` when the protocol costs no more than the training did, otherwise a share of it
  in proportion to the training, never below the floor of ``quick``, the same for runs of similar length; the NLL
  keeps its K and drops examples first, since fewer samples bias the estimate while fewer examples only widen its
  standard error.

The cost is counted in example forwards, so the choice is the same on every machine: training passed
``trained_examples`` examples forward and backward (about three forwards each); the protocol's pass costs about
``PASS_FORWARDS`` forwards per test example (the pass, an embedding, a reconstruction), one per probe example, and
half a forward per importance sample (the decoder only). The budget is ``trained_examples / 2`` forwards, which
keeps the evaluation under a quarter of the run's time for models whose training forward costs what an evaluation
forward does. A quick share is rounded up to 1, 2 or 5 times a power of ten, and the test examples it takes are a
fixed random subset (the same for every run on the same data), so two quick runs of similar length are measured
on the same examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aekit.errors import ConfigError

MODES = ("auto", "quick", "full")
MIN_EXAMPLES = 500
MIN_NLL_EXAMPLES = 100
MIN_NLL_SAMPLES = 100
PASS_FORWARDS = 3


@dataclass(frozen=True)
class EvalPlan:
    """What one evaluation takes: ``examples`` of the ``of`` test examples (``None``: all), ``probe_examples``,
    the NLL's ``nll_samples`` and ``nll_examples`` (``None``: all it scores), and ``protocol`` (quick or full)."""

    protocol: str
    examples: int | None
    of: int
    probe_examples: int
    nll_samples: int
    nll_examples: int | None

    def kwargs(self) -> dict:
        """The keyword arguments of :func:`aekit.evaluation.evaluate`."""
        return {"examples": self.examples, "probe_examples": self.probe_examples, "nll_samples": self.nll_samples,
                "nll_examples": self.nll_examples, "protocol": self.protocol}

    def describe(self, full: EvalPlan) -> str:
        """One line: what this plan takes, against the ``full`` protocol."""
        parts = [f"{self.examples:,} of {self.of:,} test examples" if self.examples else f"all {self.of:,} test "
                 "examples"]
        if self.nll_samples:
            parts.append(f"the NLL on {self.nll_examples or self.examples or self.of:,} with K={self.nll_samples:,}"
                         f" (protocol: {full.nll_examples or full.of:,} with K={full.nll_samples:,})")
        return ", ".join(parts)


def nice_ceiling(n: float) -> int:
    """The smallest of 1, 2 or 5 times a power of ten that is at least ``n``."""
    if n <= 1:
        return 1
    power = 10 ** math.floor(math.log10(n))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= n)


def protocol_cost(examples: int, probe_examples: int, nll_examples: int, nll_samples: int) -> float:
    """The example forwards of an evaluation (the module docstring counts them)."""
    return PASS_FORWARDS * examples + probe_examples + 0.5 * nll_examples * nll_samples


def plan_evaluation(mode: str, trained_examples: int, test_examples: int, nll_samples: int = 0,
                    nll_examples: int | None = None, probe_examples: int = 10000,
                    probe_pool: int | None = None) -> tuple[EvalPlan, EvalPlan]:
    """``(plan, full)``: the evaluation ``mode`` gives a run that trained on ``trained_examples`` examples, and the
    full protocol, for a test split of ``test_examples`` examples (and a training split of ``probe_pool`` to fit
    the probes on). A quick plan that would take all the protocol takes is the full one."""
    if mode not in MODES:
        raise ConfigError(f"evaluation={mode!r} is unknown; choose auto (in proportion to the run), quick or full")
    n = test_examples
    probe_examples = min(probe_examples, probe_pool if probe_pool is not None else probe_examples)
    nll_n = min(nll_examples or n, n) if nll_samples else 0
    full = EvalPlan("full", None, n, probe_examples, nll_samples, nll_examples or None)
    budget, cost = trained_examples / 2, protocol_cost(n, probe_examples, nll_n, nll_samples)
    if mode == "full" or n == 0 or (mode == "auto" and cost <= budget):
        return full, full
    share = 0.0 if mode == "quick" else min(1.0, budget / cost)  # quick: the floors alone

    def scaled(value: int, floor: int) -> int:
        return min(value, max(floor, nice_ceiling(share * value)))

    examples = scaled(n, MIN_EXAMPLES)
    nll_examples_q, samples = None, 0
    if nll_samples:  # fewer examples first; K only as far as the NLL's share of the budget asks
        nll_examples_q = min(scaled(nll_n, MIN_NLL_EXAMPLES), examples)
        samples = min(nll_samples, max(MIN_NLL_SAMPLES, nice_ceiling(share * nll_n * nll_samples / nll_examples_q)))
    plan = EvalPlan("quick", None if examples >= n else examples, n, scaled(probe_examples, MIN_EXAMPLES), samples,
                    nll_examples_q)
    takes_all = (plan.examples is None and plan.probe_examples == probe_examples and samples == nll_samples
                 and (nll_examples_q or 0) >= nll_n)
    return (full, full) if takes_all else (plan, full)


def subset_indices(n: int, k: int) -> torch.Tensor:
    """``k`` of ``n`` indices, in order: the first ``k`` of one fixed permutation of ``n``, so that a smaller
    subset lies inside a larger one and every run on the same data takes the same."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(0))[:k].sort().values
