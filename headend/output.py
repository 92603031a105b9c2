"""How a ``headend`` command prints what it read: ``--output table|json|csv``, one rule.

A command hands :func:`emit` its rows as mappings and the columns a person wants to
see; ``table`` aligns those columns under an upper-case header (for reading),
``json`` prints every row whole as one JSON array (for programs: nothing is cut),
``csv`` prints those columns with a header row (for spreadsheets and ``import``).
JSON and CSV stream, a row at a time, so an export of millions of rows stays flat in
memory; a table has to see every row to size its columns, and sizes them by display
width (a Chinese character takes two terminal cells) so channel names still align.
Values print the same way in all three: times as ISO 8601 with their offset, lists
joined by commas in table and CSV, booleans as ``true``/``false``, absent as empty.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import IO, Any

OUTPUTS = ("table", "json", "csv")
_GAP = "  "


def add_output(parser: argparse.ArgumentParser) -> None:
    """``-o/--output table|json|csv`` on a command that prints results."""
    parser.add_argument(
        "-o",
        "--output",
        choices=OUTPUTS,
        default="table",
        help="table for people, json for programs (every field), csv for spreadsheets "
        "(default: table)",
    )


def plain(value: Any) -> Any:
    """A value as JSON carries it: times in ISO 8601, enums by value, tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return plain(value.value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return value


def cell(value: Any) -> str:
    """A value in one table or CSV cell."""
    value = plain(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return " ".join(str(value).split())  # one line per row, whatever the text holds


def width(text: str) -> int:
    """How many terminal cells ``text`` takes: wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, cells: int) -> str:
    return text + " " * (cells - width(text))


def emit(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    fmt: str,
    *,
    out: IO[str] | None = None,
) -> None:
    """Print ``rows`` as ``fmt`` says (``columns`` for table and CSV; JSON keeps every key)."""
    out = out or sys.stdout
    if fmt == "json":
        out.write("[")
        separator = "\n"
        for row in rows:  # one object a line: valid JSON, written as the rows arrive
            out.write(separator + json.dumps(plain(dict(row)), ensure_ascii=False))
            separator = ",\n"
        out.write("\n]\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([cell(row.get(c)) for c in columns])
    elif fmt == "table":
        cells = [[cell(row.get(c)) for c in columns] for row in rows]
        header = [c.upper() for c in columns]
        widths = [max(map(width, column)) for column in zip(header, *cells, strict=True)]
        for line in (header, *cells):
            out.write(_GAP.join(_pad(t, w) for t, w in zip(line, widths, strict=True)).rstrip())
            out.write("\n")
    else:
        raise ValueError(f"unknown output format {fmt!r} (one of {', '.join(OUTPUTS)})")
