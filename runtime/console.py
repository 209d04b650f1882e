"""What every command line prints on errors and warnings: one line each, naming the file, no traceback."""

from __future__ import annotations

import contextlib
import signal
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from runtime import interrupts


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


def _interrupted(how: str, what: str, note: str = "nothing half-written was left") -> int:
    print(f"interrupted ({how}){': ' + what if what else ''}; {note}", file=sys.stderr)
    return EXIT_INTERRUPTED


def run_cli(main: Callable[[], int], debug: bool = False, what: str = "") -> int:
    """Run a command line's body at its boundary: SIGTERM unwinds like Ctrl-C (staging folders are removed by
    their ``finally``), an interrupt is one line and exit 130, and an unexpected exception is one line and exit 70
    (``debug``: its traceback too) instead of a traceback that exits 1, which the commands use for a verdict.
    An interrupt that a library turned into another error, or swallowed, still exits 130."""
    main_thread = _main_thread()
    on_signal = interrupts.on_signal
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)} if main_thread else {}
    unraisable, sys.unraisablehook = sys.unraisablehook, interrupts.on_unraisable
    interrupts.clear()
    try:
        return _run(main, debug, what)
    finally:
        sys.unraisablehook = unraisable
        for s, handler in previous.items():
            signal.signal(s, handler)
        interrupts.clear()  # this run's interrupts end with it: a later publish in the same process is not refused


def _run(main: Callable[[], int], debug: bool, what: str) -> int:
    try:
        code = main()
    except ImportError:
        if interrupts.received():  # a library's import that the interrupt broke (onnxruntime: "initialization failed")
            return _interrupted(interrupts.received(), what)
        raise  # a missing extra: the command's explain_missing_extras says which one to install, in one line
    except KeyboardInterrupt as e:
        return _interrupted("SIGTERM" if isinstance(e, interrupts.Terminated) else "Ctrl-C", what)
    except Exception as e:  # noqa: BLE001 - the boundary: every unexpected error becomes one line and a code
        if interrupts.received():  # the interrupt, turned into another error inside a library
            return _interrupted(interrupts.received(), what)
        if debug:
            traceback.print_exc()
        print(
            f"error: unexpected {type(e).__name__}: {one_line(e)}"
            + ("" if debug else " (run again with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL
    how = interrupts.received()
    if how and code != 0:  # the command's own error line was the interrupt's doing
        return _interrupted(how, what)
    if how:  # swallowed by a library: the command ran to its end (publishing no folder: runtime.interrupts)
        return _interrupted(how, what, "it was received while a library held control; the command finished")
    return code


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
