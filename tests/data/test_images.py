"""A folder of images read batch by batch, and the crop and flip augmentations."""

import numpy as np
import pytest
import torch
from PIL import Image

import aekit
from aekit.data import images as images_module
from aekit.data import load_data
from aekit.data.batch import Batch
from aekit.data.images import ImageFolderSource, augment, horizontal_flip, random_resized_crop
from aekit.errors import AekitError, ConfigError, DataError


@pytest.fixture
def folder(tmp_path):
    """Two classes of RGB images of several sizes and aspects."""
    rng = np.random.default_rng(0)
    for name in ("cats", "dogs"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i, (w, h) in enumerate([(20, 12), (16, 16), (9, 30), (40, 25), (12, 12)]):
            pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "pics" / name / f"{i}.png")
    return tmp_path / "pics"


def test_images_of_any_size_come_square_labelled_and_only_when_asked_for(folder, monkeypatch):
    source = ImageFolderSource(folder, 8)
    assert len(source) == 10 and source.shape == (3, 8, 8) and source.classes == ("cats", "dogs")
    assert source.y.tolist() == [0] * 5 + [1] * 5
    reads = []
    original = images_module._decode
    monkeypatch.setattr(images_module, "_decode", lambda *a: reads.append(a[0]) or original(*a))
    batch = source.batch(torch.tensor([7, 1]))
    assert batch.inputs.shape == (2, 3, 8, 8) and batch.labels.tolist() == [1, 0]
    assert len(reads) == 2  # two files decoded, nothing else
    assert 0 <= float(batch.inputs.min()) and float(batch.inputs.max()) <= 1
    view = source.subset(torch.tensor([5, 6, 7]))
    assert len(view) == 3 and view.labels().tolist() == [1, 1, 1]
    assert torch.equal(view.inputs(slice(2, 3)), source.inputs(slice(7, 8)))


def test_a_square_image_keeps_its_centre_and_a_wide_one_is_centre_cropped(tmp_path):
    (tmp_path / "f").mkdir()
    pixels = np.zeros((8, 16), np.uint8)
    pixels[:, 4:12] = 255  # the centre 8 columns are white
    Image.fromarray(pixels).save(tmp_path / "f" / "wide.png")
    source = ImageFolderSource(tmp_path / "f", 8)
    assert source.shape == (1, 8, 8) and source.y is None
    assert torch.equal(source.inputs(), torch.ones(1, 1, 8, 8))


def test_load_data_streams_a_folder_with_image_size_and_trains(folder, tmp_path):
    splits = load_data(str(folder), image_size=8, val_fraction=0.2, test_fraction=0.2)
    assert isinstance(splits.train, ImageFolderSource) and splits.shape == (3, 8, 8)
    assert len(splits.train) + len(splits.val) + len(splits.test) == 10
    result = aekit.train("mae", data=str(folder), out=None, image_size=8, val_fraction=0.2, test_fraction=0.2,
                         steps=3, batch_size=4, patch_size=4, width=8, depth=1, heads=2, decoder_width=8,
                         decoder_depth=1, decoder_heads=2, augment=("crop", "flip"))
    assert result.model.config.data_shape == (3, 8, 8)
    with pytest.raises(DataError, match="image_size= are for your own files"):
        load_data("digits", image_size=8)


def test_a_corrupt_image_is_a_clear_error(folder):
    (folder / "cats" / "9.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"9.png: not a readable image"):
        ImageFolderSource(folder, 8).inputs()


def test_crop_of_the_whole_image_is_the_identity_and_flip_mirrors():
    x = torch.rand(3, 2, 6, 5)
    assert torch.allclose(random_resized_crop(x, (1.0, 1.0), (1.0, 1.0)), x, atol=1e-6)
    flipped = random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), flip=True, generator=torch.Generator().manual_seed(0))
    for i in range(3):
        assert torch.allclose(flipped[i], x[i], atol=1e-6) or torch.allclose(flipped[i], x[i].flip(-1), atol=1e-6)
    g = torch.Generator().manual_seed(3)
    mirrored = horizontal_flip(x, g)
    assert all(torch.equal(mirrored[i], x[i]) or torch.equal(mirrored[i], x[i].flip(-1)) for i in range(3))


def test_a_quarter_crop_zooms_in_on_a_quarter_of_the_image():
    ramp = torch.linspace(0, 1, 64).expand(64, 64)[None, None].repeat(200, 1, 1, 1)  # brightness = column
    out = random_resized_crop(ramp, (0.25, 0.25), (1.0, 1.0), generator=torch.Generator().manual_seed(0))
    spans = out[:, 0, 0, -1] - out[:, 0, 0, 0]  # a crop half as wide spans half the brightness range
    assert torch.allclose(spans, torch.full((200,), 0.5), atol=0.03)
    starts = out[:, 0, 0, 0]
    assert float(starts.min()) < 0.1 and float(starts.max()) > 0.4  # uniform positions over [0, 0.5]


def test_augment_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="augment='rotate' is unknown"):
        augment(Batch(torch.rand(2, 1, 4, 4)), ("rotate",))
    with pytest.raises(ConfigError, match=r"needs float images \[B, C, H, W\]"):
        augment(Batch(torch.rand(2, 7)), ("flip",))
    with pytest.raises(ConfigError, match="crop_scale"):
        random_resized_crop(torch.rand(1, 1, 4, 4), (0.5, 0.2))
    with pytest.raises(AekitError, match="augment='rotate'"):
        aekit.train("ae", data="digits", out=None, steps=1, augment=("rotate",))


def test_images_of_mixed_sizes_name_the_image_size_that_reads_them(tmp_path):
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(DataError, match="but a.png has 8x8 with 1; pass image_size=8 to read every image"):
        load_data(str(tmp_path))
