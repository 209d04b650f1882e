"""User inputs -> preprocessed batches: file paths, encoded bytes, numpy arrays, or lists of them.

The one place that decides what an input *is*; the arithmetic is ``runtime.preprocess`` (the manifest's
preprocessing, the same code training used). Accepted forms:

* ``str`` / ``os.PathLike``: an image file (PNG, JPEG, BMP, ...). Errors name the file.
* ``bytes`` / ``bytearray`` / ``memoryview``: an encoded image (e.g. an HTTP upload).
* ``numpy.ndarray`` of one image: HxW, HxWx1, HxWx3 or HxWx4 (uint8, uint16, bool or float in [0, 1]).
  Three- and four-channel arrays are **BGR(A), as OpenCV's ``cv2.imread`` returns them**, unless
  ``rgb=True`` (PIL, imageio, matplotlib give RGB).
* ``numpy.ndarray`` of four dimensions: a batch of images, NxHxWxC (same channel rules).
* a ``list`` / ``tuple`` of any of the above (mixed freely).

A single image (not in a list) is marked ``single`` so callers can return a scalar for it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from runtime.preprocess import (
    ImageReadError,
    Preprocessing,
    decode_image,
    normalize_image,
    preprocess_image,
    read_image,
)

ImageInput = Union[str, os.PathLike, bytes, bytearray, memoryview, np.ndarray]

_BYTES = (bytes, bytearray, memoryview)


@dataclass(frozen=True)
class Batch:
    """Preprocessed float32 NHWC network input, with a name per image (the file, or ``image[i]``)."""

    x: np.ndarray
    names: tuple[str, ...]
    single: bool


def is_path(item: Any) -> bool:
    return isinstance(item, (str, os.PathLike))


def is_single_image(item: Any) -> bool:
    """True for one image (a path, encoded bytes, or a 2-D/3-D array); False for lists and 4-D batches."""
    if is_path(item) or isinstance(item, _BYTES):
        return True
    return isinstance(item, np.ndarray) and item.ndim in (2, 3)


def as_items(images: Any) -> tuple[list[Any], bool]:
    """Flatten the accepted forms into a list of single images; the flag says whether the input was one image."""
    if is_single_image(images):
        return [images], True
    if isinstance(images, np.ndarray):
        if images.ndim == 4:
            return list(images), False
        raise ImageReadError(
            f"image array of shape {images.shape}: expected one image (HxW, HxWx1, HxWx3, HxWx4) "
            "or a batch of them (NxHxWxC)"
        )
    if isinstance(images, Sequence) and not isinstance(images, (str, *_BYTES)):
        items: list[Any] = []
        for i, item in enumerate(images):
            if isinstance(item, np.ndarray) and item.ndim == 4:
                items.extend(item)
            elif is_single_image(item):
                items.append(item)
            else:
                raise ImageReadError(f"image[{i}]: {_describe(item)} is not an image (path, bytes or array)")
        return items, False
    raise ImageReadError(f"{_describe(images)} is not an image: pass a file path, encoded bytes, an array or a list")


def _describe(item: Any) -> str:
    if isinstance(item, np.ndarray):
        return f"array of shape {item.shape} and type {item.dtype}"
    return type(item).__name__


def item_name(item: Any, index: int) -> str:
    return os.fspath(item) if is_path(item) else f"image[{index}]"


def load_item(item: Any, name: str, rgb: bool = False) -> np.ndarray:
    """One input -> uint8 RGB HxWx3 or gray HxW (``normalize_image``'s form), errors naming ``name``."""
    if is_path(item):
        return read_image(Path(item))
    if isinstance(item, _BYTES):
        return decode_image(bytes(item), name=name)
    if item.ndim == 3 and item.shape[2] not in (1, 3, 4):
        raise ImageReadError(
            f"{name}: shape {item.shape}, expected HxW, HxWx1, HxWx3 or HxWx4 "
            "(several gray images: an NxHxWx1 array or a list)"
        )
    return normalize_image(item, bgr=not rgb, name=name)


def to_batch(images: Any, spec: Preprocessing, rgb: bool = False) -> Batch:
    """Any accepted input (see the module docstring) -> a preprocessed ``Batch``.

    ``rgb`` only concerns in-memory 3/4-channel arrays: False (default) means BGR(A) as OpenCV gives them.
    Files and bytes are decoded by OpenCV and converted correctly whatever the flag.
    """
    items, single = as_items(images)
    x = np.empty((len(items), *spec.input_shape), dtype=np.float32)
    names = []
    for i, item in enumerate(items):
        name = item_name(item, i)
        x[i] = preprocess_image(load_item(item, name, rgb=rgb), spec)  # already RGB or gray: no channel swap
        names.append(name)
    return Batch(x, tuple(names), single)


def preprocess_many(images: Sequence[Any], spec: Preprocessing, rgb: bool = False) -> np.ndarray:
    """A list of inputs -> float32 NHWC (``to_batch(...).x``)."""
    return to_batch(list(images), spec, rgb=rgb).x
