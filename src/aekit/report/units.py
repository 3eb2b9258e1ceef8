"""Figures of what each latent unit does: latent traversals (Higgins et al. 2017, their Fig. 1: one unit moved
from -3 to 3 of its spread while the others stay at an input's code), the KL each unit carries, and how much it
tells of each ground-truth factor. The values are computed in :mod:`aekit.outputs`; these functions draw them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from aekit.report.figures import _as_float_array, _images_for_display, _new_figure, _save, _tile

__all__ = ["plot_factor_information", "plot_latent_traversals", "plot_unit_kl"]


def plot_latent_traversals(images: Any, units: list[str], steps: Any, path: str | os.PathLike[str],
                           title: str = "") -> Path:
    """One panel per input: a row per unit, a column per step of its traversal.

    images: ``[I, U, T, C, H, W]`` decoded images (I inputs, U units, T steps); ``units``: a label per row;
    ``steps``: the T offsets, in units of the spread, shown under each panel."""
    images = _as_float_array(images, "images")
    if images.ndim != 6:
        raise ValueError(f"images of shape {images.shape}; give [inputs, units, steps, C, H, W]")
    n_inputs, n_units, n_steps = images.shape[:3]
    if len(units) != n_units or len(steps) != n_steps:
        raise ValueError(f"{len(units)} unit labels and {len(steps)} steps for images of shape {images.shape}")
    height, width = images.shape[-2:]
    cell = 0.5  # inches per image
    fig = _new_figure((n_inputs * (n_steps * cell + 0.3) + 1.2, n_units * cell + 1.3))
    for i, ax in enumerate(np.atleast_1d(fig.subplots(1, n_inputs))):
        shown, _ = _images_for_display(images[i].reshape(n_units * n_steps, *images.shape[3:]))
        grid = _tile(shown, n_steps)  # [rows * (H + 1), steps * (W + 1), C]
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        ax.set_xticks([(width + 1) * k + (width - 1) / 2 for k in range(n_steps)],
                      [f"{s:+g}" for s in steps], fontsize=7)
        ax.set_yticks([(height + 1) * u + (height - 1) / 2 for u in range(n_units)],
                      units if i == 0 else [""] * n_units, fontsize=7)
        ax.tick_params(length=0)
        ax.set_title(f"input {i + 1}", fontsize=9)
    fig.suptitle(title or "Latent traversals: each row moves one unit by -3 to +3 of its spread")
    return _save(fig, path)


def plot_unit_kl(kl_per_unit: Any, path: str | os.PathLike[str], title: str = "") -> Path:
    """Bars of the KL each latent unit carries, KL(q(z_d|x) || p(z_d)) averaged over the test examples, in nats;
    the 0.01-nat line below which a unit counts as collapsed."""
    kl = np.asarray(kl_per_unit, dtype=np.float64).ravel()
    if kl.size == 0:
        raise ValueError("no KL values to draw; give one per latent unit")
    fig = _new_figure((min(2 + 0.25 * kl.size, 14), 3.2))
    ax = fig.subplots()
    ax.bar(np.arange(kl.size), kl, color="#4a78b5")
    ax.axhline(0.01, color="#b54a4a", linestyle="--", linewidth=0.8, label="0.01 nats: collapsed below")
    ax.set_xlabel("latent unit")
    ax.set_ylabel("mean KL, nats")
    ax.set_xticks(np.arange(kl.size), [str(d) for d in range(kl.size)], fontsize=7 if kl.size > 20 else 9)
    ax.legend(fontsize=8)
    ax.set_title(title or f"KL per unit: {int((kl >= 0.01).sum())} of {kl.size} units carry information")
    return _save(fig, path)


def plot_factor_information(information: Any, units: list[str], factors: list[str], path: str | os.PathLike[str],
                            title: str = "") -> Path:
    """Heat map of ``information [U, K]``: each unit's mutual information with each factor, divided by the
    factor's entropy (0: the unit says nothing of it; 1: it determines it), values written in the cells."""
    info = np.asarray(information, dtype=np.float64)
    if info.ndim != 2 or info.shape != (len(units), len(factors)):
        raise ValueError(f"information of shape {info.shape} for {len(units)} units and {len(factors)} factors")
    fig = _new_figure((1.6 + 0.9 * len(factors), 1.2 + 0.35 * len(units)))
    ax = fig.subplots()
    image = ax.imshow(info, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    for (u, k), value in np.ndenumerate(info):
        ax.text(k, u, f"{value:.2f}", ha="center", va="center", fontsize=7,
                color="black" if value > 0.6 else "white")
    ax.set_xticks(np.arange(len(factors)), factors, rotation=30, ha="right")
    ax.set_yticks(np.arange(len(units)), units)
    fig.colorbar(image, ax=ax, shrink=0.8, label="I(unit; factor) / H(factor)")
    ax.set_title(title or "What each unit tells of each factor")
    return _save(fig, path)
