"""Writes ``golden_losses.json``: the training losses, step by step, of ``ae``, ``dae``, ``vae`` and ``beta-vae``
on the bundled digits with a fixed seed. ``test_golden.py`` trains the same runs and compares.

    python tests/golden/make_golden.py   # only when a change is meant to alter these losses
"""

from __future__ import annotations

import csv
import json
import sys
import tempfile
from pathlib import Path

import torch

import aekit

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_losses.json"
RUNS = {
    "ae": {},
    "dae": {"noise": "masking", "noise_level": 0.3},
    "vae": {"n_samples": 2},
    "beta-vae": {"beta_schedule": "linear", "warmup_steps": 10, "free_bits": 0.05},
}
SETTINGS = dict(steps=25, batch_size=32, hidden=(64,), latent_dim=4, log_every=1, seed=3, evaluate=False,
                progress=False, figures=False, lr=3e-3)
COLUMNS = ("loss", "recon", "kl")


def train_losses(name: str, out: Path) -> dict[str, list[float]]:
    torch.set_num_threads(1)
    aekit.train(name, "digits", out, **SETTINGS, **RUNS[name])
    rows = [r for r in csv.DictReader((out / "log.csv").open()) if r["split"] == "train"]
    return {c: [float(r[c]) for r in rows] for c in COLUMNS if c in rows[0] and rows[0][c] != ""}


def main() -> int:
    golden = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in RUNS:
            golden[name] = train_losses(name, Path(tmp) / name)
    lines = [f'  "{name}": {{' + ", ".join(f'"{c}": {json.dumps(v)}' for c, v in cols.items()) + "}"
             for name, cols in golden.items()]
    GOLDEN.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
