"""The report leads with the family's headline metrics (meaning, unit, how each was taken), draws per-unit values
as a chart, names only the figures that failed, shows the config keys that apply, and speaks each family's terms."""

import json
import re
from pathlib import Path

import numpy as np

from aekit.report import explain_metric, write_report
from aekit.report.figures import _constant, _read_training_log, plot_samples, plot_training_curves
from aekit.report.html import bar_chart

VAE_METRICS = {"test/mse": 0.02, "test/nll": 89.91, "test/nll_samples": 100, "test/nll_examples": 100,
               "test/nll_stderr": 0.8, "test/elbo": -94.1, "test/kl": 14.0, "test/active_units": 12,
               "test/kl_per_dim": [0.0, 2.5, 0.01, 3.0], "test/examples": 500, "test/subset_of": 10000,
               "test/protocol": "quick", "train/steps": 50}
DATA = {"name": "mnist", "graph_task": "link", "edge_split": [0.05, 0.1], "memmap": False}


def run(tmp_path: Path, model: str, metrics: dict, data: dict = DATA) -> Path:
    (tmp_path / "config.json").write_text(json.dumps({"model": {"name": model}, "data": data, "train": {}}))
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    return tmp_path


def headline(html: str) -> str:
    return html[html.index("<h2>Headline</h2>"):html.index("<h2>Metrics</h2>")]


def test_a_vae_page_leads_with_its_nll_and_says_how_it_was_taken(tmp_path):
    html = write_report(run(tmp_path, "vae", VAE_METRICS)).read_text()
    head = headline(html)
    rows = re.findall(r"<tr><th>(test/\w+)</th>", head)
    assert rows == ["test/nll", "test/elbo", "test/kl", "test/active_units", "test/mse"]
    assert "nats per example, lower is better (K = 100 importance samples on 100 examples; standard error 0.8)" in head
    assert "a fixed subset of 500 of the 10,000 test examples (a quick evaluation" in head
    assert html.index("<h2>Headline</h2>") < html.index("<h2>Metrics</h2>")


def test_a_per_unit_metric_is_a_bar_chart_with_its_values_a_click_away(tmp_path):
    html = write_report(run(tmp_path, "vae", VAE_METRICS)).read_text()
    chart = re.search(r'<svg class="bars".*?</svg>', html).group(0)
    assert chart.count("<rect") == 4 and "<title>3: 3</title>" in chart
    assert "<summary>4 values</summary><code>[0.0, 2.5, 0.01, 3.0]</code>" in html
    svg = bar_chart([1.0, -1.0])  # negative values hang below the zero line
    heights = [float(h) for h in re.findall(r'height="([\d.]+)">', svg)]
    assert heights == [24.0, 24.0]


def test_the_config_shows_the_keys_that_apply_to_the_model(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    config = write_report(run(tmp_path / "a", "vae", VAE_METRICS)).read_text().split("<h2>Configuration</h2>")[1]
    tables = config.split("<details>")[0]  # the tables; config.json itself follows, whole, in <details>
    assert "<td>memmap</td>" in tables and "graph_task" not in tables
    graph = write_report(run(tmp_path / "b", "vgae", {"test/auc": 0.91, "test/ap": 0.92})).read_text()
    config = graph.split("<h2>Configuration</h2>")[1].split("<details>")[0]
    assert "<td>graph_task</td>" in config and "<td>memmap</td>" not in config
    assert re.findall(r"<tr><th>(test/\w+)</th>", headline(graph)) == ["test/auc", "test/ap"]


def test_an_mae_page_explains_its_loss_and_patch_errors_in_its_own_words(tmp_path):
    metrics = {"test/recon": 0.07, "test/masked_mse": 0.07, "test/visible_mse": 0.33, "test/mask_ratio": 0.75}
    html = write_report(run(tmp_path, "mae", metrics)).read_text()
    assert "the training loss: squared error of the predicted hidden patches" in html
    assert "-log p(x|z)" not in html
    assert explain_metric("test/recon", ("masked",)) != explain_metric("test/recon")
    for key in ("test/masked_mse", "test/visible_mse", "test/mask_ratio"):
        assert explain_metric(key, ("masked",))


def test_only_the_figures_that_failed_are_named_as_missing(tmp_path):
    figures = tmp_path / "figures"
    figures.mkdir(parents=True)
    plot_samples(np.random.default_rng(0).random((4, 1, 8, 8)), figures / "node_embeddings.png")
    (figures / "failed.json").write_text(json.dumps({"latent_map.png": "ValueError: all embeddings are NaN"}))
    html = write_report(run(tmp_path, "vgae", {"test/auc": 0.9})).read_text()
    assert "Node embeddings, coloured by class" in html
    assert "Not produced: latent_map.png (ValueError: all embeddings are NaN)." in html
    assert "no prior" not in html and "samples.png" not in html


def test_training_curves_leave_out_the_clock_and_constant_weights(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,epoch,split,lr,time_s,loss,beta\n"
                   + "".join(f"{s},0,train,0.001,{s * 0.1},{10 - s},4.0\n" for s in range(1, 6)))
    series = _read_training_log(log)
    assert _constant(series, "beta") and _constant(series, "lr") and not _constant(series, "loss")
    path = plot_training_curves(log, tmp_path / "curves.png")
    assert path.is_file()
