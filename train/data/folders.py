"""Image folders: one folder per class (bubbliiiing's "own data") or Omniglot's alphabet/character tree."""

from __future__ import annotations

import os
from pathlib import Path

from train.data.errors import ACCEPTED, DatasetError, warn_names
from train.data.hashing import sha256_tree
from train.data.imageset import ImageSet, build_imageset
from train.data.layout import Layout, classify
from train.data.sources import FileSource, is_junk

OMNIGLOT_NAMES = ("images_background", "images_evaluation")


def scan_tree(root: Path) -> tuple[list[str], list[str]]:
    """Relative POSIX paths of the files and directories under ``root`` (hidden ones pruned)."""
    files: list[str] = []
    dirs: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not is_junk(d))
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirs.extend(prefix + d for d in dirnames)
        files.extend(prefix + f for f in sorted(filenames))
    return files, dirs


def report_layout(layout: Layout, where: str) -> None:
    """One warning per kind of problem, each with the count and the first names."""
    warn_names(f"{where}: non-image files in class folders skipped", layout.non_images, stacklevel=4)
    warn_names(f"{where}: class folders without images left out", layout.empty_classes, stacklevel=4)


def open_image_folder(root: str | Path) -> ImageSet:
    """``root/<class>/<image>`` or ``root/<group>/<class>/<image>`` -> ``ImageSet`` of file paths."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory; {ACCEPTED}")
    files, dirs = scan_tree(root)
    if not files and not dirs:
        raise DatasetError(f"{root}: empty folder; {ACCEPTED}")
    layout = classify(files, dirs, str(root))
    report_layout(layout, str(root))
    if root.name in OMNIGLOT_NAMES and layout.grouped:
        name = f"Omniglot {root.name} (folder)"
    elif layout.grouped:
        name = f"{root.name} (folder, <group>/<class>/<image>)"
    else:
        name = f"{root.name} (folder, one folder per class)"
    rels = [e[0] for e in layout.entries]
    entries = [(str(root / rel), g, c) for rel, g, c in layout.entries]
    return build_imageset(
        name, str(root), sha256_tree(root, rels), entries, reader=FileSource(), grouped=layout.grouped
    )
