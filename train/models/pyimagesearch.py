"""PyImageSearch's Siamese network (MNIST): two Conv 64 2x2 blocks, GAP, Dense 48; euclidean distance."""

from __future__ import annotations

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish, gray_or_rgb
from train.models.layers import EuclideanDistance
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head


def pyimagesearch_embedding(input_shape: tuple[int, int, int], embedding_dim: int = 48) -> keras.Model:
    inp = keras.Input(input_shape, name="image")
    x = layers.Conv2D(64, 2, padding="same", activation="relu", name="conv1")(inp)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Dropout(0.3, name="drop1")(x)
    x = layers.Conv2D(64, 2, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Dropout(0.3, name="drop2")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(embedding_dim, name="fc")(x)
    return keras.Model(inp, x, name="embedding")


@register_model(
    "pyimagesearch", "Conv 64 2x2 x2, GAP, Dense 48; euclidean -> sigmoid (bce) or distance", "PyImageSearch"
)
def pyimagesearch(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    loss: str = "bce",
    embedding_dim: int = 48,
    margin: float | None = None,
    **_,
) -> Siamese:
    h, w, c = input_shape
    emb = pyimagesearch_embedding(tuple(input_shape), embedding_dim)
    # P(same) must fall with the distance: start with that sign instead of a random one
    score = layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.Constant(-1.0),
        bias_initializer=keras.initializers.Constant(1.0),
        name="score",
    )
    tail = [score] if loss == "bce" else []
    head = make_head(embedding_dim, EuclideanDistance(name="distance"), tail)
    pre = Preprocessing(h, w, color=gray_or_rgb(c), resize="stretch", interpolation="area", scale=1 / 255)
    return finish(
        "pyimagesearch",
        emb,
        head,
        pre,
        head_kind="learned" if loss == "bce" else "euclidean",
        loss=loss,
        margin=margin,
        build_kwargs={"input_shape": list(input_shape), "loss": loss, "embedding_dim": embedding_dim, "margin": margin},
    )
