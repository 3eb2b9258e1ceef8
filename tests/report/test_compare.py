"""write_comparison puts runs side by side: metrics with the best marked, differing settings, overlaid curves."""

import json
import re
from pathlib import Path

import pytest

from aekit.errors import AekitError, DataError
from aekit.report import write_comparison
from aekit.report.compare import _best_value


def make_run(folder: Path, model: str, metrics: dict, latent_dim: int = 8, log: str | None = None) -> Path:
    folder.mkdir(parents=True)
    config = {"model": {"name": model, "latent_dim": latent_dim, "hidden": [32]},
              "data": {"name": "digits"}, "train": {"lr": 0.001, "steps": 100}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.json").write_text(json.dumps(metrics))
    if log is not None:
        (folder / "log.csv").write_text(log)
    return folder


LOG_A = "step,split,loss,kl\n10,train,9.0,1.0\n20,train,8.0,0.9\n20,val,8.5,\n"
LOG_B = "step,split,loss,recon\n10,train,7.0,6.0\n20,train,6.5,5.5\n"


@pytest.fixture
def two_runs(tmp_path: Path) -> list[Path]:
    a = make_run(tmp_path / "first", "vae", {"test/nll": 90.0, "test/elbo": -95.0, "test/knn_acc": 0.8,
                                            "test/examples": 180, "train/samples_per_s": 1000.0,
                                            "test/kl_per_dim": [0.5, 0.1]}, log=LOG_A)
    b = make_run(tmp_path / "second", "ae<b>", {"test/nll": 95.5, "test/elbo": -94.0, "test/knn_acc": 0.9,
                                               "test/examples": 180, "train/samples_per_s": 2000.0,
                                               "test/mse": 0.01}, latent_dim=4, log=LOG_B)
    return [a, b]


def rows(html: str) -> dict[str, str]:
    """Each table row's first cell -> the row's HTML."""
    return {m.group(1): m.group(0) for m in re.finditer(r"<tr><td>([^<]+)</td>.*?</tr>", html)}


def test_metrics_side_by_side_with_the_best_of_each_row_marked(two_runs: list[Path], tmp_path: Path) -> None:
    html = write_comparison(two_runs, tmp_path / "out").read_text(encoding="utf-8")
    assert "<th>first (vae)</th><th>second (ae&lt;b&gt;)</th>" in html and "<b>" not in html
    table = rows(html)
    assert '<td class="number best">90</td><td class="number">95.5</td>' in table["test/nll"]  # lower is better
    assert '<td class="number">-95</td><td class="number best">-94</td>' in table["test/elbo"]  # higher
    assert '<td class="number">0.8</td><td class="number best">0.9</td>' in table["test/knn_acc"]
    assert "best" not in table["test/examples"]  # equal values: no winner
    assert "best" not in table["train/samples_per_s"]  # no known direction
    assert "best" not in table["test/mse"] and '<td class="absent">' in table["test/mse"]  # one value only
    assert "-log p(x) by importance sampling; nats per example, lower is better" in table["test/nll"]


def test_only_the_settings_that_differ_are_listed(two_runs: list[Path], tmp_path: Path) -> None:
    html = write_comparison(two_runs, tmp_path / "out").read_text(encoding="utf-8")
    table = rows(html)
    assert '<td class="number">8</td><td class="number">4</td>' in table["model.latent_dim"]
    assert "model.name" in table
    assert not {"model.hidden", "data.name", "train.lr", "train.steps"} & set(table)


def test_one_figure_per_shared_log_column_one_colour_per_run(two_runs: list[Path], tmp_path: Path,
                                                              monkeypatch) -> None:
    from aekit.report import compare

    drawn = []
    make_figure = compare._new_figure
    monkeypatch.setattr(compare, "_new_figure", lambda size: drawn.append(make_figure(size)) or drawn[-1])
    html = write_comparison(two_runs, tmp_path / "out").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 1 == len(drawn)  # loss is the only column both logged
    assert "Logged by only some runs, not drawn: kl, recon." in html
    lines = drawn[0].axes[0].get_lines()
    assert [line.get_label() for line in lines] == ["first (vae) train", "first (vae) val", "second (ae<b>) train"]
    colours = [line.get_color() for line in lines]
    assert colours[0] == colours[1] != colours[2]
    assert [line.get_linestyle() for line in lines[:2]] == ["-", "--"]


def test_only_index_html_is_written_even_inside_a_run(two_runs: list[Path]) -> None:
    first = two_runs[0]
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    path = write_comparison(two_runs, first)
    assert path == first / "index.html"
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.name != "index.html"} == before


def test_runs_without_logs_or_configs_still_compare(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "vae", {"test/nll": 1.0})
    b = make_run(tmp_path / "b", "vae", {"test/nll": 2.0})
    (b / "config.json").unlink()
    html = write_comparison([a, b], tmp_path / "out").read_text(encoding="utf-8")
    assert "No run has a readable log.csv." in html and "b: config.json not found." in html
    assert "Fewer than two runs have a config.json" in html


def test_same_folder_names_are_told_apart_by_their_paths(tmp_path: Path) -> None:
    a = make_run(tmp_path / "x" / "run", "vae", {"test/nll": 1.0})
    b = make_run(tmp_path / "y" / "run", "vae", {"test/nll": 2.0})
    html = write_comparison([a, b], tmp_path / "out").read_text(encoding="utf-8")
    assert f"<th>{a} (vae)</th><th>{b} (vae)</th>" in html


def test_a_missing_run_or_metrics_file_is_a_clear_error(two_runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere: no such run folder"):
        write_comparison([two_runs[0], tmp_path / "nowhere"], tmp_path / "out")
    (two_runs[1] / "metrics.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="second: metrics.json holds a list"):
        write_comparison(two_runs, tmp_path / "out")
    (two_runs[1] / "metrics.json").unlink()
    with pytest.raises(DataError, match=r"second: metrics.json not found; evaluate the run first"):
        write_comparison(two_runs, tmp_path / "out")
    with pytest.raises(DataError, match="at least one run"):
        write_comparison([], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_out_that_is_a_file_is_refused(two_runs: list[Path], tmp_path: Path) -> None:
    blocker = tmp_path / "page"
    blocker.write_text("mine")
    with pytest.raises(AekitError, match="is a file"):
        write_comparison(two_runs, blocker)
    assert blocker.read_text() == "mine"


@pytest.mark.parametrize(
    ("key", "values", "best"),
    [
        ("test/nll", [3.0, 1.0, 2.0], 1.0),
        ("val/recon", [3.0, 1.0], 1.0),
        ("test/psnr", [10.0, 12.0], 12.0),
        ("test/active_units", [3, 5, None], None),  # no direction: more units may be a rate bought with recon
        ("test/kl", [0.1, 20.0], None),  # the lowest KL may be a collapsed posterior
        ("test/linear_probe_acc", [0.5, 0.7], 0.7),
        ("test/nll", [float("nan"), 2.0], None),  # a single finite number: nothing to beat
        ("test/nll_stderr", [0.1, 0.2], None),
        ("test/kl_per_dim", [[0.1], [0.2]], None),
    ],
)
def test_best_value(key: str, values: list, best: float | None) -> None:
    assert _best_value(key, values) == best


def test_an_nll_taken_with_other_sample_counts_is_marked_not_comparable(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a", "vae", {"test/nll": 90.0, "test/nll_samples": 5000})
    b = make_run(tmp_path / "b", "vae", {"test/nll": 88.0, "test/nll_samples": 1000})
    table = rows(write_comparison([a, b], tmp_path / "out").read_text(encoding="utf-8"))
    assert "best" not in table["test/nll"]
    assert ("not comparable: measured with nll_samples 5,000, 1,000; rescore with aekit evaluate RUN --nll-samples "
            "K to compare") in table["test/nll"]
    c = make_run(tmp_path / "c", "vae", {"test/nll": 91.0, "test/nll_samples": 5000})
    table = rows(write_comparison([a, c], tmp_path / "out2").read_text(encoding="utf-8"))
    assert "best" in table["test/nll"] and "not comparable" not in table["test/nll"]
