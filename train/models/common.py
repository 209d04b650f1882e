"""Small pieces the architecture factories share: score semantics per loss, config assembly."""

from __future__ import annotations

import keras

from runtime.preprocess import Preprocessing
from runtime.scoring import ScoreSpec
from train.models.siamese import Siamese, SiameseConfig, assemble

DEFAULT_MARGIN = 1.0


def score_for(loss: str, margin: float | None) -> tuple[ScoreSpec, int]:
    """Score semantics and training label convention that follow from the loss.

    Supervised contrastive (supcon) trains the embedding alone on episodes of classes; the score is the
    distance between unit-norm embeddings, low = same.

    BCE on a sigmoid: P(same), label 1 = same (bubbliiiing, PyImageSearch, Koch).
    Contrastive: low means same, label 0 = same (keras.io since 2022); default threshold margin / 2.
    """
    if loss == "bce":
        return ScoreSpec("probability", "high", 0.5, "default (0.5)"), 1
    if loss == "contrastive":
        m = DEFAULT_MARGIN if margin is None else margin
        return ScoreSpec("distance", "low", m / 2, f"default (margin/2 = {m / 2:g})"), 0
    if loss == "supcon":
        # L2-normalised embeddings: distances lie in [0, 2]; sqrt(2) is orthogonal
        return ScoreSpec("distance", "low", 1.0, "default (1.0 on unit-norm embeddings)"), 0
    raise ValueError(f"loss {loss!r}: expected 'bce', 'contrastive' or 'supcon'")


def finish(
    arch: str,
    embedding: keras.Model,
    head: keras.Model,
    preprocessing: Preprocessing,
    *,
    head_kind: str,
    loss: str,
    margin: float | None,
    build_kwargs: dict,
    l2_normalized: bool = False,
    score_kind: str | None = None,
) -> Siamese:
    """Assemble the two-input model and its config."""
    score, label_same = score_for(loss, margin)
    if score_kind is not None and score_kind != score.kind:
        score = ScoreSpec(score_kind, score.same_when, score.threshold, score.threshold_source)
    model = assemble(embedding, head, name=arch.replace("-", "_"))
    config = SiameseConfig(
        arch=arch,
        preprocessing=preprocessing,
        score=score,
        head=head_kind,
        loss=loss,
        label_same=label_same,
        embedding_dim=int(embedding.output_shape[-1]),
        l2_normalized=l2_normalized,
        margin=(margin if margin is not None else DEFAULT_MARGIN) if loss == "contrastive" else None,
        build_kwargs=build_kwargs,
    )
    return Siamese(model, config)


def gray_or_rgb(channels: int) -> str:
    if channels not in (1, 3):
        raise ValueError(f"input channels {channels}: expected 1 (gray) or 3 (rgb)")
    return "gray" if channels == 1 else "rgb"
