"""``--display`` with several streams: one window showing every stream's annotated frame in a grid."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TILE = (640, 480)  # each stream's frame is fitted into a tile of this size (W, H), its aspect kept


def grid(n: int) -> tuple[int, int]:
    """(columns, rows) for n tiles: as square as possible, wider than tall (2 -> 2x1, 3 -> 2x2, 5 -> 3x2)."""
    cols = max(1, math.ceil(math.sqrt(n)))
    return cols, max(1, math.ceil(n / cols))


def mosaic(frames: Sequence[np.ndarray | None], tile: tuple[int, int] = TILE) -> np.ndarray:
    """BGR frames (None: no frame yet, a black tile) -> one BGR image; a single frame is returned as it is."""
    import cv2

    if len(frames) == 1 and frames[0] is not None:
        return frames[0]
    cols, rows = grid(len(frames))
    tw, th = tile
    out = np.zeros((rows * th, cols * tw, 3), np.uint8)
    for i, f in enumerate(frames):
        if f is None:
            continue
        h, w = f.shape[:2]
        s = min(tw / w, th / h)
        fw, fh = max(1, int(w * s)), max(1, int(h * s))
        x0, y0 = (i % cols) * tw + (tw - fw) // 2, (i // cols) * th + (th - fh) // 2
        out[y0 : y0 + fh, x0 : x0 + fw] = cv2.resize(f, (fw, fh), interpolation=cv2.INTER_AREA)
    return out
