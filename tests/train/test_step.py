"""The training step's reads from the device: one per step (the fused finiteness check), and the logs every
``log_every`` steps, with ``log.csv`` as before."""

import csv
import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import aekit
from aekit.errors import TrainingDiverged
from aekit.objectives import Loss
from aekit.training import StepTerms, Trainer, read_logs

QUICK = dict(hidden=(16,), latent_dim=2, progress=False, evaluate=False)
TORCH = str(Path(torch.__file__).parent)
TRAINING = str(Path(aekit.training.__file__).parent)
READS = {"__bool__", "__float__", "__int__", "item", "tolist", "cpu", "numpy"}


class Reads(TorchFunctionMode):
    """Counts the tensor reads (``bool``, ``float``, ``.item()``, ``.tolist()``, ...) made by aekit's training
    code, wherever torch's own code lies between."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in READS:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(TORCH):
                frame = frame.f_back
            self.count += frame is not None and frame.f_code.co_filename.startswith(TRAINING)
        return func(*args, **(kwargs or {}))


def train_counting_reads(out, monkeypatch, **overrides):
    """``{"train_step": reads per step, "report_train": reads per call}`` of a 10-step run, and its log rows."""
    reads = {"train_step": [], "report_train": []}

    def counted(method):
        def wrapper(self, *args):
            with Reads() as mode:
                result = method(self, *args)
            reads[method.__name__].append(mode.count)
            return result

        return wrapper

    with monkeypatch.context() as patch:
        for name in reads:
            patch.setattr(Trainer, name, counted(getattr(Trainer, name)))
        aekit.train("beta-vae", "digits", out, steps=10, log_every=5, accumulate=2, batch_size=32,
                    beta_schedule="linear", warmup_steps=10, val_fraction=0.0, **QUICK, **overrides)
    return reads, list(csv.DictReader((out / "log.csv").read_text().splitlines()))


def test_a_step_reads_from_the_device_once_and_the_logs_are_read_every_log_every_steps(tmp_path, monkeypatch):
    monkeypatch.setattr(aekit.training.log, "HOST_DEVICES", ())  # the CPU taken for an accelerator
    reads, rows = train_counting_reads(tmp_path / "device", monkeypatch)
    assert reads["train_step"] == [1] * 10
    assert reads["report_train"] == [0, 0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert [(r["step"], r["split"]) for r in rows] == [("5", "train"), ("10", "train")]
    assert list(rows[0])[5:] == ["loss", "recon", "kl", "elbo", "beta"]  # the objective's order, beta a number
    assert float(rows[0]["beta"]) / float(rows[1]["beta"]) == pytest.approx(4 / 9)  # the warm-up at steps 4, 9
    monkeypatch.undo()
    _, host = train_counting_reads(tmp_path / "host", monkeypatch)  # the CPU's own path: the same log
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in host] == \
        [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def test_step_terms_average_the_micro_batches_and_name_the_first_term_that_is_not_finite(monkeypatch):
    terms = StepTerms(2)
    model_loss = torch.tensor(3.0, requires_grad=True)
    terms.add({"model": model_loss}, {"loss": model_loss, "recon": torch.tensor(2.0), "beta": 0.5})
    terms.add({"model": torch.tensor(5.0)}, {"loss": torch.tensor(5.0), "recon": torch.tensor(4.0), "beta": 0.5})
    assert read_logs(terms.logs) == {"loss": 4.0, "recon": 3.0, "beta": 0.5}
    assert terms.finite() is True and terms.first_nonfinite() is None
    with monkeypatch.context() as patch:
        patch.setattr(aekit.training.log, "HOST_DEVICES", ())  # as on an accelerator: a tensor, not yet read
        assert torch.is_tensor(terms.finite()) and bool(terms.finite())
    terms.add({"model": torch.tensor(float("inf"))}, {"loss": torch.tensor(float("inf")),
                                                      "recon": torch.tensor(float("nan")), "beta": 0.5})
    assert not bool(terms.finite()) and terms.first_nonfinite()[0] == "recon"  # a component before the total
    numbers = StepTerms(1)
    numbers.add({"model": torch.tensor(1.0)}, {"loss": torch.tensor(1.0), "beta": float("nan")})
    assert not bool(numbers.finite()) and numbers.first_nonfinite()[0] == "beta"


def test_a_non_finite_loss_of_a_second_optimiser_is_named(tmp_path):
    class NanDiscriminator:
        def __init__(self, objective):
            self.objective, self.dataset_size = objective, None

        def __call__(self, out, step, batch=None):
            loss = self.objective(out, step, batch)
            return Loss(losses={**loss.losses, "discriminator": loss.losses["discriminator"] * float("nan")},
                        logs=loss.logs)

    model = aekit.build_model("aae", data_shape=(1, 8, 8), hidden=(8,), latent_dim=2, disc_hidden=(4,))
    objective = model.objective()
    model.objective = lambda: NanDiscriminator(objective)
    with pytest.raises(TrainingDiverged, match="step 0: loss term 'discriminator loss' is nan"):
        aekit.train(model, "digits", tmp_path / "run", steps=2, progress=False, evaluate=False)
