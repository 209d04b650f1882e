"""Writing a bundle: into a temporary folder, renamed into place only when complete.

A failed export leaves nothing behind; an existing bundle is replaced only when asked (``force``), and
even then the old one stays until the new one is complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from runtime.bundle.layout import MANIFEST_NAME
from runtime.fileio import atomic_dir, check_replaceable


class BundleExistsError(FileExistsError):
    pass


def check_bundle_target(target: str | Path, force: bool = False) -> None:
    """Whether ``target`` may be written: it does not exist, or it is a bundle and ``force`` says replace it (a
    folder with a manifest.json; never any other folder or file)."""
    target = Path(target)
    if (target.exists() or target.is_symlink()) and not force:
        raise BundleExistsError(f"{target} exists; pass --force to replace it or choose another --out/--name")
    check_replaceable(target, (MANIFEST_NAME,), "bundle")


@contextlib.contextmanager
def staged_bundle(target: str | Path, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it becomes ``target``, on error it is removed
    (``check_bundle_target`` says what may be replaced)."""
    target = Path(target)
    check_bundle_target(target, force)
    with atomic_dir(target) as tmp:
        yield tmp
