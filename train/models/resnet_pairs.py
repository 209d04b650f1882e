"""ResNet-backbone pair-folder seed: frozen ResNet50V2/152V2, Flatten, Dropout 0.1, Dense 512; contrastive.

Backbone weights come from a local file (``backbone_weights``): nothing is downloaded at run time.
"""

from __future__ import annotations

import keras
from keras import layers

from runtime.preprocess import Preprocessing
from train.models.common import finish
from train.models.layers import EuclideanDistance
from train.models.registry import register_model
from train.models.siamese import Siamese, make_head

BACKBONES = {"resnet50v2": keras.applications.ResNet50V2, "resnet152v2": keras.applications.ResNet152V2}


def resnet_embedding(
    input_shape: tuple[int, int, int], backbone: str = "resnet50v2", backbone_weights: str | None = None
) -> keras.Model:
    if backbone not in BACKBONES:
        raise ValueError(f"backbone {backbone!r}: expected one of {sorted(BACKBONES)}")
    base = BACKBONES[backbone](include_top=False, weights=None, input_shape=input_shape)
    if backbone_weights:
        base.load_weights(backbone_weights)
    base.trainable = False
    inp = keras.Input(input_shape, name="image")
    x = base(inp, training=False)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.1, name="dropout")(x)
    x = layers.Dense(512, activation="relu", name="fc")(x)
    return keras.Model(inp, x, name="embedding")


@register_model(
    "resnet-pairs", "frozen ResNet50V2/152V2, Flatten, Dropout 0.1, Dense 512; distance", "ResNet pair folders"
)
def resnet_pairs(
    input_shape: tuple[int, int, int] = (224, 224, 3),
    loss: str = "contrastive",
    backbone: str = "resnet50v2",
    backbone_weights: str | None = None,
    margin: float | None = None,
    **_,
) -> Siamese:
    if loss != "contrastive":
        raise ValueError("resnet-pairs outputs a contrastive distance; use loss='contrastive'")
    h, w, c = input_shape
    if c != 3:
        raise ValueError(f"resnet-pairs takes RGB input (H, W, 3), got {input_shape}")
    emb = resnet_embedding(tuple(input_shape), backbone, backbone_weights)
    head = make_head(512, EuclideanDistance(name="distance"), [])
    # ResNetV2 expects inputs in [-1, 1]: x / 127.5 - 1
    pre = Preprocessing(
        h,
        w,
        color="rgb",
        resize="shorter-side+center-crop",
        interpolation="bilinear",
        scale=1 / 127.5,
        mean=(1.0,),
        std=(1.0,),
    )
    return finish(
        "resnet-pairs",
        emb,
        head,
        pre,
        head_kind="euclidean",
        loss=loss,
        margin=margin,
        build_kwargs={"input_shape": list(input_shape), "loss": loss, "backbone": backbone, "margin": margin},
    )
