"""scikit-learn's bundled handwritten digits: the embedded demo dataset, no download."""

from __future__ import annotations

import hashlib

import numpy as np

from train.data.imageset import ImageSet, build_imageset
from train.data.sources import ArraySource

SOURCE = "sklearn.datasets.load_digits"


def digits_uint8() -> tuple[np.ndarray, np.ndarray]:
    """(N x 8 x 8 uint8 images scaled 0..16 -> 0..255, N int64 labels)."""
    from sklearn.datasets import load_digits  # lazy: scikit-learn is slow to import

    bunch = load_digits()
    images = np.floor(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0) + 0.5)
    return np.clip(images, 0, 255).astype(np.uint8), np.asarray(bunch.target, dtype=np.int64)


def open_digits() -> ImageSet:
    """1,797 gray 8x8 digits in 10 classes ``"0"``..``"9"``; ids ``sklearn.datasets.load_digits[i]``."""
    images, labels = digits_uint8()
    items = [f"{SOURCE}[{i}]" for i in range(len(images))]
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes() + np.ascontiguousarray(labels).tobytes())
    return build_imageset(
        "scikit-learn digits (8x8, bundled)",
        SOURCE,
        digest.hexdigest(),
        [(item, "all", str(int(y))) for item, y in zip(items, labels)],
        reader=ArraySource(dict(zip(items, images))),
        grouped=False,
    )
