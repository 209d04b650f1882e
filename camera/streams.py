"""Several sources in one run: the ``--source`` list (and ``.streams`` files), a reader per stream, the tick.

Each stream is read in a thread of its own: a live one keeps only its newest frame (``LatestFrameReader``), a file
is decoded a few frames ahead and never dropped (``QueuedReader``). Every reader sets one shared ``wake`` event
when a frame arrives, so the loop waits on all of them at once. A *tick* takes one frame from every stream that
has one (the newest, for live streams) and waits a few milliseconds for the streams that delivered in one of the
last two ticks, so the crops of N streams go through the network in one batched call; a stream that stalls or
ends is not waited for, so it never holds the others back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from camera.capture import Backoff, Frame, LatestFrameReader, Passes, QueuedReader
from camera.sources import FrameSource, SourceError, SourceSpec

STREAMS_SUFFIX = ".streams"  # Ultralytics' list of sources, one a line
GATHER_S = 0.005  # how long a tick waits for the streams that delivered in the previous one


class Reader(Protocol):
    """What the loop reads a stream through (``camera.capture``'s readers)."""

    spec: SourceSpec
    read_count: int
    dropped: int
    reconnects: int
    failure: str | None
    passes: Passes  # a file's or folder's frame numbers and what it could not deliver

    @property
    def finished(self) -> bool: ...

    def get(self, timeout: float | None = None) -> Frame | None: ...

    def close(self) -> None: ...


def expand_sources(items: Sequence[str]) -> list[str]:
    """``--source`` values -> sources: a ``*.streams`` file stands for the sources it lists, one a line
    (blank lines and ``#`` comments skipped; paths relative to the working directory, as Ultralytics reads them)."""
    out: list[str] = []
    for item in items:
        path = Path(str(item))
        if path.suffix.lower() != STREAMS_SUFFIX:
            out.append(str(item))
            continue
        if not path.is_file():
            raise SourceError(
                f"--source {item}: no such {STREAMS_SUFFIX} file (expected a list of sources, one a line)"
            )
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        listed = [line for line in lines if line and not line.startswith("#")]
        if not listed:
            raise SourceError(f"--source {item}: lists no sources (expected one source a line)")
        out.extend(listed)
    return out


def make_reader(
    source: FrameSource,
    *,
    loop: int = 0,
    realtime: bool = False,
    pace_fps: float | None = None,
    backoff: Backoff | None = None,
    on_event: Callable[[dict], None] | None = None,
    wake: threading.Event | None = None,
    prepare: Callable[[Any], Any] | None = None,
) -> LatestFrameReader | QueuedReader:
    """The reader a source needs: newest frame only for live sources and ``--realtime`` files, else every frame.

    ``prepare`` (``camera.pipeline.frame_preparer``) runs in a file's reader thread on every frame; a live reader
    does not take it (most of its frames may be dropped: preparing them would be wasted)."""
    if source.spec.live or realtime:
        pace = None if source.spec.live else (pace_fps or source.fps or 30.0)
        return LatestFrameReader(source, loop=loop, pace_fps=pace, backoff=backoff, on_event=on_event, wake=wake)
    return QueuedReader(source, loop=loop, wake=wake, prepare=prepare)


class Ticker:
    """Takes ticks from several readers that share ``wake`` (see the module docstring)."""

    def __init__(self, readers: Sequence[Any], wake: threading.Event, gather_s: float = GATHER_S):
        self.readers = list(readers)
        self.wake = wake
        self.gather_s = gather_s
        self._recent: list[set[int]] = [set(range(len(self.readers)))] * 2  # who delivered in the last two ticks

    def tick(self, active: set[int], timeout: float = 0.2) -> list[tuple[int, Frame]]:
        """At most one frame per active stream, by stream index; empty after ``timeout`` s without any frame or
        when every active stream has finished."""
        got: dict[int, Frame] = {}
        now = time.monotonic()
        deadline, gather_until = now + timeout, None
        while active:
            self.wake.clear()  # before polling: a frame that arrives after the poll sets it again
            for i in active - got.keys():
                frame = self.readers[i].get(timeout=0)
                if frame is not None:
                    got[i] = frame
            now = time.monotonic()
            if got:
                gather_until = gather_until or now + self.gather_s
                expected = self._recent[0] | self._recent[1]
                waiting = [i for i in active - got.keys() if i in expected and not self.readers[i].finished]
                if not waiting or now >= gather_until:
                    break
                until = gather_until
            else:
                if now >= deadline or all(self.readers[i].finished for i in active):
                    break
                until = deadline
            self.wake.wait(max(0.0, until - now))
        self._recent = [self._recent[1], set(got)]
        return sorted(got.items())
