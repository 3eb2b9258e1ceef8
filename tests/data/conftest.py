"""Fixtures for the data tests: writers of small files in the real on-disk formats, and the real data root."""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

# The shared datasets sit beside the checkout (../shared/datasets); AEKIT_DATA overrides.
DEFAULT_DATA_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


def _write(path: Path, data: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def _write_idx(path: Path, array: np.ndarray, magic: int | None = None, gz: bool = False) -> Path:
    """An IDX file: magic (0x08 = uint8, then the number of dims), big-endian int32 dims, the bytes."""
    array = np.asarray(array, dtype=np.uint8)
    magic = 0x0800 + array.ndim if magic is None else magic
    header = magic.to_bytes(4, "big") + np.array(array.shape, ">u4").tobytes()
    return _write(path, header + array.tobytes(), gz)


def _write_amat(path: Path, bits: np.ndarray, gz: bool = False) -> Path:
    """Binarized MNIST text: one image a line, 784 space-separated 0/1 values."""
    lines = [" ".join(map(str, row)) for row in bits.reshape(len(bits), -1)]
    return _write(path, ("\n".join(lines) + "\n").encode(), gz)


def _write_cifar_batch(path: Path, x: np.ndarray, y: np.ndarray) -> Path:
    """A CIFAR python batch like the official ones: a pickled dict with bytes keys, data as [N, 3072]."""
    batch = {
        b"batch_label": b"training batch 1 of 5",
        b"labels": [int(v) for v in y],
        b"data": x.reshape(len(x), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(x))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return path


def _write_images(folder: Path, images: np.ndarray, labels: np.ndarray | None = None) -> list[Path]:
    """PNG files from uint8 ``[N, H, W, C]``, in class subfolders ``c{label}`` when labels are given."""
    from PIL import Image

    paths = []
    for i, image in enumerate(images):
        sub = folder if labels is None else folder / f"c{labels[i]}"
        sub.mkdir(parents=True, exist_ok=True)
        paths.append(sub / f"{i:03d}.png")
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(paths[-1])
    return paths


@pytest.fixture
def write_idx() -> Callable[..., Path]:
    return _write_idx


@pytest.fixture
def write_amat() -> Callable[..., Path]:
    return _write_amat


@pytest.fixture
def write_cifar_batch() -> Callable[..., Path]:
    return _write_cifar_batch


@pytest.fixture
def write_images() -> Callable[..., list[Path]]:
    return _write_images


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def mnist_like(tmp_path: Path, rng: np.random.Generator) -> Callable[..., tuple[Path, dict]]:
    """Writes the four IDX files of a tiny MNIST-style dataset; returns the folder and the arrays written."""

    def make(gz: bool = True, n_train: int = 12, n_test: int = 5, name: str = "idx") -> tuple[Path, dict]:
        folder = tmp_path / name
        suffix = ".gz" if gz else ""
        arrays = {}
        for prefix, n in (("train", n_train), ("t10k", n_test)):
            x, y = rng.integers(0, 256, (n, 6, 5), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)
            _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x, gz=gz)
            _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y, gz=gz)
            arrays[prefix] = (x, y)
        return folder, arrays

    return make


@pytest.fixture
def real_root() -> Path:
    """The folder of the real datasets (AEKIT_DATA, else ../shared/datasets); skips when it is absent."""
    root = Path(os.environ.get("AEKIT_DATA") or DEFAULT_DATA_ROOT)
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root}; set AEKIT_DATA")
    return root


# Small randomly initialised Hugging Face models (no downloads), for the activation store and splicing.
@pytest.fixture(scope="module")
def bert():
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, vocab_size=100)
    return transformers.BertModel(config).eval()


@pytest.fixture(scope="module")
def llama():
    transformers = pytest.importorskip("transformers")
    import torch

    torch.manual_seed(0)
    config = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=100, max_position_embeddings=64)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture
def bert_folder(bert, tmp_path) -> Path:
    """``bert`` saved with a word-piece tokenizer of a few words, as a local Hugging Face model folder."""
    transformers = pytest.importorskip("transformers")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"the a cat dog sat on mat ran".split()]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    hf = tmp_path / "hf"
    bert.save_pretrained(hf)
    transformers.BertTokenizer(vocab_file=str(tmp_path / "vocab.txt")).save_pretrained(hf)
    return hf
