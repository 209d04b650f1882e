"""A run's outputs, checked before anything is opened for writing: none may be one of its inputs, no two may be the
same file, and each one's folder must exist and be writable.

An output that is an input destroys it (``--output`` equal to ``--source`` cut a 300-frame clip to 5 frames,
``--events`` equal to ``--reference`` overwrote the image with JSON lines); a read-only folder would fail only once
frames are written. Paths are compared after resolving links, and by inode where both exist, so a symlink or a
hard link to an input counts as the input.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from camera.sinks import SinkError
from camera.sources import SourceSpec
from camera.streams import STREAMS_SUFFIX
from runtime.fileio import check_writable_dir


def input_files(
    sources: Sequence[str],
    specs: Sequence[SourceSpec],
    references: Sequence[str] = (),
    gallery: str | None = None,
    bundle: str | None = None,
) -> dict[Path, str]:
    """Every file the run reads -> what it is (for the message): the ``--source`` files and ``.streams`` lists, the
    files they list, a folder source's files, the ``--reference`` images, the gallery's files, the bundle's files."""
    found: dict[Path, str] = {}

    def add(paths: Iterable[Path], what: str) -> None:
        for p in paths:
            found.setdefault(p.resolve(), what)

    add((Path(s) for s in sources if Path(s).suffix.lower() == STREAMS_SUFFIX), "a --source list")
    for spec in specs:
        if spec.kind == "file":
            add([Path(str(spec.location))], f"--source {spec.uri}")
        elif spec.kind == "folder":
            add(_files(Path(str(spec.location))), f"a frame of --source {spec.uri}")
    add((Path(r) for r in references), "a --reference image")
    if gallery:
        from runtime.gallery import Gallery

        add(Gallery.paths(gallery), f"a file of --gallery {gallery}")
    if bundle:
        add(_files(Path(bundle), recursive=True), f"a file of --bundle {bundle}")
    return found


def check_outputs(outputs: Sequence[tuple[str, Path]], inputs: dict[Path, str]) -> None:
    """``outputs``: (option, path) pairs. SinkError, one line naming both, for an output that is an input or another
    output; SinkError for a folder that does not exist or cannot be written."""
    by_inode = {ino: what for p, what in inputs.items() if (ino := _inode(p)) is not None}
    seen: dict[Path, str] = {}
    for option, path in outputs:
        resolved = Path(path).resolve()
        what = inputs.get(resolved) or by_inode.get(_inode(resolved))
        if what is not None:
            raise SinkError(
                f"{option} {path}: is {what} ({resolved}); an output must not be one of the inputs (it would be "
                "overwritten), choose another path"
            )
        if resolved in seen:
            raise SinkError(f"{option} {path}: is also {seen[resolved]}; give each output a path of its own")
        seen[resolved] = f"{option} {path}"
        folder = resolved.parent
        if not folder.is_dir():
            raise SinkError(f"{option} {path}: folder {folder} does not exist")
        try:
            check_writable_dir(folder, option)
        except OSError as e:
            raise SinkError(str(e)) from None


def _files(root: Path, recursive: bool = False) -> list[Path]:
    if not root.is_dir():
        return []
    entries = root.rglob("*") if recursive else root.iterdir()
    return [p for p in entries if p.is_file()]


def _inode(p: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(p)
    except OSError:
        return None
    return st.st_dev, st.st_ino
