"""Training losses: binary cross-entropy on P(same), and the contrastive loss with a margin.

Targets follow the model's label convention (``SiameseConfig.label_same``): BCE seeds use 1 = same,
keras.io's contrastive example uses 0 = same. The contrastive loss takes the convention explicitly, so
the same formula serves both: same pairs are pulled to distance 0, different pairs pushed past the margin.
"""

from __future__ import annotations

import keras
from keras import ops

from train.models.siamese import SiameseConfig


@keras.saving.register_keras_serializable(package="siamese_edge")
class ContrastiveLoss(keras.losses.Loss):
    """mean( same * d^2 + (1 - same) * max(margin - d, 0)^2 ), same from y_true and ``label_same``."""

    def __init__(self, margin: float = 1.0, label_same: int = 0, name: str = "contrastive", **kwargs):
        super().__init__(name=name, **kwargs)
        if margin <= 0:
            raise ValueError(f"contrastive margin {margin}: expected > 0")
        if label_same not in (0, 1):
            raise ValueError(f"label_same {label_same}: expected 0 or 1")
        self.margin = float(margin)
        self.label_same = int(label_same)

    def call(self, y_true, y_pred):
        y_true = ops.cast(ops.reshape(y_true, (-1,)), y_pred.dtype)
        d = ops.reshape(y_pred, (-1,))
        same = y_true if self.label_same == 1 else 1.0 - y_true
        return same * ops.square(d) + (1.0 - same) * ops.square(ops.maximum(self.margin - d, 0.0))

    def get_config(self):
        return {**super().get_config(), "margin": self.margin, "label_same": self.label_same}


def loss_for(config: SiameseConfig) -> keras.losses.Loss:
    """The loss a model's config asks for."""
    if config.loss == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    return ContrastiveLoss(margin=config.margin or 1.0, label_same=config.label_same)
