"""Ctrl-C and SIGTERM stop a run after the step under way, with a checkpoint of the steps done, and resuming from
it ends where an uninterrupted run ends."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from torch import nn

import aekit
from aekit.io import load_tensors

QUICK = dict(batch_size=32, lr_schedule="constant", progress=False, evaluate=False,
             figures=False, log_every=1)


class Interrupter(nn.Module):
    """A part that sends its own process a signal at the start of one step, as a user pressing Ctrl-C would."""

    def __init__(self, step: int, number: int) -> None:
        super().__init__()
        self.at, self.number = step, number

    def on_train_step_start(self, ctx) -> None:
        if ctx.step == self.at:
            os.kill(os.getpid(), self.number)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_after_the_step_with_a_checkpoint_and_the_run_resumes_exactly(tmp_path, capsys, number):
    torch.manual_seed(0)
    model = aekit.build_model("vae", data_shape=(1, 8, 8), hidden=(16,), latent_dim=2)
    model.interrupter = Interrupter(step=5, number=number)
    with pytest.raises(KeyboardInterrupt):
        aekit.train(model, "digits", tmp_path / "run", steps=12, **QUICK)
    err = capsys.readouterr().err
    assert "at step 6 of 12" in err and "--resume" in err  # step 5 ran to its end, then the run stopped
    assert (tmp_path / "run" / "checkpoints" / "latest").is_file()
    model.interrupter.at = -1
    aekit.train(model, "digits", tmp_path / "run", steps=12, resume=True, **QUICK)
    torch.manual_seed(0)
    straight = aekit.build_model("vae", data_shape=(1, 8, 8), hidden=(16,), latent_dim=2)
    straight.interrupter = Interrupter(step=-1, number=number)
    aekit.train(straight, "digits", tmp_path / "straight", steps=12, **QUICK)
    a, b = (load_tensors(tmp_path / r / "model" / "model.safetensors") for r in ("run", "straight"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back


def test_sigterm_to_the_command_line_writes_a_checkpoint_and_exits_without_a_traceback(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "aekit.cli", "train", "vae", "--data", "digits", "--out", str(run),
                             "--steps", "100000", "hidden=16", "log_every=1"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run / "log.csv").is_file() or len((run / "log.csv").read_text().splitlines()) < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "stopped (SIGTERM) at step" in err and "continue with --resume" in err
    assert (run / "checkpoints" / "latest").is_file()
