"""Run statistics: frames read, processed, dropped; throughput; latency percentiles."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class RunStats:
    started: float = field(default_factory=time.monotonic)
    processed: int = 0
    written: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    first_processed: float | None = None
    last_processed: float | None = None
    recent: deque = field(default_factory=lambda: deque(maxlen=30))  # times of the last processed frames

    def record(self, latency_ms: float, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.processed += 1
        self.latencies_ms.append(latency_ms)
        if self.first_processed is None:
            self.first_processed = now
        self.last_processed = now
        self.recent.append(now)

    def recent_fps(self) -> float:
        """Frames per second over the last 30 processed frames: what the overlay shows, so it follows changes."""
        if len(self.recent) < 2:
            return self.fps()
        span = self.recent[-1] - self.recent[0]
        return (len(self.recent) - 1) / span if span > 0 else 0.0

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def fps(self) -> float:
        """Processed frames per second over the run (start to the last processed frame)."""
        if not self.processed or self.last_processed is None:
            return 0.0
        span = self.last_processed - self.started
        return self.processed / span if span > 0 else 0.0

    def summary(self, read: int, dropped: int, skipped: int, reconnects: int, **extra: Any) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        pct = (lambda q: round(float(np.percentile(lat, q)), 2)) if lat.size else (lambda q: None)
        return {
            "frames_read": int(read),
            "frames_processed": int(self.processed),
            "frames_dropped": int(dropped),
            "frames_skipped": int(skipped),
            "frames_written": int(self.written),
            "reconnects": int(reconnects),
            "fps": round(self.fps(), 2),
            "latency_ms_p50": pct(50),
            "latency_ms_p99": pct(99),
            "latency_ms_max": round(float(lat.max()), 2) if lat.size else None,
            "elapsed_s": round(self.elapsed_s, 3),
            **extra,
        }


def format_summary(s: dict[str, Any]) -> str:
    """The end-of-run summary, as the console prints it (a line per stream when several ran)."""

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.1f} ms"

    unreadable, missing = s.get("frames_unreadable") or 0, s.get("frames_missing") or 0
    by_every = (s.get("frames_skipped") or 0) - unreadable
    lines = [
        f"frames: {s['frames_read']} read, {s['frames_processed']} processed, {s['frames_dropped']} dropped"
        + (f", {by_every} skipped (--every)" if by_every else "")
        + (f", {unreadable} unreadable (skipped)" if unreadable else "")
        + (f", {missing} missing (a video ended early)" if missing else ""),
        f"speed: {s['fps']:.1f} FPS; latency p50 {ms(s['latency_ms_p50'])}, p99 {ms(s['latency_ms_p99'])}",
    ]
    if "matches" in s:
        undetected = s.get("no_detection") or 0
        others = s["frames_processed"] - s["matches"] - undetected
        lines.append(
            f"decisions: {s['matches']} match, {others} no match"
            + (f", {undetected} no detection" if undetected else "")
            + " (smoothed)"
        )
    batch = s.get("batch") or {}
    if batch.get("calls"):
        lines.append(f"network: {batch['calls']} batched calls, {batch['mean_size']:g} crops each on average")
    for p in s.get("streams", []):
        lines.append(
            f"stream {p['stream']} ({p['source']}): {p['frames_processed']} processed, {p['frames_dropped']} dropped, "
            f"{p['fps']:.1f} FPS, p50 {ms(p['latency_ms_p50'])}; {p['stopped_by']}"
            + (f" ({p['failure']})" if p.get("failure") else "")
        )
    if s.get("reconnects"):
        lines.append(f"stream: reopened {s['reconnects']} time(s)")
    if s.get("stopped_by"):
        lines.append(f"stopped by: {s['stopped_by']}")
    if s.get("failure"):
        lines.append(f"failure: {s['failure']}")
    return "\n".join(lines)


def source_warnings(s: dict[str, Any]) -> list[str]:
    """One line for each video that ended before its known length and each folder with unreadable images: what
    the command line warns about, so an incomplete source never passes for a clean end."""
    per = s.get("streams") or [s]
    out = []
    for p in per:
        name = f"stream {p['stream']} ({p['source']})" if len(per) > 1 else str(p["source"])
        for short in p.get("short_passes") or []:
            out.append(
                f"{name}: the video ended after {short['read']} of its {short['expected']} frames (corrupt or cut "
                "short); the frames after that were not verified"
            )
        bad = p.get("unreadable") or []
        if bad:
            shown = ", ".join(Path(b).name for b in bad[:3]) + (", ..." if len(bad) > 3 else "")
            out.append(
                f"{name}: {len(bad)} image(s) could not be read and were skipped ({shown}); the other frames keep "
                "their numbers"
            )
    return out
