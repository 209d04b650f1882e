"""A deployed bundle seen as the model ``train.evaluate`` scores: the same embeddings, scores and decisions the
runtime gives on a backend and precision, so an INT8 or bf16 graph is measured on the task (one-shot accuracy,
verification AUC) exactly as its Keras model is."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec


@dataclass(frozen=True)
class DeployedConfig:
    """What evaluate reads of a model's config: its architecture name, preprocessing and score semantics."""

    arch: str
    preprocessing: Preprocessing
    score: ScoreSpec


class DeployedModel:
    """``runtime.load(bundle, backend, precision)`` with the ``embed``/``score_embeddings``/``score`` of
    ``train.models.Siamese``; the score's threshold is the one the runtime decides with at that precision."""

    def __init__(self, bundle: str | Path, backend: str = "auto", precision: str | None = None):
        import runtime

        self.verifier = runtime.load(bundle, backend=backend, precision=precision)
        info = self.verifier.info()
        arch = self.verifier.manifest.source.arch or "bundle"
        self.config = DeployedConfig(
            f"{arch} ({info['variant']} {info['precision']})", self.verifier.preprocessing, self.verifier.spec
        )

    def describe(self) -> dict[str, Any]:
        i = self.verifier.info()
        return {"bundle": i["bundle_dir"], "variant": i["variant"], "precision": i["precision"], "reason": i["reason"]}

    def embed(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.verifier.embed_preprocessed(x))

    def score_embeddings(self, ea: np.ndarray, eb: np.ndarray) -> np.ndarray:
        return self.verifier.score_embeddings(ea, eb)

    def score(self, xa: np.ndarray, xb: np.ndarray) -> np.ndarray:
        both = self.embed(np.concatenate([xa, xb]))
        return self.score_embeddings(both[: len(xa)], both[len(xa) :])
