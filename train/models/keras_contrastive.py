"""keras.io "Image similarity estimation using a Siamese Network with a contrastive loss" (and the
satellite-map seed that uses it at 128x128x3). Label 0 = same; the sigmoid output behaves as a distance."""

from __future__ import annotations

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish, gray_or_rgb
from train.models.layers import EuclideanDistance
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head


def contrastive_embedding(input_shape: tuple[int, int, int], embedding_dim: int = 10) -> keras.Model:
    inp = keras.Input(input_shape, name="image")
    x = layers.BatchNormalization(name="bn_in")(inp)
    x = layers.Conv2D(4, 5, activation="tanh", name="conv1")(x)
    x = layers.AveragePooling2D(2, name="pool1")(x)
    x = layers.Conv2D(16, 5, activation="tanh", name="conv2")(x)
    x = layers.AveragePooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.BatchNormalization(name="bn_flat")(x)
    x = layers.Dense(embedding_dim, activation="tanh", name="fc")(x)
    return keras.Model(inp, x, name="embedding")


@register_model("keras-contrastive", "BN, Conv tanh + AvgPool x2, Dense tanh; euclidean -> BN -> sigmoid", "keras.io")
def keras_contrastive(
    input_shape: tuple[int, int, int] = (28, 28, 1),
    loss: str = "contrastive",
    embedding_dim: int = 10,
    margin: float | None = None,
    **_,
) -> Siamese:
    if loss != "contrastive":
        raise ValueError("keras-contrastive is trained with the contrastive loss (label 0 = same)")
    h, w, c = input_shape
    emb = contrastive_embedding(tuple(input_shape), embedding_dim)
    head = make_head(
        embedding_dim,
        EuclideanDistance(name="distance"),
        [
            layers.BatchNormalization(name="bn_distance"),
            layers.Dense(
                1,
                activation="sigmoid",
                # start increasing in the distance (low = same), so training never has to flip the sign
                kernel_initializer=keras.initializers.Constant(1.0),
                name="score",
            ),
        ],
    )
    pre = Preprocessing(h, w, color=gray_or_rgb(c), resize="stretch", interpolation="area", scale=1 / 255)
    return finish(
        "keras-contrastive",
        emb,
        head,
        pre,
        head_kind="learned",
        loss=loss,
        margin=margin,
        build_kwargs={"input_shape": list(input_shape), "loss": loss, "embedding_dim": embedding_dim, "margin": margin},
    )
