"""Saving and loading models, and the output-folder check every command runs before it writes."""

import os
from pathlib import Path

import pytest
import torch

import aekit
from aekit.errors import AekitError, ConfigError
from aekit.io import check_out_dir


def user_modules(width: int = 20):
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, width), torch.nn.ReLU())
    encoder.out_features = width
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Unflatten(1, (1, 8, 8)))
    return encoder, decoder


@pytest.fixture
def saved_user_model(tmp_path: Path) -> Path:
    encoder, decoder = user_modules()
    model = aekit.build_model("vae", data_shape=(1, 8, 8), latent_dim=2, encoder=encoder, decoder=decoder)
    return aekit.save_model(model, tmp_path / "model")


def test_load_without_the_user_modules_says_to_pass_them(saved_user_model: Path) -> None:
    with pytest.raises(AekitError, match=r"encoder, decoder, bottleneck weights do not fit.*encoder=\.\.\., decoder="):
        aekit.load(saved_user_model)
    encoder, decoder = user_modules()
    with pytest.raises(AekitError, match=r"saved decoder weights .*aekit\.load\(path, decoder=\.\.\.\)$"):
        aekit.load(saved_user_model, encoder=encoder)
    model = aekit.load(saved_user_model, encoder=encoder, decoder=decoder)
    assert model.sample(3, generator=torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)


def test_load_with_user_modules_of_another_shape_names_the_one_passed(saved_user_model: Path) -> None:
    wider, decoder = user_modules(width=24)
    with pytest.raises(AekitError, match=r"the encoder= passed in does not fit .*encoder\.1\.bias: saved with shape "
                                         r"\[20\], the rebuilt model's is \[24\]"):
        aekit.load(saved_user_model, encoder=wider, decoder=decoder)


def test_check_out_dir_accepts_new_and_existing_folders(tmp_path: Path) -> None:
    assert check_out_dir(tmp_path) == tmp_path
    assert check_out_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # checking creates nothing


def test_check_out_dir_refuses_a_file_or_a_path_inside_one(tmp_path: Path) -> None:
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    with pytest.raises(ConfigError, match="notes.txt: is a file, not a folder"):
        check_out_dir(file)
    with pytest.raises(ConfigError, match=r"notes.txt is a file, so no folder can be made inside it"):
        check_out_dir(file / "run" / "deeper")
    assert file.read_text() == "keep me"


def test_check_out_dir_refuses_an_unwritable_folder(tmp_path: Path, monkeypatch) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root writes past mode bits: let access(2) answer as for a user
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
        with pytest.raises(ConfigError, match="locked is not writable"):
            check_out_dir(locked / "run")
    finally:
        locked.chmod(0o700)


def test_dir_lists_the_public_api_without_importing_it():
    import subprocess
    import sys

    code = ("import sys, aekit; names = dir(aekit); "
            "print(all(n in names for n in ('train', 'load', 'build_model', 'StepHooks', 'evaluate')), "
            "'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120).stdout.split()
    assert out == ["True", "False"]  # listed, and nothing heavy imported to list it
