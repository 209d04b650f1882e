"""Reading frames: every frame of a file in order, or only the newest frame of a live source.

A live camera does not wait for inference. ``LatestFrameReader`` reads it in a thread and keeps one slot:
a frame not taken before the next one arrives is dropped (and counted), so latency stays at one frame
however slow the network is. When the stream drops it is reopened with exponential backoff, and the gap is
reported as an event. ``SequentialReader`` processes a file or folder frame by frame, as fast as the machine
goes; ``QueuedReader`` does the same in a thread of its own, a few frames ahead, so that decoding several files
runs beside inference (OpenCV releases the GIL while it decodes), and it can prepare each frame there too (crop
and preprocess: ``prepare``), on another core instead of between the network calls; ``--realtime`` reads a file
through ``LatestFrameReader`` paced at its frame rate instead. The threaded readers set a shared ``wake`` event whenever a
frame arrives or the stream ends, so one loop can wait on many streams at once (``camera.streams``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from camera.sources import FrameSource, SourceError, SourceSpec, open_source

EventCallback = Callable[[dict], None]
Opener = Callable[[SourceSpec], FrameSource]


@dataclass
class Frame:
    """A frame as read: ``index`` counts every frame read from the source (across reopenings and loops)."""

    index: int
    image: np.ndarray
    captured: float  # time.monotonic() when it was read
    prepared: Any = None  # what the reader's ``prepare`` made of the image in its thread (None: not prepared)


@dataclass(frozen=True)
class Backoff:
    """Delays between reopen attempts: initial, x factor each time, capped; give up after ``timeout`` s."""

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 8.0
    timeout: float = 60.0  # 0: never reopen; < 0: keep trying until stopped

    def delays(self) -> Iterator[float]:
        d = self.initial
        while True:
            yield d
            d = min(d * self.factor, self.maximum)

    def waits(self, elapsed: Callable[[], float]) -> Iterator[float]:
        """The waits before each attempt, ``elapsed()`` s after the stream dropped: the last one is cut short to end
        at the timeout, so the timeout is used whole and the stream gets one more try right at it."""
        for d in self.delays():
            if self.timeout < 0:
                yield d
                continue
            left = self.timeout - elapsed()
            if left <= 0:
                return
            yield min(d, left)


class Passes:
    """The passes over one file or folder (``--loop`` rewinds it): frame numbers as in the source, and what the
    passes could not deliver, so an early end or an unreadable frame is reported instead of passing as a clean end.

    ``unreadable`` names the frames skipped as undecodable (a folder's images); ``short`` holds (frames read, frames
    the file's header gives) for each pass of a video that ended before its known length (corrupt or cut short)."""

    def __init__(self, source: FrameSource):
        self.source: FrameSource | None = source
        self._base = 0  # frames of the passes before this one
        self._unreadable: list[str] = []
        self.short: list[tuple[int, int]] = []

    def index(self) -> int:
        """The source's number of the frame just read (across passes)."""
        return self._base + (self.source.position if self.source is not None else 0) - 1

    def end(self) -> None:
        """The current pass ended (the source returned no frame): count what it could not deliver."""
        s, self.source = self.source, None
        if s is None:
            return
        self._base += s.position
        self._unreadable += s.skipped
        if s.spec.kind == "file" and s.frame_count and s.position < s.frame_count:
            self.short.append((s.position, s.frame_count))

    def begin(self, source: FrameSource) -> None:
        self.source = source

    @property
    def unreadable(self) -> list[str]:
        return self._unreadable + (list(self.source.skipped) if self.source is not None else [])

    @property
    def missing(self) -> int:
        """Frames the file's header gives that no pass could read."""
        return sum(expected - got for got, expected in self.short)


class SequentialReader:
    """Every frame of a file or folder, in order, read in the caller's thread. ``loop``: -1 forever, N times."""

    def __init__(self, source: FrameSource, loop: int = 0, opener: Opener = open_source):
        self.source = source
        self.spec = source.spec
        self.fps = source.fps
        self.loop = loop
        self._opener = opener
        self.passes = Passes(source)
        self.read_count = 0
        self.dropped = 0
        self.reconnects = 0  # a file is rewound (--loop), never reconnected
        self.ended = False
        self.failure: str | None = None
        self._loops_done = 0

    def start(self) -> SequentialReader:
        return self

    @property
    def finished(self) -> bool:
        """The file ended (every frame was returned)."""
        return self.ended

    def get(self, timeout: float | None = None) -> Frame | None:
        while not self.ended:
            image = self.source.read()
            if image is not None:
                self.read_count += 1
                return Frame(self.passes.index(), image, time.monotonic())
            self.passes.end()
            if not self._rewind():
                self.ended = True
        return None

    def _rewind(self) -> bool:
        if self.loop == 0 or (self.loop > 0 and self._loops_done >= self.loop):
            return False
        self._loops_done += 1
        self.source.close()
        self.source = self._opener(self.spec)
        self.passes.begin(self.source)
        return True

    def close(self) -> None:
        self.ended = True
        self.source.close()


class LatestFrameReader:
    """A capture thread that keeps only the newest frame; reopens a live source that drops.

    pace_fps: read a file no faster than this (``--realtime``), as a camera would deliver it.
    on_event: called (from the capture thread) with ``{"event": "gap"|"reconnected"|"lost", ...}`` dicts.
    """

    def __init__(
        self,
        source: FrameSource,
        loop: int = 0,
        pace_fps: float | None = None,
        backoff: Backoff | None = None,
        on_event: EventCallback | None = None,
        opener: Opener = open_source,
        wake: threading.Event | None = None,
    ):
        self.source: FrameSource | None = source
        self._wake = wake
        self.spec = source.spec
        self.fps = source.fps
        self.loop = loop
        self.pace_fps = pace_fps
        self.backoff = backoff or Backoff()
        self._emit = on_event or (lambda event: None)
        self._opener = opener
        self._cond = threading.Condition()
        self._slot: Frame | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture[{self.spec.uri}]", daemon=True)
        self.passes = Passes(source)  # a file read --realtime; a live stream is numbered by frames read instead
        self.read_count = 0
        self.dropped = 0
        self.reconnects = 0
        self.ended = False
        self.failure: str | None = None  # why the stream ended, when it was not a clean end

    def start(self) -> LatestFrameReader:
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet returned; None after ``timeout`` s without one, or when the stream ended."""
        with self._cond:
            if self._slot is None and not self.ended:
                self._cond.wait(timeout)
            frame, self._slot = self._slot, None
            return frame

    @property
    def finished(self) -> bool:
        """The stream ended and its last frame was taken."""
        with self._cond:
            return self.ended and self._slot is None

    def close(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self.source is not None:
            self.source.close()

    # -- the capture thread --

    def _run(self) -> None:
        loops_done = 0
        t0, paced = time.monotonic(), 0
        try:
            while not self._stop.is_set():
                image = self.source.read() if self.source is not None else None
                if image is None:
                    if self.spec.live:
                        if not self._reopen():
                            break
                        continue
                    self.passes.end()
                    if self.loop == 0 or (self.loop > 0 and loops_done >= self.loop):
                        break
                    loops_done += 1
                    self.source.close()
                    self.source = self._opener(self.spec)
                    self.passes.begin(self.source)
                    continue
                if self.pace_fps:
                    paced += 1
                    wait = t0 + paced / self.pace_fps - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        break
                self._put(image)
        except Exception as e:  # a decoder error must end the run with a reason, not hang it
            self.failure = f"capture failed: {type(e).__name__}: {e}"
        finally:
            with self._cond:
                self.ended = True
                self._cond.notify_all()
            if self._wake is not None:
                self._wake.set()

    def _put(self, image: np.ndarray) -> None:
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            index = self.read_count if self.spec.live else self.passes.index()
            self._slot = Frame(index, image, time.monotonic())
            self.read_count += 1
            self._cond.notify_all()
        if self._wake is not None:
            self._wake.set()

    def _reopen(self) -> bool:
        """The stream dropped: reopen with backoff; False when it stays down past the timeout (or stopping)."""
        if self.source is not None:
            self.source.close()
            self.source = None
        policy = self.backoff
        lost_at = time.monotonic()
        self._emit({"event": "gap", "after_frame": self.read_count - 1, "reason": "the stream stopped delivering"})
        if policy.timeout == 0:
            self.failure = f"{self.spec.uri}: the stream dropped (reconnecting is off)"
            return False
        attempts, last_error = 0, ""
        for delay in policy.waits(lambda: time.monotonic() - lost_at):
            if self._stop.wait(delay):
                return False
            attempts += 1
            try:
                self.source = self._opener(self.spec)
            except SourceError as e:
                last_error = str(e)
                continue
            self.reconnects += 1
            self._emit(
                {
                    "event": "reconnected",
                    "after_frame": self.read_count - 1,
                    "gap_s": round(time.monotonic() - lost_at, 3),
                    "attempts": attempts,
                }
            )
            return True
        gap = time.monotonic() - lost_at
        self.failure = f"{self.spec.uri}: the stream stayed down for {gap:.1f} s ({attempts} reopen attempts)"
        self._emit({"event": "lost", "gap_s": round(gap, 3), "attempts": attempts, "error": last_error})
        return False


class QueuedReader:
    """Every frame of a file or folder, in order, decoded in a thread up to ``depth`` frames ahead (never dropped).

    The thread runs a ``SequentialReader`` (so ``loop`` and rewinding are the same) and waits when the queue is
    full: a slow consumer slows the reading, it does not lose frames. ``prepare``, when given, is called with each
    image in the thread and its result put on the frame (``Frame.prepared``); one that raises leaves it None, so the
    consumer does the work itself (and meets the error there, where it is reported).
    """

    def __init__(
        self,
        source: FrameSource,
        loop: int = 0,
        depth: int = 2,
        opener: Opener = open_source,
        wake: threading.Event | None = None,
        prepare: Callable[[np.ndarray], Any] | None = None,
    ):
        self._reader = SequentialReader(source, loop=loop, opener=opener)
        self.prepare = prepare
        self.spec = source.spec
        self.fps = source.fps
        self.dropped = 0
        self.reconnects = 0
        self.failure: str | None = None
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=max(1, depth))
        self._wake = wake
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"decode[{self.spec.uri}]", daemon=True)

    @property
    def read_count(self) -> int:
        return self._reader.read_count

    @property
    def passes(self) -> Passes:
        return self._reader.passes

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    @property
    def finished(self) -> bool:
        """The file ended and every frame was taken."""
        return self._ended.is_set() and self._queue.empty()

    def start(self) -> QueuedReader:
        self._thread.start()
        return self

    def get(self, timeout: float | None = None) -> Frame | None:
        """The next frame; None after ``timeout`` s without one (0: do not wait), or when the file ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                left = 0.1 if deadline is None else deadline - time.monotonic()
                return self._queue.get(timeout=min(left, 0.1)) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                if self.finished or (deadline is not None and time.monotonic() >= deadline):
                    return None

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._reader.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self._reader.get()
                if frame is None:
                    break
                if self.prepare is not None:
                    frame.prepared = _prepared(self.prepare, frame.image)
                while not self._stop.is_set():
                    try:
                        self._queue.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self._wake is not None:
                    self._wake.set()
        except Exception as e:  # a decoder error must end the run with a reason, not hang it
            self.failure = f"capture failed: {type(e).__name__}: {e}"
        finally:
            self._ended.set()
            if self._wake is not None:
                self._wake.set()


def _prepared(prepare: Callable[[np.ndarray], Any], image: np.ndarray) -> Any:
    try:
        return prepare(image)
    except Exception:  # e.g. an ROI that does not fit: the loop redoes the work and reports the error itself
        return None
