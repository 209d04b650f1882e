"""Fault injection for the reliability tests: every write under a folder (a file opened for writing, a file or
folder created, a rename, the folder swap of runtime.fileio) is an event, counted; ``Faults(root, fail_at=k)``
raises at the k-th, as a kill (SIGTERM becomes KeyboardInterrupt at the CLI boundary) or a full disk would
interrupt the writer there. The writer under test runs for real; only the moment it dies is chosen."""

from __future__ import annotations

import builtins
import io
import os
from pathlib import Path

import pytest

import runtime.fileio

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class Killed(KeyboardInterrupt):
    """What the injected fault raises by default: SIGTERM and Ctrl-C reach the writer as a KeyboardInterrupt."""


class Faults:
    """Patch the write primitives while active (a context manager); ``events`` lists what was written under
    ``root``, in order, as ``"kind path"``; ``fail_at`` (1-based) is the event that raises ``exc`` instead."""

    def __init__(self, root: str | os.PathLike, fail_at: int | None = None, exc: type[BaseException] = Killed):
        self.root = os.path.abspath(root)
        self.fail_at = fail_at
        self.exc = exc
        self.events: list[str] = []
        self._mp = pytest.MonkeyPatch()

    def _under(self, path) -> bool:
        if isinstance(path, int):
            return False
        p = os.path.abspath(os.fsdecode(os.fspath(path)))
        return p == self.root or p.startswith(self.root + os.sep)

    def _event(self, kind: str, *paths) -> None:
        if not any(self._under(p) for p in paths):
            return
        self.events.append(f"{kind} {os.fspath(paths[-1])}")
        if len(self.events) == self.fail_at:
            raise self.exc(f"injected fault at write {self.fail_at}: {self.events[-1]}")

    def __enter__(self) -> Faults:
        real_open, real_os_open = builtins.open, os.open

        def open_(file, mode="r", *a, **kw):
            if any(c in mode for c in "wax+"):
                self._event("open", file)
            return real_open(file, mode, *a, **kw)

        def os_open(path, flags, *a, **kw):
            if flags & _WRITE_FLAGS and kw.get("dir_fd") is None:
                self._event("create", path)
            return real_os_open(path, flags, *a, **kw)

        def wrap(kind: str, real):
            def call(*a, **kw):
                self._event(kind, *[x for x in a if not isinstance(x, int)])
                return real(*a, **kw)

            return call

        self._mp.setattr(builtins, "open", open_)
        self._mp.setattr(io, "open", open_)
        self._mp.setattr(os, "open", os_open)
        for name in ("replace", "rename", "mkdir", "link", "symlink"):
            self._mp.setattr(os, name, wrap(name, getattr(os, name)))
        self._mp.setattr(runtime.fileio, "exchange_dirs", wrap("exchange", runtime.fileio.exchange_dirs))
        return self

    def __exit__(self, *exc) -> None:
        self._mp.undo()


def hidden_entries(folder: Path) -> list[str]:
    """What a writer left behind in ``folder``: its hidden staging and aside entries."""
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))
