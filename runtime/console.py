"""What every command line prints on errors and warnings: one line each, naming the file, no traceback."""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
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
EXIT_INTERNAL = 70  # an unexpected error: a bug (sysexits' EX_SOFTWARE); the line says how to see the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)
BOUNDARY_EXIT_CODES = f"""  {EXIT_INTERNAL}  an unexpected error (a bug: run again with --debug for the traceback)
  {EXIT_INTERRUPTED} interrupted (Ctrl-C or SIGTERM); nothing half-written is left"""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so ``finally`` blocks remove staging files as for Ctrl-C."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def run_cli(main: Callable[[], int], debug: bool = False, what: str = "") -> int:
    """Run a command line's body at its boundary: SIGTERM unwinds like Ctrl-C (staging folders are removed by
    their ``finally``), an interrupt is one line and exit 130, and an unexpected exception is one line and exit 70
    (``debug``: its traceback too) instead of a traceback that exits 1, which the commands use for a verdict."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if _main_thread() else None
    try:
        return main()
    except ImportError:
        raise  # a missing extra: the command's explain_missing_extras says which one to install, in one line
    except KeyboardInterrupt as e:
        how = "SIGTERM" if isinstance(e, Terminated) else "Ctrl-C"
        print(f"interrupted ({how}){': ' + what if what else ''}; nothing half-written was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # noqa: BLE001 - the boundary: every unexpected error becomes one line and a code
        if debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(e).__name__}: {one_line(e)}"
            + ("" if debug else " (run again with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


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
