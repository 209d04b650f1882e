"""Where results go: a video file, a JSON-lines event log, a window.

The video is written under a temporary name and renamed when closed, so the file at ``--output`` is always a
complete, playable video (never one cut off mid-write). Event lines are written whole and flushed one by one,
so the log can be followed live and is complete up to the last processed frame whatever stops the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from runtime.fileio import atomic_path, json_default

CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class SinkError(RuntimeError):
    """An output that cannot be written; the message names it."""


def stream_outputs(output: str | os.PathLike, streams: int) -> list[Path]:
    """``--output`` -> one video path per stream: the path itself for one stream; for several, ``out.mp4`` becomes
    ``out.stream0.mp4``, ``out.stream1.mp4``, ... and an existing folder ``DIR/stream0.mp4``, ...."""
    path = Path(output)
    if path.is_dir():
        return [path / f"stream{i}.mp4" for i in range(streams)]
    if streams == 1:
        return [path]
    return [path.with_name(f"{path.stem}.stream{i}{path.suffix}") for i in range(streams)]


class VideoSink:
    """Frames -> a video file (codec from the suffix), opened at the first frame's size."""

    def __init__(self, path: str | os.PathLike, fps: float):
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in CODECS:
            raise SinkError(
                f"--output {self.path}: unsupported suffix {suffix or '(none)'}; use one of {sorted(CODECS)}"
            )
        if not self.path.parent.is_dir():
            raise SinkError(f"--output {self.path}: folder {self.path.parent} does not exist")
        self.fps = float(fps) if fps and fps > 0 else 30.0
        self._writer = None
        self._file = contextlib.ExitStack()  # holds runtime.fileio.atomic_path: renamed into place on close
        self._size: tuple[int, int] | None = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        import cv2

        h, w = frame.shape[:2]
        if self._writer is None:
            tmp = self._file.enter_context(atomic_path(self.path))
            fourcc = cv2.VideoWriter_fourcc(*CODECS[self.path.suffix.lower()])
            self._writer = cv2.VideoWriter(str(tmp), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                self._writer = None
                err = SinkError(f"--output {self.path}: OpenCV cannot write this format here")
                self._file.__exit__(SinkError, err, None)  # removes the temporary file
                raise err
            self._size = (w, h)
        elif (w, h) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file and move it into place; returns its path (None when no frame was written)."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        self._file.close()
        return self.path


class EventLog:
    """JSON lines, one object per line, safe to call from the capture thread and the main loop."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            self._f = open(self.path, "w", encoding="utf-8")
        except OSError as e:
            raise SinkError(f"--events {self.path}: cannot write ({e.strerror})") from None
        self._lock = threading.Lock()
        self.lines = 0

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, default=json_default, separators=(",", ":")) + "\n"
        with self._lock:
            if self._f.closed:
                return
            self._f.write(line)
            self._f.flush()
            self.lines += 1

    def close(self) -> None:
        with self._lock:
            if not self._f.closed:
                self._f.flush()
                os.fsync(self._f.fileno())
                self._f.close()


class Window:
    """``--display``: a window titled by the source; q or Esc asks the run to stop."""

    def __init__(self, title: str):
        from camera.sources import opencv_has_gui

        if not opencv_has_gui():
            raise SinkError(
                "--display: this OpenCV has no GUI support (opencv-python-headless); "
                "pip install opencv-python, or use --output to write a video instead"
            )
        self.title = title

    def show(self, frame: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        import cv2

        cv2.imshow(self.title, frame)
        return (cv2.waitKey(1) & 0xFF) not in (ord("q"), 27)

    def close(self) -> None:
        import cv2

        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(self.title)
