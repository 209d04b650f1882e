"""bubbliiiing's siamese-keras: VGG16 blocks 1-5 shared by both images, |a-b|, Dense 512, Dense 1 sigmoid.

Layer order and names follow bubbliiiing's nets/vgg.py and nets/siamese.py exactly, so its
weights-only ``Omniglot_vgg.h5`` (15 weighted layers) loads by order.
"""

from __future__ import annotations

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish
from train.models.layers import AbsDifference
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head

VGG_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


def vgg16_embedding(input_shape: tuple[int, int, int]) -> keras.Model:
    inp = keras.Input(input_shape, name="image")
    x = inp
    for b, (filters, convs) in enumerate(VGG_BLOCKS, start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, activation="relu", padding="same", name=f"block{b}_conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{b}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inp, x, name="embedding")


@register_model(
    "vgg16-siamese", "VGG16 blocks 1-5, Flatten 4608, |a-b| -> Dense 512 -> sigmoid", "bubbliiiing/siamese-keras"
)
def vgg16_siamese(input_shape: tuple[int, int, int] = (105, 105, 3), loss: str = "bce", **_) -> Siamese:
    if loss != "bce":
        raise ValueError("vgg16-siamese has a sigmoid head trained with 'bce'")
    h, w, c = input_shape
    if c != 3:
        raise ValueError(f"vgg16-siamese takes RGB input (H, W, 3), got {input_shape}")
    emb = vgg16_embedding(tuple(input_shape))
    dim = int(emb.output_shape[-1])
    head = make_head(
        dim,
        AbsDifference(name="l1_distance"),
        [layers.Dense(512, activation="relu", name="dense_1"), layers.Dense(1, activation="sigmoid", name="dense_2")],
    )
    pre = Preprocessing(h, w, color="rgb", resize="shorter-side+center-crop", interpolation="bilinear", scale=1 / 255)
    return finish(
        "vgg16-siamese",
        emb,
        head,
        pre,
        head_kind="learned",
        loss=loss,
        margin=None,
        build_kwargs={"input_shape": list(input_shape), "loss": loss},
    )
