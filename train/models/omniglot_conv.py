"""A compact convnet for one-shot drawing recognition on a CPU: trained on episodes of same-alphabet classes.

Four Conv-BN-ReLU-MaxPool blocks (the "Conv-4" of the few-shot literature), a Dense projection and an
L2-normalised embedding; the score is the distance between embeddings (low = same). Strokes are mapped to 1
and paper to 0 (``x = 1 - v / 255``), so padding and pooling see empty paper as zeros.
"""

from __future__ import annotations

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish
from train.models.layers import EuclideanDistance, L2Normalize
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head


def omniglot_embedding(
    input_shape: tuple[int, int, int], widths: tuple[int, ...] = (64, 64, 128, 128), dim: int = 128
) -> keras.Model:
    inp = keras.Input(input_shape, name="image")
    x = inp
    for i, w in enumerate(widths, start=1):
        x = layers.Conv2D(w, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(dim, name="fc")(x)
    x = L2Normalize(name="l2norm")(x)
    return keras.Model(inp, x, name="embedding")


@register_model(
    "omniglot-conv", "Conv-4 (BN, ReLU, pool) + Dense, L2-normalised; distance; supcon episodes", "siamese-edge"
)
def omniglot_conv(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    loss: str = "supcon",
    widths: tuple[int, ...] = (64, 64, 128, 128),
    dim: int = 128,
    margin: float | None = None,
    **_,
) -> Siamese:
    if loss not in ("supcon", "contrastive"):
        raise ValueError("omniglot-conv outputs a distance: train it with 'supcon' or 'contrastive'")
    h, w, c = input_shape
    if c != 1:
        raise ValueError(f"omniglot-conv takes gray drawings (H, W, 1), got {input_shape}")
    emb = omniglot_embedding(tuple(input_shape), tuple(widths), dim)
    head = make_head(dim, EuclideanDistance(name="distance"), [])
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
        build_kwargs={"input_shape": list(input_shape), "loss": loss, "widths": list(widths), "dim": dim},
    )
