"""The interrupts a command received, kept where a library cannot lose them.

``runtime.console.run_cli`` turns SIGTERM and Ctrl-C into exceptions raised wherever the process is, so ``finally``
blocks remove staging folders. Inside a library (TensorFlow's tracing, tf2onnx) that exception can be turned into
another error or swallowed, and the command then runs on to its end. The signal is also noted here, so that

* the command line still exits 130 (``run_cli`` reads ``received``), and
* no folder is published after it (``runtime.fileio.replace_dir`` calls ``raise_if_received`` before it renames):
  a bundle, training run or repository staged while an interrupt was lost is removed with its staging folder,
  never made to look finished.

Where a library is known to mangle it (tf2onnx's tracing printed TensorFlow's SystemError traceback; an
``import onnxruntime`` it hit failed with "initialization failed"), the code runs under ``deferred``: the
interrupt is only noted there, and raised when that step returns. An interrupt raised where Python cannot let it
propagate (a ``__del__``, a weakref callback), which it would print and drop, is kept quiet and noted
(``on_unraisable``).
"""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

_deferring = 0  # how many ``deferred`` blocks the main thread is in
_received: list[str] = []  # "SIGTERM" / "Ctrl-C", in the order they came, since the last ``clear``


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so ``finally`` blocks remove staging files as for Ctrl-C."""


def on_signal(signum: int, frame: FrameType | None) -> None:
    """The handler ``run_cli`` installs for SIGTERM and SIGINT: note the signal, then raise it where the process is
    (inside ``deferred``: when the block ends)."""
    _received.append("SIGTERM" if signum == signal.SIGTERM else "Ctrl-C")
    if _deferring:
        return
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def on_unraisable(unraisable: Any) -> None:
    """``sys.unraisablehook`` while ``run_cli`` runs: Python prints an exception raised where it cannot propagate
    (a ``__del__``, a weakref callback: TensorFlow runs them at any allocation) and drops it. An interrupt that met
    that fate is not printed: it stays noted, and is raised at the next ``raise_if_received`` (before a folder is
    published, at the end of a ``deferred`` step) or turns the exit into 130. Anything else goes to the usual hook."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt) and received():
        return
    sys.__unraisablehook__(unraisable)


def received() -> str | None:
    """The first interrupt received since ``clear`` ("SIGTERM" or "Ctrl-C"), or None."""
    return _received[0] if _received else None


def clear() -> None:
    _received.clear()


def raise_if_received(what: str) -> None:
    """Raise the interrupt again (Terminated or KeyboardInterrupt) if one was received, even if a library swallowed
    it: called before ``what`` (e.g. publishing a folder) is done."""
    how = received()
    if how == "SIGTERM":
        raise Terminated(f"SIGTERM received before {what}")
    if how is not None:
        raise KeyboardInterrupt(f"Ctrl-C received before {what}")


@contextlib.contextmanager
def deferred(what: str) -> Iterator[None]:
    """Run a library step that cannot take an exception raised inside it: an interrupt received meanwhile is
    raised when the step returns (``what`` names the step in the exception)."""
    global _deferring
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
    raise_if_received(f"the end of {what}")
