"""The test clip in two commands: train.clipmaker picks images from a dataset, camera.clip renders the clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest

from camera.clip import ClipTruth
from camera.clip import main as clip_main
from train.clipmaker import main as images_main


def test_images_from_a_dataset_then_the_clip_from_the_images(tmp_path: Path, capsys) -> None:
    images = tmp_path / "clip-images"
    assert images_main(["--data", "digits", "--out", str(images), "--seed", "2", "--negatives", "3"]) == 0
    assert "next: python -m camera.clip" in capsys.readouterr().out
    names = sorted(p.name for p in images.iterdir())
    assert names == ["negative_00.png", "negative_01.png", "negative_02.png", "positive_00.png", "reference.png"]
    clip = tmp_path / "clip.mp4"
    argv = ["--reference", str(images / "reference.png"), "--positives", str(images / "positive_00.png")]
    argv += ["--negatives", *(str(images / f"negative_0{i}.png") for i in range(3)), "--seconds", "2", "--fps", "10"]
    assert clip_main([*argv, "--out", str(clip)]) == 0
    truth = ClipTruth.load(clip.with_suffix(".truth.json"))
    assert truth.frames == 20 and truth.truth().sum() == 10 and truth.reference_item == str(images / "reference.png")
    cap = cv2.VideoCapture(str(clip))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()
    assert clip.with_suffix(".reference.png").is_file()


def test_bad_input_is_one_line_and_nothing_is_overwritten(tmp_path: Path, capsys) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep")
    assert images_main(["--data", "digits", "--out", str(mine)]) == 2
    assert "is not a folder of clip images" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep"
    ref = tmp_path / "r.png"
    cv2.imwrite(str(ref), (255 * cv2.getGaussianKernel(8, 2) @ cv2.getGaussianKernel(8, 2).T).astype("uint8"))
    base = ["--reference", str(ref), "--positives", str(ref), "--negatives", str(tmp_path / "missing.png")]
    assert clip_main([*base, "--out", str(tmp_path / "c.mp4")]) == 2
    assert "missing.png: no such file" in capsys.readouterr().err
    assert clip_main([*base, "--out", str(tmp_path / "c.avi")]) == 2
    assert "expected a .mp4 file" in capsys.readouterr().err
    (tmp_path / "c.reference.png").write_bytes(ref.read_bytes())
    clash = ["--reference", str(tmp_path / "c.reference.png"), "--positives", str(ref), "--negatives", str(ref)]
    assert clip_main([*clash, "--out", str(tmp_path / "c.mp4")]) == 2
    assert "an output must not be one of the inputs (it would be overwritten)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        clip_main(["--help"])
    assert "exit codes:" in capsys.readouterr().out
