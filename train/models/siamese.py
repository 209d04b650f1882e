"""The shape every project model has, and the small wrapper training and evaluation use.

A project model is a functional Keras model with inputs ``image_a``/``image_b`` and output ``score``,
built from two nested models: ``embedding`` (image batch -> embedding) and ``head``
((embedding_a, embedding_b) -> score). Export writes them as embedding.onnx and head.onnx, so the
runtime can embed a reference once and score many.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec

HEAD_KINDS = ("learned", "euclidean")
LOSSES = ("bce", "contrastive", "supcon")


@dataclass
class SiameseConfig:
    """Everything besides the weights that a model's users need: recorded in every model card."""

    arch: str
    preprocessing: Preprocessing
    score: ScoreSpec
    head: str  # "learned": head has weights (head.onnx); "euclidean": the score is the L2 distance
    loss: str  # "bce" on P(same), "contrastive" with a margin, or "supcon" (episodes of classes, embedding only)
    label_same: int  # which training label means "same" (1 for BCE seeds, 0 for keras.io contrastive)
    embedding_dim: int
    l2_normalized: bool = False
    margin: float | None = None
    build_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head not in HEAD_KINDS:
            raise ValueError(f"head {self.head!r}: expected one of {HEAD_KINDS}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss {self.loss!r}: expected one of {LOSSES}")
        if self.label_same not in (0, 1):
            raise ValueError(f"label_same {self.label_same!r}: expected 0 or 1")

    def to_dict(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "preprocessing": self.preprocessing.to_dict(),
            "score": self.score.to_dict(),
            "head": self.head,
            "loss": self.loss,
            "margin": self.margin,
            "label_same": self.label_same,
            "label_convention": f"label {self.label_same} = same, {1 - self.label_same} = different",
            "embedding_dim": self.embedding_dim,
            "l2_normalized": self.l2_normalized,
            "build_kwargs": self.build_kwargs,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SiameseConfig:
        return cls(
            arch=d["arch"],
            preprocessing=Preprocessing.from_dict(d["preprocessing"]),
            score=ScoreSpec.from_dict(d["score"]),
            head=d["head"],
            loss=d["loss"],
            label_same=int(d["label_same"]),
            embedding_dim=int(d["embedding_dim"]),
            l2_normalized=bool(d.get("l2_normalized", False)),
            margin=d.get("margin"),
            build_kwargs=dict(d.get("build_kwargs", {})),
        )

    def targets(self, same: np.ndarray) -> np.ndarray:
        """Training targets for pairs (True = same) in this model's label convention."""
        same = np.asarray(same, dtype=np.float32)
        return same if self.label_same == 1 else 1.0 - same


def assemble(embedding: keras.Model, head: keras.Model, name: str) -> keras.Model:
    """Wire ``embedding`` (shared by both branches) and ``head`` into the two-input model."""
    shape = tuple(embedding.input_shape[1:])
    a = keras.Input(shape, name="image_a")
    b = keras.Input(shape, name="image_b")
    score = head([embedding(a), embedding(b)])
    return keras.Model([a, b], score, name=name)


def make_head(dim: int, distance: keras.layers.Layer, layers: list[keras.layers.Layer]) -> keras.Model:
    """A head model: distance(embedding_a, embedding_b) followed by ``layers``."""
    ea = keras.Input((dim,), name="embedding_a")
    eb = keras.Input((dim,), name="embedding_b")
    x = distance([ea, eb])
    for layer in layers:
        x = layer(x)
    return keras.Model([ea, eb], x, name="head")


class Siamese:
    """A project model with its config: embed once, score many."""

    def __init__(self, model: keras.Model, config: SiameseConfig):
        self.model = model
        self.config = config
        try:
            self.embedding: keras.Model = model.get_layer("embedding")
            self.head: keras.Model = model.get_layer("head")
        except ValueError:
            raise ValueError(
                f"model {model.name!r} does not have the project's structure "
                "(nested 'embedding' and 'head' models); load it through train.load.load_model"
            ) from None

    def embed(self, x: np.ndarray, batch_size: int = 128) -> np.ndarray:
        """Preprocessed float32 NHWC batch -> float32 (N, dim) embeddings."""
        x = np.asarray(x, dtype=np.float32)
        if len(x) == 0:
            return np.zeros((0, self.config.embedding_dim), np.float32)
        outs = [
            keras.ops.convert_to_numpy(self.embedding(x[i : i + batch_size], training=False))
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outs).astype(np.float32)

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Pairs of embeddings -> (N,) scores, in the model's own score units (see config.score)."""
        ea = np.asarray(ea, np.float32)
        eb = np.asarray(eb, np.float32)
        outs = [
            keras.ops.convert_to_numpy(self.head([ea[i : i + batch_size], eb[i : i + batch_size]], training=False))
            for i in range(0, len(ea), batch_size)
        ]
        if not outs:
            return np.zeros((0,), np.float32)
        return np.concatenate(outs).reshape(-1).astype(np.float32)

    def score(self, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
        """Preprocessed image pairs -> (N,) scores."""
        return self.score_embeddings(self.embed(xa), self.embed(xb))
