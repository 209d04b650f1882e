"""python -m camera end to end: test clips made with OpenCV's VideoWriter from real images (the digits, and
Omniglot's evaluation alphabets from ../shared), with known segments where the reference appears.

What is asserted, per frame: on the segments where the reference appears, the decision is "match" on at least
95% of frames; on every segment, the camera's decision is the one the runtime gives for the still image shown
(``Verifier.verify`` / ``Gallery.identify``), so the capture, crop and smoothing add no errors of their own
(the model's own mistakes on hard negatives are the model's, measured by train.evaluate, not here).
Plus: the events file is complete, the output video has one frame per frame read, a network stream that drops
half-way is reopened, and a signal stops the run with the video playable and the events complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from mjpeg_server import MjpegServer
from quick_models import omniglot_bundle, quick_digits_bundle

from camera.cli import EXIT_INPUT, EXIT_LOST, EXIT_OK, main
from camera.clip import ClipTruth, make_clip, render, write_reference
from camera.sources import opencv_has_gui
from runtime.gallery import Gallery
from runtime.verifier import load
from train.clipmaker import sample_clip_images

ROOT = Path(__file__).resolve().parents[1]
SMOOTH = 5
FP32 = ("--backend", "onnxruntime", "--precision", "fp32")  # decisions compared with ONNX Runtime FP32's
SETTLE = SMOOTH // 2 + 1  # frames a majority vote of SMOOTH needs to follow a change of segment


@pytest.fixture(scope="module")
def digits_bundle(tmp_path_factory) -> Path:
    return quick_digits_bundle(tmp_path_factory)


@pytest.fixture(scope="module")
def digits_clip(tmp_path_factory) -> tuple[ClipTruth, Path, dict]:
    """10 one-second segments at 30 fps; the reference digit in every other one, other digits between."""
    from train.data import open_dataset

    folder = tmp_path_factory.mktemp("clip")
    ref, pos, neg = sample_clip_images(open_dataset("digits"), seed=1)
    truth = make_clip(folder / "clip.mp4", ref, pos, neg, segments=10, segment_frames=30, seed=1)
    return truth, write_reference(folder / "reference.png", ref[1]), dict(pos + neg)


def read_events(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]  # every line must be whole JSON


def frame_events(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] == "frame"]


def count_video_frames(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open as a video"
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def expected_decisions(bundle: Path, reference: Path, truth: ClipTruth, images: dict) -> np.ndarray:
    """Per frame: the runtime's decision for the still image the frame shows."""
    v = load(bundle, backend="onnxruntime", precision="fp32")
    still = {name: v.verify(str(reference), img).match for name, img in images.items()}
    out = np.zeros(truth.frames, dtype=bool)
    for s in truth.segments:
        out[s.start : s.end] = still[s.item]
    return out


def settled(truth: ClipTruth) -> np.ndarray:
    keep = np.ones(truth.frames, dtype=bool)
    for t in truth.transitions():
        keep[t : t + SETTLE] = False
    return keep


def test_digits_clip_decisions_events_and_video(digits_bundle, digits_clip, tmp_path):
    truth, reference, images = digits_clip
    events_path, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    code = main([
        "--bundle", str(digits_bundle), "--source", truth.path, "--reference", str(reference), "--center-crop",
        "--smooth", str(SMOOTH), "--output", str(video), "--events", str(events_path), "--no-progress", *FP32,
    ])
    assert code == EXIT_OK
    events = read_events(events_path)
    assert events[0]["event"] == "start" and events[-1]["event"] == "summary"
    frames = frame_events(events)
    assert [e["frame"] for e in frames] == list(range(truth.frames)), "a file is processed frame by frame, every frame"
    for e in frames:
        assert {"frame", "time", "score", "match", "latency_ms"} <= set(e)
        assert e["latency_ms"] > 0 and isinstance(e["match"], bool)
    assert all(b["time"] >= a["time"] for a, b in zip(frames, frames[1:]))

    raw = np.array([e["raw_match"] for e in frames])
    smoothed = np.array([e["match"] for e in frames])
    on_reference = truth.truth()
    assert raw[on_reference].mean() >= 0.95, "the reference must be matched on its segments"
    assert smoothed[on_reference & settled(truth)].mean() >= 0.95
    want = expected_decisions(digits_bundle, reference, truth, images)
    assert (raw == want).mean() >= 0.95, "the camera must decide as the runtime does on the still images"
    assert (smoothed == want)[settled(truth)].mean() >= 0.95

    summary = events[-1]
    assert summary["frames_read"] == summary["frames_processed"] == truth.frames
    assert summary["frames_dropped"] == 0 and summary["stopped_by"] == "end of source"
    assert summary["latency_ms_p99"] >= summary["latency_ms_p50"] > 0
    assert count_video_frames(video) == truth.frames
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary file is left behind"


def test_every_nth_frame_is_processed_and_every_frame_written(digits_bundle, digits_clip, tmp_path):
    truth, reference, _ = digits_clip
    events_path, video = tmp_path / "events.jsonl", tmp_path / "out.avi"
    code = main([
        "--bundle", str(digits_bundle), "--source", truth.path, "--reference", str(reference), "--center-crop",
        "--every", "3", "--output", str(video), "--events", str(events_path), "--no-progress", "--max-frames", "40",
    ])
    assert code == EXIT_OK
    events = read_events(events_path)
    assert [e["frame"] for e in frame_events(events)] == list(range(0, 120, 3))
    summary = events[-1]
    assert summary["frames_processed"] == 40 and summary["stopped_by"] == "--max-frames 40"
    assert summary["frames_skipped"] == summary["frames_received"] - 40
    assert count_video_frames(video) == summary["frames_written"] == summary["frames_received"]


def test_omniglot_gallery_identifies_characters_on_a_clip(tmp_path_factory, shared_omniglot, tmp_path):
    """Gallery mode on real Omniglot evaluation characters (never trained on): three enrolled, others unknown."""
    from train.data import open_dataset

    bundle = omniglot_bundle(tmp_path_factory)
    ds = open_dataset(shared_omniglot / "images_evaluation.zip")
    rng = np.random.default_rng(3)
    picks = []
    for c in rng.choice(len(ds.classes), size=6, replace=False):
        i = int(np.flatnonzero(ds.labels == c)[0])
        picks.append((ds.classes[int(c)], ds.read(i)))
    enrolled, strangers = picks[:3], picks[3:]
    v = load(bundle, backend="onnxruntime", precision="fp32")
    g = Gallery(v)
    for name, img in enrolled:
        g.enroll(name, img)
    g.save(tmp_path / "gallery")
    truth = make_clip(tmp_path / "clip.mp4", enrolled[0], enrolled, strangers, segments=8, segment_frames=20, seed=3)
    events_path = tmp_path / "events.jsonl"
    code = main([
        "--bundle", str(bundle), "--source", truth.path, "--gallery", str(tmp_path / "gallery"), "--center-crop",
        "--smooth", "1", "--events", str(events_path), "--no-progress", *FP32,
    ])
    assert code == EXIT_OK
    frames = frame_events(read_events(events_path))
    assert len(frames) == truth.frames
    still = {name: g.identify(img).identity for name, img in picks}
    want = [still[s.item] for s in truth.segments for _ in range(s.start, s.end)]
    got = [e["identity"] for e in frames]
    assert np.mean([a == b for a, b in zip(got, want)]) >= 0.95
    named = [(e["identity"], s.item) for s in truth.segments if s.reference for e in frames[s.start : s.end]]
    assert np.mean([a == b for a, b in named]) >= 0.95, "an enrolled character is named on its segments"


def test_a_folder_of_frames_is_read_in_natural_order(digits_bundle, digits_clip, tmp_path):
    truth, reference, images = digits_clip
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    shown = [truth.reference_item if i % 2 else next(n for n in images if n != truth.reference_item) for i in range(12)]
    for i, name in enumerate(shown):
        cv2.imwrite(str(folder / f"frame{i}.png"), render(images[name], rng))  # frame10 sorts after frame9
    (folder / "notes.txt").write_text("not an image")
    events_path = tmp_path / "events.jsonl"
    code = main([
        "--bundle", str(digits_bundle), "--source", str(folder), "--reference", str(reference), "--center-crop",
        "--smooth", "1", "--events", str(events_path), "--no-progress", *FP32,
    ])
    assert code == EXIT_OK
    frames = frame_events(read_events(events_path))
    assert [e["raw_match"] for e in frames] == [name == truth.reference_item for name in shown]


def test_a_network_stream_that_drops_is_reopened_then_reported_lost(digits_bundle, digits_clip, tmp_path):
    """A real MJPEG-over-HTTP stream that ends twice (a dropped network) and then refuses connections."""
    truth, reference, _ = digits_clip
    cap = cv2.VideoCapture(truth.path)
    frames = [cap.read()[1] for _ in range(40)]
    cap.release()
    events_path = tmp_path / "events.jsonl"
    with MjpegServer(frames, fps=200, max_connections=2) as server:
        t0 = time.monotonic()
        code = main([
            "--bundle", str(digits_bundle), "--source", server.url, "--reference", str(reference), "--center-crop",
            "--events", str(events_path), "--reconnect-timeout", "3", "--no-progress",
        ])
        elapsed = time.monotonic() - t0
    assert code == EXIT_LOST
    events = read_events(events_path)
    kinds = [e["event"] for e in events if e["event"] != "frame"]
    assert kinds == ["start", "gap", "reconnected", "gap", "lost", "summary"]
    summary = events[-1]
    assert summary["reconnects"] == 1 and summary["stopped_by"] == "stream lost" and summary["failure"]
    assert summary["frames_read"] == 80, "both connections' frames were read"
    indices = [e["frame"] for e in frame_events(events)]
    assert indices == sorted(indices) and indices[-1] == 79, "frame indices continue across the reopen"
    assert summary["frames_processed"] + summary["frames_dropped"] == summary["frames_read"]
    assert server.refused >= 1 and elapsed < 30


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_cleanly_with_the_video_playable(digits_bundle, digits_clip, tmp_path, sig):
    truth, reference, _ = digits_clip
    events_path, video = tmp_path / "events.jsonl", tmp_path / "out.mp4"
    cmd = [
        sys.executable, "-m", "camera", "--bundle", str(digits_bundle), "--source", truth.path, "--loop",
        "--realtime", "--reference", str(reference), "--center-crop", "--output", str(video),
        "--events", str(events_path), "--no-progress",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if events_path.is_file() and events_path.read_text().count('"event":"frame"') >= 20:
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_OK, err
    events = read_events(events_path)
    summary = events[-1]
    assert summary["event"] == "summary" and summary["stopped_by"] == sig.name
    assert summary["frames_processed"] == len(frame_events(events)) >= 20
    assert count_video_frames(video) == summary["frames_written"] >= 20
    assert "frames:" in err and "speed:" in err


@pytest.mark.parametrize(
    "source, expected",
    [
        ("missing.mp4", "does not exist"),
        ("ftp://host/cam", "unknown scheme 'ftp'"),
        ("csi://0", "without GStreamer"),
        ("csi://left", "expected csi://N"),
        ("v4l2:///dev/video97", "cannot open device"),
    ],
)
def test_a_source_that_cannot_be_opened_is_one_line_at_start(digits_bundle, digits_clip, capsys, source, expected):
    _, reference, _ = digits_clip
    code = main(["--bundle", str(digits_bundle), "--source", source, "--reference", str(reference), "--no-progress"])
    assert code == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0], err


def test_bad_arguments_name_the_value(digits_bundle, digits_clip, tmp_path, capsys):
    truth, reference, _ = digits_clip
    base = ["--bundle", str(digits_bundle), "--source", truth.path, "--no-progress"]
    cases = [
        (["--reference", str(tmp_path / "nope.png")], "nope.png: no such file"),
        (["--reference", str(reference), "--roi", "1,2,3"], "expected X,Y,W,H"),
        (["--reference", str(reference), "--roi", "600,400,100,100"], "does not fit the 640x480 frame"),
        (["--reference", str(reference), "--every", "0"], "--every 0"),
        (["--reference", str(reference), "--output", str(tmp_path / "x.gif")], "unsupported suffix .gif"),
        (["--gallery", str(tmp_path / "none")], "no such gallery file"),
    ]
    if not opencv_has_gui():  # the PyPI install is opencv-python-headless
        cases.append((["--reference", str(reference), "--display"], "--display: this OpenCV has no GUI support"))
    for extra, expected in cases:
        assert main(base + extra) == EXIT_INPUT, extra
        err = capsys.readouterr().err
        assert expected in err, (extra, err)
    assert not (tmp_path / "x.gif").exists()


def test_threshold_overrides_the_bundles(digits_bundle, digits_clip, tmp_path):
    truth, reference, _ = digits_clip
    events_path = tmp_path / "events.jsonl"
    argv = ["--bundle", str(digits_bundle), "--source", truth.path, "--reference", str(reference), "--center-crop",
            "--events", str(events_path), "--no-progress", "--max-frames", "60", "--threshold", "-1"]
    assert main(argv) == EXIT_OK
    events = read_events(events_path)
    assert events[0]["threshold"] == -1.0 and events[0]["threshold_source"] == "given to the gallery"
    assert not any(e["raw_match"] for e in frame_events(events)), "no distance is below -1"
