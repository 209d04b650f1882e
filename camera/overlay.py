"""What a person watching the stream sees: the region verified, the verdict, the score, FPS and backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camera.crop import Roi

GREEN, RED, WHITE, BLACK = (60, 200, 60), (50, 50, 230), (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class OverlayState:
    label: str  # "match", "no match", an identity or "unknown"
    match: bool
    score: float | None
    score_text: str  # e.g. "distance 0.21 <= 0.68"
    fps: float
    backend: str


def draw(frame: np.ndarray, roi: Roi, state: OverlayState) -> np.ndarray:
    """Draw on ``frame`` in place (it is the caller's copy) and return it."""
    import cv2

    color = GREEN if state.match else RED
    thick = max(2, frame.shape[1] // 320)
    cv2.rectangle(frame, (roi.x, roi.y), (roi.x + roi.w - 1, roi.y + roi.h - 1), color, thick)
    scale = max(0.5, frame.shape[1] / 1280)
    lines = [(state.label.upper() if state.label in ("match", "no match") else state.label, color, 1.4 * scale)]
    lines.append((state.score_text, WHITE, scale))
    lines.append((f"{state.fps:.1f} FPS  {state.backend}", WHITE, scale))
    y = 8
    for text, fg, s in lines:
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, s, 1 if s < 1 else 2)
        cv2.rectangle(frame, (6, y), (14 + tw, y + th + base + 8), BLACK, cv2.FILLED)
        cv2.putText(frame, text, (10, y + th + 4), cv2.FONT_HERSHEY_SIMPLEX, s, fg, 1 if s < 1 else 2, cv2.LINE_AA)
        y += th + base + 12
    return frame
