"""What a person watching a stream sees: the regions verified, each verdict, the score, FPS and backend."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from camera.crop import Roi

GREEN, RED, GREY, WHITE, BLACK = (60, 200, 60), (50, 50, 230), (160, 160, 160), (255, 255, 255), (0, 0, 0)


@dataclass(frozen=True)
class Box:
    """A region drawn on the frame: green when it matched, red when not; ``caption`` under it (may be empty)."""

    roi: Roi
    match: bool
    caption: str = ""


@dataclass(frozen=True)
class OverlayState:
    label: str  # "match", "no match", an identity, "unknown" or "no detection"
    match: bool
    score: float | None
    score_text: str  # e.g. "distance 0.21 <= 0.68"
    fps: float
    backend: str
    boxes: tuple[Box, ...] = ()
    stream: str = ""  # shown before the verdict when several streams run


def _text(frame: np.ndarray, text: str, org: tuple[int, int], scale: float, fg: tuple[int, int, int]) -> int:
    """A caption on a black band at ``org`` (top-left); returns the band's height."""
    import cv2

    thick = 1 if scale < 1 else 2
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x, y = org
    cv2.rectangle(frame, (x - 4, y), (x + tw + 4, y + th + base + 8), BLACK, cv2.FILLED)
    cv2.putText(frame, text, (x, y + th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, fg, thick, cv2.LINE_AA)
    return th + base + 12


def draw(frame: np.ndarray, state: OverlayState) -> np.ndarray:
    """Draw on ``frame`` in place (it is the caller's copy) and return it."""
    import cv2

    color = GREEN if state.match else (GREY if state.label == "no detection" else RED)
    thick = max(2, frame.shape[1] // 320)
    scale = max(0.5, frame.shape[1] / 1280)
    for b in state.boxes:
        r = b.roi
        cv2.rectangle(frame, (r.x, r.y), (r.x + r.w - 1, r.y + r.h - 1), GREEN if b.match else RED, thick)
        if b.caption:
            _text(frame, b.caption, (r.x + 4, min(r.y + r.h + 2, frame.shape[0] - 24)), 0.8 * scale, WHITE)
    verdict = state.label.upper() if state.label in ("match", "no match", "no detection") else state.label
    lines = [(f"{state.stream}  {verdict}" if state.stream else verdict, color, 1.4 * scale)]
    lines.append((state.score_text, WHITE, scale))
    lines.append((f"{state.fps:.1f} FPS  {state.backend}", WHITE, scale))
    y = 8
    for text, fg, s in lines:
        y += _text(frame, text, (10, y), s, fg)
    return frame
