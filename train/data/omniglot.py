"""Omniglot (Lake et al., MIT license): where to find it, fetching the official zips, checking they are whole.

Lookup order for ``open_omniglot``: an explicit ``data`` path (``--data``), ``$SIAMESE_EDGE_OMNIGLOT``,
the repository's ``../shared/data/omniglot`` (development and CI), else the cache, downloading if missing.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

from train.data.download import cache_root, download_file, safe_extract, verify_sha256sums
from train.data.errors import DatasetError, DatasetWarning
from train.data.folders import open_image_folder, scan_tree
from train.data.hashing import sha256_file
from train.data.imageset import ImageSet
from train.data.layout import classify
from train.data.zips import common_root, open_image_zip, zip_names

ENV_DATA = "SIAMESE_EDGE_OMNIGLOT"
SPLITS = ("background", "evaluation")
URL = "https://github.com/brendenlake/omniglot/raw/master/python/images_{split}.zip"
# (alphabets, characters, images) of the official zips
COUNTS = {"background": (30, 964, 19280), "evaluation": (20, 659, 13180)}
REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared" / "data" / "omniglot"


def check_split(split: str) -> str:
    split = split.removeprefix("images_")
    if split not in SPLITS:
        raise DatasetError(f"Omniglot split {split!r}: expected one of {SPLITS}")
    return split


def cache_dir() -> Path:
    """Where downloads go: ``<cache root>/omniglot`` (``$SIAMESE_EDGE_CACHE`` or ``~/.cache/siamese-edge``)."""
    return cache_root() / "omniglot"


def omniglot_dir_default() -> Path | None:
    """The local copy to use: ``$SIAMESE_EDGE_OMNIGLOT``, else ``<repo>/../shared/data/omniglot`` if it exists.

    None when neither is there (callers then use the download cache). An environment variable pointing at
    something that is not a directory is an error rather than a silent download.
    """
    env = os.environ.get(ENV_DATA)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DatasetError(
                f"{ENV_DATA}={env}: not a directory; expected a folder holding images_background.zip / "
                "images_evaluation.zip or the extracted images_background/ and images_evaluation/ folders"
            )
        return path
    return SHARED_DIR if SHARED_DIR.is_dir() else None


def find_split(directory: str | Path, split: str) -> Path | None:
    """``images_<split>.zip`` in ``directory``, else the extracted ``images_<split>/`` folder, else None."""
    directory = Path(directory)
    for candidate in (directory / f"images_{split}.zip", directory / f"images_{split}"):
        if candidate.is_file() if candidate.suffix == ".zip" else candidate.is_dir():
            return candidate
    return None


def count_tree(path: str | Path) -> tuple[int, int, int]:
    """(alphabets, characters, images) of an Omniglot zip or folder from its names alone, nothing decoded."""
    path = Path(path)
    if path.is_dir():
        files, dirs = scan_tree(path)
    else:
        files, dirs = zip_names(path)
        root = common_root(files)
        files = [f[len(root) :] for f in files if f.startswith(root)]
        dirs = [d[len(root) :] for d in dirs if d.startswith(root)]
    entries = classify(files, dirs, str(path)).entries
    return len({g for _, g, _ in entries}), len({(g, c) for _, g, c in entries}), len(entries)


def check_counts(path: str | Path, split: str, counts: tuple[int, int, int] | None = None, strict: bool = True) -> None:
    """Compare with the official counts; raise (``strict``) or warn naming the path and both counts."""
    got = counts or count_tree(path)
    want = COUNTS[split]
    if got != want:
        msg = (
            f"{path}: Omniglot {split} has {got[0]} alphabets, {got[1]} characters, {got[2]} images; the official "
            f"zip has {want[0]}, {want[1]}, {want[2]} (incomplete or modified copy)"
        )
        if strict:
            raise DatasetError(msg)
        warnings.warn(msg, DatasetWarning, stacklevel=3)


def _check_download(split: str, name: str, sums_dir: Path, url: str):
    def check(tmp: Path) -> None:
        try:
            with zipfile.ZipFile(tmp) as zf:
                bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise DatasetError(f"{name}: downloaded file is not a readable zip ({e})") from None
        if bad is not None:
            raise DatasetError(f"{name}: downloaded zip has a corrupt member {bad!r}")
        verify_sha256sums(tmp, name=name, sums_dir=sums_dir)
        check_counts(f"{name} downloaded from {url}", split, counts=count_tree(tmp))

    return check


def fetch_omniglot(
    split: str = "background",
    *,
    cache: str | Path | None = None,
    extract: bool = False,
    progress: bool = True,
    url: str | None = None,
) -> Path:
    """The official ``images_<split>.zip`` in the cache, downloaded if missing (checked before it is kept:
    a readable zip, ``SHA256SUMS`` in the cache folder if one is there, the official counts).

    With ``extract`` also unpack it safely beside the zip and return the ``images_<split>/`` folder.
    ``url`` replaces the official address (a mirror, or a ``file://`` copy).
    """
    split = check_split(split)
    cache = Path(cache) if cache is not None else cache_dir()
    zip_path = cache / f"images_{split}.zip"
    if not zip_path.is_file():
        url = url or URL.format(split=split)
        download_file(url, zip_path, progress=progress, check=_check_download(split, zip_path.name, cache, url))
    else:
        verify_sha256sums(zip_path)
    if not extract:
        return zip_path
    folder = cache / f"images_{split}"
    if folder.is_dir():
        try:
            check_counts(folder, split)
            return folder
        except DatasetError:
            pass  # partial earlier extraction: extract again over it
    safe_extract(zip_path, cache)
    check_counts(folder, split)
    return folder


def open_omniglot_path(path: str | Path) -> ImageSet:
    """An Omniglot zip or folder -> ``ImageSet``; zips are checked against a ``SHA256SUMS`` beside them, and
    copies named like an official split are compared with its counts (a warning when they differ)."""
    path = Path(path)
    if path.is_dir():
        ds = open_image_folder(path)
    else:
        digest = sha256_file(path) if path.is_file() else None
        if digest is not None:
            verify_sha256sums(path, digest=digest)
        ds = open_image_zip(path, sha256=digest)
    split = path.stem.removeprefix("images_")
    if path.stem.startswith("images_") and split in COUNTS:
        d = ds.describe()
        check_counts(path, split, counts=(d["groups"], d["classes"], d["images"]), strict=False)
    return ds


def open_omniglot(split: str = "background", *, data: str | Path | None = None, progress: bool = True) -> ImageSet:
    """Omniglot ``split`` from ``data`` (a folder with the zips or extracted folders, or a zip), the local
    copy (``omniglot_dir_default``), or the download cache."""
    split = check_split(split)
    directory = Path(data) if data is not None else omniglot_dir_default()
    if directory is not None:
        if directory.is_file():
            return open_omniglot_path(directory)
        found = find_split(directory, split)
        if found is None:
            raise DatasetError(
                f"{directory}: holds neither images_{split}.zip nor an images_{split}/ folder "
                f"(set {ENV_DATA} to a folder that does, or unset it to download into {cache_dir()})"
            )
        return open_omniglot_path(found)
    return open_omniglot_path(fetch_omniglot(split, progress=progress))
