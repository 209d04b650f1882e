"""Detectors in front of the verifier: where in the frame the subject is, so the crop follows it.

``--detect`` takes a spec in the same URI-like style as ``--source``: ``KIND:ARGUMENT?option=value&option=value``

    haar:frontalface_default      one of OpenCV's bundled Haar cascades (cv2.data.haarcascades; no download), or
                                  haar:path/to/cascade.xml. Options: scale=1.1, neighbors=5, min_size=40, max=8
    ink:                          the largest object on thresholded ink/foreground (documents, drawings, cards):
                                  Otsu threshold, the minority side is the ink (polarity=dark|light to say),
                                  strokes joined by a closing of close=0.02 of the frame. Options: min_area=64 (px),
                                  min_contrast=32 (grey levels; a flatter frame has no object), pad=0.1 (share of
                                  the box added around it), square=1 (grow the box to a square)
    onnx:path/to/detector.onnx    any ONNX detector, run by ONNX Runtime through the runtime's session maker.
                                  Options: score=0.5, iou=0.5 (NMS), max=8, size=WxH (for dynamic inputs;
                                  default 640x640), layout=nchw|nhwc, color=rgb|bgr, scale=1/255

What an ONNX detector must look like: one image input, float32, ``1x3xHxW`` (``layout=nhwc``: ``1xHxWx3``),
the frame resized to HxW (stretched), ``color`` channel order, pixel values times ``scale``; outputs ``boxes``
(``Nx4`` or ``1xNx4``: x1, y1, x2, y2 in the input's pixels) and ``scores`` (``N`` or ``1xN``), by those names,
else the first two outputs in that order. Boxes are mapped back to the frame, kept when their score reaches
``score``, suppressed when they overlap a better one by more than ``iou``, and the best ``max`` are verified.

Every detection is verified; a frame without one has the outcome "no detection", not "no match".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from camera.crop import Roi

DETECTOR_KINDS = ("haar", "ink", "onnx")


class DetectorError(ValueError):
    """A ``--detect`` spec that cannot be parsed or loaded; the message names it and says what was expected."""


@dataclass(frozen=True)
class Detection:
    """A box in frame pixels and the detector's confidence (None when the detector gives none)."""

    box: Roi
    score: float | None = None

    def to_dict(self) -> dict[str, Any]:
        b = self.box
        return {"box": [b.x, b.y, b.w, b.h], "detector_score": None if self.score is None else round(self.score, 4)}


class Detector(Protocol):
    spec: str

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...


@dataclass(frozen=True)
class DetectorSpec:
    """A parsed ``--detect``: the kind, its argument and the options (text, converted by each detector)."""

    text: str
    kind: str
    argument: str
    options: dict[str, str]

    def number(self, name: str, default: float, lo: float = 0.0) -> float:
        raw = self.options.get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = float("nan")
        if not value >= lo:
            raise DetectorError(f"--detect {self.text!r}: {name}={raw}: expected a number >= {lo:g}")
        return value

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.options.get(name, default).lower()
        if value not in allowed:
            raise DetectorError(f"--detect {self.text!r}: {name}={value}: expected one of {', '.join(allowed)}")
        return value

    def check_options(self, known: tuple[str, ...]) -> None:
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise DetectorError(
                f"--detect {self.text!r}: unknown option {unknown[0]!r} for {self.kind}: (expected {', '.join(known)})"
            )


def parse_detector_spec(text: str) -> DetectorSpec:
    """``KIND:ARGUMENT?a=1&b=2`` -> DetectorSpec; DetectorError naming the text otherwise."""
    m = re.fullmatch(r"([a-zA-Z]+):([^?]*)(?:\?(.*))?", text.strip())
    if not m or m.group(1).lower() not in DETECTOR_KINDS:
        raise DetectorError(
            f"--detect {text!r}: expected haar:CASCADE, ink: or onnx:FILE.onnx, each with optional ?option=value&..."
        )
    options: dict[str, str] = {}
    for part in filter(None, (m.group(3) or "").split("&")):
        key, eq, value = part.partition("=")
        if not eq or not key:
            raise DetectorError(f"--detect {text!r}: option {part!r}: expected name=value")
        options[key.strip().lower()] = value.strip()
    return DetectorSpec(text, m.group(1).lower(), m.group(2).strip(), options)


def load_detector(text: str, threads: int | None = None) -> Detector:
    """Parse and load a ``--detect`` spec; DetectorError (one line) when it cannot be used here."""
    spec = parse_detector_spec(text)
    if spec.kind == "haar":
        return HaarDetector(spec)
    if spec.kind == "ink":
        return InkDetector(spec)
    return OnnxDetector(spec, threads)


def _clip_box(x0: float, y0: float, x1: float, y1: float, shape: tuple[int, ...]) -> Roi | None:
    fh, fw = shape[:2]
    xa, ya = max(0, int(round(x0))), max(0, int(round(y0)))
    xb, yb = min(fw, int(round(x1))), min(fh, int(round(y1)))
    return Roi(xa, ya, xb - xa, yb - ya) if xb > xa and yb > ya else None


class HaarDetector:
    """OpenCV's cascade classifier on the equalized grey frame (OpenCV 4.x, which the project requires: OpenCV 5
    moved CascadeClassifier out of the main module, and its wheels do not ship the cascades)."""

    OPTIONS = ("scale", "neighbors", "min_size", "max")

    def __init__(self, spec: DetectorSpec):
        import cv2

        spec.check_options(self.OPTIONS)
        self.spec = spec.text
        if not hasattr(cv2, "CascadeClassifier"):
            raise DetectorError(
                f"--detect {spec.text!r}: this OpenCV ({cv2.__version__}) has no Haar cascades (OpenCV 5 moved them "
                "out of the main module); install opencv-python-headless<5, or use onnx:FACE_DETECTOR.onnx"
            )
        name = spec.argument or "frontalface_default"
        path = Path(name)
        if path.suffix.lower() != ".xml":
            folder = Path(getattr(getattr(cv2, "data", None), "haarcascades", "") or ".")
            path = folder / f"haarcascade_{name}.xml"
            if not path.is_file():
                have = sorted(p.stem.removeprefix("haarcascade_") for p in folder.glob("haarcascade_*.xml"))
                raise DetectorError(f"--detect {spec.text!r}: no cascade {name!r}; OpenCV ships {', '.join(have)}")
        self._cascade = cv2.CascadeClassifier(str(path))
        if self._cascade.empty():
            raise DetectorError(f"--detect {spec.text!r}: {path} is not a cascade OpenCV can load")
        self.scale = spec.number("scale", 1.1, lo=1.01)
        self.neighbors = int(spec.number("neighbors", 5))
        self.min_size = int(spec.number("min_size", 40, lo=1))
        self.max = int(spec.number("max", 8, lo=1))

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        import cv2

        gray = cv2.equalizeHist(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY))
        found = self._cascade.detectMultiScale(
            gray, scaleFactor=self.scale, minNeighbors=self.neighbors, minSize=(self.min_size, self.min_size)
        )
        boxes = sorted((tuple(int(v) for v in b) for b in found), key=lambda b: -b[2] * b[3])[: self.max]
        return [Detection(Roi(x, y, w, h)) for x, y, w, h in boxes]


class InkDetector:
    """The largest connected blob of ink (the minority side of an Otsu threshold), strokes joined by a closing."""

    OPTIONS = ("min_area", "min_contrast", "pad", "square", "close", "polarity")

    def __init__(self, spec: DetectorSpec):
        spec.check_options(self.OPTIONS)
        if spec.argument:
            raise DetectorError(f"--detect {spec.text!r}: ink takes options only (e.g. ink:?min_area=400)")
        self.spec = spec.text
        self.min_area = spec.number("min_area", 64)
        self.min_contrast = spec.number("min_contrast", 32)
        self.pad = spec.number("pad", 0.1)
        self.square = bool(spec.number("square", 1))
        self.close = spec.number("close", 0.02)
        self.polarity = spec.choice("polarity", "auto", ("auto", "dark", "light"))

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        import cv2

        gray = frame_bgr if frame_bgr.ndim == 2 else cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2GRAY)
        smooth = cv2.blur(gray, (5, 5))  # sensor noise averages out, a stroke does not
        if int(smooth.max()) - int(smooth.min()) < self.min_contrast:
            return []
        t, light = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
        ink = light if self.polarity == "light" else cv2.bitwise_not(light)
        if self.polarity == "auto" and np.count_nonzero(light) < light.size / 2:
            ink = light  # the ink is the minority side: here the light one (chalk on a board, a digit on black)
        side = int(round(self.close * min(gray.shape)))
        if side >= 2:
            ink = cv2.morphologyEx(ink, cv2.MORPH_CLOSE, np.ones((side, side), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(ink, connectivity=8)
        if n < 2:
            return []
        areas = stats[1:, cv2.CC_STAT_AREA]
        best = int(np.argmax(areas)) + 1
        if areas[best - 1] < self.min_area:
            return []
        x, y, w, h = (int(v) for v in stats[best, :4])
        cx, cy = x + w / 2, y + h / 2
        if self.square:
            w = h = max(w, h)
        w, h = w * (1 + 2 * self.pad), h * (1 + 2 * self.pad)
        box = _clip_box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, gray.shape)
        share = float(areas[best - 1]) / gray.size
        return [Detection(box, share)] if box is not None else []


class OnnxDetector:
    """An ONNX detector (the format in the module docstring) through the runtime's ONNX Runtime session maker."""

    OPTIONS = ("score", "iou", "max", "size", "layout", "color", "scale")

    def __init__(self, spec: DetectorSpec, threads: int | None = None):
        from runtime.backends.onnxruntime_backend import make_session

        spec.check_options(self.OPTIONS)
        self.spec = spec.text
        path = Path(spec.argument)
        if path.suffix.lower() != ".onnx" or not path.is_file():
            raise DetectorError(f"--detect {spec.text!r}: {path} is not an .onnx file (expected onnx:FILE.onnx)")
        try:
            self._session = make_session(path, threads=threads)
        except Exception as e:  # noqa: BLE001 - ONNX Runtime raises its own types for a bad graph
            raise DetectorError(f"--detect {spec.text!r}: ONNX Runtime cannot load {path}: {e}") from None
        self.min_score = spec.number("score", 0.5)
        self.iou = spec.number("iou", 0.5)
        self.max = int(spec.number("max", 8, lo=1))
        self.layout = spec.choice("layout", "nchw", ("nchw", "nhwc"))
        self.color = spec.choice("color", "rgb", ("rgb", "bgr"))
        self.scale = spec.number("scale", 1 / 255)
        inputs = self._session.get_inputs()
        outputs = [o.name for o in self._session.get_outputs()]
        if len(inputs) != 1 or len(outputs) < 2:
            raise DetectorError(
                f"--detect {spec.text!r}: {len(inputs)} input(s), {len(outputs)} output(s); expected one image input "
                "and the outputs boxes (Nx4) and scores (N)"
            )
        self._input = inputs[0].name
        self._outputs = ["boxes", "scores"] if {"boxes", "scores"} <= set(outputs) else outputs[:2]
        self.size = self._input_size(spec, inputs[0].shape)

    def _input_size(self, spec: DetectorSpec, shape: list[Any]) -> tuple[int, int]:
        """(W, H) of the network input: from a static shape, else ``size=WxH`` (default 640x640)."""
        dims = shape[2:4] if self.layout == "nchw" else shape[1:3]
        if len(dims) == 2 and all(isinstance(d, int) and d > 0 for d in dims) and "size" not in spec.options:
            return int(dims[1]), int(dims[0])
        m = re.fullmatch(r"(\d+)x(\d+)", spec.options.get("size", "640x640"))
        if not m:
            raise DetectorError(f"--detect {spec.text!r}: size={spec.options['size']}: expected WxH, e.g. 640x640")
        return int(m.group(1)), int(m.group(2))

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        import cv2

        fh, fw = frame_bgr.shape[:2]
        w, h = self.size
        img = cv2.resize(frame_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        if self.color == "rgb":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        x = img.astype(np.float32) * np.float32(self.scale)
        x = (x.transpose(2, 0, 1) if self.layout == "nchw" else x)[None]
        boxes, scores = self._session.run(self._outputs, {self._input: np.ascontiguousarray(x)})
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * [fw / w, fh / h, fw / w, fh / h]
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) != len(boxes):
            raise DetectorError(f"--detect {self.spec!r}: {len(boxes)} boxes but {len(scores)} scores")
        keep = [i for i in nms(boxes, scores, self.iou) if scores[i] >= self.min_score][: self.max]
        found = [(_clip_box(*boxes[i], frame_bgr.shape), float(scores[i])) for i in keep]
        return [Detection(b, s) for b, s in found if b is not None]


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Indices best first, dropping a box that overlaps a better kept one by more than ``iou`` (x1, y1, x2, y2)."""
    order = list(np.argsort(-scores, kind="stable"))
    area = np.maximum(0, boxes[:, 2] - boxes[:, 0]) * np.maximum(0, boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            ix = np.maximum(0, np.minimum(boxes[k, 2], boxes[i, 2]) - np.maximum(boxes[k, 0], boxes[i, 0]))
            iy = np.maximum(0, np.minimum(boxes[k, 3], boxes[i, 3]) - np.maximum(boxes[k, 1], boxes[i, 1]))
            inter = ix * iy
            if np.any(inter / np.maximum(area[k] + area[i] - inter, 1e-9) > iou):
                continue
        kept.append(int(i))
    return kept
