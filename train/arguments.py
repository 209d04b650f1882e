"""Numeric command-line arguments checked where they enter: a value outside its range is argparse's one-line
error (exit 2) naming the option, the value and the range, before anything is trained or written."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from runtime.console import BOUNDARY_EXIT_CODES


def exit_codes(*extra: str) -> str:
    """The ``exit codes:`` block every training-side ``--help`` ends with; ``extra``: lines of the command's own."""
    lines = ["  0  done", *extra, "  2  bad input (arguments, data, model file, output folder: one line naming it)"]
    return "\n".join(["exit codes:", *lines, BOUNDARY_EXIT_CODES])


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="print the traceback of an unexpected error")


def bounded(
    kind: type,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], int | float]:
    """An argparse ``type`` (argparse names the option in its message): ``kind`` (int or float) parsed from the
    text, finite, within ``low``/``high`` (inclusive unless ``low_open``/``high_open``); else the range it expects."""
    expected = _describe(kind, low, high, low_open, high_open)

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}") from None
        ok = math.isfinite(value)
        ok = ok and (low is None or (value > low if low_open else value >= low))
        ok = ok and (high is None or (value < high if high_open else value <= high))
        if not ok:
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its own messages
    return parse


def _describe(kind: type, low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    what = "an integer" if kind is int else "a finite number"
    if low is not None and high is not None:
        return f"{what} in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{what} {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{what} {'<' if high_open else '<='} {high:g}"
    return what
