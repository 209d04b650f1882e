"""Plots for model cards and evaluation reports: ROC, training curves, pair montages, accuracy vs time.

Figures are drawn on matplotlib's Agg canvas directly (``Figure`` + ``FigureCanvasAgg``), never through
pyplot: no display needed, no global backend switched under other code, safe from worker threads.
Every file is written atomically (a temporary file in the same folder, then ``os.replace``), so a
model card never links a half-written PNG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from runtime.fileio import atomic_path
from runtime.scoring import ScoreSpec

RIGHT = "#1a9641"  # green: decision agrees with the truth
WRONG = "#d7191c"  # red: it does not
UNKNOWN = "#404040"


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    """Save to a temporary file beside ``path`` and rename it into place."""
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return Path(path)


def plot_roc(
    fpr: Sequence[float],
    tpr: Sequence[float],
    auc: float,
    eer_point: tuple[float, float] | None,
    path: str | Path,
    eer_threshold: float | None = None,
) -> Path:
    """ROC curve with its AUC, the chance diagonal and, if given, the EER point.

    eer_point: where FAR = FRR on the curve as ``(far, tpr)``, i.e. ``(eer, 1 - eer)``;
    eer_threshold (score units) is added to its legend entry when given.
    """
    fig = _new_figure(5, 5)
    ax = fig.add_subplot()
    ax.plot(fpr, tpr, color="#2b83ba", lw=2, label=f"ROC (AUC = {auc:.4f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="chance")
    if eer_point is not None:
        x, y = eer_point
        at = "" if eer_threshold is None else f" at threshold {eer_threshold:.4g}"
        ax.plot([x], [y], "o", color=WRONG, label=f"EER = {x:.4f}{at}")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false accept rate", ylabel="true accept rate", title="ROC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return _save(fig, path)


def _history_kinds(history: Mapping[str, Sequence[float]]) -> dict[str, list[str]]:
    """Group Keras history keys by kind: ``loss`` with ``val_loss``, ``accuracy`` with ``val_accuracy``."""
    kinds: dict[str, list[str]] = {}
    for key, values in history.items():
        if len(values) == 0:
            continue
        kind = key[4:] if key.startswith("val_") else key
        kinds.setdefault(kind, []).append(key)
    return dict(sorted(kinds.items(), key=lambda kv: (kv[0] != "loss", kv[0])))


def plot_training_curves(history: Mapping[str, Sequence[float]], path: str | Path) -> Path:
    """One panel per kind of value in a Keras ``History.history`` (loss first), train and validation together."""
    kinds = _history_kinds(history)
    if not kinds:
        raise ValueError("training history is empty: nothing to plot")
    fig = _new_figure(4.5 * len(kinds), 4)
    for k, (kind, keys) in enumerate(kinds.items()):
        ax = fig.add_subplot(1, len(kinds), k + 1)
        for key in sorted(keys, key=lambda s: s.startswith("val_")):
            values = np.asarray(history[key], dtype=np.float64)
            ax.plot(np.arange(1, values.size + 1), values, marker="o" if values.size < 30 else None, ms=3, label=key)
        ax.set(title=kind, xlabel="epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def _displayable(img: Any) -> np.ndarray:
    """uint8 or float (raw or preprocessed, HxW, HxWx1, HxWx3) -> uint8 HxW or HxWx3 for imshow."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype == np.uint8:
        return a
    a = a.astype(np.float64)
    lo, hi = float(np.min(a)), float(np.max(a))
    if lo < 0.0 or hi > 1.0:  # normalized with mean/std: stretch for viewing
        a = (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)
    return np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _side_by_side(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Two images on one canvas with a gap, padded to the same height and channel count."""
    if a.ndim != b.ndim:
        a, b = (np.stack([x] * 3, axis=-1) if x.ndim == 2 else x for x in (a, b))
    h = max(a.shape[0], b.shape[0])

    def pad(x: np.ndarray) -> np.ndarray:
        extra = [(0, h - x.shape[0]), (0, 0)] + [(0, 0)] * (x.ndim - 2)
        return np.pad(x, extra, constant_values=255)

    gap = np.full((h, max(2, h // 10), *a.shape[2:]), 255, np.uint8)
    return np.concatenate([pad(a), gap, pad(b)], axis=1)


def plot_pair_montage(
    images_a: Sequence[Any],
    images_b: Sequence[Any],
    scores: Sequence[float],
    same: Sequence[bool] | None,
    spec: ScoreSpec,
    path: str | Path,
    max_pairs: int = 16,
) -> Path:
    """Pairs side by side with score and decision, framed green when the decision is right, red when wrong.

    ``same`` is the truth (True = same identity); None when unknown (frames grey).
    """
    n = min(len(images_a), len(images_b), len(scores), max_pairs)
    if n == 0:
        raise ValueError("no pairs to show")
    if same is not None and len(same) < n:
        raise ValueError(f"same has {len(same)} entries for {n} pairs")
    cols = min(4, n)
    rows = (n + cols - 1) // cols
    fig = _new_figure(3.2 * cols, 2.2 * rows)
    for k in range(n):
        score = float(scores[k])
        match = bool(spec.is_match(score))
        color = UNKNOWN if same is None else (RIGHT if match == bool(same[k]) else WRONG)
        ax = fig.add_subplot(rows, cols, k + 1)
        canvas = _side_by_side(_displayable(images_a[k]), _displayable(images_b[k]))
        ax.imshow(canvas, cmap="gray" if canvas.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
        verdict = "same" if match else "different"
        truth = "" if same is None else f" (truth: {'same' if same[k] else 'different'})"
        ax.set_title(f"{score:.3f} -> {verdict}{truth}", color=color, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_edgecolor(color)
            spine.set_linewidth(4)
    fig.suptitle(spec.describe(), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_accuracy_vs_minutes(
    points: Sequence[tuple[float, float]] | Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    references: Mapping[str, float] | None = None,
) -> Path:
    """Accuracy against minutes of training: ``[(minutes, accuracy), ...]`` or ``{label: [...]}``, with
    optional horizontal reference lines (``{"people": 0.955}``); the axis is zoomed onto the points."""
    series = dict(points) if isinstance(points, Mapping) else {"": list(points)}
    series = {label: pts for label, pts in series.items() if len(pts)}
    if not series:
        raise ValueError("no (minutes, accuracy) points to plot")
    fig = _new_figure(6, 4)
    ax = fig.add_subplot()
    for label, pts in series.items():
        arr = np.asarray(sorted(pts), dtype=np.float64).reshape(-1, 2)
        ax.plot(arr[:, 0], arr[:, 1], marker="o", ms=4, label=label or None)
    for k, (label, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{k + len(series)}", label=f"{label} ({value:.1%})")
    ax.set(xlabel="training minutes (wall clock)", ylabel="accuracy", title="accuracy vs training time")
    values = [a for pts in series.values() for _, a in pts] + list((references or {}).values())
    ax.set_ylim(max(0.0, min(values) - 0.03), min(1.0, max(values) + 0.02))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.grid(alpha=0.3)
    if any(series) or references:
        ax.legend(loc="lower right")
    return _save(fig, path)
