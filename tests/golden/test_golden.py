"""Nothing lost on the way: ``ae``, ``dae``, ``vae`` and ``beta-vae`` give the same training losses, step for step,
as the recorded ones (``golden_losses.json``, made by ``make_golden.py``) on a fixed seed.

The tolerance, relative 2e-4, is above the rounding differences of float32 kernels between CPUs over 25 Adam
steps of these small networks (the log keeps 6 significant digits), and below what a change of the data order,
the noise, the loss terms or the optimiser moves."""

import json

import pytest
from make_golden import GOLDEN, RUNS, train_losses  # pytest puts this folder on sys.path


@pytest.mark.parametrize("name", list(RUNS))
def test_losses_match_the_recorded_ones(name, tmp_path):
    golden = json.loads(GOLDEN.read_text())[name]
    got = train_losses(name, tmp_path / name)
    assert sorted(got) == sorted(golden)
    for column, expected in golden.items():
        assert len(got[column]) == len(expected) == 25
        assert got[column] == pytest.approx(expected, rel=2e-4, abs=1e-5), column
