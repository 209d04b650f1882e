"""The bundle's file list: sha256 and size of every file, paths kept inside the bundle, checked at load.

The manifest lists every other file of the bundle with its sha256; ``check_files`` refuses a bundle whose files do
not match, naming the file, so a stale, truncated or edited model is never silently used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from runtime.bundle.layout import MANIFEST_NAME, BundleError
from runtime.fileio import sha256_file


@dataclass(frozen=True)
class FileEntry:
    sha256: str
    bytes: int | None = None

    @classmethod
    def of(cls, path: Path) -> FileEntry:
        return cls(sha256_file(path), path.stat().st_size)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FileEntry:
        return cls(str(d["sha256"]), None if d.get("bytes") is None else int(d["bytes"]))

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "bytes": self.bytes}


def inside(name: str, where: str | Path) -> str:
    """``name`` when it is a relative path inside the bundle; BundleError naming ``where`` when it escapes."""
    p = PurePosixPath(str(name).replace("\\", "/"))
    if not str(name) or p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise BundleError(f"{where}: file entry {name!r} points outside the bundle")
    return str(name)


def listing(bundle_dir: str | Path) -> dict[str, FileEntry]:
    """Every file under ``bundle_dir`` but the manifest (recursively), with its sha256 and size."""
    root = Path(bundle_dir)
    return {
        p.relative_to(root).as_posix(): FileEntry.of(p)
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME
    }


def check_files(
    bundle_dir: str | Path, files: dict[str, FileEntry], named: Iterable[str] = (), optional: Iterable[str] = ()
) -> None:
    """Raise BundleError naming the first file that is missing, unlisted though the manifest uses it (``named``;
    ``optional`` ones only when they exist), or whose sha256 differs from the manifest."""
    root = Path(bundle_dir)
    where = root / MANIFEST_NAME
    present = [n for n in optional if (root / inside(n, where)).exists()]
    for name in [*named, *present]:
        if inside(name, where) not in files:
            raise BundleError(f"{root / name}: the manifest uses it but does not list its sha256 under files")
    for name, entry in files.items():
        p = root / inside(name, where)
        if not p.is_file():
            raise BundleError(f"{p}: listed in the manifest but missing")
        actual = sha256_file(p)
        if actual != entry.sha256:
            raise BundleError(
                f"{p}: sha256 {actual[:12]}... does not match the manifest ({entry.sha256[:12]}...); "
                "the file was changed or truncated after export: re-export the bundle"
            )
