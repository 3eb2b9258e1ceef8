"""write_report builds one self-contained, escaped HTML page from whatever a run directory holds."""

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from aekit.errors import DataError
from aekit.report import FIGURE_CAPTIONS, plot_samples, write_report

METRICS = {
    "test/nll": 89.9,
    "test/elbo": -94.1,
    "test/recon": 80.2,
    "test/kl": 14.0,
    "test/active_units": 12,
    "test/linear_probe_acc": 0.93,
    "test/knn_acc": 0.95,
    "train/steps": 1000,
    "train/wall_time_s": 12.3,
}
CONFIG = {
    "model": {"name": "vae<script>alert(1)</script>", "latent_dim": 8, "hidden": [64, 32]},
    "data": {"name": "mnist & friends"},
    "train": {"lr": 0.001, "max_steps": 1000},
}


def tiny_png(path: Path, seed: int = 0) -> None:
    plot_samples(np.random.default_rng(seed).random((4, 1, 8, 8)), path)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    figures = tmp_path / "figures"
    figures.mkdir()
    for seed, name in enumerate(
        ["training_curves.png", "extra_plot.png", "reconstructions.png", "latent_map.png"]
    ):
        tiny_png(figures / name, seed)
    return tmp_path


def embedded_images(html: str) -> list[bytes]:
    return [base64.b64decode(data) for data in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_report_holds_metrics_config_and_embedded_figures(run_dir: Path) -> None:
    path = write_report(run_dir)
    assert path == run_dir / "report.html"
    html = path.read_text(encoding="utf-8")

    for shown in ["89.9", "-94.1", "80.2", "14", "12", "0.93", "0.95", "1,000", "12.3"]:
        assert f'<td class="number">{shown}</td>' in html
    assert "<caption>test</caption>" in html and "<caption>train</caption>" in html

    assert "vae&lt;script&gt;alert(1)&lt;/script&gt; on mnist &amp; friends" in html
    assert "<script" not in html and "alert(1)</script>" not in html
    assert "latent_dim" in html and "max_steps" in html

    images = embedded_images(html)
    assert len(images) == 4
    assert all(image.startswith(b"\x89PNG\r\n\x1a\n") for image in images)
    assert images[0] == (run_dir / "figures" / "reconstructions.png").read_bytes()
    order = [
        html.index(caption) for caption in [*FIGURE_CAPTIONS.values(), "Extra plot"]
        if not any(word in caption for word in ("prior", "masks", "Node", "fires", "each code", "traversals",
                                                "collapsed", "ground-truth"))  # not drawn here
    ]
    assert order == sorted(order)  # known figures first, in their order, then the others
    assert "Not produced" not in html  # a figure the run did not make is no failure, and goes unmentioned

    for external in ["http://", "https://", "<script src", "<link"]:
        assert external not in html
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "config.json",
        "figures",
        "metrics.json",
        "report.html",
    ]


def test_report_without_metrics_or_figures(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert "No metrics: metrics.json not found." in html
    assert "no figures/ folder" in html
    assert "<td>mnist &amp; friends</td>" in html


def test_report_of_an_empty_run_dir_and_a_corrupt_metrics_file(tmp_path: Path) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "broken.png").write_bytes(b"not a png")
    html = write_report(tmp_path).read_text(encoding="utf-8")
    assert f"<h1>Run {tmp_path.name}</h1>" in html
    assert "metrics.json could not be read" in html
    assert "config.json not found" in html
    assert "broken.png is not a valid PNG" in html
    assert not embedded_images(html)


def test_report_rewrites_an_existing_report(run_dir: Path) -> None:
    write_report(run_dir)
    (run_dir / "metrics.json").write_text(json.dumps({"test/nll": 77.5}))
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert "77.5" in html and "89.9" not in html


def test_report_rejects_a_missing_run_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        write_report(tmp_path / "nope")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1000, "1,000"),
        (0.93, "0.93"),
        (89.91234, "89.91"),
        (1234.56, "1,234.6"),
        (1.5e-5, "1.500e-05"),
        (float("nan"), "NaN"),
        (True, "true"),
        (None, "none"),
    ],
)
def test_metric_formatting(value: object, shown: str) -> None:
    from aekit.report.html import _format_metric

    assert _format_metric(value) == shown


# Every key that evaluate() and the training loop write to metrics.json.
KNOWN_METRICS = [
    "test/recon", "test/mse", "test/psnr", "test/bce", "test/elbo", "test/kl", "test/kl_per_dim", "test/nll",
    "test/nll_stderr", "test/nll_samples", "test/bits_per_dim", "test/active_units", "test/linear_probe_acc",
    "test/knn_acc", "test/examples", "train/steps", "train/stop_reason", "train/skipped_steps",
    "train/wall_time_s", "train/samples_per_s", "train/best_val_loss",
]


@pytest.mark.parametrize("key", KNOWN_METRICS)
def test_every_known_metric_is_explained(key: str) -> None:
    from aekit.report import explain_metric

    assert len(explain_metric(key).split()) >= 3


@pytest.mark.parametrize(
    ("key", "explanation"),
    [
        ("test/nll", "-log p(x) by importance sampling; nats per example, lower is better"),
        ("val/nll", "-log p(x) by importance sampling; nats per example, lower is better"),
        ("test/elbo", "evidence lower bound on log p(x), -(recon + kl); nats per example, higher is better"),
        ("test/knn_acc", "accuracy of 5 nearest neighbours in latent-mean space, fit on train; fraction, "
                         "higher is better"),
        ("train/steps", "optimiser steps taken; count"),
        ("train/nll", ""),  # training keys are their own; the test entry does not stand in
        ("test/unheard_of", ""),
    ],
)
def test_explanations_carry_their_unit_and_direction(key: str, explanation: str) -> None:
    from aekit.report import explain_metric

    assert explain_metric(key) == explanation


def test_report_shows_each_metric_with_its_explanation(run_dir: Path) -> None:
    html = write_report(run_dir).read_text(encoding="utf-8")
    assert ('<tr><td>nll</td><td class="number">89.9</td><td class="note">-log p(x) by importance sampling; '
            "nats per example, lower is better</td></tr>") in html
    assert '<tr><td>steps</td><td class="number">1,000</td><td class="note">optimiser steps taken; count</td>' in html
