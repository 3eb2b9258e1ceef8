"""Anomaly detection on a file: a table, a time series or images, scored by any aekit model (``aekit detect``).

    aekit detect data.csv --out runs/detect --model vae latent_dim=4          # a table: one score per row
    aekit detect nyc_taxi.csv --out runs/taxi --model ae --window 48          # a series: one score per timestamp
    aekit detect nyc_taxi.csv --out runs/taxi --labels combined_windows.json  # NAB-style labelled windows
    aekit detect images.npz --out runs/img --model ce-vae                     # images: one score per image
    aekit detect mnist --normal-class 3 --out runs/oc3 --model ce-vae         # the one-class protocol

**Input.** A CSV with a header, or an ``.npz`` with ``X`` (and ``y``). A CSV whose first column is named
``timestamp`` (or ``time``, ``date``, ``datetime``) is a series: its rows must be in time order without repeats,
and its other columns are the values (one or several). Any other CSV or npz is a table. A column named ``label``
(``--label-column``) holds 0/1 labels (or words: normal/anomaly, no/yes, false/true) and is not a feature; for a
series, ``--labels`` may instead name a NAB-style JSON of anomaly windows ``{"<file name>": [["start", "end"],
...]}`` (the entry whose key ends with the file's name), whose rows in a window are labelled 1. An npz whose ``X``
is ``[N, H, W]``, ``[N, C, H, W]`` or ``[N, H, W, C]`` holds images (8-bit pixels scaled by 1/255). With
``--normal-class`` the data is a labelled image set (``mnist``, ``cifar10``, a path) split by the one-class
protocol (:func:`aekit.data.one_class_split`).

**Model.** A table trains an :class:`aekit.sklearn.AutoencoderDetector` on its rows (all of them, the
unsupervised protocol, unless ``--train-fraction`` keeps the first share); a series trains a
:class:`aekit.sklearn.SeriesDetector` on the windows of its first ``--train-fraction`` rows (default 0.15, NAB's
probationary share) and scores every row from the window that ends at it (only the past). The threshold is the
``1 - contamination`` quantile of the training rows' scores. Images train a convolutional model on pixels in
[0, 1] (:data:`IMAGE_DEFAULTS`, each overridable).

**Output** (in ``--out``): ``scores.csv`` (row or timestamp, score, 0/1 above the threshold, and the label where
known), ``metrics.json`` (threshold, rows, share flagged; ROC-AUC and average precision where labels exist),
``config.json``, the figures (score over time with the labelled rows shaded, score histograms of normal and
anomalous rows, ROC and precision-recall curves), why the highest scores are high (images: anomaly maps and
integrated gradients, ``figures/explanations.png``; tables: per-feature attributions, series: per step of the
window and per column, ``figures/attributions.png`` and ``attributions.csv``) and ``report.html``.

**Bad input** is a one-line error: a missing or unreadable file, a non-numeric value (its column and row), NaN
or empty values (the columns), timestamps out of order or repeated (the rows), fewer rows than the window, a
contamination outside (0, 0.5], labels that do not fit the rows, windows outside the series, NaN pixels, a normal
class the data does not have. Constant columns
carry no information and are dropped, with a note naming them (a table of constant columns only is an error).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aekit.data.formats import check_not_empty
from aekit.errors import ConfigError, DataError

TIME_COLUMNS = ("timestamp", "time", "date", "datetime")


@dataclass
class DetectionData:
    """Rows to score: ``values [N, C]``, the column names, ``timestamps [N]`` (a series) and ``labels [N]``."""

    values: np.ndarray
    columns: list[str]
    name: str
    timestamps: np.ndarray | None = None
    labels: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_series(self) -> bool:
        return self.timestamps is not None

    @property
    def is_images(self) -> bool:
        return self.values.ndim == 4

    @property
    def kind(self) -> str:
        return "series" if self.is_series else "images" if self.is_images else "table"


def read_detection_data(path: str | os.PathLike, label_column: str = "label", strict: bool = False) -> DetectionData:
    """A CSV (a table, or a series when its first column is a time) or an npz table, checked (module docstring).
    Timestamps that step back or repeat are scored in file order, as NAB scores its own files, after a note;
    ``strict`` refuses them."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; pass a CSV (a table, or timestamp,value rows) or an npz with X")
    check_not_empty(path)
    if path.suffix.lower() == ".npz":
        d = _checked(*_read_npz(path), path.name, None)
        d.notes.append(f"scored array X {'x'.join(map(str, d.values.shape))}"
                       + (", with y as the 0/1 labels" if d.labels is not None else " (no y: no labels)"))
        return d
    header, rows, lines = _read_csv(path)
    series = header[0].strip().lower() in TIME_COLUMNS
    labels, notes = None, []
    if label_column in header:
        labels, how = _labels([row[header.index(label_column)] for row in rows], label_column, path, lines)
        notes.append(f"labels from column {label_column!r}{how}, not a feature (--label-column names another)")
    skip = {0} if series else set()
    if labels is not None:
        skip.add(header.index(label_column))
    columns = [name for i, name in enumerate(header) if i not in skip]
    if not columns:
        raise DataError(f"{path}: no value columns besides {', '.join(header[i] for i in sorted(skip))}")
    values = np.stack([_numbers([row[i] for row in rows], header[i], path, lines) for i in range(len(header))
                       if i not in skip], 1)
    timestamps = _timestamps([row[0] for row in rows], path, strict, lines) if series else None
    d = _checked(values, columns, labels, path.name, timestamps)
    d.notes[:0] = notes
    return d


def _read_csv(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the rows and each row's line in the file (the header's is 1; blank lines are skipped), by
    which errors name a row, as ``aekit train`` does."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            table = [(reader.line_num, row) for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc})") from None
    if len(table) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header = [name.strip() for name in table[0][1]]
    for line, row in table[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}: line {line} has {len(row)} fields, the header {len(header)}; fix that line")
    return header, [row for _, row in table[1:]], [line for line, _ in table[1:]]


def _numbers(texts: list[str], column: str, path: Path, lines: list[int]) -> np.ndarray:
    out = np.empty(len(texts))
    for i, text in enumerate(texts):
        try:
            out[i] = float(text) if text.strip() else np.nan
        except ValueError:
            raise DataError(f"{path}: line {lines[i]}, column {column!r}: {text!r} is not a number") from None
    return out


NORMAL_WORDS = ("normal", "inlier", "nominal", "benign", "negative", "no", "false", "n", "0")
ANOMALOUS_WORDS = ("anomaly", "anomalous", "abnormal", "outlier", "attack", "malicious", "fraud", "positive", "yes",
                   "true", "y", "1")


def _labels(texts: list[str], column: str, path: Path, lines: list[int]) -> tuple[np.ndarray, str]:
    """0/1 labels from numbers (0 and 1) or from words that name normal and anomalous rows (normal/anomaly,
    no/yes, false/true, ...), and how words were read ('' for numbers)."""
    words = [text.strip().lower() for text in texts]
    empty = next((i for i, w in enumerate(words) if not w), None)
    if empty is not None:
        raise DataError(f"{path}: line {lines[empty]}, column {column!r} is empty; give every row a label")
    try:
        labels = np.array([float(w) for w in words])
    except ValueError:
        pass
    else:
        if not np.isin(labels, (0, 1)).all():
            raise DataError(f"{path}: column {column!r} holds values other than 0 and 1; labels are 0/1")
        return labels, ""
    if all(w in NORMAL_WORDS or w in ANOMALOUS_WORDS for w in words):
        found = sorted({text.strip() for text in texts})
        how = ", ".join(f"{t!r} as {int(t.lower() in ANOMALOUS_WORDS)}" for t in found)
        return np.array([w in ANOMALOUS_WORDS for w in words], dtype=float), f" ({how})"
    other = sorted({t.strip() for t, w in zip(texts, words, strict=True)
                    if w not in NORMAL_WORDS and w not in ANOMALOUS_WORDS})
    shown = ", ".join(map(repr, other[:5])) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
    raise DataError(f"{path}: column {column!r} holds {shown}, which are not 0/1 labels; write 1 (or anomaly, "
                    "yes, true) for anomalous rows and 0 (or normal, no, false) for the others, or name another "
                    "column with --label-column")


def _timestamps(texts: list[str], path: Path, strict: bool, lines: list[int]) -> np.ndarray:
    from aekit.data.nab import parse_timestamps

    stamps = parse_timestamps([t.strip() for t in texts], f"{path}: the timestamp of line", lines)
    steps = np.diff(stamps)
    backwards = np.flatnonzero(steps <= np.timedelta64(0))
    if len(backwards):
        i = int(backwards[0]) + 1
        what = "repeats" if stamps[i] == stamps[i - 1] else "is earlier than"
        first = f"the timestamp of line {lines[i]} ({texts[i].strip()}) {what} the one before"
        if strict:
            raise DataError(f"{path}: {first}; sort the rows by time and drop repeated ones (or leave out --strict "
                            "to score them in file order)")
        others = f" and {len(backwards) - 1} more row(s) step back or repeat" if len(backwards) > 1 else ""
        print(f"aekit: {path.name}: {first}{others}; scored in file order, as NAB does (--strict refuses such a "
              "file)", file=sys.stderr)
    return stamps


def _read_npz(path: Path) -> tuple[np.ndarray, list[str], np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as f:
            if "X" not in f:
                raise DataError(f"{path}: holds no array X (found {', '.join(f.files)}); save X (and y) in it")
            raw = np.asarray(f["X"])
            y = np.asarray(f["y"]) if "y" in f else None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable npz ({exc})") from None
    if raw.ndim in (3, 4):
        return _as_images(raw, path), [], y
    x = raw.astype(np.float64)
    x = x[:, None] if x.ndim == 1 else x.reshape(len(x), -1)
    return x, [f"x{i}" for i in range(x.shape[1])], y


def _as_images(raw: np.ndarray, path: Path) -> np.ndarray:
    """``[N, H, W]``, ``[N, C, H, W]`` or channels-last ``[N, H, W, C]`` (C of 1, 3 or 4) -> ``[N, C, H, W]``
    floats; 8-bit pixels are scaled by 1/255."""
    x = raw[:, None] if raw.ndim == 3 else raw
    if x.shape[-1] in (1, 3, 4) and x.shape[1] not in (1, 3, 4):
        x = x.transpose(0, 3, 1, 2)  # [N, H, W, C] -> [N, C, H, W]
    if min(x.shape[2:]) < 2:
        raise DataError(f"{path}: X of shape {list(raw.shape)} is not a stack of images; save [N, H, W], "
                        "[N, C, H, W] or [N, H, W, C]")
    return x.astype(np.float64) / 255.0 if raw.dtype == np.uint8 else x.astype(np.float64)


def _checked(values: np.ndarray, columns: list[str], labels, name: str, timestamps) -> DetectionData:
    if values.ndim == 4:  # images: any non-finite pixel is an error, constant pixels (a dark border) are kept
        bad = np.flatnonzero(~np.isfinite(values.reshape(len(values), -1)).all(1))
        if len(bad):
            raise DataError(f"{name}: NaN or Inf pixels in {len(bad)} image(s), the first at index {bad[0]}; fix or "
                            "drop them first")
        if labels is not None and len(labels) != len(values):
            raise DataError(f"{name}: {len(labels)} labels for {len(values)} images; give one label per image")
        return DetectionData(values, columns, name, None, _labels01(labels, name))
    nan = [c for c, bad in zip(columns, ~np.isfinite(values).all(0), strict=True) if bad]
    if nan:
        raise DataError(f"{name}: NaN, Inf or empty values in column(s) {', '.join(nan)}; fill or drop them first")
    if labels is not None and len(labels) != len(values):
        raise DataError(f"{name}: {len(labels)} labels for {len(values)} rows; give one label per row")
    notes = []
    constant = values.std(0) == 0
    if constant.all():
        raise DataError(f"{name}: every column is constant ({', '.join(columns)}); there is nothing to learn")
    if constant.any():
        dropped = [c for c, k in zip(columns, constant, strict=True) if k]
        notes.append(f"constant column(s) dropped: {', '.join(dropped)}")
        values, columns = values[:, ~constant], [c for c, k in zip(columns, constant, strict=True) if not k]
    return DetectionData(values, columns, name, timestamps, _labels01(labels, name), notes)


def _labels01(labels, name: str) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels)
    if not np.isin(labels, (0, 1)).all():
        raise DataError(f"{name}: labels hold values other than 0 and 1; labels are 0/1 (1 = anomalous)")
    return labels.astype(int)


def labels_from_windows(path: str | os.PathLike, data: DetectionData) -> np.ndarray:
    """0/1 per row of a series from a NAB-style JSON of anomaly windows (the entry ending with its file name)."""
    from aekit.data.nab import parse_timestamps

    path = Path(path)
    if not data.is_series:
        raise DataError(f"{path}: windows label a series; {data.name} is a table (give a label column instead)")
    try:
        windows = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable JSON of windows ({exc})") from None
    keys = [k for k in windows if Path(k).name == data.name] if isinstance(windows, dict) else []
    if len(keys) != 1:
        raise DataError(f"{path}: {'no' if not keys else 'more than one'} entry for {data.name}; its keys must end "
                        "with the series' file name")
    labels = np.zeros(len(data.values), dtype=int)
    first, last = data.timestamps[0], data.timestamps[-1]
    for start, end in windows[keys[0]]:
        a, b = parse_timestamps([str(start).strip(), str(end).strip()], f"{path}: window of {keys[0]}, end")
        if b < first or a > last or b < a:
            raise DataError(f"{path}: the window {start} .. {end} of {keys[0]} lies outside {data.name} "
                            f"({first} .. {last}); these labels are not for this file")
        labels[(data.timestamps >= a) & (data.timestamps <= b)] = 1
    return labels


def anomaly_likelihood(scores, long_window: int = 8640, short_window: int = 10, log_scale: bool = True
                       ) -> np.ndarray:
    """The anomaly likelihood of a stream of raw scores (Ahmad et al. 2017, "Unsupervised real-time anomaly
    detection for streaming data", eq. 5-7), computed online: at row t, with mu_t and sigma_t the mean and
    standard deviation of the last ``long_window`` raw scores and mu~_t the mean of the last ``short_window``,

        L_t = 1 - Q((mu~_t - mu_t) / sigma_t),    Q the standard normal's upper tail,

    which is near 1 only when the recent scores are unusually high for this stream, so a lasting change of level
    stops counting as the long-term statistics take it in. With ``log_scale`` it is spread as NAB's HTM
    detector does, ``log(1.0000000001 - L) / log(1e-10)``, in [0, 1]. Uses rows ``<= t`` only."""
    from scipy.special import ndtr

    s = np.nan_to_num(np.asarray(scores, np.float64), posinf=np.finfo(np.float64).max / 1e6)
    n = len(s)
    c1, c2 = np.concatenate([[0.0], np.cumsum(s)]), np.concatenate([[0.0], np.cumsum(s * s)])
    t = np.arange(1, n + 1)
    lo_long, lo_short = np.maximum(0, t - long_window), np.maximum(0, t - short_window)
    count = t - lo_long
    mean = (c1[t] - c1[lo_long]) / count
    var = np.maximum((c2[t] - c2[lo_long]) / count - mean**2, 0.0)
    recent = (c1[t] - c1[lo_short]) / (t - lo_short)
    sigma = np.sqrt(var)
    z = np.where(sigma > 0, (recent - mean) / np.where(sigma > 0, sigma, 1.0), 0.0)
    likelihood = ndtr(z)  # 1 - Q(z)
    if not log_scale:
        return likelihood
    return np.log(1.0000000001 - likelihood) / np.log(1e-10)


@dataclass
class DetectionResult:
    scores: np.ndarray
    threshold: float
    metrics: dict[str, Any]
    out: Path | None
    report: Path | None
    detector: Any


IMAGE_DEFAULTS = {"backbone": "conv", "standardize": False, "likelihood": "bernoulli", "latent_dim": 16}
EXPLAINED_ROWS = 8
SCORING_SAMPLES = (10, 100)  # the fewest and the most posterior samples per row that detect picks by itself


def scoring_samples(trained_examples: int, scored_rows: int) -> int:
    """Posterior samples per row for an ``nll`` or ``elbo`` score when none is given: the most of 10, 20, 50 and
    100 (:data:`SCORING_SAMPLES`) that keeps the scoring's decoder passes (rows x K) within the training's example
    passes, and 10 when none does."""
    fewest, most = SCORING_SAMPLES
    fits = trained_examples / max(scored_rows, 1)
    return max([k for k in (10, 20, 50, 100) if fewest <= k <= min(most, fits)], default=fewest)


def detect(data: str | os.PathLike | DetectionData, model: str = "ae", out: str | os.PathLike | None = "runs/detect",
           *, window: int = 32, train_fraction: float | None = None, contamination: float = 0.01,
           labels: str | os.PathLike | None = None, label_column: str = "label", normal_class: int | str | None = None,
           root: str | os.PathLike | None = None, steps: int | str = "auto", random_state: int = 0,
           explain: bool = True, verbose: bool = False, strict: bool = False, **settings: Any) -> DetectionResult:
    """Fit a detector on ``data`` (a file path or :class:`DetectionData`), score every row, write ``out``.

    ``normal_class``: the one-class protocol (:func:`aekit.data.one_class_split`) on ``data``, a labelled image
    set (``mnist``, ``cifar10``, a path): train on that class's training images, score all test images.
    ``explain``: add why the highest scores are high to the report (images: reconstruction, anomaly maps and
    integrated gradients; tables: integrated-gradients and reconstruction-error attributions per feature)."""
    from aekit.io import check_out_dir
    from aekit.progress import note, shown
    from aekit.sklearn import AUTO_EPOCHS, AUTO_MAX_STEPS, AUTO_MIN_STEPS

    if not (isinstance(contamination, (int, float)) and 0 < contamination <= 0.5):
        raise ConfigError(f"contamination={contamination!r} must lie in (0, 0.5]")
    if train_fraction is not None and not 0 < train_fraction <= 1:
        raise ConfigError(f"train_fraction={train_fraction} must lie in (0, 1]")
    if normal_class is not None and (labels is not None or train_fraction is not None):
        raise ConfigError("normal_class runs the one-class protocol, whose split and labels come from the data set; "
                          "drop labels and train_fraction")
    if out is not None:
        out = check_out_dir(out)
        if (out / "scores.csv").exists():
            raise DataError(f"{out}: already holds scores.csv; choose another --out (nothing was overwritten)")
    if normal_class is not None:
        d, train = _one_class(data, normal_class, root, random_state)
        fraction = None
    else:
        d = data if isinstance(data, DetectionData) else read_detection_data(data, label_column, strict)
        if labels is not None:
            d.labels = labels_from_windows(labels, d)
        fraction = train_fraction if train_fraction is not None else (0.15 if d.is_series else 1.0)
        train = d.values[: max(2, int(len(d.values) * fraction))]
    with shown():  # training, scoring and explaining show their progress
        detector = _detector(d, train, model, window, contamination, steps, random_state, verbose, settings)
        trained_steps = detector.training_steps(len(train))
        if "nll_samples" not in settings:  # the samples behind an nll or elbo score, in proportion to the training
            detector.set_params(nll_samples=scoring_samples(trained_steps * detector.batch_size,
                                                            len(train) + len(d.values)))
        if steps == "auto":
            examples = detector.training_examples(len(train))
            note(f"training {trained_steps} steps: {AUTO_EPOCHS} epochs of the {examples} training "
                 f"{'windows' if d.is_series else 'rows'}, {AUTO_MIN_STEPS} to {AUTO_MAX_STEPS} steps "
                 "(--steps N sets it)")
        detector.fit(train)
        if detector.criterion_ in ("nll", "elbo") and "nll_samples" not in settings:
            note(f"scoring by {detector.criterion_} with {detector.nll_samples} posterior samples per row, in "
                 f"proportion to the {trained_steps} training steps (nll_samples=N sets it)")
        scores = detector.anomaly_score(d.values)
        n = len(d.values)
        flagged = (scores > detector.threshold_).astype(int)
        metrics = {"detect/threshold": float(detector.threshold_), "detect/rows": n, "detect/train_rows": len(train),
                   "detect/steps": detector.steps_,
                   "detect/flagged_share": float(flagged.mean())}
        if detector.criterion_ in ("nll", "elbo"):
            metrics["detect/nll_samples"] = detector.nll_samples
        if d.labels is not None and 0 < d.labels.sum() < n:
            from sklearn.metrics import average_precision_score, roc_auc_score

            finite = np.nan_to_num(scores, posinf=np.finfo(np.float64).max)
            metrics.update({"detect/roc_auc": float(roc_auc_score(d.labels, finite)),
                            "detect/average_precision": float(average_precision_score(d.labels, finite))})
        for line in d.notes:
            note(f"{d.name}: {line}")
        report = None
        if out is not None:
            config = {"model": {"name": model, **{k: _plain(v) for k, v in settings.items()}},
                      "data": {"name": d.name, "kind": d.kind, "columns": d.columns},
                      "detect": {"window": window if d.is_series else None, "train_fraction": fraction,
                                 "normal_class": normal_class, "contamination": contamination,
                                 "steps": detector.steps_,
                                 "criterion": detector.criterion_, "notes": d.notes}}
            report = _write_outputs(out, d, scores, flagged, detector, metrics, config, explain)
    return DetectionResult(scores, float(detector.threshold_), metrics, out, report, detector)


def _one_class(data, normal_class, root, seed: int) -> tuple[DetectionData, np.ndarray]:
    from aekit.data.one_class import one_class_split

    if isinstance(data, DetectionData):
        raise ConfigError("normal_class takes a labelled image data set (a name such as mnist, or a path), not rows")
    split = one_class_split(data, normal_class, root=root, seed=seed)
    columns = [] if split.test.ndim == 4 else [f"x{i}" for i in range(split.test.shape[1])]
    d = DetectionData(split.test.astype(np.float64), columns, split.name, None, split.labels,
                      [f"one-class protocol: trained on the {len(split.train)} training images of class "
                       f"{split.normal_name!r}; scored the {len(split.test)} test images, {int(split.labels.sum())} "
                       "of other classes labelled anomalous"])
    return d, split.train.astype(np.float64)


def _detector(d: DetectionData, train: np.ndarray, model: str, window: int, contamination: float, steps: int | str,
              random_state: int, verbose: bool, settings: dict) -> Any:
    from aekit.sklearn import AutoencoderDetector, SeriesDetector

    if d.is_series:
        if len(d.values) < window or len(train) < window:
            raise DataError(f"{d.name}: {len(train)} training rows of {len(d.values)} are fewer than the window of "
                            f"{window}; use a shorter --window or a larger --train-fraction")
        return SeriesDetector(model, window=window, contamination=contamination, steps=steps,
                              random_state=random_state, verbose=verbose, **settings)
    if d.is_images:
        settings = {**IMAGE_DEFAULTS, **settings}
    return AutoencoderDetector(model, contamination=contamination, steps=steps, random_state=random_state,
                               verbose=verbose, **settings)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _write_outputs(out: Path, d: DetectionData, scores, flagged, detector, metrics, config, explain: bool) -> Path:
    from aekit.io import atomic_write_text
    from aekit.report import write_report
    from aekit.report.figures import plot_roc_pr, plot_score_histograms, plot_scores_over_time

    out.mkdir(parents=True, exist_ok=True)
    index_name = "timestamp" if d.is_series else "row"
    index = ([t.replace("T", " ") for t in np.datetime_as_string(d.timestamps, unit="s")] if d.is_series
             else [str(i) for i in range(len(scores))])
    lines = [",".join([index_name, "score", "anomaly", *(["label"] if d.labels is not None else [])])]
    for i, (key, s, f) in enumerate(zip(index, scores, flagged, strict=True)):
        lines.append(",".join([key, repr(float(s)), str(int(f)), *([str(int(d.labels[i]))] if d.labels is not None
                                                                    else [])]))
    atomic_write_text(out / "scores.csv", "\n".join(lines) + "\n")
    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    plot_scores_over_time(scores, figures / "scores.png", detector.threshold_, d.labels,
                          d.timestamps if d.is_series else None, title=f"Anomaly score of {d.name}")
    if d.labels is not None and 0 < d.labels.sum() < len(scores):
        plot_score_histograms(scores, d.labels, figures / "score_histograms.png", detector.threshold_)
        plot_roc_pr(scores, d.labels, figures / "roc_pr.png")
    if explain:
        from aekit.progress import Phase

        with Phase(f"explaining the {min(EXPLAINED_ROWS, len(scores))} highest scores", None, enabled=None):
            _write_explanations(out, d, scores, detector, index)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str) + "\n")
    return write_report(out)


def _write_explanations(out: Path, d: DetectionData, scores: np.ndarray, detector, index: list[str]) -> None:
    """Why the highest scores are high: the ``EXPLAINED_ROWS`` top-scoring rows, images or timestamps, explained."""
    from aekit.anomaly import has_posterior
    from aekit.io import atomic_write_text
    from aekit.report.figures import plot_anomaly_explanations, plot_feature_attributions

    top = np.argsort(-np.nan_to_num(scores, nan=-np.inf), kind="stable")[:EXPLAINED_ROWS]
    ig = detector.attributions(d.values, "integrated-gradients", rows=top)  # [k, *S]; a series: [k, T, C]
    if d.is_images:
        rows = d.values[top]
        maps = {"reconstruction": detector.reconstruct(rows), "recon error": detector.anomaly_map(rows, "recon-error")}
        if has_posterior(detector.model_):
            maps["combined map"] = detector.anomaly_map(rows, "combined")
        maps["integrated gradients"] = ig
        plot_anomaly_explanations(rows, maps, out / "figures" / "explanations.png", scores[top],
                                  title=f"The {len(top)} highest scores of {d.name}: why")
        return
    shares = detector.attributions(d.values, "recon-error", rows=top)
    names = [index[i] for i in top]
    if d.is_series:  # by step of the window (its last step is the scored row) in the figure, by column in the CSV
        steps = ig.shape[1]
        plot_feature_attributions({"integrated gradients, per step of the window": ig.sum(2),
                                   "reconstruction error, per step of the window": shares.sum(2)},
                                  out / "figures" / "attributions.png", names,
                                  [f"t-{steps - 1 - j}" for j in range(steps)],
                                  title=f"The {len(top)} highest scores of {d.name}: each step's share",
                                  axis_name=f"step of the window (0 .. {steps - 1}; the last is the scored row)")
        ig, shares = ig.sum(1), shares.sum(1)  # [k, C]
    else:
        plot_feature_attributions({"integrated gradients (from the training mean)": ig,
                                   "reconstruction error, -log p(x_i | z)": shares},
                                  out / "figures" / "attributions.png", names, d.columns,
                                  title=f"The {len(top)} highest scores of {d.name}: each feature's share")
    lines = [",".join(["timestamp" if d.is_series else "row", "score", "method", *d.columns])]
    for method, values in (("integrated-gradients", ig), ("recon-error", shares)):
        lines += [",".join([index[i], repr(float(scores[i])), method, *(repr(float(v)) for v in row)])
                  for i, row in zip(top, values, strict=True)]
    atomic_write_text(out / "attributions.csv", "\n".join(lines) + "\n")
