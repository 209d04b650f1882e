"""siamese-edge runtime: what ships to the edge. Never imports TensorFlow or Keras.

    import runtime
    verifier = runtime.load("bundles/demo")      # backend="auto"
    print(verifier.verify("a.png", "b.png"))

``load``, ``Verifier``, ``VerifyResult``, ``Embedding`` and the errors are imported on first use, so
``import runtime`` stays as light as its preprocessing (numpy + OpenCV).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.preprocess import ImageReadError, Preprocessing, preprocess_batch, preprocess_image, read_image
from runtime.scoring import ScoreSpec

_LAZY = {
    "load": "runtime.verifier",
    "Verifier": "runtime.verifier",
    "VerifyResult": "runtime.verifier",
    "Embedding": "runtime.verifier",
    "BackendWarning": "runtime.verifier",
    "BundleError": "runtime.bundle.layout",
    "BackendUnavailable": "runtime.select",
}

if TYPE_CHECKING:
    from runtime.bundle.layout import BundleError
    from runtime.select import BackendUnavailable
    from runtime.verifier import BackendWarning, Embedding, Verifier, VerifyResult, load


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BackendUnavailable",
    "BackendWarning",
    "BundleError",
    "Embedding",
    "ImageReadError",
    "Preprocessing",
    "ScoreSpec",
    "Verifier",
    "VerifyResult",
    "load",
    "preprocess_batch",
    "preprocess_image",
    "read_image",
]
