"""Scoring embeddings without the network: the distance heads, in numpy, matching the Keras layers.

``train.models.layers.EuclideanDistance`` computes sqrt(max(sum((a - b)^2), eps)); the runtime must give
the same number for a bundle whose head kind is "euclidean", so the epsilon travels in the manifest.
"""

from __future__ import annotations

import numpy as np

DEFAULT_EPSILON = 1e-7


def check_embeddings(x: object, dim: int, bundle: str, what: str = "embeddings") -> np.ndarray:
    """The one rule for embeddings given to the runtime (the verifier, the gallery, a saved gallery): float
    ``(dim,)`` or ``(N, dim)``, every value finite (a NaN compares false with every threshold, so it would decide
    "no match" silently). Returns ``x`` as given (shape and dtype), or raises ValueError naming the fault."""
    a = np.asarray(x)
    if a.ndim not in (1, 2) or a.shape[-1] != dim or not np.issubdtype(a.dtype, np.floating):
        raise ValueError(
            f"{what} of shape {a.shape} and type {a.dtype}: expected float ({dim},) or (N, {dim}) for bundle {bundle!r}"
        )
    if not np.all(np.isfinite(a)):
        bad = int(np.sum(~np.all(np.isfinite(a.reshape(-1, dim)), axis=1)))
        raise ValueError(f"{what}: {bad} of {a.reshape(-1, dim).shape[0]} contain NaN or infinity")
    return a


def euclidean_distance(ea: np.ndarray, eb: np.ndarray, epsilon: float = DEFAULT_EPSILON) -> np.ndarray:
    """(N, D), (N, D) -> (N,) float32 distances, computed in float64 then rounded once."""
    a = np.asarray(ea, dtype=np.float64)
    b = np.asarray(eb, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedding shapes differ: {a.shape} vs {b.shape}")
    sq = np.sum(np.square(a - b), axis=-1)
    return np.sqrt(np.maximum(sq, epsilon)).astype(np.float32)
