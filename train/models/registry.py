"""The architecture registry: one name per architecture, factory functions in the style of timm.

``create_model("vgg16-siamese")`` returns a ``Siamese`` (the Keras model plus its config: preprocessing,
score semantics, loss and label convention), so nothing downstream has to know which seed a model came from.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from train.models.siamese import Siamese


@dataclass(frozen=True)
class ArchEntry:
    name: str
    factory: Callable[..., Siamese]
    summary: str
    source: str


_REGISTRY: dict[str, ArchEntry] = {}


def register_model(name: str, summary: str, source: str) -> Callable[[Callable[..., Siamese]], Callable[..., Siamese]]:
    """Decorator: register a factory ``f(**kwargs) -> Siamese`` under ``name``."""

    def wrap(fn: Callable[..., Siamese]) -> Callable[..., Siamese]:
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is already registered")
        _REGISTRY[name] = ArchEntry(name, fn, summary, source)
        return fn

    return wrap


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_entry(name: str) -> ArchEntry:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; known: {', '.join(list_models())}") from None


def create_model(name: str, **kwargs) -> Siamese:
    """Build a fresh model of architecture ``name`` (kwargs go to its factory, e.g. input_shape, loss)."""
    return get_entry(name).factory(**kwargs)
