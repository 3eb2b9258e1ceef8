"""Each figure function writes a readable PNG for every input shape it promises to handle."""

from pathlib import Path

import numpy as np
import pytest
import torch

from aekit.errors import DataError
from aekit.report import plot_code_usage, plot_latent_map, plot_reconstructions, plot_samples, plot_training_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> np.ndarray:
    """The file is a PNG that matplotlib reads back as a non-empty image."""
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 0 and image.shape[1] > 0
    return image


def random_images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    "shape",
    [
        (4, 1, 8, 8),  # digits-sized grey
        (20, 1, 28, 28),  # more than n=16: two rows of 8
        (3, 3, 32, 32),  # RGB
        (5, 1, 7, 13),  # odd, non-square
        (2, 4, 9, 9),  # neither grey nor RGB: first channel
        (6, 10),  # table rows
        (1, 3),  # one short row
    ],
)
def test_plot_reconstructions_writes_png(tmp_path: Path, shape: tuple[int, ...]) -> None:
    x = random_images(shape)
    path = plot_reconstructions(x, random_images(shape, seed=1), tmp_path / "recon.png")
    assert path == tmp_path / "recon.png"
    assert_png(path)


def test_plot_reconstructions_accepts_numpy_uint8_and_creates_folders(tmp_path: Path) -> None:
    x = np.random.default_rng(0).integers(0, 256, size=(3, 1, 8, 8), dtype=np.uint8)
    path = plot_reconstructions(x, x, str(tmp_path / "new" / "folder" / "recon.png"), n=2)
    assert_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["recon.png"]  # no temporary file left behind


def test_plot_reconstructions_rejects_mismatched_or_unsupported_shapes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"x_hat has \[2, 1, 8, 8\]"):
        plot_reconstructions(torch.rand(3, 1, 8, 8), torch.rand(2, 1, 8, 8), tmp_path / "a.png")
    with pytest.raises(DataError, match="add a channel axis"):
        plot_reconstructions(torch.rand(3, 8, 8), torch.rand(3, 8, 8), tmp_path / "b.png")
    with pytest.raises(DataError, match="n=0"):
        plot_reconstructions(torch.rand(3, 5), torch.rand(3, 5), tmp_path / "c.png", n=0)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("shape", [(16, 1, 8, 8), (7, 3, 32, 32), (3, 1, 11, 5), (9, 12)])
def test_plot_samples_writes_png(tmp_path: Path, shape: tuple[int, ...]) -> None:
    assert_png(plot_samples(random_images(shape), tmp_path / "samples.png", title="Samples <T=1>"))


def test_plot_latent_map_draws_2d_latents_directly_and_projects_others(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, size=60)
    assert_png(plot_latent_map(rng.normal(size=(60, 2)), labels, tmp_path / "two.png"))
    assert_png(plot_latent_map(torch.randn(60, 16), torch.from_numpy(labels), tmp_path / "pca.png"))
    assert_png(plot_latent_map(rng.normal(size=(60, 1)), None, tmp_path / "one.png"))
    assert_png(plot_latent_map(rng.normal(size=(60, 5)), np.arange(60), tmp_path / "many_labels.png"))


def test_plot_latent_map_names_the_classes_in_its_legend(tmp_path: Path, monkeypatch) -> None:
    from aekit.report import figures

    drawn = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: drawn.append(fig) or Path(path))
    z, y = np.random.default_rng(0).normal(size=(12, 3)), np.array([2, 0, 1] * 4)
    plot_latent_map(z, y, tmp_path / "named.png", class_names=["ant", "bee", "cat"])
    plot_latent_map(z, y, tmp_path / "numbered.png")
    legends = [fig.axes[0].get_legend() for fig in drawn]
    assert [t.get_text() for t in legends[0].get_texts()] == ["ant", "bee", "cat"]
    assert legends[0].get_title().get_text() == "class"
    assert [t.get_text() for t in legends[1].get_texts()] == ["0", "1", "2"]
    with pytest.raises(DataError, match=r"labels \[0, 1, 2\] are not all ids of the 2 class names"):
        plot_latent_map(z, y, tmp_path / "short.png", class_names=["ant", "bee"])


def test_plot_latent_map_tsne(tmp_path: Path) -> None:
    z = np.random.default_rng(0).normal(size=(30, 6))
    assert_png(plot_latent_map(z, np.arange(30) % 3, tmp_path / "tsne.png", method="tsne"))


def test_plot_latent_map_rejects_bad_input(tmp_path: Path) -> None:
    z = np.zeros((10, 4))
    with pytest.raises(DataError, match="10 rows but y has 9"):
        plot_latent_map(z, np.arange(9), tmp_path / "a.png")
    with pytest.raises(DataError, match="unknown method 'umap'"):
        plot_latent_map(z, None, tmp_path / "b.png", method="umap")
    z[3, 1] = np.nan
    with pytest.raises(DataError, match="row 3"):
        plot_latent_map(z, None, tmp_path / "c.png")


def test_pca_projection_matches_known_principal_axes() -> None:
    from aekit.report.figures import _project_to_2d

    # Points spread along (1, 1, 0) far more than along (0, 0, 1): PC1 is that diagonal.
    t = np.linspace(-1, 1, 21)
    z = np.stack([10 * t, 10 * t, np.cos(7 * t)], axis=1)  # cos(7t) is uncorrelated with t
    points, names = _project_to_2d(z, "pca")
    np.testing.assert_allclose(points[:, 0], 10 * np.sqrt(2) * t, atol=1e-9)
    assert names[0].startswith("PC1 (")


GAPPY_LOG = """step,split,loss,recon,kl,beta,lr,note
0,train,120.5,100.0,20.5,0.0,0.001,warmup
10,train,100.0,85.0,,0.5,0.001,
10,val,105.0,90.0,15.0,,,
20,train,90.0,,12.0,1.0,0.0005,
,train,1.0,1.0,1.0,1.0,1.0,
30,train,nan,70.0,11.0,1.0,0.00025,
"""


def test_plot_training_curves_with_gaps(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text(GAPPY_LOG)
    assert_png(plot_training_curves(log, tmp_path / "curves.png"))


def test_training_log_keeps_numbers_and_skips_gaps(tmp_path: Path) -> None:
    from aekit.report.figures import _read_training_log

    log = tmp_path / "log.csv"
    log.write_text(GAPPY_LOG)
    series = _read_training_log(log)
    assert list(series) == ["train", "val"]
    steps, values = series["train"]["loss"]
    np.testing.assert_array_equal(steps, [0, 10, 20])  # the row without a step and the NaN are dropped
    np.testing.assert_array_equal(values, [120.5, 100.0, 90.0])
    np.testing.assert_array_equal(series["train"]["kl"][0], [0, 20, 30])
    assert set(series["val"]) == {"loss", "recon", "kl"}
    assert "note" not in series["train"]  # a text column is not a curve


def test_plot_training_curves_without_val_split_or_rows(tmp_path: Path) -> None:
    only_train = tmp_path / "train.csv"
    only_train.write_text("step,loss,recon\n" + "".join(f"{s},{100 - s},{90 - s}\n" for s in range(50)))
    assert_png(plot_training_curves(only_train, tmp_path / "train.png"))

    header_only = tmp_path / "empty.csv"
    header_only.write_text("step,split,loss\n")
    assert_png(plot_training_curves(header_only, tmp_path / "empty.png"))

    no_loss = tmp_path / "no_loss.csv"
    no_loss.write_text("step,split,recon\n1,train,3.0\n")
    assert_png(plot_training_curves(no_loss, tmp_path / "no_loss.png"))


def test_plot_training_curves_rejects_unusable_logs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        plot_training_curves(tmp_path / "missing.csv", tmp_path / "a.png")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataError, match="is empty"):
        plot_training_curves(empty, tmp_path / "b.png")
    no_step = tmp_path / "no_step.csv"
    no_step.write_text("epoch,loss\n1,2.0\n")
    with pytest.raises(DataError, match="no 'step'"):
        plot_training_curves(no_step, tmp_path / "c.png")


def test_anomaly_explanations_and_feature_attributions(tmp_path: Path) -> None:
    from aekit.report.figures import plot_anomaly_explanations, plot_feature_attributions

    rng = np.random.default_rng(0)
    images = rng.random((4, 3, 12, 12))
    rows = {"reconstruction": images * 0.5, "recon error": rng.random((4, 3, 12, 12)),
            "integrated gradients": rng.normal(size=(4, 3, 12, 12))}
    path = plot_anomaly_explanations(images, rows, tmp_path / "e.png", scores=[4.0, 3.0, 2.0, 1.0], title="why")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(DataError, match="recon error do not have the images' shape"):
        plot_anomaly_explanations(images, {"recon error": images[:, :1]}, tmp_path / "bad.png")
    with pytest.raises(DataError, match="pass \\[K, C, H, W\\] images"):
        plot_anomaly_explanations(images[0], rows, tmp_path / "bad.png")
    table = plot_feature_attributions({"ig": rng.normal(size=(3, 5)), "shares": rng.random((3, 5))},
                                      tmp_path / "a.png", ["r0", "r1", "r2"], list("abcde"))
    assert table.is_file()
    with pytest.raises(DataError, match="name -> \\[K, D\\] attributions"):
        plot_feature_attributions({"ig": rng.normal(size=(3, 5, 2))}, tmp_path / "bad.png")


def test_plot_latent_density_writes_png_and_rejects_a_non_matrix(tmp_path: Path) -> None:
    from aekit.report import plot_latent_density

    z = np.zeros((100, 6), dtype=np.float32)
    z[:50, 0] = 1.0  # fires on half the rows
    z[:5, 1] = 2.0  # on 5 %
    path = plot_latent_density(z, tmp_path / "density.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(DataError, match=r"expected \[N, D\]"):
        plot_latent_density(np.zeros(5), tmp_path / "bad.png")


def test_plot_code_usage_draws_each_column_and_rejects_a_mismatch(tmp_path: Path) -> None:
    codes = np.stack([np.arange(300) % 7, np.zeros(300, dtype=int)], 1)  # 7 of 8 used; one code
    assert_png(plot_code_usage(codes, [8, 4], tmp_path / "usage.png", ["stage 0", "stage 1"]))
    with pytest.raises(DataError, match="expected"):
        plot_code_usage(codes, [8], tmp_path / "bad.png")
