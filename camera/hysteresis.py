"""The verdict a stream shows: per-frame decisions smoothed by hysteresis on the score.

A majority vote over the last K frames lags about K/2 frames at every change of scene, so on a clip it is wrong
more often than the single frames it smooths. Hysteresis looks at how far each score is from the threshold:

* a **clear** frame (its score beyond the threshold by more than ``margin``, in the score's own units) sets the
  verdict at once: a real change of scene shows on its first frame;
* a frame **near** the threshold (within ``margin``) that disagrees with the verdict changes it only when ``k``
  frames in a row agree on the new label: a score that flickers around the threshold does not flip the verdict;
* except after a jump: a score that moved by more than the band's width (2 x ``margin``) since the last frame
  is a change of scene, and is followed at once.

Smoothing can only help where single frames are right more often than not: on a scene whose scores sit at the
threshold and are mostly wrong, holding the verdict keeps the wrong one (no rule fixes the model's own mistakes).

So the verdict enters "match" after k frames above the threshold (or one clearly above it) and leaves after k
below (or one clearly below). With ``k = 1`` it is the per-frame decision. Labels are what the matcher gives:
"match"/"no match", or an identity/"unknown" for a gallery. The first frame after ``reset`` (start of a stream,
a gap, frames without a detection) sets the verdict directly.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_HOLD = 3
DEFAULT_MARGIN_SHARE = 0.05  # margin default: this share of the threshold's magnitude


def default_margin(threshold: float) -> float:
    """The margin when none is given: 5% of the threshold (in its units), or 0.05 for a threshold of 0."""
    return DEFAULT_MARGIN_SHARE * abs(threshold) if threshold else DEFAULT_MARGIN_SHARE


@dataclass
class Hysteresis:
    """One stream's verdict. ``update(label, score)`` -> the label shown for this frame."""

    threshold: float
    k: int = DEFAULT_HOLD
    margin: float = 0.0
    state: str | None = None
    _pending: str | None = None
    _run: int = 0
    _last: float | None = None  # the previous frame's score

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"--hold {self.k}: expected at least 1 frame")
        if self.margin < 0:
            raise ValueError(f"--margin {self.margin}: expected a score difference >= 0")

    def clear(self, score: float | None) -> bool:
        """Whether a score is far enough from the threshold to set the verdict on its own."""
        return score is not None and abs(score - self.threshold) > self.margin

    def update(self, label: str, score: float | None) -> str:
        last, self._last = self._last, score
        jumped = score is not None and last is not None and abs(score - last) > 2 * self.margin
        if self.state is None or label == self.state or self.clear(score) or jumped:
            self.state, self._pending, self._run = label, None, 0
            return label
        self._run = self._run + 1 if label == self._pending else 1
        self._pending = label
        if self._run >= self.k:
            self.state, self._pending, self._run = label, None, 0
        return self.state

    def reset(self) -> None:
        """Forget the verdict (after a gap, or frames without a detection, the old one says nothing)."""
        self.state, self._pending, self._run, self._last = None, None, 0, None
