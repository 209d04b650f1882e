"""The two shapes every dataset takes: images grouped by class (``ImageSet``) and labelled pairs (``PairSet``).

Samplers, training and evaluation only see these, whatever the files on disk looked like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from train.data.errors import DatasetError, warn_names
from train.data.sources import FileSource, ImageSource


@dataclass(eq=False)
class ImageSet:
    """Images grouped by class; ``labels[i]`` is the index into ``classes`` of ``items[i]``.

    ``class_groups[c]`` is the group (Omniglot: the alphabet) of class ``c``, an index into ``groups``.
    Classes with a single image stay listed (they still count for one-shot galleries) but a sampler
    cannot draw a positive pair from them: use ``classes_with_positives()``.
    """

    name: str
    items: list[str]
    labels: np.ndarray
    classes: list[str]
    class_groups: np.ndarray
    groups: list[str]
    source: str
    sha256: str
    _source: ImageSource = field(default_factory=FileSource, repr=False)

    def __post_init__(self) -> None:
        self.items = list(self.items)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.class_groups = np.asarray(self.class_groups, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.items):
            raise DatasetError(f"{self.name}: {len(self.items)} items but {len(self.labels)} labels")
        if len(self.class_groups) != len(self.classes):
            raise DatasetError(f"{self.name}: {len(self.classes)} classes but {len(self.class_groups)} class groups")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise DatasetError(f"{self.name}: labels outside 0..{len(self.classes) - 1}")
        if len(self.class_groups) and (self.class_groups.min() < 0 or self.class_groups.max() >= len(self.groups)):
            raise DatasetError(f"{self.name}: class groups outside 0..{len(self.groups) - 1}")

    def __len__(self) -> int:
        return len(self.items)

    def read(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8 RGB HxWx3 or gray HxW; raises ``ImageReadError`` naming the item."""
        return self._source.read(self.items[i])

    def read_item(self, item: str) -> np.ndarray:
        """One image by its id (from ``items``), as ``read`` gives it: what a streamed store reads."""
        return self._source.read(item)

    def subset(self, idx: Sequence[int] | np.ndarray) -> ImageSet:
        """Keep the given item indices (or a boolean mask); classes and groups keep their indices."""
        idx = np.asarray(idx)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise ValueError(f"subset: boolean mask of shape {idx.shape}, expected ({len(self)},)")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64).reshape(-1)
        return ImageSet(
            name=self.name,
            items=[self.items[i] for i in idx],
            labels=self.labels[idx],
            classes=self.classes,
            class_groups=self.class_groups,
            groups=self.groups,
            source=self.source,
            sha256=self.sha256,
            _source=self._source,
        )

    def class_counts(self) -> np.ndarray:
        """Number of items per class (length ``len(classes)``; zero for classes a subset dropped)."""
        return np.bincount(self.labels, minlength=len(self.classes)).astype(np.int64)

    def classes_with_positives(self) -> np.ndarray:
        """Indices of the classes with >= 2 items: the only ones a sampler can draw a positive pair from."""
        return np.flatnonzero(self.class_counts() >= 2).astype(np.int64)

    def indices_by_class(self) -> list[np.ndarray]:
        """For each class, the indices of its items (sorted)."""
        order = np.argsort(self.labels, kind="stable")
        bounds = np.cumsum(self.class_counts())[:-1]
        return [a.astype(np.int64) for a in np.split(order, bounds)]

    def describe(self) -> dict[str, Any]:
        """What a model card records about the data: identity plus counts of what is present."""
        present = np.unique(self.labels)
        counts = self.class_counts()
        return {
            "kind": "images",
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "images": len(self),
            "classes": int(len(present)),
            "groups": int(len(np.unique(self.class_groups[present]))) if len(present) else 0,
            "classes_with_one_image": int(np.sum(counts == 1)),
        }


@dataclass(eq=False)
class PairSet:
    """Explicit labelled pairs; ``same[k]`` is True when ``items_a[k]`` and ``items_b[k]`` show one identity."""

    name: str
    source: str
    sha256: str
    items_a: list[str]
    items_b: list[str]
    same: np.ndarray
    _source: ImageSource = field(default_factory=FileSource, repr=False)

    def __post_init__(self) -> None:
        self.items_a, self.items_b = list(self.items_a), list(self.items_b)
        self.same = np.asarray(self.same, dtype=np.bool_).reshape(-1)
        if not len(self.items_a) == len(self.items_b) == len(self.same):
            raise DatasetError(
                f"{self.name}: {len(self.items_a)} a-items, {len(self.items_b)} b-items, {len(self.same)} labels"
            )

    def __len__(self) -> int:
        return len(self.same)

    def read(self, item_id: str) -> np.ndarray:
        """One image by its id (from ``items_a`` / ``items_b``); raises ``ImageReadError`` naming it."""
        return self._source.read(item_id)

    def subset(self, idx: Sequence[int] | np.ndarray) -> PairSet:
        """Keep the given pair indices (or a boolean mask)."""
        idx = np.asarray(idx)
        idx = np.flatnonzero(idx) if idx.dtype == np.bool_ else idx.astype(np.int64).reshape(-1)
        return PairSet(
            name=self.name,
            source=self.source,
            sha256=self.sha256,
            items_a=[self.items_a[i] for i in idx],
            items_b=[self.items_b[i] for i in idx],
            same=self.same[idx],
            _source=self._source,
        )

    def describe(self) -> dict[str, Any]:
        n_same = int(self.same.sum())
        return {
            "kind": "pairs",
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "pairs": len(self),
            "same": n_same,
            "different": len(self) - n_same,
            "images": len(set(self.items_a) | set(self.items_b)),
        }


def build_imageset(
    name: str,
    source: str,
    sha256: str,
    entries: Sequence[tuple[str, str, str]],
    *,
    reader: ImageSource,
    grouped: bool,
) -> ImageSet:
    """Entries ``(item, group, class)`` -> an ``ImageSet`` with classes and groups sorted by name (items keep
    their given order within a class).

    Class names are ``group/class`` when ``grouped`` (Omniglot: ``Alphabet/character01``), else ``class``
    with the single group ``"all"``. Warns once about classes with a single image.
    """
    if not entries:
        raise DatasetError(f"{source}: no images")
    entries = sorted(entries, key=lambda e: (e[1], e[2]))  # stable: keeps the caller's order inside a class
    groups = sorted({g for _, g, _ in entries}) if grouped else ["all"]
    group_index = {g: i for i, g in enumerate(groups)}
    class_keys = sorted({(g, c) for _, g, c in entries})
    class_index = {k: i for i, k in enumerate(class_keys)}
    classes = [f"{g}/{c}" if grouped else c for g, c in class_keys]
    class_groups = np.array([group_index[g] if grouped else 0 for g, _ in class_keys], dtype=np.int64)
    labels = np.array([class_index[(g, c)] for _, g, c in entries], dtype=np.int64)
    ds = ImageSet(
        name=name,
        items=[e[0] for e in entries],
        labels=labels,
        classes=classes,
        class_groups=class_groups,
        groups=groups,
        source=source,
        sha256=sha256,
        _source=reader,
    )
    counts = ds.class_counts()
    singles = [classes[c] for c in np.flatnonzero(counts == 1)]
    warn_names(
        f"{source}: classes with a single image (kept, but no positive pairs can be drawn from them)",
        singles,
        total=len(classes),
        stacklevel=4,
    )
    return ds
