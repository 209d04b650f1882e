"""Writing a bundle: into a temporary folder, renamed into place only when complete.

A failed export leaves nothing behind; an existing bundle is replaced only when asked (``force``), and
even then the old one stays until the new one is complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from runtime.fileio import atomic_dir


class BundleExistsError(FileExistsError):
    pass


@contextlib.contextmanager
def staged_bundle(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it becomes ``target``, on error it is removed."""
    target = Path(target)
    if target.exists() and not force:
        raise BundleExistsError(f"{target} exists; pass --force to replace it or choose another --out/--name")
    with atomic_dir(target) as tmp:
        yield tmp
