"""Image sets read straight from a zip (the official Omniglot zips, or a zipped class-folder tree).

Members are decoded from memory: nothing is extracted, so a hostile member name cannot write anywhere.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from train.data.errors import ACCEPTED, DatasetError
from train.data.folders import OMNIGLOT_NAMES, report_layout
from train.data.hashing import sha256_file
from train.data.imageset import ImageSet, build_imageset
from train.data.layout import classify
from train.data.sources import ZipSource, is_image_name, is_junk


def zip_names(path: Path) -> tuple[list[str], list[str]]:
    """File and directory member names of a zip; a ``DatasetError`` naming it when it is not a readable zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable zip file ({e})") from None
    files = [i.filename for i in infos if not i.is_dir()]
    dirs = [i.filename for i in infos if i.is_dir()]
    return files, dirs


def common_root(files: list[str]) -> str:
    """The single top-level folder all image members share (``images_background/``), if stripping it leaves
    class folders; else ``""``."""
    images = [f.split("/") for f in files if is_image_name(f) and not any(is_junk(p) for p in f.split("/"))]
    if not images or any(len(p) < 3 for p in images):
        return ""
    tops = {p[0] for p in images}
    return next(iter(tops)) + "/" if len(tops) == 1 else ""


def open_image_zip(path: str | Path, sha256: str | None = None) -> ImageSet:
    """A zip of ``[<top>/]<class>/<image>`` or ``[<top>/]<group>/<class>/<image>`` -> ``ImageSet``.

    Item ids are ``<zip path>:<member>``. ``sha256`` may be passed when the caller already hashed the file.
    """
    path = Path(path).resolve()
    files, dirs = zip_names(path)
    root = common_root(files)
    rel_files = [f[len(root) :] for f in files if f.startswith(root)]
    rel_dirs = [d[len(root) :] for d in dirs if d.startswith(root)]
    where = f"{path}" + (f":{root}" if root else "")
    if not rel_files:
        raise DatasetError(f"{path}: empty zip; {ACCEPTED}")
    layout = classify(rel_files, rel_dirs, where)
    report_layout(layout, where)
    top = root.rstrip("/") or path.stem
    if top in OMNIGLOT_NAMES and layout.grouped:
        name = f"Omniglot {top} (zip)"
    elif layout.grouped:
        name = f"{path.name} (zip, <group>/<class>/<image>)"
    else:
        name = f"{path.name} (zip, one folder per class)"
    reader = ZipSource(path)
    entries = [(reader.item(root + rel), g, c) for rel, g, c in layout.entries]
    return build_imageset(name, str(path), sha256 or sha256_file(path), entries, reader=reader, grouped=layout.grouped)
