"""The loop's parts: named optimisers and their groups, two optimisers through SIGKILL and DDP (step hooks:
``test_hooks.py``)."""

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from sigkill import train_killed_and_resumed

import aekit
from aekit.errors import ConfigError
from aekit.optim import check_groups, make_optimizers
from aekit.training import TrainConfig

HERE = Path(__file__).resolve().parent
QUICK = dict(hidden=(16,), latent_dim=2, progress=False, evaluate=False)


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_groups_must_be_disjoint_and_cover_every_trainable_parameter():
    model = aekit.build_model("aae", data_shape=(4,), hidden=(8,), latent_dim=2, disc_hidden=(4,))
    groups = model.parameter_groups()
    check_groups(model, groups)
    with pytest.raises(ConfigError, match=r"discriminator\.net\.0\.weight \(and 3 more\) is in no optimiser"):
        check_groups(model, {"model": groups["model"]})
    with pytest.raises(ConfigError, match="in both optimisers 'model' and 'discriminator'"):
        check_groups(model, {"model": groups["model"], "discriminator": groups["discriminator"] + groups["model"]})
    model.freeze("discriminator")  # frozen parts belong to no optimiser
    check_groups(model, {"model": groups["model"]})


def test_each_optimizer_has_its_own_settings_and_groups():
    model = aekit.build_model("aae", data_shape=(4,), hidden=(8,), latent_dim=2, disc_hidden=(4,))
    config = TrainConfig(lr=1e-3, weight_decay=0.1, no_decay_1d=True,
                         optimizers={"discriminator": {"lr": 2e-4, "betas": (0.5, 0.9), "every": 3},
                                     "model": {"eps": 1e-4}})
    optimizers, settings = make_optimizers(model, config)
    assert settings["discriminator"].every == 3 and settings["model"].every == 1
    disc = optimizers["discriminator"]
    assert disc.defaults["betas"] == (0.5, 0.9) and disc.defaults["lr"] == 2e-4
    assert optimizers["model"].defaults["betas"] == (0.9, 0.999) and optimizers["model"].defaults["lr"] == 1e-3
    assert optimizers["model"].defaults["eps"] == 1e-4 and disc.defaults["eps"] == 1e-8
    for group in optimizers["model"].param_groups:  # biases take no weight decay, matrices do
        assert group["weight_decay"] == (0.0 if all(p.ndim == 1 for p in group["params"]) else 0.1)
    with pytest.raises(ConfigError, match="no optimiser 'critic'; it has model, discriminator"):
        make_optimizers(model, TrainConfig(optimizers={"critic": {"lr": 1e-3}}))
    with pytest.raises(ConfigError, match="has no layers to decay the lr over"):
        make_optimizers(model, TrainConfig(layer_decay=0.75))
    with pytest.raises(ConfigError, match="unknown optimizers.model key"):
        make_optimizers(model, TrainConfig(optimizers={"model": {"momentum": 0.9}}))


def test_layer_decay_scales_each_layers_lr():
    model = aekit.build_model("ae", data_shape=(4,), hidden=(8,), latent_dim=2)
    names = [n for n, _ in model.named_parameters()]
    model.layer_of = lambda name: (names.index(name) // 2, len(names) // 2)  # two tensors (W, b) a layer
    optimizers, _ = make_optimizers(model, TrainConfig(lr=1.0, layer_decay=0.5))
    scales = sorted(g["lr_scale"] for g in optimizers["model"].param_groups)
    n_layers = len(names) // 2
    assert scales == pytest.approx(sorted(0.5 ** (n_layers - i) for i in range(n_layers)))


def test_per_optimizer_lr_follows_the_schedule(tmp_path):
    aekit.train("aae", "digits", tmp_path / "run", steps=4, lr=1e-3, lr_schedule="constant", checkpoint_every=2,
                **{"optimizers.discriminator.lr": 3e-4}, **QUICK)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-00000004" / "state.json").read_text())
    lrs = {name: [g["lr"] for g in meta["param_groups"]] for name, meta in state["optimizers"].items()}
    assert lrs == {"model": [1e-3], "discriminator": [3e-4]}


AAE_CLI = [sys.executable, "-m", "aekit.cli", "train", "aae", "--data", "digits", "--steps", "90", "--no-eval",
           "checkpoint_every=10", "latent_dim=2", "hidden=32", "disc_hidden=16", "batch_size=32",
           "optimizers.discriminator.lr=3e-4", "optimizers.model.every=2"]


@pytest.mark.slow
def test_two_optimizers_resume_bit_exact_after_sigkill(tmp_path):
    killed = tmp_path / "killed"
    train_killed_and_resumed(AAE_CLI, tmp_path / "full", killed, after="step-00000030")
    state = json.loads(next((killed / "checkpoints").glob("step-*/state.json")).read_text())
    assert set(state["optimizers"]) == {"model", "discriminator"}
    assert same_weights(weights(tmp_path / "full"), weights(killed))


@pytest.mark.slow
def test_two_optimizers_resume_bit_exact_under_ddp(tmp_path):
    args = dict(accelerator="cpu", devices=2, lr_schedule="constant", checkpoint_every=4, disc_hidden=(8,),
                **QUICK)
    aekit.train("aae", "digits", tmp_path / "full", steps=8, **args)
    aekit.train("aae", "digits", tmp_path / "part", steps=4, **args)
    aekit.train("aae", "digits", tmp_path / "part", resume=True, steps=8, evaluate=False)
    full, part = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert same_weights(full, part)
    one = tmp_path / "one"
    aekit.train("aae", "digits", one, steps=8, **{**args, "devices": 1})
    assert not same_weights(full, weights(one))  # the two ranks really trained (each its own prior draws)


def test_objective_must_give_every_optimizers_loss(tmp_path):
    from aekit.objectives import Loss, WeightedTerms

    class NoDiscriminatorLoss(WeightedTerms):
        def __call__(self, out, step, batch=None):
            loss = super().__call__(out, step, batch)
            return Loss(losses={"model": loss.losses["model"]}, logs=loss.logs)

    model = aekit.build_model("aae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2, disc_hidden=(4,))
    model.objective = lambda: NoDiscriminatorLoss(model.objective_terms())
    with pytest.raises(ConfigError, match="no loss for optimiser 'discriminator'"):
        aekit.train(model, "digits", tmp_path / "run", steps=2, progress=False, evaluate=False)


def torchrun_two_nodes(out, port, *args):
    """Two torchrun launches on localhost, node ranks 0 and 1, one process each: a two-node DDP run."""
    torchrun = Path(sys.executable).with_name("torchrun")
    procs = [subprocess.Popen([str(torchrun), "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(rank),
                               "--master-addr", "127.0.0.1", "--master-port", str(port), "-m", "aekit.cli", "train",
                               "--out", str(out), "--no-eval", *args],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for rank in (0, 1)]
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    assert any("GLOBAL_RANK: 1, MEMBER: 2/2" in log for log in logs), logs
    return logs


@pytest.mark.slow
def test_torchrun_two_nodes_train_and_resume(tmp_path):
    """2 nodes x 1 process with half batches each = 1 process with the whole batch (an AE has no noise); the run
    stops at 10 steps and resumes to 20 under torchrun."""
    args = ["accelerator=cpu", "num_nodes=2", "strategy=ddp", "hidden=16", "latent_dim=2", "lr_schedule=constant",
            "checkpoint_every=5"]
    port = 29500 + os.getpid() % 400
    torchrun_two_nodes(tmp_path / "two", port, "ae", "--data", "digits", "--steps", "10", *args)
    torchrun_two_nodes(tmp_path / "two", port + 1, "--resume", "--steps", "20")
    aekit.train("ae", "digits", tmp_path / "one", steps=20, lr_schedule="constant", accelerator="cpu", **QUICK)
    one, two = weights(tmp_path / "one"), weights(tmp_path / "two")
    assert one.keys() == two.keys() and all(torch.allclose(one[k], two[k], atol=1e-5) for k in one)


def test_objectives_can_read_the_training_set_size(tmp_path):
    from aekit.objectives import Term, WeightedTerms

    seen = []

    class SizeAware(WeightedTerms):
        def __call__(self, out, step, batch=None):
            seen.append(self.dataset_size)
            return super().__call__(out, step, batch)

    model = aekit.build_model("ae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2)
    model.objective = lambda: SizeAware({"recon": Term()})
    aekit.train(model, "digits", tmp_path / "run", steps=2, val_fraction=0.1, test_fraction=0.1, progress=False,
                evaluate=False)
    assert set(seen) == {1797 - 180 - 180}  # the training part of the 1,797 digits


def test_parts_fitted_after_training_see_the_training_set_once_before_the_model_is_saved(tmp_path):
    class Recorder(torch.nn.Module):
        """Records what the loop gives it once training is over, in a buffer (hence in the saved weights)."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("examples", torch.zeros(()))
            self.calls = []

        def fit_after_training(self, batch) -> None:
            self.calls.append((len(batch), self.training, torch.is_grad_enabled()))
            self.examples.fill_(len(batch))

    model = aekit.build_model("ae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2)
    model.recorder = Recorder()
    aekit.train(model, "digits", tmp_path / "run", steps=3, keep_best=True, progress=False, evaluate=False)
    n_train = 1797 - 180 - 180
    assert model.recorder.calls == [(n_train, False, False)]  # once, in evaluation mode, without grad
    assert weights(tmp_path / "run")["recorder.examples"].item() == n_train  # before the model was saved


def test_rmsprop_takes_the_step_of_torchs_own():
    torch.manual_seed(0)
    model = aekit.build_model("ae", data_shape=(4,), hidden=(8,), latent_dim=2)
    twin = copy.deepcopy(model)
    optimizer = make_optimizers(model, TrainConfig(optimizer="rmsprop", lr=1e-2))[0]["model"]
    reference = torch.optim.RMSprop(twin.parameters(), lr=1e-2)
    assert isinstance(optimizer, torch.optim.RMSprop) and optimizer.defaults["alpha"] == 0.99
    x = torch.rand(5, 4)
    for net, opt in ((model, optimizer), (twin, reference)):
        for _ in range(3):
            opt.zero_grad()
            net(x).terms["recon"].mean().backward()
            opt.step()
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q)
    with pytest.raises(ConfigError, match="optimizer='sgd' is unknown; choose adamw"):
        TrainConfig(optimizer="sgd")
