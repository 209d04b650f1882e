"""python -m camera with several streams in one batched pipeline, hysteresis on a generated clip, and detectors
end to end. The streams are real: video files written with OpenCV and an MJPEG-over-HTTP server that stalls."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import test_camera
from mjpeg_server import MjpegServer
from test_camera import FP32, read_events

from camera.cli import EXIT_LOST, EXIT_OK, main
from camera.clip import ClipTruth, make_clip, write_reference
from camera.hysteresis import default_margin
from camera.score import score_events
from camera.sources import SourceError
from camera.streams import expand_sources
from train.clipmaker import sample_clip_images

digits_bundle, digits_clip = test_camera.digits_bundle, test_camera.digits_clip  # the same bundle and clip


@pytest.fixture(scope="module")
def clips(digits_clip, tmp_path_factory) -> tuple[ClipTruth, Path, Path]:
    """test_camera's 300-frame clip (the reference digit in every other second), a 20-frame one, the reference."""
    truth, reference, images = digits_clip
    ref = (truth.reference_item, images[truth.reference_item])
    others = [(name, image) for name, image in images.items() if name != truth.reference_item]
    short = tmp_path_factory.mktemp("streams") / "short.mp4"
    make_clip(short, ref, [ref], others, segments=2, segment_frames=10, seed=3)
    return truth, short, reference


def frames_of(events: list[dict], stream: int) -> list[dict]:
    return [e for e in events if e["event"] == "frame" and e["stream"] == stream]


def test_three_streams_one_ending_early_one_stalling(digits_bundle, clips, tmp_path):
    """A long file, a short one and a network stream that stalls for a second and then drops for good: the files
    are processed frame by frame to their ends, the stall holds nobody back, and the exit code says a stream was
    lost."""
    truth, short, reference = clips
    cap = cv2.VideoCapture(truth.path)
    live = [cap.read()[1] for _ in range(30)]
    cap.release()
    events_path = tmp_path / "events.jsonl"
    with MjpegServer(live, fps=100, max_connections=1, pause_at=5, pause_s=1.0) as server:
        code = main([
            "--bundle", str(digits_bundle), "--source", truth.path, "--source", str(short), "--source", server.url,
            "--reference", str(reference), "--center-crop", "--events", str(events_path), "--reconnect-timeout", "1",
            "--no-progress", *FP32,
        ])
    assert code == EXIT_LOST, "a stream was lost: not every stream ended as expected"
    events = read_events(events_path)
    start, summary = events[0], events[-1]
    assert [s["source"] for s in start["streams"]] == [truth.path, str(short), server.url]
    long_frames, short_frames, live_frames = (frames_of(events, i) for i in range(3))
    assert [e["frame"] for e in long_frames] == list(range(truth.frames)), "a file: every frame, in order"
    assert [e["frame"] for e in short_frames] == list(range(20))
    assert short_frames[-1]["time"] < long_frames[-1]["time"], "the short stream ended first, the long one went on"
    assert [e["frame"] for e in live_frames] == sorted(e["frame"] for e in live_frames) and len(live_frames) >= 10
    stalled_from = max(e["time"] for e in live_frames if e["frame"] < 5)
    after = min(e["time"] for e in live_frames if e["frame"] >= 5)
    assert after - stalled_from >= 0.8, "the network stream stalled for a second before its frame 5"
    during = [e for e in long_frames if stalled_from < e["time"] < after]
    assert len(during) >= 20, "the long file kept going while the network stream stalled"
    lost = [e for e in events if e["event"] in ("gap", "lost")]
    assert [(e["event"], e["stream"]) for e in lost] == [("gap", 2), ("lost", 2)]
    per = summary["streams"]
    assert [p["stopped_by"] for p in per] == ["end of source", "end of source", "stream lost"]
    assert per[2]["failure"] and server.url in per[2]["failure"] and summary["failure"] == per[2]["failure"]
    assert per[0]["frames_processed"] == truth.frames and per[1]["frames_processed"] == 20
    assert summary["frames_processed"] == sum(p["frames_processed"] for p in per)
    batch = summary["batch"]
    assert batch["crops"] == summary["frames_processed"] and batch["max_size"] >= 2
    assert batch["calls"] < batch["crops"], "the streams' crops share network calls"


def test_a_streams_file_with_one_video_per_stream(digits_bundle, clips, tmp_path):
    truth, short, reference = clips
    listing = tmp_path / "cams.streams"
    listing.write_text(f"# two cameras\n{truth.path}\n\n{short}\n")
    assert expand_sources([str(listing)]) == [truth.path, str(short)]
    with pytest.raises(SourceError, match="lists no sources"):
        (tmp_path / "empty.streams").write_text("# nothing\n")
        expand_sources([str(tmp_path / "empty.streams")])
    events_path = tmp_path / "events.jsonl"
    code = main([
        "--bundle", str(digits_bundle), "--source", str(listing), "--reference", str(reference), "--center-crop",
        "--max-frames", "15", "--output", str(tmp_path / "out.avi"), "--events", str(events_path), "--no-progress",
        "--max-batch", "1", *FP32,
    ])
    assert code == EXIT_OK
    summary = read_events(events_path)[-1]
    assert [p["frames_processed"] for p in summary["streams"]] == [15, 15]
    assert summary["stopped_by"] == "--max-frames 15" and summary["batch"]["max_size"] == 1
    for i in range(2):
        cap = cv2.VideoCapture(str(tmp_path / f"out.stream{i}.avi"))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n == summary["streams"][i]["frames_written"] >= 15


def test_hysteresis_is_at_least_as_accurate_as_single_frames(digits_bundle, tmp_path):
    """On a clip (seed 5) where one segment's scores sit at the threshold and single frames are mostly right there,
    hysteresis fixes the frames that flicker; everywhere else it follows the frames with no lag. (Where the model is
    mostly wrong on such a segment, as on test_camera's clip, holding the verdict keeps the wrong one; the module
    docstring says so.)"""
    from train.data import open_dataset

    ref, pos, neg = sample_clip_images(open_dataset("digits"), seed=5)
    truth = make_clip(tmp_path / "clip.mp4", ref, pos, neg, segments=10, segment_frames=30, seed=5)
    truth_file, reference = truth.save(tmp_path / "clip.truth.json"), write_reference(tmp_path / "ref.png", ref[1])
    results, frames = {}, {}
    for hold in ("1", "3"):
        events_path = tmp_path / f"hold{hold}.jsonl"
        argv = ["--bundle", str(digits_bundle), "--source", truth.path, "--reference", str(reference),
                "--center-crop", "--hold", hold, "--events", str(events_path), "--no-progress", *FP32]
        assert main(argv) == EXIT_OK
        results[hold] = score_events(truth_file, events_path)
        frames[hold] = frames_of(read_events(events_path), 0)
    off, on = results["1"], results["3"]
    assert off["accuracy"] == off["raw_accuracy"], "--hold 1 is the per-frame decision"
    assert on["accuracy"] >= on["raw_accuracy"] and on["reference_matched"] >= 0.95, on
    threshold = read_events(tmp_path / "hold3.jsonl")[0]["threshold"]
    clear = [e for e in frames["3"] if abs(e["score"] - threshold) > default_margin(threshold)]
    assert clear and all(e["match"] == e["raw_match"] for e in clear), "a clear frame is followed at once"


def test_ink_detections_are_verified_and_no_detection_is_its_own_outcome(digits_bundle, clips, tmp_path):
    truth, _, reference = clips
    frames = tmp_path / "frames"
    frames.mkdir()
    cap = cv2.VideoCapture(truth.path)
    for i in range(40):  # the reference segment (30-59) and then blank frames
        ok, image = cap.read()
        assert ok
        cv2.imwrite(str(frames / f"f{i:02d}.png"), image if i < 30 else np.full_like(image, 3))
    cap.release()
    events_path = tmp_path / "events.jsonl"
    code = main([
        "--bundle", str(digits_bundle), "--source", truth.path, "--source", str(frames), "--reference",
        str(reference), "--detect", "ink:", "--max-frames", "60", "--events", str(events_path), "--no-progress", *FP32,
    ])
    assert code == EXIT_OK
    events = read_events(events_path)
    assert events[0]["detector"] == "ink:"
    clip_frames, folder_frames = frames_of(events, 0), frames_of(events, 1)
    for e in clip_frames:
        (d,) = e["detections"]
        x, y, w, h = d["box"]
        assert abs(x + w / 2 - 320) <= 60 and abs(y + h / 2 - 240) <= 60 and w >= 240, "around the digit"
        assert d["match"] == e["raw_match"] and d["score"] == e["score"]
    on_reference = [e for e in clip_frames if truth.truth()[e["frame"]]]
    assert np.mean([e["match"] for e in on_reference]) >= 0.9
    assert [e["outcome"] for e in folder_frames[30:]] == ["no detection"] * 10
    assert all(e["detections"] == [] and e["match"] is False and e["score"] is None for e in folder_frames[30:])
    assert events[-1]["streams"][1]["no_detection"] == 10


def test_bench_measures_streams_batched_against_separate_processes(digits_bundle, digits_clip, tmp_path):
    from camera.bench import main as bench

    truth, _, images = digits_clip
    ref = (truth.reference_item, images[truth.reference_item])
    others = [(name, image) for name, image in images.items() if name != truth.reference_item]
    clip = make_clip(tmp_path / "b.mp4", ref, [ref], others, segments=2, segment_frames=15, seed=4)
    clip.save(tmp_path / "b.truth.json")
    write_reference(tmp_path / "b.reference.png", ref[1])
    argv = ["--clip", str(tmp_path / "b.mp4"), "--bundle", str(digits_bundle), "--streams", "2", "--min-ratio", "0.01",
            "--backends", "onnxruntime", "--threads", "1", "--out", str(tmp_path / "bench")]
    assert bench(argv) == 0
    report = json.loads((tmp_path / "bench" / "camera_bench.json").read_text())
    m = report["results"][0]["multi"]
    assert report["threads"] == 1 and report["machine"]["cpus_used"]
    assert m["streams"] == 2 and m["batched"]["every_frame"]
    assert [p["frames_processed"] for p in m["batched"]["per_stream"]] == [30, 30]
    assert m["batched"]["batch"]["max_size"] == 2 and len(m["separate"]["per_process"]) == 2
    assert m["ratio"]["loop"] > 0 and m["ratio"]["cpu"] > 0 and m["cpu_ms_per_frame"]["batched"] > 0
    steady = m["ratio"]["steady"]  # None only when the two processes never ran at once (a 30-frame clip)
    assert m["met"] == {"stream_fps": None, "ratio": steady is not None}
    assert steady is None or m["steady_window_s"]["separate"] > 0 and m["throughput_fps"]["steady"]["batched"] > 0
    cost, ms = m["cost"], m["cost"]["ms_per_frame"]  # the stages, timed one by one on the same clip
    assert cost["streams"] == 2 and cost["frames"] == 30 and min(ms.values()) > 0
    stream_ms = ms["decode"] + ms["prepare"]
    assert cost["ratio"]["free_call"] == pytest.approx((stream_ms + ms["call_batch_1"]) / stream_ms, abs=0.01)
    assert cost["ratio"]["expected"] == pytest.approx((stream_ms + ms["call_batch_1"]) / (stream_ms + ms["call_batch_2"]), abs=0.01)
    assert cost["ratio"]["free_call"] > cost["ratio"]["expected"] and 0 < cost["network_share"] < 1
    table = (tmp_path / "bench" / "camera_bench.txt").read_text()
    assert "2 streams batched" in table and "batching can reach" in table and "CPU flags: " in table
    assert cost["ceiling_fps"] == pytest.approx(report["machine"]["cpus_used_count"] * 1000 / stream_ms, rel=0.01)
    steady_separate = m["throughput_fps"]["steady"]["separate"]
    if steady_separate:
        assert cost["ceiling_ratio"] == pytest.approx(cost["ceiling_fps"] / steady_separate, rel=0.02)


def test_frames_prepared_in_the_capture_threads_are_decided_as_in_the_loop(digits_bundle, clips):
    """Two file streams whose frames are cropped and preprocessed in their reader threads get exactly the scores
    of the same streams prepared in the loop (and of the gallery's own path for images), and every frame was
    prepared in a thread."""
    import threading

    from camera.capture import QueuedReader
    from camera.matcher import Matcher
    from camera.pipeline import LoopOptions, Sinks, frame_preparer, run_loop
    from camera.sources import open_source, parse_source
    from runtime.verifier import load

    truth, short, reference = clips
    verifier = load(digits_bundle, backend="onnxruntime", precision="fp32")
    matcher = Matcher.from_references(verifier, [reference])
    options = LoopOptions(center=True)
    prepare = frame_preparer(matcher, options)
    assert prepare is not None and frame_preparer(matcher, LoopOptions(center=True, every=2)) is None
    calls = []

    def counted(image):
        calls.append(threading.current_thread().name)
        return prepare(image)

    def scores(prep) -> list[list[float]]:
        wake = threading.Event()
        readers = [
            QueuedReader(open_source(parse_source(p)), wake=wake, prepare=prep).start()
            for p in (truth.path, str(short))
        ]
        got: list[dict] = []
        try:
            run_loop(readers, matcher, options, Sinks(on_frame=got.append), threading.Event(), [], wake=wake)
        finally:
            for r in readers:
                r.close()
        return [[e["score"] for e in got if e["stream"] == i] for i in range(2)]

    prepared = scores(counted)
    assert len(calls) == truth.frames + 20 and all(name.startswith("decode[") for name in calls)
    assert prepared == scores(None)
    cap = cv2.VideoCapture(str(short))
    frames = [cap.read()[1] for _ in range(20)]
    cap.release()
    from camera.crop import center_square, crop

    by_gallery = matcher.gallery.identify([crop(f, center_square(f.shape)) for f in frames], top_k=1)
    assert prepared[1] == [round(float(r.score), 6) for r in by_gallery]


def test_steady_throughput_counts_only_the_frames_decided_while_every_stream_ran():
    from camera.bench import steady_fps

    # stream 0 runs from t=0 to 10 (one frame a second), stream 1 from 4 to 6 (two a second): window 4..6
    fps, window = steady_fps([[float(t) for t in range(11)], [4.0, 4.5, 5.0, 5.5, 6.0]])
    assert window == 2.0 and fps == pytest.approx((3 + 5) / 2.0)
    assert steady_fps([[0.0, 1.0], [2.0, 3.0]]) == (None, 0.0), "never both at once"
    assert steady_fps([[0.0, 1.0], []]) == (None, 0.0)
