"""Video sources in jetson-utils' URI grammar, opened with OpenCV.

    0, 1, ...                     a camera by number (V4L2 on Linux)
    v4l2:///dev/video0            a V4L2 device by path
    csi://0                       a MIPI CSI camera on a Jetson (nvarguscamerasrc; needs OpenCV with GStreamer)
    rtsp://host/path              a network stream (also rtsps, rtmp, http, https, udp: FFmpeg)
    file://clip.mp4, clip.mp4     a video file
    frames/                       a folder of images, in natural order (frame10 after frame9)
    "videotestsrc ! ... ! appsink" a raw GStreamer pipeline (any string containing " ! ")

Live sources (cameras, network streams, pipelines) are read by a capture thread that keeps only the newest
frame and reopened with backoff when they drop; files and folders are read frame by frame (``camera.capture``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Protocol

import numpy as np

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp", "srt")
DEFAULT_FOLDER_FPS = 30.0
NETWORK_TIMEOUT_MS = 5000  # open and read timeouts for network streams: a dead stream is noticed within 5 s


class SourceError(RuntimeError):
    """A source that cannot be parsed or opened; the message names it and says what was expected."""


@dataclass(frozen=True)
class SourceSpec:
    """A parsed ``--source``: what kind it is, what OpenCV opens, and whether it is live."""

    uri: str
    kind: str  # device | csi | network | file | folder | gstreamer
    location: str | int
    live: bool
    width: int | None = None
    height: int | None = None
    fps: float | None = None

    def describe(self) -> str:
        return f"{self.kind} {self.location}" if self.kind != "gstreamer" else "GStreamer pipeline"


def parse_source(
    text: str | int, width: int | None = None, height: int | None = None, fps: float | None = None
) -> SourceSpec:
    """``--source`` text -> SourceSpec; raises SourceError for a path that does not exist or an unknown scheme."""
    uri = str(text).strip()
    if not uri:
        raise SourceError("--source is empty: expected a camera number, a URI, a video file or a folder of images")
    opts = {"width": width, "height": height, "fps": fps}
    if uri.isdigit():
        return SourceSpec(uri, "device", int(uri), True, **opts)
    if " ! " in uri:
        return SourceSpec(uri, "gstreamer", uri, True, **opts)
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", uri)
    if m:
        scheme, rest = m.group(1).lower(), m.group(2)
        if scheme == "v4l2":
            dev = re.fullmatch(r"/dev/video(\d+)", rest)
            return SourceSpec(uri, "device", int(dev.group(1)) if dev else rest, True, **opts)
        if scheme == "csi":
            if not rest.isdigit():
                raise SourceError(f"--source {uri!r}: expected csi://N with N the sensor id (e.g. csi://0)")
            return SourceSpec(uri, "csi", int(rest), True, **opts)
        if scheme in NETWORK_SCHEMES:
            return SourceSpec(uri, "network", uri, True, **opts)
        if scheme == "file":
            return _path_spec(uri, rest, opts)
        raise SourceError(
            f"--source {uri!r}: unknown scheme {scheme!r}; expected a camera number, v4l2://, csi://, "
            f"{', '.join(s + '://' for s in NETWORK_SCHEMES[:3])}..., file://, a path or a GStreamer pipeline"
        )
    return _path_spec(uri, uri, opts)


def _path_spec(uri: str, path: str, opts: dict) -> SourceSpec:
    p = Path(path).expanduser()
    if p.is_dir():
        return SourceSpec(uri, "folder", str(p), False, **opts)
    if p.is_file():
        return SourceSpec(uri, "file", str(p), False, **opts)
    raise SourceError(f"--source {uri!r}: {p} does not exist (expected a video file, a folder of images or a URI)")


def csi_pipeline(sensor_id: int, width: int | None, height: int | None, fps: float | None) -> str:
    """The nvarguscamerasrc pipeline jetson-utils and NVIDIA's samples use, ending in a BGR appsink for OpenCV."""
    w, h, f = width or 1280, height or 720, int(round(fps or 30))
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! "
        f"video/x-raw(memory:NVMM), width=(int){w}, height=(int){h}, framerate=(fraction){f}/1 ! "
        "nvvidconv flip-method=0 ! video/x-raw, format=(string)BGRx ! "
        "videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1 sync=false"
    )


FFMPEG_LOGLEVEL_ENV = "OPENCV_FFMPEG_LOGLEVEL"  # read by OpenCV when its FFmpeg backend starts (the first capture)


def quiet_ffmpeg() -> None:
    """Silence FFmpeg's own log lines ("[mpeg4 @ 0x...] header damaged") for the rest of the process: the command
    line reports a damaged video in one warning line of its own. Must run before the first capture is opened; a
    value the user set (to debug a stream) is kept."""
    import os

    os.environ.setdefault(FFMPEG_LOGLEVEL_ENV, "-8")  # AV_LOG_QUIET


@lru_cache(maxsize=1)
def opencv_video_backends() -> dict[str, bool]:
    """Which video I/O backends this OpenCV was built with (GStreamer is absent from the PyPI wheels)."""
    import cv2

    info = cv2.getBuildInformation()

    def has(name: str) -> bool:
        m = re.search(rf"^\s*{name}:\s*(\S+)", info, re.MULTILINE)
        return bool(m) and m.group(1).upper() not in ("NO", "NONE")

    return {"gstreamer": has("GStreamer"), "ffmpeg": has("FFMPEG"), "v4l2": has("v4l/v4l2"), "gui": has("GUI")}


def opencv_has_gui() -> bool:
    """False for opencv-python-headless (no highgui window backend), which the PyPI install uses."""
    return opencv_video_backends()["gui"]


class FrameSource(Protocol):
    """What the capture loop reads: BGR uint8 frames, None at the end of the stream (or when it drops).

    ``position`` is the source's own number of the next frame (frames returned plus frames skipped as unreadable),
    so a frame keeps the number it has in the source; ``skipped`` names the frames that could not be decoded.
    """

    spec: SourceSpec
    fps: float | None
    frame_count: int | None
    position: int
    skipped: list[str]

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class VideoCaptureSource:
    """A camera, stream, file or pipeline through ``cv2.VideoCapture``."""

    def __init__(self, spec: SourceSpec):
        import cv2

        self.spec = spec
        api, target = self._target(spec)
        params: list[int] = []
        if spec.kind == "network":
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                NETWORK_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                NETWORK_TIMEOUT_MS,
            ]
        cap = cv2.VideoCapture(target, api, params) if params else cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"--source {spec.uri!r}: cannot open {spec.describe()} ({self._hint(spec)})")
        if spec.kind == "device":
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, spec.width), (cv2.CAP_PROP_FRAME_HEIGHT, spec.height)):
                if value:
                    cap.set(prop, value)
            if spec.fps:
                cap.set(cv2.CAP_PROP_FPS, spec.fps)
        self._cap = cap
        native_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = spec.fps or (native_fps if 0 < native_fps < 1000 else None)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if spec.kind == "file" and count > 0 else None
        self.position = 0
        self.skipped: list[str] = []  # FFmpeg gives no frame back for a damaged one: a video ends there instead

    @staticmethod
    def _target(spec: SourceSpec) -> tuple[int, str | int]:
        import cv2

        if spec.kind == "device":
            return (cv2.CAP_V4L2 if isinstance(spec.location, int) else cv2.CAP_ANY), spec.location
        if spec.kind in ("csi", "gstreamer"):
            if not opencv_video_backends()["gstreamer"]:
                raise SourceError(
                    f"--source {spec.uri!r}: this OpenCV ({cv2.__version__}) was built without GStreamer, which "
                    "csi:// and pipeline sources need; use JetPack's OpenCV (python3-opencv) on a Jetson"
                )
            pipeline = csi_pipeline(int(spec.location), spec.width, spec.height, spec.fps)
            return cv2.CAP_GSTREAMER, pipeline if spec.kind == "csi" else str(spec.location)
        return cv2.CAP_FFMPEG, str(spec.location)

    @staticmethod
    def _hint(spec: SourceSpec) -> str:
        if spec.kind == "device":
            return "no such camera, or it is busy; list cameras with v4l2-ctl --list-devices"
        if spec.kind == "network":
            return f"no answer within {NETWORK_TIMEOUT_MS / 1000:g} s, or not a video stream"
        if spec.kind == "file":
            return "not a video OpenCV's FFmpeg can decode"
        return "the pipeline did not start; test it with gst-launch-1.0"

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        self.position += 1
        return frame if frame.ndim == 3 else _to_bgr(frame)

    def close(self) -> None:
        self._cap.release()


class FolderSource:
    """A folder of images in natural order; an unreadable file is skipped, named in ``skipped``, and keeps its frame
    number (the next image is not renumbered), so the events stay aligned with a truth file."""

    def __init__(self, spec: SourceSpec):
        from runtime.preprocess import IMAGE_SUFFIXES  # here, like cv2: importing this module stays light

        self.spec = spec
        root = Path(str(spec.location))
        self.files = sorted((p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=_natural_key)
        if not self.files:
            raise SourceError(f"--source {spec.uri!r}: no images ({', '.join(IMAGE_SUFFIXES[:4])}, ...) in {root}")
        self.fps = spec.fps or DEFAULT_FOLDER_FPS
        self.frame_count = len(self.files)
        self.skipped: list[str] = []
        self.position = 0
        self._closed = False

    def read(self) -> np.ndarray | None:
        import cv2

        while not self._closed and self.position < len(self.files):
            path = self.files[self.position]
            self.position += 1
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            self.skipped.append(str(path))
        return None

    def close(self) -> None:
        self._closed = True


def open_source(spec: SourceSpec) -> FrameSource:
    """Open a parsed source; raises SourceError with a one-line reason when it cannot be opened."""
    if spec.kind == "folder":
        return FolderSource(spec)
    return VideoCaptureSource(spec)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", p.name)]


def _to_bgr(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
