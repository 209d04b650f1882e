"""Registered distance layers: what the seeds wrote as ``Lambda`` layers, made safe to save and load.

Keras 3 refuses to deserialize a ``Lambda`` in safe mode (its function is marshaled bytecode), so every
model the project builds uses these instead, and legacy files have their distance Lambdas rebuilt as these.
"""

from __future__ import annotations

import keras
from keras import ops

PACKAGE = "siamese_edge"


@keras.saving.register_keras_serializable(package=PACKAGE)
class AbsDifference(keras.layers.Layer):
    """|a - b| elementwise (bubbliiiing's and Koch et al.'s L1 distance layer)."""

    def call(self, inputs):
        a, b = inputs
        return ops.abs(a - b)

    def compute_output_shape(self, input_shape):
        return input_shape[0]


@keras.saving.register_keras_serializable(package=PACKAGE)
class EuclideanDistance(keras.layers.Layer):
    """sqrt(max(sum((a - b)^2), eps)) over the last axis, keepdims (PyImageSearch and keras.io).

    The epsilon floor keeps the gradient finite for identical inputs, as the seeds do.
    """

    def __init__(self, epsilon: float = 1e-7, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        a, b = inputs
        sum_sq = ops.sum(ops.square(a - b), axis=-1, keepdims=True)
        return ops.sqrt(ops.maximum(sum_sq, self.epsilon))

    def compute_output_shape(self, input_shape):
        return (*input_shape[0][:-1], 1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=PACKAGE)
class L2Normalize(keras.layers.Layer):
    """x / max(||x||, eps) over the last axis: embeddings on the unit sphere."""

    def __init__(self, epsilon: float = 1e-12, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        norm = ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), self.epsilon))
        return x / norm

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


DISTANCE_LAYERS = {"abs": AbsDifference, "euclidean": EuclideanDistance}
CUSTOM_OBJECTS = {cls.__name__: cls for cls in (AbsDifference, EuclideanDistance, L2Normalize)}
