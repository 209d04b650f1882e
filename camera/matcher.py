"""What each frame is compared with: reference images of one identity, or a gallery of many.

Both are a ``runtime.gallery.Gallery`` embedded once at start (``--reference`` images become a one-identity
gallery), so the frame is the only image that runs through the network, and one reference gives exactly
``Verifier.verify(reference, frame)``.

The crops are preprocessed by ``runtime.preprocess`` (``to_input``), apart from the network call, so the capture
threads can do it beside inference (``camera.capture``); a gray network's crop is converted from BGR to gray in one
step, the same pixels as the runtime's BGR -> RGB -> gray at a third of the cost (a test checks they are equal).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.gallery import UNKNOWN, Gallery, Identification
from runtime.images import to_batch
from runtime.preprocess import Preprocessing

REFERENCE_IDENTITY = "reference"


@dataclass(frozen=True)
class Decision:
    """One frame's verdict before smoothing."""

    score: float | None
    match: bool
    identity: str | None  # gallery mode: the identity matched; reference mode: None
    label: str  # what the hysteresis follows: "match"/"no match", or an identity/"unknown"
    text: str  # the score against the threshold, for the overlay


def to_input(crops_bgr: list[np.ndarray], spec: Preprocessing) -> np.ndarray:
    """BGR crops (views of the frames) -> the network's float32 NHWC batch, as ``runtime.preprocess`` makes it."""
    if spec.color == "gray":
        import cv2

        crops_bgr = [
            cv2.cvtColor(c, cv2.COLOR_BGR2GRAY) if c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3 else c
            for c in crops_bgr
        ]
    return to_batch(list(crops_bgr), spec).x


class Matcher:
    """Decides crops against the enrolled references; ``mode`` is "reference" or "gallery".

    ``engine``: the verifier the gallery embeds with (``runtime.load``): crops preprocessed apart (``preprocess``)
    are decided by ``decide_preprocessed``, in one network call."""

    def __init__(self, gallery: Gallery, mode: str, engine: Any):
        if mode not in ("reference", "gallery"):
            raise ValueError(f"mode {mode!r}: expected 'reference' or 'gallery'")
        if gallery.size == 0:
            raise ValueError("the gallery is empty: enroll identities before running the camera")
        self.gallery = gallery
        self.mode = mode
        self.engine = engine

    @classmethod
    def from_references(cls, verifier: Any, images: list[str | Path], threshold: float | None = None) -> Matcher:
        """Embed the reference images (all of one identity) once; ``threshold`` overrides the manifest's."""
        g = Gallery(verifier, threshold=threshold)
        g.enroll(REFERENCE_IDENTITY, [str(p) for p in images])
        return cls(g, "reference", verifier)

    @classmethod
    def from_gallery(cls, verifier: Any, path: str | Path, threshold: float | None = None) -> Matcher:
        return cls(Gallery.load(path, verifier, threshold=threshold), "gallery", verifier)

    def describe(self) -> str:
        if self.mode == "reference":
            return f"{self.gallery.size} reference image(s)"
        return f"gallery of {len(self.gallery)} identities ({self.gallery.size} images)"

    def decide(self, crop_bgr: np.ndarray) -> Decision:
        return self.decide_many([crop_bgr])[0]

    @property
    def preprocessing(self) -> Preprocessing:
        return self.gallery.manifest.preprocessing

    def preprocess(self, crops_bgr: list[np.ndarray]) -> np.ndarray:
        """BGR crops -> the network's input batch (``to_input``); safe to call from any thread."""
        return to_input(crops_bgr, self.preprocessing)

    def decide_many(self, crops_bgr: list[np.ndarray]) -> list[Decision]:
        """One decision per crop, the crops embedded in one batched call (of every stream's frames at once)."""
        return self.decide_preprocessed(self.preprocess(crops_bgr)) if crops_bgr else []

    def decide_preprocessed(self, x: np.ndarray) -> list[Decision]:
        """One decision per row of a preprocessed batch (``preprocess``'s output), embedded in one network call."""
        if len(x) == 0:
            return []
        results: list[Identification] = self.gallery.identify(embeddings=self.engine.embed_preprocessed(x), top_k=1)
        return [self._decision(r) for r in results]

    def _decision(self, r: Identification) -> Decision:
        score = r.score
        text = "no candidates" if score is None else self.gallery.spec.comparison(score)
        if self.mode == "reference":
            return Decision(score, r.match, None, "match" if r.match else "no match", text)
        return Decision(
            score, r.match, r.identity, r.label, f"{r.candidates[0].identity}: {text}" if r.candidates else text
        )

    def label_is_match(self, label: str) -> bool:
        """Whether a (smoothed) label is a positive decision."""
        return label == "match" if self.mode == "reference" else label != UNKNOWN
