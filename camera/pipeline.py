"""The loop over ticks: take the newest frame of every stream, detect or crop, embed every crop in one batched call,
decide, smooth per stream, draw, write; then the summary.

Sources, the network and the sinks are set up by the caller (``camera.cli`` or a user's own program), so the
loop is the same for one webcam, four RTSP streams or a test clip. A stream that ends or stalls is not waited for
(``camera.streams.Ticker``); the run ends when every stream has ended, or when ``stop`` is set.

What need not run between the network calls does not: a file's reader crops and preprocesses each frame in its
capture thread (``frame_preparer``), beside the loop, so the loop mostly gathers ready inputs, embeds them in one
call, decides and writes; frames are annotated (a copy each) only when a video or a window shows them.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from camera.capture import Frame
from camera.crop import Roi, crop, region
from camera.detect import Detection, Detector
from camera.hysteresis import DEFAULT_HOLD, Hysteresis, default_margin
from camera.matcher import Decision, Matcher
from camera.mosaic import mosaic
from camera.overlay import Box, OverlayState, draw
from camera.sinks import EventLog, VideoSink, Window
from camera.stats import RunStats
from camera.streams import Reader, Ticker

NO_DETECTION = "no detection"
ENDED_EARLY = "ended early"  # a video file ended before the length its header gives (corrupt or cut short)
DEFAULT_MAX_BATCH = 32  # crops per network call: the batch the runtime's backends run in one go


@dataclass
class LoopOptions:
    roi: Roi | None = None
    center: bool = False
    every: int = 1  # process every Nth frame of a stream; the others are drawn with the last verdict
    hold: int = DEFAULT_HOLD  # hysteresis: frames near the threshold that must agree before the verdict changes
    margin: float | None = None  # hysteresis: score distance from the threshold that is clear (None: the default)
    backend: str = ""  # shown in the overlay
    max_frames: int | None = None  # stop a stream after this many processed frames
    max_batch: int = DEFAULT_MAX_BATCH


@dataclass
class Sinks:
    videos: Sequence[VideoSink | None] = ()  # one per stream (or none)
    events: EventLog | None = None
    window: Window | None = None
    on_frame: Callable[[dict], None] | None = None  # e.g. a progress bar

    def video(self, stream: int) -> VideoSink | None:
        return self.videos[stream] if stream < len(self.videos) else None

    @property
    def draws(self) -> bool:
        return any(v is not None for v in self.videos) or self.window is not None


@dataclass
class _Stream:
    """One stream's state in the loop."""

    index: int
    reader: Reader
    verdict: Hysteresis
    stats: RunStats = field(default_factory=RunStats)
    received: int = 0
    skipped: int = 0
    matches: int = 0
    no_detection: int = 0
    stopped_by: str | None = None
    reconnects_seen: int = 0  # a reopened stream starts a verdict of its own
    overlay: OverlayState | None = None
    shown: np.ndarray | None = None  # the last annotated frame (for the mosaic)
    regions: dict[tuple[int, ...], Roi] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.stopped_by is None


@dataclass
class _Work:
    stream: _Stream
    frame: Frame
    detections: list[Detection]
    start: int  # its crops' first index in the tick's batch
    detected: bool  # the regions came from a detector (their boxes go into the event)


class BatchStats:
    """Sizes of the network calls: how many crops each batched call embedded."""

    def __init__(self) -> None:
        self.sizes: Counter[int] = Counter()

    def record(self, n: int) -> None:
        self.sizes[n] += 1

    def summary(self) -> dict[str, Any]:
        calls = sum(self.sizes.values())
        crops = sum(k * v for k, v in self.sizes.items())
        return {
            "calls": calls,
            "crops": crops,
            "mean_size": round(crops / calls, 3) if calls else None,
            "max_size": max(self.sizes, default=None),
            "sizes": {str(k): v for k, v in sorted(self.sizes.items())},
        }


def decide_batched(matcher: Matcher, inputs: np.ndarray, max_batch: int, stats: BatchStats) -> list[Decision]:
    """Every crop of the tick, in calls of at most ``max_batch`` crops: ``inputs`` is their preprocessed batch
    (``Matcher.preprocess``)."""
    out: list[Decision] = []
    for i in range(0, len(inputs), max_batch):
        chunk = inputs[i : i + max_batch]
        out.extend(matcher.decide_preprocessed(chunk))
        stats.record(len(chunk))
    return out


def frame_preparer(
    matcher: Matcher, options: LoopOptions, detector: Detector | None = None
) -> Callable[[np.ndarray], tuple[Roi, np.ndarray]] | None:
    """What a capture thread can do ahead of the loop (``QueuedReader(prepare=...)``): crop the frame's region and
    preprocess it -> (region, input batch of one). None where it cannot: with a detector (the crops come from the
    loop's detections) or ``--every`` (most frames are not processed)."""
    if detector is not None or options.every != 1:
        return None
    regions: dict[tuple[int, ...], Roi] = {}

    def prepare(image: np.ndarray) -> tuple[Roi, np.ndarray]:
        shape = image.shape
        r = _region_of(regions, shape, options)
        return r, matcher.preprocess([crop(image, r)])

    return prepare


def _region_of(regions: dict[tuple[int, ...], Roi], shape: tuple[int, ...], options: LoopOptions) -> Roi:
    """The region verified in frames of ``shape`` (``--roi`` or the centre), computed once per shape."""
    r = regions.get(shape)
    if r is None:
        r = regions[shape] = region(shape, options.roi, options.center)
    return r


def _best(decisions: list[Decision], matcher: Matcher) -> int:
    """Index of the decision whose score is the most alike (the one the stream's verdict follows)."""
    if len(decisions) == 1:
        return 0
    spec = matcher.gallery.spec
    sims = [-np.inf if d.score is None else float(spec.similarity(d.score)) for d in decisions]
    return int(np.argmax(sims))


def run_loop(
    readers: Sequence[Reader],
    matcher: Matcher,
    options: LoopOptions,
    sinks: Sinks,
    stop: threading.Event,
    why: list[str],
    detector: Detector | None = None,
    wake: threading.Event | None = None,
) -> dict[str, Any]:
    """Process every stream until each has ended or ``stop`` is set (``why[0]`` then says by what); the summary.

    ``wake``: the event the readers set when a frame arrives (``camera.streams``); None for readers that never wait.
    """
    if options.every < 1:
        raise ValueError(f"--every {options.every}: expected 1 or more")
    if options.max_batch < 1:
        raise ValueError(f"--max-batch {options.max_batch}: expected 1 or more")
    threshold = matcher.gallery.spec.threshold
    margin = default_margin(threshold) if options.margin is None else options.margin
    streams = [_Stream(i, r, Hysteresis(threshold, options.hold, margin)) for i, r in enumerate(readers)]
    ticker = Ticker(readers, wake or threading.Event())
    batches = BatchStats()
    wall0, t0, cpu0 = time.time(), time.monotonic(), time.process_time()
    several = len(streams) > 1
    while not stop.is_set():
        for s in streams:
            if s.active and s.reader.finished:
                s.stopped_by = _end_reason(s.reader)
        active = {s.index for s in streams if s.active}
        if not active:
            break
        tick = ticker.tick(active)
        work: list[_Work] = []
        parts: list[np.ndarray] = []  # each frame's preprocessed batch
        n_crops = 0
        for i, frame in tick:
            s = streams[i]
            s.received += 1
            if s.reader.reconnects != s.reconnects_seen:
                s.reconnects_seen = s.reader.reconnects
                s.verdict.reset()
            if (s.received - 1) % options.every:
                s.skipped += 1
                continue
            shape = frame.image.shape
            prepared = None
            if detector is not None:
                found = detector.detect(frame.image)
            else:
                r = _region_of(s.regions, shape, options)
                found = [Detection(r)]
                if frame.prepared is not None and frame.prepared[0] == r:
                    prepared = frame.prepared[1]  # cropped and preprocessed by the capture thread
            work.append(_Work(s, frame, found, n_crops, detector is not None))
            n_crops += len(found)
            if prepared is None and found:
                crops = [crop(frame.image, d.box) for d in found]
                prepared = matcher.preprocess(crops)
            if prepared is not None:
                parts.append(prepared)
        inputs = np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else np.zeros((0,), np.float32))
        decisions = decide_batched(matcher, inputs, options.max_batch, batches)
        for w in work:
            event = _decide(w, decisions[w.start : w.start + len(w.detections)], matcher, options, wall0, t0, several)
            if sinks.events is not None:
                sinks.events.write(event)
            if sinks.on_frame is not None:
                sinks.on_frame(event)
            s = w.stream
            if options.max_frames is not None and s.stats.processed >= options.max_frames:
                s.stopped_by = f"--max-frames {options.max_frames}"
        if sinks.draws and tick:
            if not _draw(streams, tick, sinks):
                why.append("window closed (q/Esc)")
                break
        limit = f"--max-frames {options.max_frames}"
        if not why and all(s.stopped_by == limit for s in streams):
            why.append(limit)
    return _summary(streams, batches, wall0, why, time.process_time() - cpu0)


def _decide(
    w: _Work, ds: list[Decision], matcher: Matcher, options: LoopOptions, wall0: float, t0: float, several: bool
) -> dict[str, Any]:
    """The frame's verdict (the best detection's, through the stream's hysteresis), its event and overlay."""
    s, frame = w.stream, w.frame
    best = ds[_best(ds, matcher)] if ds else None
    if best is not None:
        label = s.verdict.update(best.label, best.score)
        match = matcher.label_is_match(label)
        score, raw_match, text = best.score, best.match, best.text
    else:
        s.verdict.reset()  # the subject left: the next detection starts a verdict of its own
        label, match, score, raw_match, text = NO_DETECTION, False, None, False, "no detection"
        s.no_detection += 1
    s.matches += match
    latency_ms = (time.monotonic() - frame.captured) * 1000.0
    s.stats.record(latency_ms)
    event: dict[str, Any] = {
        "event": "frame",
        "stream": s.index,
        "frame": frame.index,
        "time": round(wall0 + (frame.captured - t0), 4),
        "score": None if score is None else round(float(score), 6),
        "match": match,
        "raw_match": raw_match,
        "outcome": label,
        "latency_ms": round(latency_ms, 3),
        "dropped": s.reader.dropped,
    }
    if matcher.mode == "gallery":
        event.update({"identity": label if match else None, "raw_identity": best.identity if best else None})
    if w.detected:
        event["detections"] = [
            {**d.to_dict(), "score": None if dec.score is None else round(float(dec.score), 6), "match": dec.match}
            | ({"identity": dec.identity} if matcher.mode == "gallery" else {})
            for d, dec in zip(w.detections, ds)
        ]
        boxes = tuple(Box(d.box, dec.match, dec.identity or "") for d, dec in zip(w.detections, ds))
    else:
        boxes = tuple(Box(d.box, match) for d in w.detections)
    stream = f"#{s.index}" if several else ""
    s.overlay = OverlayState(label, match, score, text, s.stats.recent_fps(), options.backend, boxes, stream)
    return event


def _draw(streams: list[_Stream], tick: list[tuple[int, Frame]], sinks: Sinks) -> bool:
    """Annotate and write each stream's frame of the tick; show the mosaic. False when the window was closed."""
    for i, frame in tick:
        s = streams[i]
        image = frame.image.copy()
        if s.overlay is not None:
            draw(image, s.overlay)
        s.shown = image
        video = sinks.video(i)
        if video is not None:
            video.write(image)
            s.stats.written += 1
    if sinks.window is not None:
        return sinks.window.show(mosaic([s.shown for s in streams]))
    return True


def _end_reason(r: Reader) -> str:
    if r.failure:
        return "stream lost"
    return ENDED_EARLY if r.passes.short else "end of source"


def _stream_summary(s: _Stream) -> dict[str, Any]:
    r = s.reader
    unreadable = r.passes.unreadable
    return s.stats.summary(
        read=r.read_count,
        dropped=r.dropped,
        skipped=s.skipped + len(unreadable),
        reconnects=r.reconnects,
        frames_unreadable=len(unreadable),
        unreadable=unreadable,
        frames_missing=r.passes.missing,
        short_passes=[{"read": got, "expected": n} for got, n in r.passes.short],
        matches=s.matches,
        no_detection=s.no_detection,
        frames_received=s.received,
        stream=s.index,
        source=r.spec.uri,
        stopped_by=s.stopped_by or "stopped",
        failure=r.failure,
    )


def _summary(streams: list[_Stream], batches: BatchStats, wall0: float, why: list[str], cpu_s: float) -> dict[str, Any]:
    """The run's summary; ``cpu_s``: the CPU seconds the process spent in the loop (every thread: decoding too)."""
    per = [_stream_summary(s) for s in streams]
    for p in per:
        if why and p["stopped_by"] == "stopped":
            p["stopped_by"] = why[0]
    batch = batches.summary()
    if len(per) == 1:
        return {**per[0], "batch": batch, "started": round(wall0, 3), "cpu_s": round(cpu_s, 3)}
    keys = (
        "frames_read",
        "frames_processed",
        "frames_dropped",
        "frames_skipped",
        "frames_unreadable",
        "frames_missing",
        "frames_written",
        "reconnects",
    )
    total: dict[str, Any] = {k: sum(p[k] for p in per) for k in keys}
    elapsed = max(p["elapsed_s"] for p in per)
    lat = np.concatenate([np.asarray(s.stats.latencies_ms, np.float64) for s in streams])
    total.update(
        {
            "fps": round(total["frames_processed"] / elapsed, 2) if elapsed > 0 else 0.0,
            "fps_per_stream": [p["fps"] for p in per],
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 2) if lat.size else None,
            "matches": sum(p["matches"] for p in per),
            "elapsed_s": elapsed,
            "streams": per,
            "batch": batch,
            "started": round(wall0, 3),
            "cpu_s": round(cpu_s, 3),
            "stopped_by": why[0] if why else ", ".join(sorted({p["stopped_by"] for p in per})),
            "failure": "; ".join(p["failure"] for p in per if p["failure"]) or None,
        }
    )
    return total
