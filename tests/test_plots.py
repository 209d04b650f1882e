"""Plots: real PNGs of real size, written atomically, montage colors follow the decisions."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from matplotlib.figure import Figure

from runtime.scoring import ScoreSpec
from train import plots

PROB = ScoreSpec("probability", "high", 0.5)
DIST = ScoreSpec("distance", "low", 0.8)


def read_png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"{path} does not decode"
    assert img.shape[0] > 200 and img.shape[1] > 200
    assert img.std() > 5  # something was drawn, not a blank canvas
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary files left
    return img


def colored_pixels(img_bgr: np.ndarray, hex_color: str) -> int:
    rgb = np.array([int(hex_color[i : i + 2], 16) for i in (1, 3, 5)])
    bgr = rgb[::-1]
    return int(np.count_nonzero(np.all(np.abs(img_bgr.astype(int) - bgr) < 30, axis=2)))


def test_plot_roc(tmp_path: Path) -> None:
    fpr = np.linspace(0, 1, 50)
    tpr = np.sqrt(fpr)
    out = plots.plot_roc(fpr, tpr, 0.667, (0.38, 0.62), tmp_path / "roc.png", eer_threshold=0.41)
    assert out == tmp_path / "roc.png"
    img = read_png(out)
    assert out.stat().st_size > 10_000
    assert colored_pixels(img, plots.WRONG) > 30  # the EER marker is drawn
    bare = read_png(plots.plot_roc(fpr, tpr, 0.667, None, tmp_path / "bare" / "roc.png"))
    assert colored_pixels(bare, plots.WRONG) == 0


def test_plot_training_curves(tmp_path: Path) -> None:
    history = {
        "loss": [0.9, 0.6, 0.4],
        "val_loss": [1.0, 0.7, 0.5],
        "accuracy": [0.5, 0.7, 0.8],
        "val_accuracy": [0.45, 0.65, 0.75],
        "learning_rate": [],
    }
    img = read_png(plots.plot_training_curves(history, tmp_path / "curves.png"))
    one = read_png(plots.plot_training_curves({"loss": [3, 2, 1]}, tmp_path / "sub" / "one.png"))
    assert img.shape[1] > 1.5 * one.shape[1]  # two panels (loss, accuracy) vs one; the empty key is skipped
    assert plots._history_kinds(history) == {"loss": ["loss", "val_loss"], "accuracy": ["accuracy", "val_accuracy"]}
    with pytest.raises(ValueError, match="empty"):
        plots.plot_training_curves({"loss": []}, tmp_path / "none.png")


def test_plot_pair_montage_colors_follow_decisions(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(6)]
    b = [rng.random((28, 28, 1), dtype=np.float32) for _ in range(6)]  # preprocessed float images too
    scores = np.array([0.9, 0.8, 0.1, 0.2, 0.95, 0.05])
    right_truth = PROB.is_match(scores)

    right = read_png(plots.plot_pair_montage(a, b, scores, right_truth, PROB, tmp_path / "r" / "right.png"))
    assert colored_pixels(right, plots.RIGHT) > 200 and colored_pixels(right, plots.WRONG) == 0

    wrong = read_png(plots.plot_pair_montage(a, b, scores, ~right_truth, PROB, tmp_path / "w" / "wrong.png"))
    assert colored_pixels(wrong, plots.WRONG) > 200 and colored_pixels(wrong, plots.RIGHT) == 0

    # a distance spec decides the other way round: the "right" truth for PROB is all wrong for DIST
    flipped = read_png(plots.plot_pair_montage(a, b, scores, right_truth, DIST, tmp_path / "d" / "dist.png"))
    assert colored_pixels(flipped, plots.RIGHT) > 200  # 0.8 <= 0.8 is a match: one pair right
    assert colored_pixels(flipped, plots.WRONG) > 3 * colored_pixels(flipped, plots.RIGHT)  # five wrong

    rgb = [np.zeros((40, 30, 3), np.uint8)] * 20
    many = read_png(plots.plot_pair_montage(rgb, a * 4, [0.5] * 20, None, PROB, tmp_path / "m" / "m.png", max_pairs=8))
    assert colored_pixels(many, plots.RIGHT) == 0 and colored_pixels(many, plots.WRONG) == 0


def test_plot_accuracy_vs_minutes(tmp_path: Path) -> None:
    read_png(plots.plot_accuracy_vs_minutes([(1.0, 0.5), (5.0, 0.7), (20.0, 0.85)], tmp_path / "a" / "acc.png"))
    runs = {"koch": [(2, 0.6), (10, 0.8)], "vgg16-siamese": [(5, 0.7), (30, 0.9)]}
    read_png(plots.plot_accuracy_vs_minutes(runs, tmp_path / "b" / "acc.png"))
    with pytest.raises(ValueError, match="no"):
        plots.plot_accuracy_vs_minutes([], tmp_path / "c.png")


def test_failed_save_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "roc.png"
    target.write_bytes(b"previous")

    def broken(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        plots.plot_roc([0, 1], [0, 1], 0.5, None, target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["roc.png"]
