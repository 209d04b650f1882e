"""Which part of the frame is verified: a region of interest, the centered square, or the whole frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Roi:
    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> Roi:
        """``"X,Y,W,H"`` in pixels -> Roi; ValueError naming the text otherwise."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            x, y, w, h = (int(p) for p in parts)
        except ValueError:
            raise ValueError(
                f"--roi {text!r}: expected X,Y,W,H as four integers in pixels, e.g. 160,80,320,320"
            ) from None
        if x < 0 or y < 0 or w <= 0 or h <= 0:
            raise ValueError(f"--roi {text!r}: X and Y must be >= 0, W and H > 0")
        return cls(x, y, w, h)

    def check(self, frame_shape: tuple[int, ...]) -> None:
        fh, fw = frame_shape[:2]
        if self.x + self.w > fw or self.y + self.h > fh:
            raise ValueError(
                f"--roi {self.x},{self.y},{self.w},{self.h} does not fit the {fw}x{fh} frame "
                f"(needs X+W <= {fw} and Y+H <= {fh})"
            )


def center_square(frame_shape: tuple[int, ...]) -> Roi:
    """The largest centered square: what a face-verification kiosk or a document holder points at."""
    fh, fw = frame_shape[:2]
    side = min(fh, fw)
    return Roi((fw - side) // 2, (fh - side) // 2, side, side)


def region(frame_shape: tuple[int, ...], roi: Roi | None, center: bool) -> Roi:
    """The region verified in frames of this shape: the ROI, the center square, or the whole frame."""
    if roi is not None:
        roi.check(frame_shape)
        return roi
    if center:
        return center_square(frame_shape)
    return Roi(0, 0, frame_shape[1], frame_shape[0])


def crop(frame: np.ndarray, r: Roi) -> np.ndarray:
    """A view of the region (no copy): preprocessing copies when it resizes."""
    return frame[r.y : r.y + r.h, r.x : r.x + r.w]
