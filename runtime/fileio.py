"""File helpers every part uses: atomic writes of files and folders (nothing half-written is ever left behind)
and hashes."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime import interrupts


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it over ``path``, on error remove it.

    The temporary name keeps ``path``'s suffix (or ``suffix``) because some writers
    (Keras, matplotlib, OpenCV) pick the format from it.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or target.suffix, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


@contextlib.contextmanager
def staging_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a new empty folder beside ``path`` (hidden: ``.<name>.partial-XXXX``, on the same file system, so it
    can be renamed to ``path``); whatever of it is still there when the block ends, normally or not, is removed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_RENAME_EXCHANGE = 2  # renameat2(2)'s flag: swap two paths in one atomic step (Linux 3.15+, glibc 2.28+)


def exchange_dirs(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Swap the folders ``a`` and ``b`` with one atomic rename (Linux's renameat2 RENAME_EXCHANGE): at every
    instant each path holds one whole folder. False where the system or file system cannot (then nothing moved)."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_cwd = -100
    if renameat2(at_cwd, os.fsencode(a), at_cwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # not on this file system: the caller falls back to two renames
    raise OSError(err, os.strerror(err), os.fspath(b))


def replace_dir(src: str | os.PathLike, target: str | os.PathLike, aside: str | os.PathLike | None = None) -> None:
    """Rename the folder ``src`` to ``target`` so that ``target`` holds the old or the new contents, never a mix and
    never neither. An existing ``target`` is swapped with ``src`` in one atomic step where the system can
    (``exchange_dirs``), the old contents then removed from ``src``; elsewhere it is first renamed into a new hidden
    folder in ``aside`` (default: beside ``target``; same file system) and put back if the second rename fails.
    After an interrupt, even one a library swallowed, nothing is renamed: the interrupt is raised again
    (``runtime.interrupts``), so the caller's staging folder is removed and ``target`` stays as it was."""
    src, target = Path(src), Path(target)
    interrupts.raise_if_received(f"publishing {target}")
    if not target.exists():
        os.replace(src, target)
        return
    if exchange_dirs(src, target):
        _remove(src)  # now the old contents
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=aside if aside is not None else target.parent))
    parked = old / target.name
    try:
        os.replace(target, parked)
        os.replace(src, target)
    except BaseException:
        if not target.exists() and parked.exists():
            os.replace(parked, target)
        raise
    finally:
        if target.exists():  # else the old contents stay parked in ``old``: never removed while they are the only copy
            shutil.rmtree(old, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """The folder counterpart of ``atomic_path``: yield a staging folder beside ``path``; on success it becomes
    ``path`` with one rename (replacing an existing ``path`` whole, see ``replace_dir``), on error it is removed and
    ``path`` is left as it was."""
    with staging_dir(path) as tmp:
        yield tmp
        replace_dir(tmp, path)


def plain_name(name: str, option: str) -> str:
    """``name`` when it names one entry of a folder (no separator, not ``.``/``..``, not hidden); else ValueError
    naming ``option``: a name is not a path, so an output never lands outside the folder it was given."""
    bad = (
        not name
        or name in (".", "..")
        or name.startswith(".")
        or any(sep in name for sep in ("/", "\\", os.sep))
        or "\x00" in name
    )
    if bad:
        raise ValueError(f"{option} {name!r}: expected a plain name (letters, digits, '-', '_', '.'; no folders)")
    return name


def check_replaceable(target: str | os.PathLike, markers: tuple[str, ...], what: str) -> None:
    """Before ``--force`` replaces ``target``: it must be a folder this project wrote, i.e. one holding one of
    ``markers`` (a manifest, a model card, a gallery). Anything else is the user's and is never deleted."""
    t = Path(target)
    if not t.exists() and not t.is_symlink():
        return
    if t.is_symlink() or not t.is_dir():
        raise FileExistsError(
            f"{t}: exists and is not a {what} folder; --force replaces only a {what}, choose another name"
        )
    if not any((t / m).is_file() for m in markers):
        raise FileExistsError(
            f"{t}: exists and is not a {what} (it has no {' or '.join(markers)}); --force replaces only what this "
            "project wrote: move it away or choose another name"
        )


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, exclusive: bool = True, wait: bool = True) -> Iterator[None]:
    """An advisory lock on ``folder`` (flock on the folder itself, so no lock file is left behind): exclusive for a
    writer, shared for a reader. ``wait=False``: BlockingIOError at once when another process holds it. Where flock
    does not exist (not POSIX) it is a no-op."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        fcntl.flock(fd, mode if wait else mode | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def check_writable_dir(path: str | os.PathLike, option: str) -> Path:
    """Create ``path`` if needed and make sure a file can be written there, before a long run whose results
    would otherwise be lost at the end; OSError naming ``option`` when not."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OSError(f"{option} {p}: cannot write there ({e.strerror or e})") from None
    return p


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False, default=json_default) + "\n")


def json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_json(path: str | os.PathLike, error: type[Exception], missing: str) -> Any:
    """Parse a JSON file, or raise ``error`` naming it: ``"<path>: <missing>"`` when absent, else why it is bad."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{p}: {missing}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{p}: not valid JSON ({e})") from None
