"""Scoring embeddings without the network: the distance heads, in numpy, matching the Keras layers.

``train.models.layers.EuclideanDistance`` computes sqrt(max(sum((a - b)^2), eps)); the runtime must give
the same number for a bundle whose head kind is "euclidean", so the epsilon travels in the manifest.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-7


def euclidean_distance(ea: np.ndarray, eb: np.ndarray, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """(N, D), (N, D) -> (N,) float32 distances, computed in float64 then rounded once."""
    a = np.asarray(ea, dtype=np.float64)
    b = np.asarray(eb, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    sq = np.sum(np.square(a - b), axis=-1)
    return np.sqrt(np.maximum(sq, epsilon)).astype(np.float32)
