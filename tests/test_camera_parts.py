"""camera's parts on their own: the source grammar, the capture threads, backoff, hysteresis, ROI, stats."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from camera.capture import Backoff, LatestFrameReader, QueuedReader, SequentialReader
from camera.crop import Roi, center_square, crop, region
from camera.hysteresis import Hysteresis, default_margin
from camera.sources import SourceError, csi_pipeline, open_source, parse_source


@pytest.fixture(scope="module")
def numbered_clip(tmp_path_factory) -> Path:
    """60 frames whose top-left pixel value is the frame number (lossless MJPG keeps it within a few levels)."""
    path = tmp_path_factory.mktemp("clip") / "numbered.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    for i in range(60):
        f = np.full((48, 64, 3), 4 * i, np.uint8)
        w.write(f)
    w.release()
    return path


def frame_number(image: np.ndarray) -> int:
    return int(round(float(image[24, 32].mean()) / 4))


@pytest.mark.parametrize(
    "text, kind, location, live",
    [
        ("0", "device", 0, True),
        ("v4l2:///dev/video2", "device", 2, True),
        ("v4l2:///dev/v4l/by-id/usb-cam", "device", "/dev/v4l/by-id/usb-cam", True),
        ("csi://1", "csi", 1, True),
        ("rtsp://user:pw@10.0.0.7:554/live", "network", "rtsp://user:pw@10.0.0.7:554/live", True),
        ("https://cam.local/video.mjpg", "network", "https://cam.local/video.mjpg", True),
        ("videotestsrc ! videoconvert ! appsink", "gstreamer", "videotestsrc ! videoconvert ! appsink", True),
    ],
)
def test_source_grammar(text, kind, location, live):
    s = parse_source(text)
    assert (s.kind, s.location, s.live) == (kind, location, live)


def test_files_and_folders_are_not_live(tmp_path, numbered_clip):
    assert parse_source(str(numbered_clip)).kind == "file"
    assert parse_source(f"file://{numbered_clip}").location == str(numbered_clip)
    assert parse_source(str(tmp_path)).kind == "folder" and not parse_source(str(tmp_path)).live
    with pytest.raises(SourceError, match="no images"):
        open_source(parse_source(str(tmp_path)))
    with pytest.raises(SourceError, match="does not exist"):
        parse_source(str(tmp_path / "nope.mp4"))


def test_csi_pipeline_carries_the_capture_size():
    p = csi_pipeline(1, 1920, 1080, 60)
    assert "sensor-id=1" in p and "width=(int)1920" in p and "framerate=(fraction)60/1" in p
    assert p.endswith("appsink drop=true max-buffers=1 sync=false")


def test_sequential_reader_returns_every_frame_and_loops(numbered_clip):
    reader = SequentialReader(open_source(parse_source(str(numbered_clip))), loop=1)
    got = []
    while (f := reader.get()) is not None:
        got.append((f.index, frame_number(f.image)))
    assert [i for i, _ in got] == list(range(120))
    assert [n for _, n in got] == list(range(60)) * 2
    assert reader.ended and reader.dropped == 0


def test_newest_frame_reader_drops_what_a_slow_consumer_cannot_take(numbered_clip):
    """A camera at 200 FPS and inference at ~25 FPS: only the newest frame is handed over; the rest are dropped."""
    reader = LatestFrameReader(open_source(parse_source(str(numbered_clip))), pace_fps=200).start()
    taken, behind = [], []
    try:
        while not reader.finished:
            f = reader.get(timeout=0.5)
            if f is None:
                continue
            behind.append(reader.read_count - 1 - f.index)  # frames read since this one (racy by at most 1)
            taken.append(f.index)
            time.sleep(0.04)
    finally:
        reader.close()
    assert reader.read_count == 60
    assert taken == sorted(taken) and len(taken) < 30
    assert reader.dropped == 60 - len(taken)
    assert max(behind) <= 1, "the frame handed over is always the newest one read"


def test_backoff_grows_to_its_cap():
    d = Backoff(initial=0.5, factor=2, maximum=3).delays()
    assert [next(d) for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_hysteresis_follows_clear_frames_at_once_and_holds_near_ones():
    """Distances against a threshold of 0.5 with a margin of 0.1: 0.35 and 0.62 are clear, 0.45 and 0.55 near."""
    h = Hysteresis(threshold=0.5, k=3, margin=0.1)

    def label(d: float) -> str:
        return "match" if d <= 0.5 else "no match"

    scores = [0.95, 0.35, 0.45, 0.55, 0.55, 0.45, 0.55, 0.55, 0.55, 0.45, 0.45, 0.62, 0.45, 0.45, 0.45, 0.95, 0.45]
    got = [h.update(label(d), d) for d in scores]
    m, n = "match", "no match"
    assert got == [
        n,  # the first frame sets the verdict
        m,  # a clear frame changes it at once
        m, m, m,  # a near frame that agrees; two near ones against it are held
        m,  # a near frame that agrees breaks their run
        m, m, n,  # three near frames in a row change it
        n, n, n,  # near frames against it are held; a clear one agrees
        n, n, m,  # three near frames in a row (0.62 -> 0.45 is no jump: within the band's width)
        n,  # clear
        m,  # 0.95 -> 0.45 jumps across the band: a change of scene, followed at once
    ]
    one = Hysteresis(threshold=0.5, k=1, margin=0.1)
    assert [one.update(label(d), d) for d in scores] == [label(d) for d in scores], "k = 1: every frame's own decision"
    h.reset()
    assert h.update("no match", 0.55) == "no match", "after a reset the first frame sets the verdict"
    gallery = Hysteresis(threshold=0.5, k=2, margin=0.1)
    steps = [("ann", 0.3), ("bob", 0.45), ("bob", 0.42), ("unknown", 0.9)]
    assert [gallery.update(who, d) for who, d in steps] == ["ann", "ann", "bob", "unknown"]
    assert default_margin(0.68) == pytest.approx(0.034) and default_margin(0.0) == 0.05
    with pytest.raises(ValueError, match="--hold 0"):
        Hysteresis(0.5, k=0)


def test_queued_reader_returns_every_frame_in_its_thread(numbered_clip):
    import threading

    wake = threading.Event()
    reader = QueuedReader(open_source(parse_source(str(numbered_clip))), loop=1, wake=wake).start()
    got = []
    try:
        while (f := reader.get(timeout=5)) is not None:
            got.append((f.index, frame_number(f.image)))
            time.sleep(0.001 if len(got) % 10 else 0.05)  # a consumer slower than the decoder: nothing is lost
    finally:
        reader.close()
    assert [i for i, _ in got] == list(range(120)) and [n for _, n in got] == list(range(60)) * 2
    assert reader.finished and reader.dropped == 0 and wake.is_set()


def test_regions():
    frame = np.zeros((480, 640, 3), np.uint8)
    assert center_square(frame.shape) == Roi(80, 0, 480, 480)
    assert region(frame.shape, None, False) == Roi(0, 0, 640, 480)
    r = Roi.parse("10, 20, 30, 40")
    assert crop(frame, region(frame.shape, r, True)).shape == (40, 30, 3)
    with pytest.raises(ValueError, match="does not fit the 640x480 frame"):
        region(frame.shape, Roi(600, 0, 100, 10), False)
    with pytest.raises(ValueError, match="X and Y must be >= 0"):
        Roi.parse("-1,0,10,10")


def test_score_reads_a_run_against_the_clip_truth(tmp_path):
    from camera.clip import ClipTruth, Segment
    from camera.score import main, score_events

    truth = ClipTruth("c.mp4", 30.0, (640, 480), 4, [Segment(0, 2, False, "a"), Segment(2, 4, True, "b")], "b")
    truth.save(tmp_path / "c.truth.json")
    lines = [{"event": "start"}] + [
        {"event": "frame", "frame": i, "match": m, "raw_match": r}
        for i, (m, r) in enumerate([(False, True), (False, False), (False, True), (True, True)])
    ]
    (tmp_path / "e.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    s = score_events(tmp_path / "c.truth.json", tmp_path / "e.jsonl")
    assert (s["reference_matched"], s["others_rejected"]) == (0.5, 1.0)
    assert (s["raw_reference_matched"], s["raw_others_rejected"]) == (1.0, 0.5)
    assert main(["--truth", str(tmp_path / "e.jsonl"), "--events", str(tmp_path / "e.jsonl")]) == 2


def test_run_stats_percentiles_and_rates():
    from camera.stats import RunStats, format_summary

    s = RunStats(started=100.0)
    for i in range(100):  # 10 FPS for 6 s, then 40 frames at 50 FPS
        s.record(float(i + 1), now=100.0 + (0.1 * (i + 1) if i < 60 else 6.0 + 0.02 * (i - 59)))
    assert abs(s.fps() - 100 / 6.8) < 1e-9
    assert abs(s.recent_fps() - 50.0) < 1e-6, "the overlay's rate follows the last 30 frames"
    summary = s.summary(read=120, dropped=20, skipped=0, reconnects=0)
    assert summary["latency_ms_p50"] == 50.5 and summary["latency_ms_p99"] == 99.01
    assert summary["frames_processed"] == 100 and summary["frames_dropped"] == 20
    text = format_summary(summary)
    assert "120 read, 100 processed, 20 dropped" in text and "p99 99.0 ms" in text


@pytest.mark.parametrize("color", ["gray", "rgb"])
def test_crops_are_preprocessed_as_the_runtime_does(color):
    """camera's input batch (a gray network's crop converted from BGR in one step) is the runtime's, bit for bit."""
    from camera.matcher import to_input
    from runtime.images import to_batch
    from runtime.preprocess import Preprocessing

    rng = np.random.default_rng(7)
    frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    crops = [crop(frame, Roi(3, 5, 100, 90)), crop(frame, Roi(0, 0, 160, 120)), frame[:, :, 0]]  # views; a gray one
    for resize in ("stretch", "shorter-side+center-crop", "letterbox"):
        spec = Preprocessing(28, 28, color=color, resize=resize, interpolation="area")
        np.testing.assert_array_equal(to_input(crops, spec), to_batch(crops, spec).x)


def test_queued_reader_prepares_frames_in_its_thread(numbered_clip):
    """``prepare`` runs in the reader's thread and its result rides on the frame; one that raises leaves the frame
    unprepared (the loop does the work and meets the error itself) and the reading goes on."""
    import threading

    threads = set()

    def prepare(image):
        threads.add(threading.current_thread().name)
        if frame_number(image) % 2:
            raise ValueError("odd frame")
        return frame_number(image)

    reader = QueuedReader(open_source(parse_source(str(numbered_clip))), prepare=prepare).start()
    got = []
    try:
        while (f := reader.get(timeout=5)) is not None:
            got.append((frame_number(f.image), f.prepared))
    finally:
        reader.close()
    assert [n for n, _ in got] == list(range(60))
    assert all(p == (n if n % 2 == 0 else None) for n, p in got)
    assert threads == {f"decode[{numbered_clip}]"}
