"""Figures as PNG files (matplotlib with seaborn's theme): bars with 95 % intervals, training curves, confusion
heat maps, image grids and strips, curves along a parameter. Every function writes ``path`` and returns it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

sns.set_theme(style="whitegrid", context="notebook")
DPI = 110
TRAINING_PANELS = (
    ("Generator loss", ("g_loss",)),
    ("Discriminator loss and L1", ("d_loss", "g_loss_l1")),
    ("Discriminator scores", ("d_score_real", "d_score_fake", "d_score_wrong")),
)


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return path


def bar_chart(path: Path, title: str, groups: Sequence[str], series: Mapping[str, Sequence[dict | None]],
              ylabel: str) -> Path:
    """Grouped bars of figure cells (``value``, ``ci95``, ``chance``) with their intervals as error bars; a missing
    cell leaves a gap; chance levels are drawn as dashed lines."""
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) * max(1, len(series)) ** 0.5), 3.4))
    width = 0.8 / max(1, len(series))
    palette = sns.color_palette("deep", len(series))
    for k, (name, cells) in enumerate(series.items()):
        x = np.arange(len(groups)) + (k - (len(series) - 1) / 2) * width
        # a record's series shorter than its groups draws the bars it has (records are read, not validated, here)
        present = [(xi, c) for xi, c in zip(x, cells, strict=False) if c is not None]
        if not present:
            continue
        xs, values = [p[0] for p in present], [p[1]["value"] for p in present]
        errors = np.array([[c["value"] - c["ci95"][0], c["ci95"][1] - c["value"]] for _, c in present]).T
        ax.bar(xs, values, width, yerr=np.clip(errors, 0, None), capsize=3, label=name, color=palette[k])
    chances = {c["chance"] for cells in series.values() for c in cells if c is not None and c.get("chance") is not None}
    for chance in sorted(chances):
        ax.axhline(chance, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"chance {chance:.3g}", (1, chance), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def training_curves(path: Path, records: list[dict]) -> Path:
    """Per-epoch losses and discriminator scores of a ``wav2pix train`` log (train_log.jsonl)."""
    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(12, 3.2))
    epochs = [r["epoch"] for r in records]
    for ax, (title, keys) in zip(axes, TRAINING_PANELS, strict=True):
        for key in keys:
            if all(key in r for r in records):
                ax.plot(epochs, [r[key] for r in records], label=key, linewidth=1.2)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return _save(fig, path)


def confusion_heatmap(path: Path, title: str, classes: Sequence[str], matrix: Sequence[Sequence[int]]) -> Path:
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(classes), 1.2 + 0.9 * len(classes)))
    sns.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes,
                cbar=False, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return _save(fig, path)


def image_grid(path: Path, title: str, rows: Sequence[tuple[str, Sequence[np.ndarray]]]) -> Path:
    """Labelled rows of equally sized uint8 RGB images, one row per label (short rows are padded white)."""
    size = next(img for _, images in rows for img in images).shape[0]
    columns = max(len(images) for _, images in rows)
    canvas = np.full((len(rows) * size, columns * size, 3), 255, dtype=np.uint8)
    for r, (_, images) in enumerate(rows):
        for c, image in enumerate(images):
            canvas[r * size:(r + 1) * size, c * size:(c + 1) * size] = image
    fig, ax = plt.subplots(figsize=(1.1 * columns + 1.6, 1.1 * len(rows) + 0.4))
    ax.imshow(canvas, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks([])
    ax.set_yticks([(r + 0.5) * size for r in range(len(rows))], [label for label, _ in rows])
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def curves(path: Path, title: str, x: Sequence[float], series: Mapping[str, Sequence[float]], xlabel: str,
           ylabel: str) -> Path:
    """Lines of ``series`` against ``x`` with markers."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, values in series.items():
        ax.plot(x, values, marker="o", label=name, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
