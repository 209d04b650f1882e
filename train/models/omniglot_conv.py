"""A compact convnet for one-shot drawing recognition on a CPU: trained on episodes of same-alphabet classes.

Four Conv-BN-ReLU-MaxPool blocks (the "Conv-4" of the few-shot literature), a Dense projection and an
L2-normalised embedding; the score is the distance between embeddings (low = same). Strokes are mapped to 1
and paper to 0 (``x = 1 - v / 255``), so padding and pooling see empty paper as zeros.

``members=K`` builds a deep ensemble in one model: K independent towers, each L2-normalised, concatenated
and scaled by 1/sqrt(K). The result is still a unit vector, its squared distance is the mean of the
members' squared distances, and deployment sees one embedding graph. ``SupConLoss(members=K)`` trains
each tower on its own slice, so the towers differ only by their initialisation, as in a deep ensemble.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish
from train.models.layers import EuclideanDistance, L2Normalize
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head


def _tower(x, widths: tuple[int, ...], dim: int, prefix: str = ""):
    for i, w in enumerate(widths, start=1):
        x = layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"{prefix}conv{i}")(x)
        x = layers.BatchNormalization(name=f"{prefix}bn{i}")(x)
        x = layers.ReLU(name=f"{prefix}relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"{prefix}pool{i}")(x)
    x = layers.Flatten(name=f"{prefix}flatten")(x)
    x = layers.Dense(dim, name=f"{prefix}fc")(x)
    return L2Normalize(name=f"{prefix}l2norm")(x)


def omniglot_embedding(
    input_shape: tuple[int, int, int],
    widths: tuple[int, ...] = (64, 64, 128, 128),
    dim: int = 128,
    members: int = 1,
) -> keras.Model:
    if members < 1:
        raise ValueError(f"members {members}: expected 1 or more towers")
    inp = keras.Input(input_shape, name="image")
    if members == 1:
        return keras.Model(inp, _tower(inp, widths, dim), name="embedding")
    towers = [_tower(inp, widths, dim, prefix=f"m{k}_") for k in range(1, members + 1)]
    x = layers.Concatenate(name="members")(towers)
    x = layers.Rescaling(1.0 / math.sqrt(members), name="ensemble_scale")(x)
    return keras.Model(inp, x, name="embedding")


@register_model(
    "omniglot-conv", "Conv-4 (BN, ReLU, pool) + Dense, L2-normalised; distance; supcon episodes", "siamese-edge"
)
def omniglot_conv(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    loss: str = "supcon",
    widths: tuple[int, ...] = (64, 64, 128, 128),
    dim: int = 128,
    members: int = 1,
    margin: float | None = None,
    **_,
) -> Siamese:
    if loss not in ("supcon", "contrastive"):
        raise ValueError("omniglot-conv outputs a distance: train it with 'supcon' or 'contrastive'")
    h, w, c = input_shape
    if c != 1:
        raise ValueError(f"omniglot-conv takes gray drawings (H, W, 1), got {input_shape}")
    emb = omniglot_embedding(tuple(input_shape), tuple(widths), dim, members)
    head = make_head(dim * members, EuclideanDistance(name="distance"), [])
    pre = Preprocessing(
        h, w, color="gray", resize="stretch", interpolation="area", scale=1 / 255, mean=(1.0,), std=(-1.0,)
    )
    return finish(
        "omniglot-conv",
        emb,
        head,
        pre,
        head_kind="euclidean",
        loss=loss,
        margin=margin,
        l2_normalized=True,
        build_kwargs={
            "input_shape": list(input_shape),
            "loss": loss,
            "widths": list(widths),
            "dim": dim,
            "members": members,
        },
    )
