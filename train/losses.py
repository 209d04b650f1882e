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


@keras.saving.register_keras_serializable(package="siamese_edge")
class SupConLoss(keras.losses.Loss):
    """Supervised contrastive loss (Khosla et al. 2020) on a batch of L2-normalised embeddings.

    y_true: the class of each embedding in the batch; y_pred: (B, D) unit-norm embeddings. For every anchor,
    the other embeddings of its class should be more similar (cosine / temperature) than all the rest;
    one batch gives B x B comparisons instead of B/2 pairs, which is what makes it efficient on a CPU.

    With ``members=K`` the embedding is K concatenated unit vectors (an ensemble of towers, see
    ``train.models.omniglot_conv``): each slice gets its own loss, so every tower learns on its own.
    """

    def __init__(self, temperature: float = 0.1, members: int = 1, name: str = "supcon", **kwargs):
        super().__init__(name=name, **kwargs)
        if temperature <= 0:
            raise ValueError(f"supcon temperature {temperature}: expected > 0")
        if members < 1:
            raise ValueError(f"supcon members {members}: expected 1 or more")
        self.temperature = float(temperature)
        self.members = int(members)

    def call(self, y_true, y_pred):
        labels = ops.reshape(y_true, (-1,))
        z = ops.cast(y_pred, "float32")
        if self.members == 1:
            return self._per_anchor(labels, z)
        parts = ops.split(z, self.members, axis=-1)
        return sum(self._per_anchor(labels, ops.normalize(p, axis=-1)) for p in parts) / self.members

    def _per_anchor(self, labels, z):
        n = ops.shape(z)[0]
        logits = ops.matmul(z, ops.transpose(z)) / self.temperature
        eye = ops.eye(n, dtype="float32")
        logits = logits - 1e9 * eye  # an anchor is never its own candidate
        logits = logits - ops.stop_gradient(ops.max(logits, axis=1, keepdims=True))
        log_prob = logits - ops.log(ops.sum(ops.exp(logits) * (1.0 - eye), axis=1, keepdims=True))
        same = ops.cast(ops.equal(labels[:, None], labels[None, :]), "float32") * (1.0 - eye)
        n_pos = ops.sum(same, axis=1)
        per_anchor = -ops.sum(same * log_prob, axis=1) / ops.maximum(n_pos, 1.0)
        return ops.where(n_pos > 0, per_anchor, ops.zeros_like(per_anchor))

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature, "members": self.members}


def loss_for(config: SiameseConfig, temperature: float = 0.1) -> keras.losses.Loss:
    """The loss a model's config asks for (supcon applies to the embedding model, the others to the pair model)."""
    if config.loss == "bce":
        return keras.losses.BinaryCrossentropy(name="bce")
    if config.loss == "supcon":
        return SupConLoss(temperature, members=int(config.build_kwargs.get("members", 1)))
    return ContrastiveLoss(margin=config.margin or 1.0, label_same=config.label_same)
