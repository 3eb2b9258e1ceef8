"""What ``aekit.train`` takes as data: arrays, tensors, Datasets, memory-mapped files, streams, .npz keys."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

import aekit
from aekit.data import Dataset
from aekit.data.sources import StreamingSource
from aekit.errors import AekitError

QUICK = dict(hidden=(16,), latent_dim=2, progress=False, figures=False, nll_samples=0, lr_schedule="constant")


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32).reshape(-1, 64), d.target


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_arrays_tensors_and_datasets_train_alike(tmp_path):
    x, y = digits()
    runs = {
        "numpy": aekit.train("vae", (x, y), tmp_path / "numpy", steps=15, **QUICK),
        "tensor": aekit.train("vae", (torch.from_numpy(x), torch.from_numpy(y)), tmp_path / "tensor", steps=15,
                              **QUICK),
        "dataset": aekit.train("vae", Dataset(torch.from_numpy(x), torch.from_numpy(y), "mine"), tmp_path / "ds",
                               steps=15, **QUICK),
    }
    assert same(weights(tmp_path / "numpy"), weights(tmp_path / "tensor"))
    assert same(weights(tmp_path / "numpy"), weights(tmp_path / "ds"))
    assert "test/linear_probe_acc" in runs["numpy"].metrics  # the labels came along
    assert runs["numpy"].model.config.data_shape == (64,)
    z = runs["numpy"].model.embed(x[:5])  # numpy in, numpy out
    assert isinstance(z, np.ndarray) and z.shape == (5, 2)


def test_a_run_on_data_in_memory_resumes_only_with_the_data_passed_again(tmp_path):
    x, _ = digits()
    aekit.train("ae", x, tmp_path / "run", steps=10, checkpoint_every=5, evaluate=False, **QUICK)
    with pytest.raises(AekitError, match="pass the same data again"):
        aekit.train("ae", "digits", tmp_path / "run", resume=True, steps=20)
    aekit.train("ae", x, tmp_path / "run", resume=True, steps=20, evaluate=False)
    aekit.train("ae", x, tmp_path / "full", steps=20, evaluate=False, **QUICK)
    assert same(weights(tmp_path / "run"), weights(tmp_path / "full"))


def test_a_dataloader_with_workers_streams_the_training_data(tmp_path):
    x, _ = digits()
    loader = DataLoader(TensorDataset(torch.from_numpy(x)), batch_size=32, num_workers=2, shuffle=False)
    run = aekit.train("vae", StreamingSource(loader), tmp_path / "run", steps=70, **QUICK)  # > one pass (57)
    assert run.metrics["train/steps"] == 70 and run.metrics["test/examples"] == 0
    with pytest.raises(AekitError, match="set steps"):
        aekit.train("vae", StreamingSource(iter([torch.zeros(2, 64)])), tmp_path / "x", epochs=1, **QUICK)


def test_a_stream_of_fixed_batches_resumes_where_it_stopped(tmp_path):
    x, _ = digits()
    batches = [torch.from_numpy(x[i : i + 32]) for i in range(0, 320, 32)]
    args = dict(evaluate=False, **QUICK)
    aekit.train("ae", batches, tmp_path / "full", steps=16, **args)
    aekit.train("ae", batches, tmp_path / "part", steps=8, checkpoint_every=4, **args)
    aekit.train("ae", batches, tmp_path / "part", resume=True, steps=16, evaluate=False)
    assert same(weights(tmp_path / "full"), weights(tmp_path / "part"))


def test_memmap_and_in_memory_reads_of_one_npy_train_the_same(tmp_path):
    x, _ = digits()
    path = tmp_path / "x.npy"
    np.save(path, x.reshape(-1, 1, 8, 8))
    aekit.train("ae", str(path), tmp_path / "mem", steps=10, evaluate=False, **QUICK)
    aekit.train("ae", str(path), tmp_path / "map", steps=10, evaluate=False, memmap=True, **QUICK)
    assert same(weights(tmp_path / "mem"), weights(tmp_path / "map"))


def test_npz_keys_choose_inputs_and_labels_from_the_command_line(tmp_path):
    x, y = digits()
    path = tmp_path / "d.npz"
    np.savez(path, feats=x, tgt=y, other=np.zeros(3))
    cli = [sys.executable, "-m", "aekit.cli", "train", "ae", "--data", str(path), "--steps", "5", "hidden=16",
           "latent_dim=2", "nll_samples=0", "figures=false"]
    proc = subprocess.run([*cli, "--out", str(tmp_path / "a"), "inputs=feats", "labels=tgt"], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert '"test/linear_probe_acc"' in proc.stdout
    proc = subprocess.run([*cli, "--out", str(tmp_path / "b"), "inputs=nosuch"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "nosuch" in proc.stderr and "feats" in proc.stderr  # names what the file holds


@pytest.mark.slow
def test_ddp_shards_memory_mapped_and_streamed_data(tmp_path):
    """2 ranks with gradients averaged = 1 rank with both halves (an AE has no noise): over a memory-mapped .npy
    (each rank takes every other index of a batch), and over a stream (each rank takes every other item)."""
    x, _ = digits()
    path = tmp_path / "x.npy"
    np.save(path, x)
    args = dict(steps=6, evaluate=False, accelerator="cpu", **QUICK)
    aekit.train("ae", str(path), tmp_path / "map2", devices=2, memmap=True, **args)
    aekit.train("ae", str(path), tmp_path / "map1", devices=1, memmap=True, **args)
    halves = [torch.from_numpy(x[i : i + 16]) for i in range(0, 16 * 12, 16)]  # items 2s and 2s+1 make step s
    pairs = [torch.cat(halves[i : i + 2]) for i in range(0, 12, 2)]
    aekit.train("ae", halves, tmp_path / "stream2", devices=2, **args)
    aekit.train("ae", pairs, tmp_path / "stream1", devices=1, **args)
    for two, one in (("map2", "map1"), ("stream2", "stream1")):
        a, b = weights(tmp_path / two), weights(tmp_path / one)
        assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a), two


def test_a_run_in_memory_writes_nothing_and_keeps_its_best_weights(tmp_path, monkeypatch):
    """80 digits and a wide AE at a high lr overfit: validation is best at step 60 of 300, so the best weights
    are not the last ones."""
    x, y = digits()
    monkeypatch.chdir(tmp_path)
    args = dict(steps=300, eval_every=20, keep_best=True, val_fraction=0.3, batch_size=32, hidden=(256,),
                latent_dim=16, lr=1e-2, lr_schedule="constant", progress=False, figures=False, nll_samples=0)
    run = aekit.train("ae", (x[:80], y[:80]), None, **args)
    assert list(tmp_path.iterdir()) == [] and run.run_dir is None and run.report is None
    assert "test/recon" in run.metrics and "test/linear_probe_acc" in run.metrics
    on_disk = aekit.train("ae", (x[:80], y[:80]), tmp_path / "run", **args)
    a, b = run.model.state_dict(), on_disk.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)  # the same best-validation weights
    last = aekit.train("ae", (x[:80], y[:80]), None, **{**args, "keep_best": False}).model.state_dict()
    assert not all(torch.equal(a[k], last[k]) for k in a)  # and they are not the last ones
    assert run.metrics["train/best_val_loss"] == on_disk.metrics["train/best_val_loss"]
    with pytest.raises(AekitError, match="pass out="):
        aekit.train("vae", (x, y), None, resume=True)
    with pytest.raises(AekitError, match="needs a run directory"):
        aekit.train("ae", (x, y), None, devices=2, accelerator="cpu", **QUICK)
