"""Score semantics: what a model's number means and when it is a match. The one source of truth.

The seeds disagree: bubbliiiing and PyImageSearch output P(same) (label 1 = same), keras.io's
contrastive example and every contrastive model output something where *low* means same (label 0 =
same). Every score the project produces travels with a ``ScoreSpec`` so nobody has to guess.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

SCORE_KINDS = ("probability", "distance")
DIRECTIONS = ("high", "low")


@dataclass(frozen=True)
class ScoreSpec:
    """What a score is and how to decide.

    kind: "probability" (a sigmoid output in [0, 1]) or "distance" (>= 0, or any monotone dissimilarity).
    same_when: "high" if larger scores mean the same identity, "low" if smaller ones do.
    threshold: the decision boundary; a score exactly at the threshold counts as a match.
    threshold_source: where the threshold came from (e.g. "default", "calibrated on ... (EER)").
    """

    kind: str
    same_when: str
    threshold: float
    threshold_source: str = "default"

    def __post_init__(self) -> None:
        if self.kind not in SCORE_KINDS:
            raise ValueError(f"score kind {self.kind!r}: expected one of {SCORE_KINDS}")
        if self.same_when not in DIRECTIONS:
            raise ValueError(f"score same_when {self.same_when!r}: expected one of {DIRECTIONS}")
        try:
            threshold = float(self.threshold)
        except (TypeError, ValueError):
            raise ValueError(f"score threshold {self.threshold!r}: expected a number") from None
        if not math.isfinite(threshold):
            raise ValueError(f"score threshold {threshold}: expected a finite number (NaN would decide nothing)")
        object.__setattr__(self, "threshold", threshold)

    def is_match(self, score: Any) -> Any:
        """True where ``score`` means "same" (bool for a scalar, bool array for an array)."""
        s = np.asarray(score, dtype=np.float64)
        out = s >= self.threshold if self.same_when == "high" else s <= self.threshold
        return bool(out) if out.ndim == 0 else out

    def comparison(self, score: float) -> str:
        """``score`` against the threshold in words and sign, e.g. "distance 0.21 <= 0.68" (<= because it matched)."""
        match = self.is_match(score)
        cmp = (">=" if match else "<") if self.same_when == "high" else ("<=" if match else ">")
        return f"{self.kind} {score:.4g} {cmp} threshold {self.threshold:.4g}"

    def similarity(self, score: Any) -> np.ndarray:
        """Scores turned so that larger always means more alike (for ROC curves and ranking)."""
        s = np.asarray(score, dtype=np.float64)
        return s if self.same_when == "high" else -s

    def with_threshold(self, threshold: float, source: str) -> ScoreSpec:
        return ScoreSpec(self.kind, self.same_when, float(threshold), source)

    def with_given_threshold(self, threshold: float, source: str) -> ScoreSpec:
        """A threshold a person gave (a command line's ``--threshold``): finite, and for a probability in [0, 1].
        Computed thresholds (calibration's reject-all one may sit just past 1.0) go through ``with_threshold``."""
        spec = self.with_threshold(threshold, source)
        if self.kind == "probability" and not 0.0 <= spec.threshold <= 1.0:
            raise ValueError(f"score threshold {spec.threshold}: a probability threshold lies in [0, 1]")
        return spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ScoreSpec:
        return cls(
            kind=d["kind"],
            same_when=d["same_when"],
            threshold=d["threshold"],
            threshold_source=d.get("threshold_source", "default"),
        )

    def describe(self) -> str:
        cmp = ">=" if self.same_when == "high" else "<="
        return f"{self.kind} (match when score {cmp} {self.threshold:.4g}, threshold: {self.threshold_source})"
