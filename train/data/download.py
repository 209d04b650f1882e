"""Fetching and unpacking archives safely: atomic downloads, SHA256SUMS checks, extraction confined to a folder."""

from __future__ import annotations

import os
import re
import shutil
import stat
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from runtime.fileio import atomic_path
from train.data.errors import DatasetError
from train.data.hashing import sha256_file

CHUNK = 1 << 16
SUMS_FILE = "SHA256SUMS"


def cache_root() -> Path:
    """The project's cache: ``$SIAMESE_EDGE_CACHE`` when set, else ``~/.cache/siamese-edge``."""
    env = os.environ.get("SIAMESE_EDGE_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "siamese-edge"


def download_file(
    url: str,
    dest: str | Path,
    *,
    progress: bool = True,
    timeout: float = 60.0,
    check: Callable[[Path], None] | None = None,
) -> Path:
    """Download ``url`` to ``dest`` through a temp file in the same folder, renamed only when complete.

    A half-finished or failed download never sits under the final name. ``check(tmp_path)`` runs before the
    rename (e.g. a hash or count check) and may raise to reject the file. ``file://`` URLs work too.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(dest, suffix=".part") as tmp:
            request = urllib.request.Request(url, headers={"User-Agent": "siamese-edge"})
            with open(tmp, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                written = 0
                with tqdm(
                    total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name, disable=not progress
                ) as bar:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        written += len(chunk)
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
            if total is not None and written != total:
                raise DatasetError(f"{url}: download truncated ({written} of {total} bytes)")
            if check is not None:
                check(tmp)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise DatasetError(f"{url}: download failed ({reason})") from None
    return dest


def read_sums(sums: Path) -> dict[str, str]:
    """``SHA256SUMS`` lines (``<hex>  <name>`` or ``<hex> *<name>``) -> {name: hex}."""
    out: dict[str, str] = {}
    for n, line in enumerate(sums.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([0-9a-fA-F]{64})\s+\*?(.+)", line)
        if not m:
            raise DatasetError(f"{sums}:{n}: not a sha256sum line: {line!r}")
        out[Path(m.group(2).strip()).name] = m.group(1).lower()
    return out


def verify_sha256sums(
    path: str | Path, *, name: str | None = None, sums_dir: str | Path | None = None, digest: str | None = None
) -> bool | None:
    """Check ``path`` against the ``SHA256SUMS`` beside it (or in ``sums_dir``), looked up by ``name``.

    Returns True when verified, None when there is no ``SHA256SUMS`` or it does not list the file;
    raises ``DatasetError`` naming the file, the expected and the actual hash on a mismatch.
    """
    path = Path(path)
    name = name or path.name
    sums = Path(sums_dir or path.parent) / SUMS_FILE
    if not sums.is_file():
        return None
    expected = read_sums(sums).get(name)
    if expected is None:
        return None
    actual = digest or sha256_file(path)
    if actual != expected:
        raise DatasetError(
            f"{path}: sha256 {actual} does not match {expected} listed in {sums}; the file is corrupt or was "
            "modified: delete it and download it again"
        )
    return True


def _member_target(target: Path, zip_path: Path, info: zipfile.ZipInfo) -> Path | None:
    """Where a member may be written inside ``target``, or a ``DatasetError`` for anything that could escape."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise DatasetError(f"{zip_path}: member {info.filename!r} has an absolute path; refusing to extract")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(f"{zip_path}: member {info.filename!r} points outside the target (..); refusing to extract")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DatasetError(f"{zip_path}: member {info.filename!r} is a symbolic link; refusing to extract")
    if mode and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) and stat.S_IFMT(mode):
        raise DatasetError(f"{zip_path}: member {info.filename!r} is not a regular file; refusing to extract")
    if not parts:
        return None
    dest = target.joinpath(*parts)
    if not dest.resolve().is_relative_to(target):
        raise DatasetError(f"{zip_path}: member {info.filename!r} resolves outside {target}; refusing to extract")
    return dest


def safe_extract(zip_path: str | Path, target: str | Path) -> Path:
    """Extract a zip into ``target`` only: every member is checked first (no absolute paths, no ``..``,
    no symbolic links), so a hostile archive is refused before anything is written."""
    zip_path, target = Path(zip_path), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        with zipfile.ZipFile(zip_path) as zf:
            plan = [(info, _member_target(target, zip_path, info)) for info in zf.infolist()]
            for info, dest in plan:
                if dest is None:
                    continue
                if info.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.parent.resolve().is_relative_to(target):  # a symlinked folder already in target
                    raise DatasetError(f"{zip_path}: {info.filename!r} would be written outside {target}")
                with zf.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
    except (zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{zip_path}: not a readable zip file ({e})") from None
    return target
