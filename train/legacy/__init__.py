"""Loading the model files users bring (Keras 2 HDF5, weights-only files, SavedModel folders) into the
project's structure. ``train.load.load_model`` is the entry point; these modules each do one step of it.

``train.legacy.load_model`` is kept as an alias (the error in ``train.models.Siamese`` points here).
"""

from __future__ import annotations

from typing import Any

from train.legacy.errors import LoadWarning, ModelLoadError

__all__ = ["LoadWarning", "ModelLoadError", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":  # lazy: train.load imports this package
        from train.load import load_model

        return load_model
    raise AttributeError(f"module 'train.legacy' has no attribute {name!r}")
