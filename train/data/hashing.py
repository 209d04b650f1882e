"""Dataset fingerprints for model cards: the same bytes always give the same sha256."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from runtime.fileio import sha256_file

__all__ = ["sha256_file", "sha256_tree"]

CHUNK = 1 << 20


def sha256_tree(root: str | Path, rel_paths: Iterable[str]) -> str:
    """sha256 over a folder's files: for each relative POSIX path in sorted order, the path (UTF-8),
    a NUL byte, the size as 8 little-endian bytes, then the file bytes. Renaming, moving or editing any
    file changes it; the folder's location and file times do not."""
    root = Path(root)
    h = hashlib.sha256()
    for rel in sorted(set(rel_paths)):
        p = root / rel
        h.update(rel.encode("utf-8") + b"\0" + p.stat().st_size.to_bytes(8, "little"))
        with open(p, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
    return h.hexdigest()
