"""Figures as PNG files (matplotlib with seaborn's theme): bars with 95 % intervals, the verdict's small multiples,
training curves, confusion heat maps, image grids, curves along a parameter. Every function writes ``path`` and
returns it.

A figure is drawn only when its inputs changed: each PNG carries the SHA-256 of what it was drawn from (its drawing
function, its arguments and this module's source) in a ``tEXt`` chunk, and a figure whose file already carries the
same key is kept. matplotlib and seaborn are imported on the first figure actually drawn, so re-rendering a report
whose figures are current imports neither (``evalkit report`` in about a second: benchmarks/report_render.py).

Inside ``figure_store(folder)`` a figure is also looked up by its key in ``folder`` (``<key>.png``) and copied from
there when present, and every figure drawn is added to it: a new run folder whose figures match an earlier run's
(a re-run of the same evaluation) draws none (``evalkit run`` passes its cache folder's ``figures/``).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

DPI = 110
_STORE: ContextVar[Path | None] = ContextVar("figure_store", default=None)
KEY_CHUNK = "evalkit-figure-key"
TRAINING_PANELS = (
    ("Generator loss", ("g_loss",)),
    ("Discriminator loss and L1", ("d_loss", "g_loss_l1")),
    ("Discriminator scores", ("d_score_real", "d_score_fake", "d_score_wrong")),
)


@functools.cache
def _pyplot() -> tuple[Any, Any]:
    """matplotlib.pyplot (Agg backend) and seaborn with the report's theme, imported once when first needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="notebook")
    return plt, sns


def _hashable(value: object) -> object:
    if isinstance(value, np.ndarray):
        return {"array": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest(), "shape": value.shape,
                "dtype": str(value.dtype)}
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot key a figure on {type(value).__name__}")


@functools.cache
def _source_hash() -> str:
    """SHA-256 of this module's source: a changed drawing function redraws every figure."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def figure_key(name: str, args: tuple, kwargs: dict) -> str:
    """SHA-256 of a drawing function's name, its arguments (arrays by content) and this module's source."""
    text = json.dumps([name, _source_hash(), args, kwargs], default=_hashable, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def stored_key(path: Path) -> str | None:
    """The key a PNG written by this module was drawn from (None: no such file or no key)."""
    try:
        with Image.open(path) as image:  # the chunk precedes the pixels: ``info`` has it without decoding them
            return image.info.get(KEY_CHUNK)
    except (FileNotFoundError, UnidentifiedImageError, OSError):
        return None


@contextmanager
def figure_store(folder: Path | None) -> Iterator[None]:
    """Within the block, figures are shared through ``folder`` by key (module docstring); None: no store."""
    token = _STORE.set(Path(folder) if folder is not None else None)
    try:
        yield
    finally:
        _STORE.reset(token)


def _from_store(key: str, path: Path) -> bool:
    """Copy the stored figure of ``key`` to ``path``; False when the store has none (or no store is set)."""
    store = _STORE.get()
    stored = store / f"{key}.png" if store is not None else None
    if stored is None or stored_key(stored) != key:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(stored, path)
    return True


def _to_store(key: str, path: Path) -> None:
    """Add the figure at ``path`` to the store; an unwritable store only costs the reuse (the report is written)."""
    store = _STORE.get()
    if store is None:
        return
    try:
        store.mkdir(parents=True, exist_ok=True)
        partial = store / f"{key}.{os.getpid()}.tmp"
        shutil.copyfile(path, partial)
        partial.replace(store / f"{key}.png")  # atomic: a concurrent reader sees the whole file or none
    except OSError:
        return


def cached(draw: Callable[..., Any]) -> Callable[..., Path]:
    """``draw(fig_path, *args)`` becomes a function that draws only when ``path`` does not already hold the figure of
    the same arguments (nor the figure store, ``figure_store``), and returns ``path``."""

    @functools.wraps(draw)
    def drawn(path: Path, *args: object, **kwargs: object) -> Path:
        path = Path(path)
        key = figure_key(draw.__name__, args, kwargs)
        if stored_key(path) != key and not _from_store(key, path):
            fig = draw(*args, **kwargs)
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=DPI, bbox_inches="tight", metadata={KEY_CHUNK: key})
            _pyplot()[0].close(fig)
            _to_store(key, path)
        return path

    return drawn


def _bars(ax: Any, groups: Sequence[str], series: dict[str, Sequence[dict | None]], palette: Sequence,
          chance_lines: bool = True) -> None:
    """Grouped bars with interval error bars on one axes, and the chance levels as dashed lines across the axes
    (``chance_lines``) or, otherwise, the first series' chance level as a dashed segment over each group."""
    width = 0.8 / max(1, len(series))
    for k, (name, cells) in enumerate(series.items()):
        x = np.arange(len(groups)) + (k - (len(series) - 1) / 2) * width
        present = [(xi, c) for xi, c in zip(x, cells, strict=True) if c is not None]
        if not present:
            continue
        xs, values = [p[0] for p in present], [p[1]["value"] for p in present]
        errors = np.array([[c["value"] - c["ci95"][0], c["ci95"][1] - c["value"]] for _, c in present]).T
        ax.bar(xs, values, width, yerr=np.clip(errors, 0, None), capsize=3, label=name, color=palette[k])
    if not chance_lines:
        first = next(iter(series.values()), [])
        for group, cell in enumerate(first):
            if cell is not None and cell.get("chance") is not None:
                ax.hlines(cell["chance"], group - 0.45, group + 0.45, colors="0.2", linestyles="--", linewidth=1.2)
        ax.set_xticks(np.arange(len(groups)), groups)
        return
    chances = {c["chance"] for cells in series.values() for c in cells if c is not None and c.get("chance") is not None}
    for chance in sorted(chances):
        ax.axhline(chance, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"chance {chance:.3g}", (1, chance), xycoords=("axes fraction", "data"), ha="right",
                    va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(np.arange(len(groups)), groups)


@cached
def bar_chart(title: str, groups: Sequence[str], series: dict[str, Sequence[dict | None]], ylabel: str) -> Any:
    """Grouped bars of figure cells (``value``, ``ci95``, ``chance``) with their intervals as error bars; a missing
    cell leaves a gap; chance levels are drawn as dashed lines."""
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.5, 1.6 * len(groups) * max(1, len(series)) ** 0.5), 3.4))
    _bars(ax, groups, series, sns.color_palette("deep", len(series)))
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig


@cached
def small_multiples(panels: Sequence[tuple[str, Sequence[str], dict[str, Sequence[dict | None]]]],
                    columns: int = 3) -> Any:
    """One panel of grouped bars per figure (``(title, groups, series)``, as ``bar_chart``), the same series
    colours in every panel and one legend; the first series' chance level is a dashed segment over each group."""
    plt, sns = _pyplot()
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 2.8 * rows), squeeze=False)
    names = list(dict.fromkeys(name for _, _, series in panels for name in series))
    palette = dict(zip(names, sns.color_palette("deep", len(names)), strict=True))
    for ax, (title, groups, series) in zip(axes.flat, panels, strict=False):
        _bars(ax, groups, series, [palette[name] for name in series], chance_lines=False)
        ax.set_title(title, fontsize=10)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    handles = [plt.Rectangle((0, 0), 1, 1, color=palette[name]) for name in names]
    fig.legend(handles, names, loc="upper center", ncol=min(len(names), 5), fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    return fig


@cached
def training_curves(records: list[dict]) -> Any:
    """Per-epoch losses and discriminator scores of a ``wav2pix train`` log (train_log.jsonl)."""
    plt, _ = _pyplot()
    fig, axes = plt.subplots(1, len(TRAINING_PANELS), figsize=(12, 3.2))
    epochs = [r["epoch"] for r in records]
    for ax, (title, keys) in zip(axes, TRAINING_PANELS, strict=True):
        for key in keys:
            if all(key in r for r in records):
                ax.plot(epochs, [r[key] for r in records], label=key, linewidth=1.2)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    return fig


@cached
def confusion_heatmap(title: str, classes: Sequence[str], matrix: Sequence[Sequence[int]]) -> Any:
    """Counts of true (rows) by predicted (columns) classes, annotated."""
    plt, sns = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 + 1.1 * len(classes), 1.2 + 0.9 * len(classes)))
    sns.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", xticklabels=classes, yticklabels=classes,
                cbar=False, ax=ax)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return fig


@cached
def image_grid(title: str, rows: Sequence[tuple[str, Sequence[np.ndarray]]]) -> Any:
    """Labelled rows of equally sized uint8 RGB images, one row per label (short rows are padded white)."""
    plt, _ = _pyplot()
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
    return fig


@cached
def curves(title: str, x: Sequence[float], series: dict[str, Sequence[float]], xlabel: str, ylabel: str) -> Any:
    """Lines of ``series`` against ``x`` with markers."""
    plt, _ = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, values in series.items():
        ax.plot(x, values, marker="o", label=name, linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig
