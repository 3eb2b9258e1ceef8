"""Shared by the resume tests: a training killed with SIGKILL once a checkpoint exists, then resumed."""

import os
import signal
import subprocess
import sys
import time


def train_killed_and_resumed(cli: list[str], full, killed, after: str, deadline_s: float = 120) -> None:
    """Train ``cli`` into ``full`` uninterrupted and into ``killed``, killing the second with SIGKILL once its
    latest checkpoint is ``after`` (e.g. ``step-00000030``) or later, then resuming it to the end."""
    subprocess.run([*cli, "--out", str(full)], check=True, capture_output=True)
    proc = subprocess.Popen([*cli, "--out", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest"
    deadline = time.time() + deadline_s
    while time.time() < deadline and not (latest.is_file() and latest.read_text().strip() >= after):
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (killed / "model").exists(), "the run finished before it could be killed"
    subprocess.run([sys.executable, "-m", "aekit.cli", "train", "--out", str(killed), "--resume", "--no-eval"],
                   check=True, capture_output=True)
