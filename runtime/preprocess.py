"""The one implementation of image preprocessing, shared by training and every deployed runtime.

Training reads its images through these functions and the exporter writes the same settings into
``manifest.json``, so what the network saw while learning is exactly what it sees on the edge.
The C++ runtime mirrors this file; keep the arithmetic simple enough to mirror (no Python-only
rounding rules: sizes are ``floor(x + 0.5)``).
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import imagesize
import numpy as np

COLORS = ("rgb", "gray")
RESIZE_MODES = ("stretch", "shorter-side+center-crop", "letterbox")
INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "area": cv2.INTER_AREA,
}

# The file suffixes (lower case) of the formats OpenCV's imread decodes in a standard build: what every folder
# scan in this project counts as an image. Ordered, so a message can show the first few (.png, .jpg, .jpeg, .bmp).
IMAGE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".jpe",
    ".dib",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
)


class ImageReadError(ValueError):
    """An image file could not be read or decoded; the message names the file."""


@dataclass(frozen=True)
class Preprocessing:
    """What turns a decoded uint8 image into the network's float32 HxWxC input.

    ``x = (resize(color(image)) * scale - mean) / std``, channels last.
    """

    height: int
    width: int
    color: str = "rgb"
    resize: str = "stretch"
    interpolation: str = "bilinear"
    letterbox_fill: int = 0
    scale: float = 1.0 / 255.0
    mean: tuple[float, ...] = field(default=(0.0,))
    std: tuple[float, ...] = field(default=(1.0,))

    def __post_init__(self) -> None:
        if self.color not in COLORS:
            raise ValueError(f"preprocessing color {self.color!r}: expected one of {COLORS}")
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"preprocessing resize {self.resize!r}: expected one of {RESIZE_MODES}")
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"preprocessing interpolation {self.interpolation!r}: expected one of {tuple(INTERPOLATIONS)}"
            )
        if not 0 <= self.letterbox_fill <= 255:
            raise ValueError(f"preprocessing letterbox_fill {self.letterbox_fill}: expected a uint8 value 0..255")
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"preprocessing size {self.height}x{self.width}: expected positive integers")
        for name in ("mean", "std"):
            values = tuple(float(v) for v in getattr(self, name))
            if len(values) not in (1, self.channels):
                raise ValueError(f"preprocessing {name} {values}: expected 1 or {self.channels} values")
            object.__setattr__(self, name, values)
        if any(s == 0 for s in self.std):
            raise ValueError(f"preprocessing std {self.std}: must not contain 0")

    @property
    def channels(self) -> int:
        return 3 if self.color == "rgb" else 1

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The network input shape, NHWC without the batch dimension."""
        return (self.height, self.width, self.channels)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"preprocessing: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        kwargs = dict(d)
        for name in ("mean", "std"):
            if name in kwargs:
                kwargs[name] = tuple(kwargs[name])
        return cls(**kwargs)

    def __call__(self, image: np.ndarray, bgr: bool = False) -> np.ndarray:
        return preprocess_image(image, self, bgr=bgr)


def _round(x: float) -> int:
    """Round half up, the same in Python and C++ (``std::floor(x + 0.5)``)."""
    return int(math.floor(x + 0.5))


MAX_PIXELS_ENV = "SIAMESE_EDGE_MAX_PIXELS"
DEFAULT_MAX_PIXELS = 100_000_000  # 100 megapixels: any camera's photo; a 20000x20000 decompression bomb is refused


def max_pixels() -> int:
    """The pixel cap checked before decoding: ``$SIAMESE_EDGE_MAX_PIXELS``, else 100 megapixels."""
    raw = os.environ.get(MAX_PIXELS_ENV)
    if raw is None:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{MAX_PIXELS_ENV}={raw!r}: expected a positive number of pixels")
    return value


def check_pixel_count(data: bytes, name: str, cap: int | None = None) -> None:
    """Refuse an image whose header declares more than ``cap`` pixels, before decoding it (a 1 MB PNG can declare
    20000x20000 and cost gigabytes). The ``imagesize`` package reads the header of PNG, JPEG, GIF, BMP, TIFF,
    WebP and more; a format it does not know is left to OpenCV's own limit."""
    cap = max_pixels() if cap is None else cap
    try:
        width, height = imagesize.get(io.BytesIO(data))
    except (ValueError, OSError, struct.error):
        return  # a header it cannot parse: imdecode decides, and names it as unreadable
    if width > 0 and height > 0 and width * height > cap:
        raise ImageReadError(
            f"{name}: {width}x{height} = {width * height:,} pixels, over the {cap:,}-pixel cap "
            f"(set {MAX_PIXELS_ENV} to raise it)"
        )


def decode_image(data: bytes, name: str = "<bytes>", pixel_cap: int | None = None) -> np.ndarray:
    """Decode encoded image bytes (PNG, JPEG, BMP, ...) into uint8 RGB (HxWx3) or gray (HxW).

    16-bit images are scaled to 8 bits, alpha is dropped (as PIL's ``convert('RGB')`` does),
    1-bit PNGs come out as 0/255. ``name`` is used in error messages. An image over ``pixel_cap`` pixels
    (default ``max_pixels()``) is refused before it is decoded.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    if buf.size == 0:
        raise ImageReadError(f"{name}: empty file, expected an image")
    check_pixel_count(data, name, pixel_cap)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error as e:  # e.g. over OpenCV's own pixel limit, or a decoder that throws
        raise ImageReadError(f"{name}: OpenCV cannot decode it ({' '.join(str(e).split())[-160:]})") from None
    if img is None:
        raise ImageReadError(f"{name}: not a readable image (corrupt, truncated or not an image format OpenCV decodes)")
    return normalize_image(img, bgr=True, name=name)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into uint8 RGB (HxWx3) or gray (HxW); errors name the file."""
    return decode_image(read_image_bytes(path), name=str(path))


def read_image_bytes(path: str | Path) -> bytes:
    """An image file's bytes, or ImageReadError saying why not (missing, a folder, a link loop, no permission)."""
    p = Path(path)
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{p}: is a directory, expected an image file") from None
    except OSError as e:
        raise ImageReadError(f"{p}: cannot read ({e.strerror or e})") from None


def normalize_image(img: np.ndarray, bgr: bool = False, name: str = "image") -> np.ndarray:
    """Bring an array to uint8 RGB HxWx3 or gray HxW.

    Accepts HxW, HxWx1, HxWx3 (BGR when ``bgr``, as OpenCV reads, else RGB) and HxWx4, in uint8,
    uint16 (scaled by 1/257), bool, or float in [0, 1].
    """
    img = np.asarray(img)
    if img.dtype == np.uint16:
        img = (img.astype(np.uint32) * 255 + 32767) // 65535
        img = img.astype(np.uint8)
    elif img.dtype == np.bool_:
        img = img.astype(np.uint8) * 255
    elif np.issubdtype(img.dtype, np.floating):
        if img.size and not (np.all(np.isfinite(img)) and img.min() >= 0.0 and img.max() <= 1.0):
            raise ImageReadError(
                f"{name}: float image with values outside [0, 1] (or NaN); pass uint8 or scale it first"
            )
        img = np.clip(np.floor(img * 255.0 + 0.5), 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageReadError(f"{name}: unsupported pixel type {img.dtype}, expected uint8, uint16, bool or float")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        out = img
    elif img.ndim == 3 and img.shape[2] in (3, 4):
        code = {(3, True): cv2.COLOR_BGR2RGB, (4, True): cv2.COLOR_BGRA2RGB, (4, False): cv2.COLOR_RGBA2RGB}
        key = (img.shape[2], bgr)
        out = cv2.cvtColor(img, code[key]) if key in code else img
    else:
        raise ImageReadError(f"{name}: shape {img.shape}, expected HxW, HxWx1, HxWx3 or HxWx4")
    if out.shape[0] == 0 or out.shape[1] == 0:
        raise ImageReadError(f"{name}: empty image of shape {img.shape}")
    return np.ascontiguousarray(out)


def to_color(img: np.ndarray, color: str) -> np.ndarray:
    """Convert a normalized image (RGB HxWx3 or gray HxW) to the manifest's color, always HxWxC."""
    if color == "gray":
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return img[:, :, None]
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    return img


def resize_image(img: np.ndarray, spec: Preprocessing) -> np.ndarray:
    """Resize HxWxC uint8 to the spec's size with its resize mode; returns HxWxC."""
    h, w = img.shape[:2]
    th, tw = spec.height, spec.width
    interp = INTERPOLATIONS[spec.interpolation]
    channels = img.shape[2]

    def _resize(src: np.ndarray, nw: int, nh: int) -> np.ndarray:
        if (nh, nw) == src.shape[:2]:
            out = src
        else:
            out = cv2.resize(src, (nw, nh), interpolation=interp)
        return out.reshape(nh, nw, channels)

    if spec.resize == "stretch":
        return _resize(img, tw, th)
    if spec.resize == "shorter-side+center-crop":
        s = max(th / h, tw / w)
        nh, nw = max(th, _round(h * s)), max(tw, _round(w * s))
        out = _resize(img, nw, nh)
        y0, x0 = (nh - th) // 2, (nw - tw) // 2
        return out[y0 : y0 + th, x0 : x0 + tw]
    # letterbox
    s = min(th / h, tw / w)
    nh, nw = min(th, max(1, _round(h * s))), min(tw, max(1, _round(w * s)))
    out = _resize(img, nw, nh)
    canvas = np.full((th, tw, channels), spec.letterbox_fill, dtype=np.uint8)
    y0, x0 = (th - nh) // 2, (tw - nw) // 2
    canvas[y0 : y0 + nh, x0 : x0 + nw] = out
    return canvas


def preprocess_image(image: np.ndarray, spec: Preprocessing, bgr: bool = False) -> np.ndarray:
    """One image (any form ``normalize_image`` takes) -> float32 HxWxC network input."""
    img = to_color(normalize_image(image, bgr=bgr), spec.color)
    img = resize_image(img, spec)
    x = img.astype(np.float32) * np.float32(spec.scale)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    if np.any(mean != 0):
        x -= mean
    if np.any(std != 1):
        x /= std
    return x


def preprocess_batch(images: Sequence[np.ndarray | str | Path], spec: Preprocessing, bgr: bool = False) -> np.ndarray:
    """Images or file paths -> float32 NxHxWxC batch."""
    out = np.empty((len(images), *spec.input_shape), dtype=np.float32)
    for i, item in enumerate(images):
        if isinstance(item, (str, Path)):
            out[i] = preprocess_image(read_image(item), spec)
        else:
            out[i] = preprocess_image(item, spec, bgr=bgr)
    return out
