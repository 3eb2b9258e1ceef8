"""Several runs on one self-contained page: their metrics side by side, their differing settings, their curves.

``write_comparison([run_a, run_b], out)`` writes ``out/index.html`` and nothing else, so ``out`` may even be
one of the runs. Like the report, the page embeds its figures and escapes every string read from the runs.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from aekit.errors import DataError
from aekit.report.figures import _new_figure, _read_training_log, plot_term
from aekit.report.html import (
    _CONFIG_SECTIONS,
    _flatten,
    _format_config,
    _format_metric,
    _missing,
    _read_json,
    embedded_figure,
    explain_metric,
    metric_direction,
    value_cell,
    write_page,
)

__all__ = ["write_comparison"]

# Line styles tell the splits of one run apart; colours tell the runs apart.
_ABSENT = '<td class="absent">&mdash;</td>'


@dataclass
class _Run:
    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any] | None
    config_problem: str | None
    label: str = ""


def write_comparison(runs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str]) -> Path:
    """Write ``out/index.html`` comparing the run directories ``runs``; return its path.

    Rows of the metrics table are the keys of the runs' ``metrics.json``, the best value of each marked where
    lower or higher is known to be better; then the model, data and train keys of ``config.json`` whose
    values differ; then one figure per column of ``log.csv`` that every run logged, one colour per run.
    A run folder that does not exist or has no readable ``metrics.json`` is a DataError.
    """
    from aekit.io import check_out_dir

    if not runs:
        raise DataError("compare needs at least one run directory; pass the folders that training runs wrote")
    loaded = _read_runs([Path(run) for run in runs])
    out = check_out_dir(out)
    title = f"Comparison of {len(loaded)} run{'s' if len(loaded) != 1 else ''}"
    body = [
        f"<h1>{title}</h1>",
        '<p class="subtitle">' + ", ".join(f"<code>{escape(str(run.path))}</code>" for run in loaded) + "</p>",
        "<h2>Metrics</h2>",
        _metrics_table(loaded),
        "<h2>Settings that differ</h2>",
        _differences_table(loaded),
        "<h2>Training curves</h2>",
        _curves_section(loaded),
    ]
    return write_page(out / "index.html", title, body)


def _read_runs(paths: list[Path]) -> list[_Run]:
    runs = []
    for path in paths:
        if not path.is_dir():
            raise DataError(f"{path}: no such run folder; pass the folders that training runs wrote")
        metrics, problem = _read_json(path / "metrics.json")
        if problem is not None or not isinstance(metrics, dict):
            why = problem or f"metrics.json holds a {type(metrics).__name__}, not a dict"
            raise DataError(f"{path}: {why}; evaluate the run first (aekit evaluate {path})")
        config, config_problem = _read_json(path / "config.json")
        if config_problem is None and not isinstance(config, dict):
            config, config_problem = None, f"config.json holds a {type(config).__name__}, not a dict"
        runs.append(_Run(path, _flatten(metrics, "/"), config, config_problem))
    names = [run.path.resolve().name for run in runs]
    for run, name in zip(runs, names, strict=True):
        if names.count(name) > 1:  # one folder name in two places: the paths tell them apart
            name = str(run.path)
        model = (run.config or {}).get("model")
        model_name = model.get("name") if isinstance(model, dict) else None
        run.label = f"{name} ({model_name})" if model_name else name
    return runs


def _header(runs: list[_Run], first: str, last: str = "") -> str:
    cells = [f"<th>{escape(first)}</th>", *(f"<th>{escape(run.label)}</th>" for run in runs)]
    if last:
        cells.append(f"<th>{escape(last)}</th>")
    return "<tr>" + "".join(cells) + "</tr>"


def _metrics_table(runs: list[_Run]) -> str:
    keys = list(dict.fromkeys(key for run in runs for key in run.metrics))
    if not keys:
        return _missing("The runs' metrics.json files hold no metrics yet.")
    lines = ["<table>", _header(runs, "metric", "meaning")]
    for key in keys:
        differently = _measured_differently(key, runs)
        best = None if differently else _best_value(key, [run.metrics.get(key) for run in runs])
        cells = []
        for run in runs:
            if key not in run.metrics:
                cells.append(_ABSENT)
                continue
            value = run.metrics[key]
            marked = best is not None and _is_number(value) and value == best
            cells.append(value_cell(value, _format_metric, "best" if marked else ""))
        note = explain_metric(key) + (f" (not comparable: {differently})" if differently else "")
        lines.append(f"<tr><td>{escape(key)}</td>{''.join(cells)}"
                     f'<td class="note">{escape(note)}</td></tr>')
    lines.append("</table>")
    lines.append('<p class="subtitle">Bold on green: the best value of a row whose metric is known to be better '
                 "lower or higher.</p>")
    return "\n".join(lines)


# How a metric was taken, where runs may have taken it differently: its companion keys in metrics.json (every
# metric of a split: how many of its examples were scored), and how to rescore alike.
MEASURED_WITH = {"nll": ("nll_samples", "nll_examples"), "bits_per_dim": ("nll_samples", "nll_examples"),
                 "nll_stderr": ("nll_samples", "nll_examples"), "linear_probe_acc": ("probe_examples",),
                 "knn_acc": ("probe_examples",)}
_EVERY_METRIC = ("examples",)
_RESCORE = {"nll_samples": "--nll-samples K", "nll_examples": "--nll-examples N", "examples": "--eval full",
            "probe_examples": "--eval full"}


def _measured_differently(key: str, runs: list[_Run]) -> str:
    """A note when the runs holding ``key`` took it differently (an NLL with 5,000 and with 1,000 importance
    samples, a quick evaluation of 500 test examples against one of all), else ""."""
    split, _, name = key.rpartition("/")
    if not split or split == "train" or name in _EVERY_METRIC:
        return ""
    for companion in (*MEASURED_WITH.get(name, ()), *_EVERY_METRIC):
        values = [run.metrics.get(f"{split}/{companion}") for run in runs if key in run.metrics]
        if len({repr(v) for v in values}) > 1:
            shown = ", ".join("unknown" if v is None else f"{v:,}" if _is_number(v) else str(v) for v in values)
            return (f"measured with {companion} {shown}; rescore with aekit evaluate RUN {_RESCORE[companion]} "
                    "to compare")
    return ""


def _best_value(key: str, values: list[Any]) -> float | None:
    """The best of the numbers in ``values`` for metric ``key``; None when the direction is unknown or no
    value stands out (fewer than two numbers, or all equal)."""
    direction = metric_direction(key)
    numbers = [value for value in values if _is_number(value) and math.isfinite(value)]
    if direction is None or len(numbers) < 2 or len(set(numbers)) == 1:
        return None
    return min(numbers) if direction == "lower" else max(numbers)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _differences_table(runs: list[_Run]) -> str:
    notes = [_missing(f"{run.label}: {run.config_problem}.") for run in runs if run.config_problem is not None]
    with_config = [run for run in runs if run.config is not None]
    if len(with_config) < 2:
        return "\n".join(notes + [_missing("Fewer than two runs have a config.json; there is nothing to compare.")])
    flat = {id(run): _flat_settings(run.config) for run in with_config}
    keys = list(dict.fromkeys(key for run in with_config for key in flat[id(run)]))
    differing = [key for key in keys if len({_setting_text(flat[id(run)], key) for run in with_config}) > 1]
    if not differing:
        return "\n".join(notes + ["<p>The runs share every model, data and train setting.</p>"])
    lines = ["<table>", _header(with_config, "setting")]
    for key in differing:
        cells = [
            value_cell(flat[id(run)][key], _format_config) if key in flat[id(run)] else _ABSENT
            for run in with_config
        ]
        lines.append(f"<tr><td>{escape(key)}</td>{''.join(cells)}</tr>")
    lines.append("</table>")
    return "\n".join(notes + lines)


def _flat_settings(config: dict[str, Any]) -> dict[str, Any]:
    """``{"model.latent_dim": 8, "train.lr": 0.001, ...}`` from the model, data and train sections."""
    flat: dict[str, Any] = {}
    for section in _CONFIG_SECTIONS:
        if isinstance(config.get(section), dict):
            flat.update(_flatten(config[section], ".", section))
    return flat


def _setting_text(flat: dict[str, Any], key: str) -> str | None:
    return _format_config(flat[key]) if key in flat else None


def _curves_section(runs: list[_Run]) -> str:
    logs, notes = {}, []
    for run in runs:
        path = run.path / "log.csv"
        if not path.is_file():
            notes.append(_missing(f"{run.label}: no log.csv; its curves are not drawn."))
            continue
        try:
            logs[run.label] = _read_training_log(path)
        except DataError as error:
            notes.append(_missing(f"{run.label}: {error}; its curves are not drawn."))
    if not logs:
        return "\n".join(notes + [_missing("No run has a readable log.csv.")])
    terms = [list(dict.fromkeys(term for by_term in series.values() for term in by_term)) for series in logs.values()]
    shared = [term for term in terms[0] if all(term in others for others in terms[1:])]
    shared.sort(key=lambda term: term != "loss")  # the loss first, the others in the log's order
    only_some = sorted({term for names in terms for term in names} - set(shared))
    if only_some:
        notes.append(_missing(f"Logged by only some runs, not drawn: {', '.join(only_some)}."))
    figures = [
        embedded_figure(_curve_png(logs, term), f"{term} against step, one colour per run", f"log.csv: {term}")
        for term in shared
    ]
    return "\n".join(figures + notes)


def _curve_png(logs: dict[str, dict[str, dict[str, Any]]], term: str) -> bytes:
    """One panel: ``term`` of every run (a colour each) and split (a line style each), as PNG bytes."""
    fig = _new_figure((8, 4.2))
    ax = fig.subplots()
    for index, (label, series) in enumerate(logs.items()):
        plot_term(ax, series, term, run=label, colour=f"C{index % 10}")
    ax.set_title(term)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
