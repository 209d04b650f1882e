"""siamese-edge runtime: what ships to the edge. Never imports TensorFlow or Keras."""

from runtime.preprocess import ImageReadError, Preprocessing, preprocess_batch, preprocess_image, read_image
from runtime.scoring import ScoreSpec

__all__ = ["ImageReadError", "Preprocessing", "ScoreSpec", "preprocess_batch", "preprocess_image", "read_image"]
