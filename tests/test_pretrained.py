"""Hugging Face's conventions: save_pretrained / from_pretrained on every model, a model card, and loading from a
Hub id through huggingface_hub, tested offline on a local cache laid out as the Hub lays out a snapshot."""

import json
import shutil
import sys

import pytest
import torch

import aekit
from aekit.errors import AekitError, DataError
from aekit.models import VAE, Model


def tiny(name="vae"):
    torch.manual_seed(0)
    return aekit.build_model(name, data_shape=(6,), latent_dim=2, hidden=(8,)).eval()


def test_save_pretrained_writes_the_hub_layout_and_from_pretrained_rebuilds_the_model(tmp_path):
    model = tiny()
    folder = model.save_pretrained(tmp_path / "m", metrics={"test/nll": 12.5, "train/steps": 3})
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: aekit\n") and "| `test/nll` | 12.5 |" in card
    assert "train/steps" not in card and '"latent_dim": 2' in card
    x = torch.rand(4, 6)
    for loaded in (VAE.from_pretrained(folder), Model.from_pretrained(folder), aekit.load(folder)):
        assert isinstance(loaded, VAE)
        assert torch.equal(loaded.embed(x), model.embed(x))
    with pytest.raises(AekitError, match="holds a vae .*not a GAE"):
        aekit.models.GAE.from_pretrained(folder)


def hub_snapshot(cache, repo_id, folder, commit="0123456789abcdef0123456789abcdef01234567"):
    """``folder``'s files in ``cache`` as huggingface_hub keeps a downloaded snapshot of ``repo_id``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)


def test_a_hub_id_loads_from_the_hub_cache_offline(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")  # a dev extra: transformers brings it
    model = tiny()
    hub_snapshot(tmp_path / "cache", "acme/tiny-vae", model.save_pretrained(tmp_path / "m"))
    x = torch.rand(3, 6)
    loaded = VAE.from_pretrained("acme/tiny-vae", cache_dir=tmp_path / "cache", local_files_only=True)
    assert torch.equal(loaded.embed(x), model.embed(x))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert torch.equal(aekit.load("acme/tiny-vae", cache_dir=tmp_path / "cache").embed(x), model.embed(x))
    with pytest.raises(DataError, match="acme/other: no such folder here, and the Hugging Face Hub did not give it"):
        aekit.load("acme/other", cache_dir=tmp_path / "cache", local_files_only=True)


def test_a_folder_here_wins_over_a_hub_id_and_a_missing_hub_client_is_named(tmp_path, monkeypatch):
    tiny("ae").save_pretrained(tmp_path / "acme" / "here")
    monkeypatch.chdir(tmp_path)
    assert aekit.load("acme/here").name == "ae"  # the folder, not the Hub
    with pytest.raises(DataError, match="acme/typo: no such file or folder"):  # a folder's, never the Hub's
        aekit.load("acme/typo")
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(DataError, match="other/elsewhere: no such folder here; .*pip install huggingface_hub"):
        aekit.load("other/elsewhere")
    with pytest.raises(DataError, match="no such file or folder"):
        aekit.load("not/a/hub/id")


def test_a_run_leaves_a_model_card_with_its_test_metrics(tmp_path):
    run = aekit.train("ae", "digits", tmp_path / "run", steps=3, latent_dim=2, hidden=(8,), figures=False)
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert f"| `test/mse` | {run.metrics['test/mse']:.6g} |" in card
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["model"] == "ae"
