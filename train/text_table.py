"""Plain-text tables for the benchmarks' reports: a header, a rule, one formatted line per row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Column = tuple[str, int, Callable[[dict[str, Any]], str]]  # title, width (negative: left-aligned), cell


def text_table(columns: Sequence[Column], rows: Sequence[dict[str, Any]]) -> list[str]:
    """Lines of a table: each column's title and cells padded to its width (left-aligned when negative)."""

    def pad(text: str, width: int) -> str:
        return text.ljust(-width) if width < 0 else text.rjust(width)

    header = " ".join(pad(title, width) for title, width, _ in columns)
    return [header, "-" * len(header), *(" ".join(pad(cell(r), w) for _, w, cell in columns) for r in rows)]
