"""Koch, Zemel and Salakhutdinov 2015, "Siamese Neural Networks for One-shot Image Recognition"."""

from __future__ import annotations

import keras
from keras import layers, regularizers

from runtime.preprocess import Preprocessing
from train.models.common import finish, gray_or_rgb
from train.models.layers import AbsDifference
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head


def koch_embedding(input_shape: tuple[int, int, int], l2: float = 2e-4) -> keras.Model:
    reg = regularizers.L2(l2) if l2 else None
    inp = keras.Input(input_shape, name="image")
    x = layers.Conv2D(64, 10, activation="relu", kernel_regularizer=reg, name="conv1")(inp)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(128, 7, activation="relu", kernel_regularizer=reg, name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Conv2D(128, 4, activation="relu", kernel_regularizer=reg, name="conv3")(x)
    x = layers.MaxPooling2D(name="pool3")(x)
    x = layers.Conv2D(256, 4, activation="relu", kernel_regularizer=reg, name="conv4")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="sigmoid", kernel_regularizer=reg, name="fc")(x)
    return keras.Model(inp, x, name="embedding")


@register_model("koch", "conv 64@10, 128@7, 128@4, 256@4, Dense 4096 sigmoid; |a-b| -> sigmoid", "Koch et al. 2015")
def koch(input_shape: tuple[int, int, int] = (105, 105, 1), loss: str = "bce", l2: float = 2e-4, **_) -> Siamese:
    if loss != "bce":
        raise ValueError("koch has a sigmoid head trained with 'bce'")
    h, w, c = input_shape
    emb = koch_embedding(tuple(input_shape), l2)
    head = make_head(4096, AbsDifference(name="l1_distance"), [layers.Dense(1, activation="sigmoid", name="score")])
    pre = Preprocessing(h, w, color=gray_or_rgb(c), resize="stretch", interpolation="area", scale=1 / 255)
    return finish(
        "koch",
        emb,
        head,
        pre,
        head_kind="learned",
        loss=loss,
        margin=None,
        build_kwargs={"input_shape": list(input_shape), "loss": loss, "l2": l2},
    )
