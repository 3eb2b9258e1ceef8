"""The figures a person looks at after training: reconstructions, samples, latent map, training curves, and a
detector's scores (over time, histograms of normal vs anomalous, ROC and precision-recall curves) and why they
are high (anomaly maps of images, attributions of table features).

Every function takes plain arrays or tensors (never a model), writes one PNG and returns its path. Images
are ``[B, C, H, W]`` floats in ``[0, 1]`` (``uint8`` is scaled by 1/255): C=1 is drawn grey, C=3 as RGB,
any other C as its first channel in grey. Tables are ``[B, D]``. matplotlib is imported inside the
functions, with the Agg canvas, so that ``import aekit.report`` stays fast and no display is needed.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aekit.errors import DataError
from aekit.files import write_atomically

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["plot_anomaly_explanations", "plot_feature_attributions", "plot_image_rows", "plot_latent_map",
           "plot_reconstructions", "plot_roc_pr", "plot_samples", "plot_score_histograms", "plot_scores_over_time",
           "plot_training_curves"]

_IMAGE_GRID_COLUMNS = 8
_TABLE_LINE_PLOTS = 4
_MAX_LEGEND_LABELS = 20
_SPLIT_STYLES = {"train": "-", "val": "--", "test": ":"}
_SPLIT_COLOURS = {"train": "C0", "val": "C1", "test": "C2"}
# Columns of a training log that index the rows rather than measure something.
_LOG_INDEX_COLUMNS = ("step", "split", "epoch")
_NOT_CURVES = ("time_s",)  # logged for resuming and timing, no training curve


def _constant(series, term: str) -> bool:
    """Whether ``term`` takes one value over every split of the log (a fixed beta, a constant learning rate)."""
    values = [v for by_term in series.values() if term in by_term for v in by_term[term][1]]
    return len(values) > 0 and float(np.max(values)) == float(np.min(values))
# A parsed training log: {split: {term: (steps [T], values [T])}}.
_Series = dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]


def plot_reconstructions(x: Any, x_hat: Any, path: str | os.PathLike[str], n: int = 16) -> Path:
    """Draw the first ``n`` inputs (top) above their reconstructions (bottom) and save a PNG.

    x, x_hat: ``[B, C, H, W]`` images or ``[B, D]`` table rows, of the same shape. Tables are drawn as
    line plots of the first few rows (input vs reconstruction) above heatmaps of the first ``n`` rows.
    """
    x = _as_float_array(x, "x")
    x_hat = _as_float_array(x_hat, "x_hat")
    if x.shape != x_hat.shape:
        raise DataError(
            f"plot_reconstructions: x has shape {list(x.shape)} but x_hat has {list(x_hat.shape)}; "
            "pass the inputs and their reconstructions for the same batch"
        )
    _check_rows(x, "x", "plot_reconstructions")
    n = _check_count(n, "n")
    x, x_hat = x[:n], x_hat[:n]

    if x.ndim == 2:
        fig = _plot_table_reconstructions(x, x_hat)
    else:
        inputs, note = _images_for_display(x)
        outputs, _ = _images_for_display(x_hat)
        columns = min(len(inputs), _IMAGE_GRID_COLUMNS)
        width, grid_height = _grid_size_inches(inputs, columns)
        fig = _new_figure((width, 2 * grid_height + 0.8))
        top, bottom = fig.subplots(2, 1)
        _show_image_grid(top, inputs, columns, "Inputs" + note)
        _show_image_grid(bottom, outputs, columns, "Reconstructions")
    return _save(fig, path)


def plot_image_rows(rows: dict[str, Any], path: str | os.PathLike[str], n: int = 8, title: str = "") -> Path:
    """Draw the first ``n`` images of each entry of ``rows`` (name -> ``[B, C, H, W]``, all of one shape) as one
    titled row each, top to bottom: ``original | masked | reconstruction`` for a masked model."""
    if not rows:
        raise DataError("plot_image_rows: no rows to draw; pass a dict of name -> [B, C, H, W] images")
    arrays = {name: _as_float_array(x, name) for name, x in rows.items()}
    shapes = {tuple(a.shape) for a in arrays.values()}
    first = next(iter(arrays.values()))
    if len(shapes) != 1 or first.ndim != 4:
        raise DataError(f"plot_image_rows: rows have shapes {sorted(shapes)}; pass [B, C, H, W] images of one shape")
    n = _check_count(n, "n")
    shown = {name: _images_for_display(a[:n]) for name, a in arrays.items()}
    images = next(iter(shown.values()))[0]
    columns = len(images)
    width, height = _grid_size_inches(images, columns)
    fig = _new_figure((width, len(shown) * (height + 0.4) + (0.3 if title else 0)))
    axes = fig.subplots(len(shown), 1, squeeze=False)[:, 0]
    for ax, (name, (row, note)) in zip(axes, shown.items(), strict=True):
        _show_image_grid(ax, row, columns, name.capitalize() + note)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_samples(
    x: Any, path: str | os.PathLike[str], title: str = "Samples from the prior", n: int = 64,
    columns: int | None = None,
) -> Path:
    """Draw the first ``n`` samples as a grid of images (``columns`` wide; square-ish when None), or table rows
    as a heatmap; save a PNG.

    x: ``[B, C, H, W]`` images or ``[B, D]`` table rows.
    """
    x = _as_float_array(x, "x")
    _check_rows(x, "x", "plot_samples")
    x = x[: _check_count(n, "n")]

    if x.ndim == 2:
        fig = _new_figure((8, min(2 + 0.25 * len(x), 10)))
        ax = fig.subplots()
        _show_heatmap(ax, x, title, vmin=float(x.min()), vmax=float(x.max()))
    else:
        images, note = _images_for_display(x)
        columns = columns or math.ceil(math.sqrt(len(images)))
        width, height = _grid_size_inches(images, columns)
        fig = _new_figure((width, height + 0.5))
        _show_image_grid(fig.subplots(), images, columns, title + note)
    return _save(fig, path)


def plot_latent_map(
    z: Any,
    y: Any | None,
    path: str | os.PathLike[str],
    method: str = "pca",
    class_names: Sequence[str] | None = None,
) -> Path:
    """Scatter the latent means in 2-D, coloured by label, and save a PNG.

    z: ``[N, K]`` latent means. K=2 is drawn as is; K=1 against zero; K>2 is projected to 2-D by
    ``method``: "pca" (principal components, via an SVD) or "tsne" (scikit-learn, slower).
    y: ``[N]`` integer class labels (a legend when there are at most 20 classes, else a colour bar),
    or None for a single colour. class_names: the legend's name for each label ``k`` (``class_names[k]``);
    the label numbers when None.
    """
    z = _as_float_array(z, "z")
    if z.ndim != 2 or len(z) == 0 or z.shape[1] == 0:
        raise DataError(f"plot_latent_map: z has shape {list(z.shape)}; expected [N, K] with N, K >= 1")
    if not np.isfinite(z).all():
        row = int(np.flatnonzero(~np.isfinite(z).all(axis=1))[0])
        raise DataError(f"plot_latent_map: z row {row} holds NaN or Inf; drop non-finite latents first")
    labels = None
    if y is not None:
        labels = _as_array(y, "y").reshape(-1)
        if len(labels) != len(z):
            raise DataError(
                f"plot_latent_map: z has {len(z)} rows but y has {len(labels)} labels; pass one label a row"
            )
        ids = np.unique(labels).tolist()
        if class_names is not None and not set(ids) <= set(range(len(class_names))):
            raise DataError(
                f"plot_latent_map: labels {ids[:10]} are not all ids of the "
                f"{len(class_names)} class names; pass one name per label 0..K-1"
            )

    points, axis_names = _project_to_2d(z, method)
    fig = _new_figure((6.5, 5.5))
    ax = fig.subplots()
    size = float(np.clip(2000 / len(points), 2, 30))
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=size, alpha=0.7, linewidths=0)
    else:
        _scatter_by_label(fig, ax, points, labels, size, class_names)
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.set_title(f"Latent means ({len(z)} points, {z.shape[1]}-D)")
    return _save(fig, path)


def plot_latent_density(z: Any, path: str | os.PathLike[str]) -> Path:
    """Histogram of how often each latent of a sparse code fires, log10 of its share of the ``z [N, D]`` rows
    (Bricken et al. 2023's feature density), with the latents that never fire counted apart."""
    z = _as_float_array(z, "z")
    if z.ndim != 2 or len(z) == 0:
        raise DataError(f"plot_latent_density: z has shape {list(z.shape)}; expected [N, D] with N >= 1")
    share = (z != 0).mean(axis=0)  # [D]
    dead = int((share == 0).sum())
    fig = _new_figure((6.5, 4.0))
    ax = fig.subplots()
    fired = share[share > 0]
    if len(fired):
        ax.hist(np.log10(fired), bins=50, color="#4c72b0")
    ax.axvline(np.log10(0.1), color="#c44e52", linestyle="--", linewidth=1, label="10 % (dense above)")
    ax.set_xlabel("log10 share of the rows on which a latent fires")
    ax.set_ylabel("latents")
    ax.set_title(f"Latent density ({z.shape[1]} latents, {len(z)} rows; {dead} never fire)")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_code_usage(codes: Any, sizes: list[int], path: str | os.PathLike[str], names: list[str] | None = None,
                    max_columns: int = 8) -> Path:
    """The usage histogram of a quantised code: for each of the first ``max_columns`` columns of ``codes [N, G]``
    (a head or a residual stage, each of ``sizes[g]`` entries, called ``names[g]``), the share of the N rows each
    used entry takes, entries sorted from most to least used, on a log scale, with the unused entries and the
    perplexity said."""
    codes = np.asarray(_as_array(codes, "codes"))
    if codes.ndim != 2 or len(codes) == 0 or codes.shape[1] != len(sizes):
        raise DataError(f"plot_code_usage: codes have shape {list(codes.shape)}; expected [N, {len(sizes)}]")
    shown = min(codes.shape[1], max_columns)
    columns = min(shown, 4)
    fig = _new_figure((3.6 * columns, 3.0 * math.ceil(shown / columns)))
    axes = np.atleast_1d(fig.subplots(math.ceil(shown / columns), columns, squeeze=False)).ravel()
    for g, ax in enumerate(axes):
        if g >= shown:
            ax.set_axis_off()
            continue
        counts = np.sort(np.unique(codes[:, g], return_counts=True)[1])[::-1]
        share = counts / counts.sum()
        perplexity = float(np.exp(-(share * np.log(share)).sum()))
        ax.bar(np.arange(len(share)), share, width=1.0, color="#4c72b0")
        ax.set_yscale("log")
        ax.set_xlabel("entries, most used first")
        ax.set_ylabel("share of rows")
        name = names[g] if names else f"column {g}"
        ax.set_title(f"{name}: {len(counts)}/{sizes[g]} used, perplexity {perplexity:.1f}", fontsize=9)
    fig.suptitle(f"Code usage over {len(codes)} test rows")
    return _save(fig, path)


def plot_training_curves(log_csv_path: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """Plot ``loss`` against ``step`` for each split, and every other numeric column that changes over the run in
    its own panel (a constant weight or learning rate, and the clock, are left out).

    The log is a CSV with a header naming at least ``step``; ``split`` ("train", "val", ...) is read when
    present (rows without one count as "train"). Empty or non-numeric cells are gaps, so a term logged
    only on some rows, or a run with no validation rows, still plots.
    """
    series = _read_training_log(log_csv_path)
    terms = [term for term in dict.fromkeys(term for by_term in series.values() for term in by_term)
             if term not in _NOT_CURVES and (term == "loss" or not _constant(series, term))]
    small_terms = [term for term in terms if term != "loss"]
    columns = min(3, max(len(small_terms), 1))
    small_rows = math.ceil(len(small_terms) / columns)

    fig = _new_figure((10, 3.8 + 2.4 * small_rows))
    grid = fig.add_gridspec(1 + small_rows, columns, height_ratios=[1.6] + [1] * small_rows)
    main = fig.add_subplot(grid[0, :])
    if "loss" in terms:
        plot_term(main, series, "loss")
        main.set_title("Loss")
        main.legend()
    else:
        message = "No 'loss' column in the log" if terms else "No numeric values logged yet"
        main.text(0.5, 0.5, message, ha="center", va="center", transform=main.transAxes)
        main.set_axis_off()
    for index, term in enumerate(small_terms):
        ax = fig.add_subplot(grid[1 + index // columns, index % columns])
        plot_term(ax, series, term)
        ax.set_title(term, fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"Training curves ({Path(log_csv_path).name})")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------------
# Arrays


def _as_array(x: Any, name: str) -> np.ndarray:
    """A numpy view of a tensor or array-like, without importing torch."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # bfloat16 and other dtypes numpy lacks
            return x.float().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError) as error:
        raise DataError(f"{name} is not an array ({error}); pass a tensor or numpy array") from None


def _as_float_array(x: Any, name: str) -> np.ndarray:
    """Floats for drawing; 8-bit images are scaled to [0, 1]."""
    array = _as_array(x, name)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise DataError(f"{name} has dtype {array.dtype}; pass numbers (float in [0, 1] or uint8)")
    return array.astype(np.float32)


def _check_rows(x: np.ndarray, name: str, caller: str) -> None:
    if x.ndim not in (2, 4) or len(x) == 0:
        raise DataError(
            f"{caller}: {name} has shape {list(x.shape)}; expected [B, C, H, W] images or [B, D] table rows "
            "with B >= 1 (add a channel axis to [B, H, W] images)"
        )


def _check_count(n: int, name: str) -> int:
    if int(n) < 1:
        raise DataError(f"{name}={n} draws nothing; pass {name} >= 1")
    return int(n)


def _images_for_display(x: np.ndarray) -> tuple[np.ndarray, str]:
    """``[B, C, H, W]`` -> ``[B, H, W, 1 or 3]`` clipped to [0, 1], and a note for the title."""
    channels = x.shape[1]
    note = ""
    if channels not in (1, 3):
        x = x[:, :1]
        note = f" (channel 0 of {channels})"
    return np.clip(x.transpose(0, 2, 3, 1), 0.0, 1.0), note  # [B, H, W, C]


def _tile(images: np.ndarray, columns: int, pad: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """``[B, H, W, C]`` -> one ``[rows*(H+pad)-pad, columns*(W+pad)-pad, C]`` image, padding between."""
    count, height, width, channels = images.shape
    rows = math.ceil(count / columns)
    shape = (rows * (height + pad) - pad, columns * (width + pad) - pad, channels)
    grid = np.full(shape, pad_value, np.float32)
    for index, image in enumerate(images):
        top = (index // columns) * (height + pad)
        left = (index % columns) * (width + pad)
        grid[top : top + height, left : left + width] = image
    return grid


def _project_to_2d(z: np.ndarray, method: str) -> tuple[np.ndarray, tuple[str, str]]:
    if z.shape[1] == 1:
        return np.concatenate([z, np.zeros_like(z)], axis=1), ("z1", "")
    if z.shape[1] == 2:
        return z, ("z1", "z2")
    if method == "pca":
        centred = z - z.mean(axis=0)  # [N, K]
        _, singular, components = np.linalg.svd(centred, full_matrices=False)  # components: [K', K]
        components = components[:2]
        # An SVD's signs are arbitrary; fix them so the same latents always give the same picture.
        largest = np.abs(components).argmax(axis=1)
        components = components * np.sign(components[np.arange(2), largest])[:, None]
        variance = singular**2 / max(float((singular**2).sum()), 1e-12)
        names = tuple(f"PC{i + 1} ({100 * variance[i]:.0f}% of variance)" for i in range(2))
        return centred @ components.T, names  # [N, 2]
    if method == "tsne":
        if len(z) < 3:
            raise DataError(f"plot_latent_map: t-SNE needs at least 3 points, got {len(z)}; use method='pca'")
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        tsne = TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(z) - 1) / 3), random_state=0)
        with threadpool_limits(limits=1):  # BLAS threads beside torch's OpenMP ones oversubscribe the cores
            return tsne.fit_transform(z), ("t-SNE 1", "t-SNE 2")
    raise DataError(f"plot_latent_map: unknown method {method!r}; use 'pca' or 'tsne'")


# ----------------------------------------------------------------------------------------------------------
# Drawing


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    return write_atomically(Path(path), lambda file: fig.savefig(file, format="png", dpi=100))


def _grid_size_inches(images: np.ndarray, columns: int) -> tuple[float, float]:
    """Figure width and grid height: small images get larger tiles, large images are capped."""
    _, height, width, _ = images.shape
    tile = float(np.clip(width / 32, 0.75, 2.0))
    rows = math.ceil(len(images) / columns)
    return max(columns * tile, 3.0), rows * tile * height / width


def _show_image_grid(ax: Axes, images: np.ndarray, columns: int, title: str) -> None:
    grid = _tile(images, columns)
    if grid.shape[-1] == 1:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(grid, interpolation="nearest")
    ax.set_title(title)
    ax.set_axis_off()


def _show_heatmap(ax: Axes, rows: np.ndarray, title: str, vmin: float, vmax: float) -> None:
    image = ax.imshow(rows, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("feature")
    ax.set_ylabel("row")
    ax.figure.colorbar(image, ax=ax, shrink=0.8)


def _plot_table_reconstructions(x: np.ndarray, x_hat: np.ndarray) -> Figure:
    """Line plots of the first few rows, then heatmaps of all rows on one shared colour scale."""
    lines = min(len(x), _TABLE_LINE_PLOTS)
    fig = _new_figure((max(3.0 * lines, 8.0), 6.5))
    grid = fig.add_gridspec(2, 2 * lines)
    features = np.arange(x.shape[1])
    marker = "o" if x.shape[1] <= 40 else None
    vmin = float(min(x.min(), x_hat.min()))
    vmax = float(max(x.max(), x_hat.max()))
    margin = 0.05 * (vmax - vmin) or 0.5
    for row in range(lines):
        ax = fig.add_subplot(grid[0, 2 * row : 2 * row + 2])
        ax.plot(features, x[row], marker=marker, markersize=3, label="input")
        ax.plot(features, x_hat[row], marker=marker, markersize=3, linestyle="--", label="reconstruction")
        ax.set_ylim(vmin - margin, vmax + margin)
        ax.set_title(f"row {row}", fontsize=10)
        ax.tick_params(labelsize=8)
        if row == 0:
            ax.legend(fontsize=8)
    _show_heatmap(fig.add_subplot(grid[1, :lines]), x, "Inputs", vmin, vmax)
    _show_heatmap(fig.add_subplot(grid[1, lines:]), x_hat, "Reconstructions", vmin, vmax)
    return fig


def _scatter_by_label(
    fig: Figure, ax: Axes, points: np.ndarray, labels: np.ndarray, size: float, names: Sequence[str] | None
) -> None:
    classes = np.unique(labels)
    is_integer = np.issubdtype(labels.dtype, np.integer) or np.issubdtype(labels.dtype, np.bool_)
    if is_integer and len(classes) <= _MAX_LEGEND_LABELS:
        from matplotlib import colormaps

        palette = colormaps["tab10" if len(classes) <= 10 else "tab20"]
        for index, label in enumerate(classes):
            chosen = labels == label
            ax.scatter(
                points[chosen, 0],
                points[chosen, 1],
                s=size,
                alpha=0.7,
                linewidths=0,
                color=palette(index),
                label=str(label) if names is None else names[int(label)],
            )
        markerscale = max(1.0, 20 / size)
        title = "label" if names is None else "class"
        ax.legend(title=title, loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=markerscale)
    else:
        image = ax.scatter(
            points[:, 0],
            points[:, 1],
            c=labels.astype(np.float64),
            s=size,
            alpha=0.7,
            linewidths=0,
            cmap="viridis",
        )
        fig.colorbar(image, ax=ax, label="label")


def plot_term(ax: Axes, series: _Series, term: str, run: str = "", colour: str | None = None) -> None:
    """``term`` of each split of one run's log on ``ax``: a colour per split, or, given ``colour`` (runs overlaid
    on one panel), that colour and a line style per split, labelled with ``run``."""
    positive = True
    for split, by_term in series.items():
        if term not in by_term:
            continue
        steps, values = by_term[term]
        positive = positive and bool((values > 0).all())
        # Validation is logged far less often than training, so its points are marked.
        marker = None if split == "train" and len(steps) > 20 else "o"
        style = {"color": _SPLIT_COLOURS.get(split)} if colour is None else {
            "color": colour, "linestyle": _SPLIT_STYLES.get(split, "-.")}
        ax.plot(steps, values, marker=marker, markersize=3, label=f"{run} {split}".strip(), **style)
    if term == "lr" and positive:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)


# ----------------------------------------------------------------------------------------------------------
# Training log


def _read_training_log(log_csv_path: str | os.PathLike[str]) -> _Series:
    """``{split: {term: (steps, values)}}`` from a CSV log, each series sorted by step, gaps dropped."""
    log_csv_path = Path(log_csv_path)
    if not log_csv_path.is_file():
        raise DataError(f"training log {log_csv_path} does not exist; train first or pass the run's CSV log")
    with log_csv_path.open(newline="") as file:
        reader = csv.DictReader(file)
        header = [name.strip() for name in reader.fieldnames or []]
        rows = list(reader)
    if not header:
        raise DataError(f"training log {log_csv_path} is empty; expected a header naming step, split, loss")
    if "step" not in header:
        raise DataError(f"training log {log_csv_path} has columns {header} but no 'step'; log it in each row")

    terms = [name for name in header if name not in _LOG_INDEX_COLUMNS]
    parsed: dict[str, dict[str, list[tuple[float, float]]]] = {}
    non_numeric: set[str] = set()
    for row in rows:
        row = {(key or "").strip(): value for key, value in row.items()}
        step = _parse_number(row.get("step"))
        if step is None or not math.isfinite(step):
            continue
        split = (row.get("split") or "").strip() or "train"
        for term in terms:
            cell = row.get(term)
            value = _parse_number(cell)
            if value is None:
                if isinstance(cell, str) and cell.strip():
                    non_numeric.add(term)
                continue
            if math.isfinite(value):
                parsed.setdefault(split, {}).setdefault(term, []).append((step, value))

    known = list(_SPLIT_COLOURS)
    series: _Series = {}
    for split in sorted(parsed, key=lambda name: (known.index(name) if name in known else len(known), name)):
        for term in terms:
            points = parsed[split].get(term)
            if term in non_numeric or not points:
                continue
            steps, values = np.asarray(sorted(points, key=lambda point: point[0])).T
            series.setdefault(split, {})[term] = (steps, values)
    return series


def _parse_number(cell: str | None) -> float | None:
    if cell is None or not str(cell).strip():
        return None
    try:
        return float(cell)
    except ValueError:
        return None


# Anomaly scores


def plot_scores_over_time(scores: Any, path: str | os.PathLike[str], threshold: float | None = None,
                          labels: Any = None, times: Any = None, title: str = "Anomaly score") -> Path:
    """The score of each row in order (over ``times`` where given), the threshold as a line, and the rows
    labelled anomalous shaded (each run of consecutive labelled rows one band)."""
    s = _as_float_array(scores, "scores").reshape(-1)
    x = np.arange(len(s)) if times is None else np.asarray(times)
    fig = _new_figure((10, 3))
    ax = fig.add_subplot()
    ax.plot(x, s, lw=0.7, color="C0", label="score")
    if threshold is not None:
        ax.axhline(threshold, color="C3", lw=0.8, ls="--", label="threshold")
    if labels is not None:
        y = np.asarray(labels).reshape(-1).astype(bool)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], y.astype(int), [0]])))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            ax.axvspan(x[start], x[stop - 1], color="C1", alpha=0.25, lw=0,
                       label="labelled anomalous" if start == edges[0] else None)
    ax.set_title(title)
    ax.set_ylabel("score (higher: more anomalous)")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)


def plot_score_histograms(scores: Any, labels: Any, path: str | os.PathLike[str],
                          threshold: float | None = None) -> Path:
    """Histograms of the scores of the normal and of the anomalous rows, on shared bins."""
    s = _as_float_array(scores, "scores").reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(bool)
    finite = np.isfinite(s)
    bins = np.histogram_bin_edges(s[finite], bins=50)
    fig = _new_figure((6, 3.5))
    ax = fig.add_subplot()
    ax.hist(s[finite & ~y], bins=bins, density=True, alpha=0.6, color="C0", label=f"normal ({int((~y).sum())})")
    ax.hist(s[finite & y], bins=bins, density=True, alpha=0.6, color="C3", label=f"anomalous ({int(y.sum())})")
    if threshold is not None:
        ax.axvline(threshold, color="k", lw=0.8, ls="--", label="threshold")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_roc_pr(scores: Any, labels: Any, path: str | os.PathLike[str]) -> Path:
    """The ROC curve and the precision-recall curve of the scores against the labels (scikit-learn's)."""
    from sklearn.metrics import auc, precision_recall_curve, roc_curve

    s = _as_float_array(scores, "scores").reshape(-1)
    s = np.nan_to_num(s, posinf=np.finfo(s.dtype).max)
    y = np.asarray(labels).reshape(-1).astype(int)
    fpr, tpr, _ = roc_curve(y, s)
    precision, recall, _ = precision_recall_curve(y, s)
    fig = _new_figure((9, 3.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    left.plot(fpr, tpr, color="C0")
    left.plot([0, 1], [0, 1], color="0.6", lw=0.7, ls=":")
    left.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC (AUC {auc(fpr, tpr):.3f})")
    right.step(recall, precision, where="post", color="C0")
    right.axhline(y.mean(), color="0.6", lw=0.7, ls=":")
    right.set(xlabel="recall", ylabel="precision", title="precision-recall", ylim=(0, 1.02))
    return _save(fig, path)


def plot_anomaly_explanations(images: Any, rows: dict[str, Any], path: str | os.PathLike[str],
                              scores: Any = None, title: str = "") -> Path:
    """Why the images scored high: each image ``[K, C, H, W]`` in the top row (its score above it), then one row
    per entry of ``rows`` (name -> ``[K, C, H, W]``): a reconstruction in [0, 1] is drawn as an image, any other
    map (anomaly map, attribution) as a heat map of its channels' summed absolute values, scaled per image."""
    x = _as_float_array(images, "images")
    if x.ndim != 4 or not len(x):
        raise DataError(f"plot_anomaly_explanations: images of shape {list(x.shape)}; pass [K, C, H, W] images")
    maps = {name: _as_float_array(m, name) for name, m in rows.items()}
    wrong = [name for name, m in maps.items() if m.shape != x.shape]
    if wrong:
        raise DataError(f"plot_anomaly_explanations: {', '.join(wrong)} do not have the images' shape "
                        f"{list(x.shape)}; pass one map per image and element")
    s = None if scores is None else _as_float_array(scores, "scores").reshape(-1)
    shown, note = _images_for_display(x)
    k = len(x)
    tile = float(np.clip(x.shape[3] / 32, 0.9, 1.6))
    fig = _new_figure((max(k * tile, 4.0), (len(maps) + 1) * (tile + 0.25) + (0.4 if title else 0)))
    axes = fig.subplots(len(maps) + 1, k, squeeze=False)
    for j in range(k):
        _show_tile(axes[0, j], shown[j], f"{s[j]:.3g}" if s is not None else "")
        for i, (name, m) in enumerate(maps.items(), start=1):
            if name.lower().startswith("reconstruction"):
                _show_tile(axes[i, j], _images_for_display(m[j : j + 1])[0][0], "")
            else:
                heat = np.abs(m[j]).sum(0)  # [H, W]
                axes[i, j].imshow(heat, cmap="inferno", vmin=0.0, vmax=max(float(heat.max()), 1e-12),
                                  interpolation="nearest")
                axes[i, j].set_axis_off()
    for i, name in enumerate(["input" + note, *maps], start=0):
        axes[i, 0].text(-0.08, 0.5, name, transform=axes[i, 0].transAxes, ha="right", va="center", fontsize=8,
                        rotation=90)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def _show_tile(ax: Axes, image: np.ndarray, title: str) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    else:
        ax.imshow(image, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def plot_feature_attributions(attributions: dict[str, Any], path: str | os.PathLike[str],
                              row_names: Sequence[str] | None = None, feature_names: Sequence[str] | None = None,
                              title: str = "", axis_name: str = "feature") -> Path:
    """Each feature's share of the scores of a few rows: one heat map per method (name -> ``[K, D]``), rows
    down, features across, red adding to the score and blue taking from it, on a scale symmetric about 0."""
    arrays = {name: _as_float_array(a, name) for name, a in attributions.items()}
    if not arrays or any(a.ndim != 2 for a in arrays.values()):
        raise DataError("plot_feature_attributions: pass a dict of name -> [K, D] attributions")
    k, d = next(iter(arrays.values())).shape
    fig = _new_figure((min(max(0.35 * d + 2.5, 6.0), 16.0), len(arrays) * (0.3 * k + 1.2) + (0.4 if title else 0)))
    axes = fig.subplots(len(arrays), 1, squeeze=False)[:, 0]
    for ax, (name, a) in zip(axes, arrays.items(), strict=True):
        bound = max(float(np.abs(a).max()), 1e-12)
        image = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_yticks(range(k), list(row_names) if row_names is not None else [str(i) for i in range(k)], fontsize=7)
        if feature_names is not None and d <= 40:
            ax.set_xticks(range(d), list(feature_names), rotation=90, fontsize=7)
        ax.set_xlabel(axis_name)
        fig.colorbar(image, ax=ax, shrink=0.8, label="nats")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
