"""Streamed training's memory does not grow with the dataset: 2,000 vs 20,000 generated images, each job in
a fresh process (index, a few training steps, validation, model card), peak RSS compared."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.preprocess import Preprocessing
from train.data.store import choose_loading, decoded_bytes

ROOT = Path(__file__).resolve().parents[1]
SHAPE = (64, 64, 3)  # the network input; the files are 12x12 PNGs, so 20,000 of them write in a second or two
PER_CLASS = 20

JOB = textwrap.dedent(
    """
    import json, resource, sys
    from train.trainer import TrainOptions, train
    data, out = sys.argv[1], sys.argv[2]
    r = train(TrainOptions(arch="pyimagesearch", data=data, out=out, input_shape=(64, 64, 3), epochs=1,
                           steps_per_epoch=4, batch_size=32, val_pairs=64, progress=False, data_loading="stream"))
    print(json.dumps({"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "images": r.card["data"]["images"], "loading": r.card["training"]["data_loading"]}))
    """
)


def _class_folders(root: Path, n: int) -> Path:
    rng = np.random.default_rng(n)
    for i in range(n):
        folder = root / f"class{i // PER_CLASS:04d}"
        if i % PER_CLASS == 0:
            folder.mkdir(parents=True)
        ok, buf = cv2.imencode(".png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
        (folder / f"{i:05d}.png").write_bytes(buf.tobytes())
    return root


def _peak_rss(data: Path, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", JOB, str(data), str(out)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_auto_streams_only_what_would_not_fit_the_budget() -> None:
    pre = Preprocessing(*SHAPE[:2], color="rgb")
    assert choose_loading(2_000, pre) == "memory"  # 98 MB decoded
    assert choose_loading(20_000, pre) == "stream"  # 983 MB decoded
    assert choose_loading(20_000, pre, "memory") == "memory"
    with pytest.raises(ValueError, match="data loading 'disk': expected one of"):
        choose_loading(1, pre, "disk")


def test_streamed_training_memory_stays_flat_as_the_dataset_grows(tmp_path: Path) -> None:
    small = _peak_rss(_class_folders(tmp_path / "small", 2_000), tmp_path / "run-small")
    large = _peak_rss(_class_folders(tmp_path / "large", 20_000), tmp_path / "run-large")
    assert (small["images"], large["images"]) == (2_000, 20_000)
    assert small["loading"] == large["loading"] == "stream"
    growth = (large["rss_kb"] - small["rss_kb"]) * 1024
    in_memory = decoded_bytes(18_000, Preprocessing(*SHAPE[:2], color="rgb"))  # what decoding them would add
    print(
        f"peak RSS {small['rss_kb'] / 1024:.0f} MB -> {large['rss_kb'] / 1024:.0f} MB; decoded would add {in_memory >> 20} MB"
    )
    # measured here: +10-20 MB (the index of 18,000 more files) against 885 MB for the decoded images
    assert growth < 0.1 * in_memory, (small, large, growth)
