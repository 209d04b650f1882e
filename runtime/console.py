"""What every command line prints on errors and warnings: one line each, naming the file, no traceback."""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any


def one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {one_line(message)}", file=sys.stderr)


@contextlib.contextmanager
def quiet_opencv() -> Iterator[None]:
    """OpenCV logs its own lines for a corrupt file; the CLI's one error line names it, so silence them."""
    try:
        from cv2.utils import logging as cvlog

        before = cvlog.getLogLevel()
        cvlog.setLogLevel(cvlog.LOG_LEVEL_SILENT)
    except (ImportError, AttributeError):
        yield
        return
    try:
        yield
    finally:
        cvlog.setLogLevel(before)


@contextlib.contextmanager
def cli_warnings() -> Iterator[None]:
    """Warnings as single ``warning: ...`` lines on stderr, OpenCV's own logging silenced."""
    with warnings.catch_warnings(), quiet_opencv():
        warnings.simplefilter("always")
        warnings.showwarning = show_warning
        yield


EXIT_INPUT, EXIT_BACKEND = 2, 3  # shared by every runtime-side command line (runtime.verify, camera)


class CliError(Exception):
    """A command line's one-line error and its exit code."""

    def __init__(self, code: int, message: str):
        super().__init__(one_line(message))
        self.code = code


def load_verifier(bundle: str, backend: str = "auto", precision: str | None = None, threads: int | None = None):
    """``runtime.load`` for a command line: a bad bundle is exit 2, a backend that cannot run here exit 3."""
    from runtime.bundle.layout import BundleError
    from runtime.select import BackendUnavailable
    from runtime.verifier import load

    try:
        return load(bundle, backend=backend, precision=precision, threads=threads)
    except BundleError as e:
        raise CliError(EXIT_INPUT, str(e)) from None
    except BackendUnavailable as e:
        raise CliError(EXIT_BACKEND, str(e)) from None
