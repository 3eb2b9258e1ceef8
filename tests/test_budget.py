"""Evaluation in proportion to the run: the plan (quick or full, with floors), the fixed subset it scores, the
progress it shows, and a finished run that is resumed without being evaluated again."""

import io
import json
import time

import pytest
import torch

import aekit
from aekit.data.base import Dataset
from aekit.errors import ConfigError
from aekit.evaluation import evaluate
from aekit.evaluation.budget import (
    MIN_EXAMPLES,
    MIN_NLL_EXAMPLES,
    MIN_NLL_SAMPLES,
    nice_ceiling,
    plan_evaluation,
    protocol_cost,
    subset_indices,
)
from aekit.progress import Phase


def test_nice_ceiling_rounds_up_to_one_two_or_five_times_a_power_of_ten():
    assert [nice_ceiling(n) for n in (0.3, 1, 3, 7, 12, 200, 201, 5001)] == [1, 1, 5, 10, 20, 200, 500, 10000]


def test_a_run_that_trained_on_more_than_the_protocol_costs_gets_the_whole_protocol():
    cost = protocol_cost(10000, 10000, 10000, 5000)  # 3 * 10^4 + 10^4 + 2.5 * 10^7 forwards
    plan, full = plan_evaluation("auto", trained_examples=int(2 * cost), test_examples=10000, nll_samples=5000)
    assert plan == full and plan.protocol == "full" and plan.examples is None and plan.nll_samples == 5000
    plan, _ = plan_evaluation("auto", trained_examples=int(cost), test_examples=10000, nll_samples=5000)
    assert plan.protocol == "quick" and plan.examples == 5000


def test_a_short_run_gets_a_share_of_the_protocol_never_below_the_floors():
    # 50 steps of 100: the budget is 2,500 forwards against 2.5e7 for the protocol
    plan, full = plan_evaluation("auto", trained_examples=5000, test_examples=10000, nll_samples=5000)
    assert plan.protocol == "quick" and full.protocol == "full"
    assert (plan.examples, plan.probe_examples) == (MIN_EXAMPLES, MIN_EXAMPLES)
    assert (plan.nll_examples, plan.nll_samples) == (MIN_NLL_EXAMPLES, MIN_NLL_SAMPLES)
    assert "500 of 10,000 test examples" in plan.describe(full) and "K=5,000" in plan.describe(full)
    # a longer run takes a larger share, rounded to 1, 2 or 5 times a power of ten, K before examples
    longer, _ = plan_evaluation("auto", trained_examples=5_000_000, test_examples=10000, nll_samples=5000)
    assert longer.examples == 1000 and longer.nll_examples == 1000 and longer.nll_samples == 5000  # K kept
    assert protocol_cost(longer.examples, longer.probe_examples, longer.nll_examples, longer.nll_samples) < \
        protocol_cost(10000, 10000, 10000, 5000)


def test_the_mode_overrides_the_budget_and_an_unknown_one_is_refused():
    assert plan_evaluation("full", 1, 10000, 5000)[0].protocol == "full"
    quick = plan_evaluation("quick", 10**12, 10000, 5000)[0]  # the floors, however long the run
    assert (quick.protocol, quick.examples, quick.nll_examples, quick.nll_samples) == ("quick", 500, 100, 100)
    small, _ = plan_evaluation("quick", 10**12, 300, 5000)  # a split below the floor: all of it
    assert small.examples is None and small.nll_examples == 100
    with pytest.raises(ConfigError, match="evaluation='some' is unknown"):
        plan_evaluation("some", 1, 10)


def test_subsets_are_fixed_sorted_and_nested():
    a, b = subset_indices(1000, 50), subset_indices(1000, 200)
    assert torch.equal(a, subset_indices(1000, 50)) and torch.equal(a, a.sort().values)
    assert set(a.tolist()) <= set(b.tolist()) and len(set(b.tolist())) == 200


def test_evaluating_a_subset_scores_those_examples_and_says_of_how_many():
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(6,), latent_dim=2, hidden=(8,), likelihood="bernoulli").eval()
    data = Dataset(torch.rand(40, 6), None, "tiny")
    part = evaluate(model, data, examples=10, seed=3, batch_size=4, protocol="quick")
    alone = evaluate(model, data.subset(subset_indices(40, 10)), seed=3, batch_size=4)
    assert part["test/examples"] == 10 and part["test/subset_of"] == 40 and part["test/protocol"] == "quick"
    assert {k: v for k, v in part.items() if k not in ("test/subset_of", "test/protocol")} == alone


def test_progress_off_a_terminal_is_a_line_per_phase_and_a_line_while_a_long_step_runs():
    stream = io.StringIO()
    with Phase("evaluating vae on test", 20, stream=stream, every=0.0) as phase:
        phase.update(10)
        phase.heartbeat("NLL with K=5,000: 3 examples")
        phase.start -= 2  # as if two seconds had passed: the end gets a line of its own
    lines = stream.getvalue().splitlines()
    assert lines[0] == "aekit: evaluating vae on test: 20 examples"
    assert lines[1].startswith("aekit: evaluating vae on test: 10/20 examples (50%)")
    assert "NLL with K=5,000: 3 examples" in lines[2]
    assert lines[-1].startswith("aekit: evaluating vae on test: done in")
    quiet = io.StringIO()
    with Phase("x", 5, stream=quiet, every=60.0) as phase:
        phase.update(5)
    assert quiet.getvalue().splitlines() == ["aekit: x: 5 examples"]  # short: no heartbeat, no end line
    with Phase("x", 5, stream=quiet, enabled=False) as phase:
        phase.update(5)
    assert len(quiet.getvalue().splitlines()) == 1


def test_a_short_run_is_evaluated_quickly_and_says_so(tmp_path, capsys):
    result = aekit.train("vae", "digits", tmp_path / "run", steps=5, batch_size=16, latent_dim=2, hidden=(16,),
                         nll_samples=2000, figures=False)
    err = capsys.readouterr().err
    assert "a quick evaluation (in proportion to the training)" in err and "--eval full" in err
    m = result.metrics
    assert m["test/protocol"] == "quick" and m["train/examples"] == 80
    assert m["test/nll_samples"] == MIN_NLL_SAMPLES and m["test/nll_examples"] == MIN_NLL_EXAMPLES
    assert m["test/examples"] <= MIN_EXAMPLES
    full = aekit.train("vae", "digits", tmp_path / "full", steps=5, batch_size=16, latent_dim=2, hidden=(16,),
                       nll_samples=20, figures=False, evaluation="full").metrics
    assert full["test/protocol"] == "full" and "test/subset_of" not in full and full["test/nll_samples"] == 20


def test_resuming_a_finished_run_keeps_its_evaluation(tmp_path, capsys):
    run = tmp_path / "run"
    aekit.train("ae", "digits", run, steps=3, latent_dim=2, hidden=(8,), figures=False)
    before = (run / "metrics.json").read_text()
    stamp = (run / "metrics.json").stat().st_mtime_ns
    time.sleep(0.01)
    capsys.readouterr()
    result = aekit.train("ae", "digits", run, resume=True)
    assert "had trained its 3 steps already" in capsys.readouterr().err
    assert (run / "metrics.json").stat().st_mtime_ns == stamp and (run / "metrics.json").read_text() == before
    assert result.metrics == json.loads(before)


def test_a_quick_plan_that_would_take_everything_is_the_full_one():
    plan, full = plan_evaluation("auto", trained_examples=10, test_examples=180, probe_examples=10000,
                                 probe_pool=400)
    assert plan == full and plan.protocol == "full" and plan.probe_examples == 400
