"""What parts do outside the gradient: step hooks (in aekit's loop, in a loop of one's own, across DDP ranks), the
warning for a model trained without them, and the weight average's buffer policies and ``after_average``."""

import json
import math
import warnings

import hooked_models  # noqa: F401  (registers hooked-ae; pytest puts this folder on sys.path)
import pytest
import torch
from safetensors.torch import load_file
from torch import nn

import aekit
from aekit.errors import ConfigError
from aekit.training import WeightAverage, buffer_policies

QUICK = dict(hidden=(16,), latent_dim=2, progress=False, evaluate=False)


def weights(path):
    return load_file(str(path / "model.safetensors"))


def unit_norm(weight):
    return torch.allclose(weight.norm(dim=0), torch.ones(weight.shape[1]), atol=1e-5)


def hook_warnings(caught):
    return [w for w in caught if "without its step hooks" in str(w.message)]


def test_step_hooks_run_at_every_point_without_grad_and_their_state_is_checkpointed(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_DIR", str(tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = aekit.train("hooked-ae", "digits", tmp_path / "run", steps=12, imports="hooked_models", **QUICK)
    assert not hook_warnings(caught)  # aekit's loop runs the hooks
    tracker = run.model.tracker
    assert int(tracker.updates) == 12 and float(tracker.temperature) == pytest.approx(0.89)
    assert unit_norm(tracker.decoder_layer[0].weight)  # renormalised after each step
    saved = weights(tmp_path / "run" / "model")
    assert int(saved["tracker.updates"]) == 12 and torch.equal(saved["tracker.ema"], tracker.ema)
    state = json.loads((tmp_path / "rank0.json").read_text())
    assert state["world"] == 1 and state["ema"] == pytest.approx(tracker.ema.tolist())
    assert state["optimizer"] == "model" and state["examples"] == 128  # the step's batches and outputs
    assert state["parallel"] < 1e-5  # before the step: the gradient's column-parallel part projected out
    assert state["gathered"] == [state["local_mean"]] and state["broadcast"] == [1.0, 1.0]


@pytest.mark.slow
def test_hook_state_is_identical_across_two_ddp_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_DIR", str(tmp_path))
    aekit.train("hooked-ae", "digits", tmp_path / "run", steps=6, devices=2, accelerator="cpu",
                imports="hooked_models", **QUICK)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2 and ranks[0]["updates"] == ranks[1]["updates"] == 6
    assert ranks[0]["examples"] == ranks[1]["examples"] == 64  # each rank's half of the batch
    assert ranks[0]["local_mean"] != ranks[1]["local_mean"]  # each rank saw its own half of the batch
    assert ranks[0]["ema"] == ranks[1]["ema"]  # and the all-reduced state agrees
    for rank in ranks:
        assert rank["gathered"] == [ranks[0]["local_mean"], ranks[1]["local_mean"]]  # all_gather, in rank order
        assert rank["broadcast"] == [1.0, 1.0]  # rank 0's tensor
        assert rank["parallel"] < 1e-5  # the projection ran on the all-reduced gradient
    saved = weights(tmp_path / "run" / "model")
    assert saved["tracker.ema"].tolist() == pytest.approx(ranks[0]["ema"], abs=1e-7)


def own_loop(model, steps, hooks=None, x=None):
    x = torch.rand(8, 4) if x is None else x
    optimizer, objective = torch.optim.SGD(model.parameters(), lr=0.1), model.objective()
    for step in range(steps):
        if hooks is not None:
            hooks.start(step)
        out = model(x)
        objective(out, step).total.backward()
        if hooks is not None:
            hooks.before_step(step, outputs=[out], batches=[x])
        optimizer.step()
        optimizer.zero_grad()
        if hooks is not None:
            hooks.after_step(step, outputs=[out], batches=[x])


def test_a_loop_of_ones_own_runs_the_hooks_and_one_without_them_is_warned_once():
    model = aekit.build_model("hooked-ae", data_shape=(4,), hidden=(8,), latent_dim=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        own_loop(model, 3, aekit.StepHooks(model, total_steps=3))
        assert not hook_warnings(caught)
        tracker = model.tracker
        assert int(tracker.updates) == 3 and float(tracker.temperature) == pytest.approx(0.98)
        assert max(tracker.parallel) < 1e-5 and unit_norm(tracker.decoder_layer[0].weight)
        out = model(torch.rand(8, 4))
        aekit.run_step_hooks(model, "after_optimizer_step", 3, optimizer="model", outputs=[out], batches=[None])
        assert int(tracker.updates) == 4
        with pytest.raises(ConfigError, match="'after_step' is unknown; choose one of on_train_step_start"):
            aekit.run_step_hooks(model, "after_step", 3)

        quiet = aekit.build_model("hooked-ae", data_shape=(4,), hidden=(8,), latent_dim=2)
        quiet.eval()(torch.rand(8, 4))
        quiet(torch.rand(8, 4))
        with torch.no_grad():
            quiet.train()(torch.rand(8, 4))
            quiet(torch.rand(8, 4))
        assert not hook_warnings(caught)  # evaluation and forwards without grad do not train

        forgotten = aekit.build_model("hooked-ae", data_shape=(4,), hidden=(8,), latent_dim=2)
        own_loop(forgotten, 5)
    assert len(hook_warnings(caught)) == 1
    message = str(hook_warnings(caught)[0].message)
    assert message.startswith("hooked-ae is being trained without its step hooks")
    assert "tracker (on_train_step_start, before_optimizer_step, after_optimizer_step)" in message
    assert "aekit.StepHooks(model)" in message and "aekit.run_step_hooks(model, point, step)" in message
    assert hook_warnings(caught)[0].filename == __file__  # it points at the loop's forward


class Codebook(nn.Module):
    """A part with unit-norm columns, an averaged buffer, a copied one and a child that inherits its policy."""

    average_buffers = {"codebook": "average"}

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.eye(3)[:, :2].clone())  # [3, 2], unit columns
        self.register_buffer("codebook", torch.zeros(2))
        self.register_buffer("count", torch.tensor(0.0))
        self.register_buffer("steps", torch.tensor(0))
        self.child = nn.Module()
        self.child.register_buffer("stat", torch.zeros(2))

    def after_average(self):
        self.weight.div_(self.weight.norm(dim=0, keepdim=True))


def test_the_weight_average_follows_each_parts_buffer_policy_and_after_average():
    part = Codebook()
    assert buffer_policies(part) == {"codebook": "average", "count": "copy", "child.stat": "copy"}
    part.average_buffers = "average"
    assert buffer_policies(part) == {"codebook": "average", "count": "average", "child.stat": "average"}
    part.average_buffers = {"codebook": "mean"}
    with pytest.raises(ConfigError, match="gives 'codebook' the policy 'mean'; use 'average' or 'copy'"):
        buffer_policies(part)
    part.average_buffers = {"codebook": "average"}

    average = WeightAverage(part, decay=0.5)
    assert average.names == ("weight", "codebook")
    with torch.no_grad():
        part.weight.copy_(torch.eye(3)[:, 1:])  # still unit columns, rotated
        part.codebook.fill_(1.0)
        part.count.fill_(5.0)
    average.update(100)  # decay 0.5: half way
    shadow = average.tensors()
    assert torch.equal(shadow["codebook"], torch.full((2,), 0.5))
    assert torch.allclose(shadow["weight"].norm(dim=0), torch.full((2,), math.sqrt(0.5)))  # the average drifts
    with average.applied():
        assert unit_norm(part.weight)  # after_average on the model holding the average
        assert torch.equal(part.codebook, torch.full((2,), 0.5))  # averaged
        assert float(part.count) == 5.0  # copied: the live value
    assert torch.equal(part.weight, torch.eye(3)[:, 1:]) and torch.equal(part.codebook, torch.ones(2))


def test_averaged_buffers_are_in_the_checkpoints_and_resume_exactly(tmp_path):
    """hooked-ae averages its EMA buffer and renormalises the averaged decoder: the saved model holds both, the
    checkpoint the raw averages, and 4 steps then 4 resumed end where 8 do."""
    args = dict(steps=8, checkpoint_every=4, ema_decay=0.5, lr=0.05, lr_schedule="constant", **QUICK)
    aekit.train("hooked-ae", "digits", tmp_path / "full", **args)
    aekit.train("hooked-ae", "digits", tmp_path / "part", **{**args, "steps": 4})
    aekit.train("hooked-ae", "digits", tmp_path / "part", resume=True, steps=8, evaluate=False)
    full, part = weights(tmp_path / "full" / "model"), weights(tmp_path / "part" / "model")
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)
    last = tmp_path / "full" / "checkpoints" / "step-00000008"
    live, raw = weights(last), load_file(str(last / "average.safetensors"))
    decoder = next(k for k in full if k.startswith("decoder.") and k.endswith("weight"))
    assert unit_norm(full[decoder]) and not unit_norm(raw[decoder])
    assert torch.equal(full["tracker.ema"], raw["tracker.ema"]) and not torch.equal(raw["tracker.ema"],
                                                                                    live["tracker.ema"])
    assert torch.equal(full["tracker.temperature"], live["tracker.temperature"])  # copied from the live model
