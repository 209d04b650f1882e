"""The per-frame loop: take a frame, crop, embed, score, decide, smooth, draw, write; then the summary.

Sources, the network and the sinks are set up by the caller (``camera.cli`` or a user's own program), so the
loop is the same for a webcam, an RTSP stream or a test clip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from camera.capture import Frame
from camera.crop import Roi, crop, region
from camera.matcher import Matcher
from camera.overlay import OverlayState, draw
from camera.sinks import EventLog, VideoSink, Window
from camera.smoothing import MajorityVote
from camera.stats import RunStats


class Reader(Protocol):
    spec: Any
    read_count: int
    dropped: int
    reconnects: int
    ended: bool
    failure: str | None

    @property
    def finished(self) -> bool: ...

    def get(self, timeout: float | None = None) -> Frame | None: ...


@dataclass
class LoopOptions:
    roi: Roi | None = None
    center: bool = False
    every: int = 1  # process every Nth frame received; the others are drawn with the last verdict
    smooth: int = 5  # majority vote over the last K processed frames
    backend: str = ""  # shown in the overlay
    max_frames: int | None = None  # stop after this many processed frames


@dataclass
class Sinks:
    video: VideoSink | None = None
    events: EventLog | None = None
    window: Window | None = None
    on_frame: Callable[[dict], None] | None = None  # e.g. a progress bar

    @property
    def draws(self) -> bool:
        return self.video is not None or self.window is not None


def run_loop(
    reader: Reader, matcher: Matcher, options: LoopOptions, sinks: Sinks, stop: threading.Event, why: list[str]
) -> dict[str, Any]:
    """Process frames until the source ends or ``stop`` is set (``why[0]`` then says by what); the summary."""
    if options.every < 1:
        raise ValueError(f"--every {options.every}: expected 1 or more")
    stats = RunStats()
    vote = MajorityVote(options.smooth)
    wall0 = time.time()
    received = skipped = matches = 0
    state: OverlayState | None = None
    roi_cache: dict[tuple[int, ...], Roi] = {}
    while not stop.is_set():
        frame = reader.get(timeout=0.2)
        if frame is None:
            if reader.finished:
                break
            continue
        received += 1
        shape = frame.image.shape
        r = roi_cache.get(shape) or roi_cache.setdefault(shape, region(shape, options.roi, options.center))
        if (received - 1) % options.every:
            skipped += 1
        else:
            d = matcher.decide(crop(frame.image, r))
            label = vote.update(d.label)
            match = matcher.label_is_match(label)
            matches += match
            latency_ms = (time.monotonic() - frame.captured) * 1000.0
            stats.record(latency_ms)
            event = {
                "event": "frame",
                "frame": frame.index,
                "time": round(wall0 + (frame.captured - stats.started), 4),
                "score": None if d.score is None else round(float(d.score), 6),
                "match": match,
                "raw_match": d.match,
                "latency_ms": round(latency_ms, 3),
                "dropped": reader.dropped,
            }
            if matcher.mode == "gallery":
                event.update({"identity": label if match else None, "raw_identity": d.identity})
            if sinks.events is not None:
                sinks.events.write(event)
            if sinks.on_frame is not None:
                sinks.on_frame(event)
            state = OverlayState(label, match, d.score, d.text, stats.recent_fps(), options.backend)
            if options.max_frames is not None and stats.processed >= options.max_frames:
                stop.set()
                why.append(f"--max-frames {options.max_frames}")
        if sinks.draws:
            image = frame.image.copy()
            if state is not None:
                draw(image, r, state)
            if sinks.video is not None:
                sinks.video.write(image)
                stats.written += 1
            if sinks.window is not None and not sinks.window.show(image):
                why.append("window closed (q/Esc)")
                break
    return stats.summary(
        read=reader.read_count,
        dropped=reader.dropped,
        skipped=skipped,
        reconnects=reader.reconnects,
        matches=matches,
        frames_received=received,
        started=round(wall0, 3),
    )
