"""Recognise how a tree of files (a folder or a zip's members) lays out its classes.

Two layouts hold images grouped by class: ``<class>/<image>`` (one folder per class) and
``<group>/<class>/<image>`` (Omniglot: alphabet/character). Folders and zips share this logic so both
accept exactly the same trees and report the same problems.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from runtime.preprocess import IMAGE_SUFFIXES
from train.data.errors import ACCEPTED, DatasetError
from train.data.sources import is_image_name, is_junk


@dataclass
class Layout:
    """Result of ``classify``: ``entries`` are ``(relative path, group, class)``."""

    grouped: bool
    entries: list[tuple[str, str, str]]
    non_images: list[str] = field(default_factory=list)  # files inside class folders that are not images
    empty_classes: list[str] = field(default_factory=list)  # class folders without a single image


def _parts(rel: str) -> tuple[str, ...]:
    return tuple(p for p in rel.strip("/").split("/") if p)


def classify(files: Iterable[str], dirs: Iterable[str], where: str) -> Layout:
    """Relative POSIX paths of files and directories -> the layout, or a ``DatasetError`` naming ``where``."""
    files = [_parts(f) for f in files]
    files = [f for f in files if f and not any(is_junk(p) for p in f)]
    images = [f for f in files if is_image_name(f[-1])]
    if not images:
        exts = ", ".join(sorted(IMAGE_SUFFIXES))
        raise DatasetError(f"{where}: no image files found (extensions {exts}); {ACCEPTED}")
    by_depth: dict[int, list[str]] = defaultdict(list)
    for f in images:
        by_depth[len(f)].append("/".join(f))
    if len(by_depth) > 1:
        examples = "; ".join(f"{d - 1} folder(s) deep: {by_depth[d][0]}" for d in sorted(by_depth))
        raise DatasetError(f"{where}: images at different depths ({examples}); {ACCEPTED}")
    depth = next(iter(by_depth))
    if depth == 1:
        raise DatasetError(
            f"{where}: images directly in the top folder (e.g. {by_depth[1][0]}), no class folders; {ACCEPTED}"
        )
    if depth > 3:
        raise DatasetError(f"{where}: images {depth - 1} folders deep (e.g. {by_depth[depth][0]}); {ACCEPTED}")
    grouped = depth == 3
    entries = sorted(("/".join(f), f[0] if grouped else "all", f[-2]) for f in images)
    non_images = sorted("/".join(f) for f in files if len(f) >= 2 and not is_image_name(f[-1]))
    class_dirs = {f[:-1] for f in images}
    all_dirs = {p for p in (_parts(d) for d in dirs) if p and not any(is_junk(x) for x in p)}
    all_dirs |= {f[:i] for f in files for i in range(1, len(f))}
    empty = sorted("/".join(d) for d in all_dirs if len(d) == depth - 1 and d not in class_dirs)
    return Layout(grouped=grouped, entries=entries, non_images=non_images, empty_classes=empty)
