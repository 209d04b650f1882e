"""Decisions smoothed over the last K processed frames, so a verdict does not flicker on one noisy frame."""

from __future__ import annotations

from collections import Counter, deque


class MajorityVote:
    """The label seen most often in the last ``k`` frames; a tie goes to the most recent of the tied labels.

    With k = 1 it passes every decision through. A change of verdict shows after ceil((k+1)/2) frames agree.
    """

    def __init__(self, k: int = 1):
        if k < 1:
            raise ValueError(f"--smooth {k}: expected a window of at least 1 frame")
        self.k = k
        self._window: deque[str] = deque(maxlen=k)

    def update(self, label: str) -> str:
        self._window.append(label)
        counts = Counter(self._window)
        top = max(counts.values())
        for recent in reversed(self._window):
            if counts[recent] == top:
                return recent
        raise AssertionError("unreachable: the window is not empty")

    def reset(self) -> None:
        """Forget the window (after a gap in the stream the old frames say nothing about the new ones)."""
        self._window.clear()
