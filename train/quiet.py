"""TensorFlow's start-up chatter kept off the terminal: the project's own lines come first.

Importing TensorFlow, and its first look for devices, print a screenful from C++ straight to file descriptor 2
(absl's "log messages before absl::InitializeLog()", oneDNN notices, "could not find cuda drivers",
"failed call to cuInit"). ``TF_CPP_MIN_LOG_LEVEL`` does not reach absl's early messages, so an environment
variable cannot silence them. ``install()`` adds an import hook that runs TensorFlow's own import, and its
device discovery, with descriptor 2 sent to /dev/null; nothing else is hidden, before or after, and nothing
is imported until something imports TensorFlow. Later C++ INFO and WARNING lines are held back by
``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it). ``SIAMESE_EDGE_VERBOSE=1`` turns both off.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from types import ModuleType

VERBOSE_ENV = "SIAMESE_EDGE_VERBOSE"
QUIET_MODULES = ("tensorflow",)


def verbose() -> bool:
    """True when the user asked for the libraries' own logging (``SIAMESE_EDGE_VERBOSE`` set, not 0/empty)."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Send file descriptor 2 (what C++ libraries write to) to /dev/null for the block, then restore it."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class _QuietLoader(importlib.abc.Loader):
    """Runs the wrapped loader's ``exec_module`` (and TensorFlow's device discovery) with descriptor 2 silenced."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with stderr_to_devnull():
            module.__loader__ = self._loader
            if module.__spec__ is not None:
                module.__spec__.loader = self._loader
            self._loader.exec_module(module)
            config = getattr(module, "config", None)
            if config is not None and hasattr(config, "list_physical_devices"):
                config.list_physical_devices()  # cuInit and the CUDA stub's messages happen here, not at import


class QuietImportFinder(importlib.abc.MetaPathFinder):
    """Finds ``QUIET_MODULES`` through the normal path finders, then loads them through ``_QuietLoader``."""

    def find_spec(self, name: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        if name not in QUIET_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or isinstance(finder, QuietImportFinder):
                continue
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _QuietLoader(spec.loader)
                return spec
        return None


def install() -> None:
    """Put the quiet import hook first on ``sys.meta_path`` (once; not when ``SIAMESE_EDGE_VERBOSE`` is set)."""
    if verbose() or any(isinstance(f, QuietImportFinder) for f in sys.meta_path):
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's later C++ INFO/WARNING lines
    if any(name in sys.modules for name in QUIET_MODULES):
        return  # already imported: whatever it had to say has been said
    sys.meta_path.insert(0, QuietImportFinder())
