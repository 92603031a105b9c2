"""Reading a bulk-import CSV file: per-row errors, bounded lines and cells, never a traceback.

The file is UTF-8 (a leading BOM is allowed) with a header row. Rules:

- One record per line. Stored text never holds a line break, so a quoted
  cell may not span lines: an unterminated quote is an error of that line
  alone, and the next line is read afresh (nothing is swallowed).
- A line over :data:`MAX_LINE_BYTES` or a cell over :data:`MAX_CELL_CHARS` is
  an error of that line; the rest of the line is skipped without being held.
- A line that is not valid UTF-8 is an error of that line, naming the byte.
- A line with more or fewer cells than the header is an error of that line
  (an unquoted comma in a name shifts every later column).
- Row numbers are line numbers (the header is line 1); blank lines are skipped.

:func:`csv_records` reads the file a row at a time (a bulk import of millions of
rows holds one call's rows); :func:`read_csv` reads it whole, for small files.

Cells are trimmed of spaces only: any other control character reaches the
service, which refuses it naming the field (``headend.text``).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from headend.rpc import from_timestamp, to_timestamp
from protos import subscriber_pb2 as pb

CHINA = timezone(timedelta(hours=8))
MAX_LINE_BYTES = 16 * 1024
MAX_CELL_CHARS = 4 * 1024
COLUMNS = (
    "subscriber_id",
    "display_name",
    "region_code",
    "status",
    "service_end",
    "max_streams",
    "contact_phone",
    "contact_email",
    "mac",
    "serial",
    "model",
    "packages",
    "entitled_from",
    "entitled_until",
)
REQUIRED = ("subscriber_id", "display_name", "region_code")
STATUS = {
    "": pb.SUBSCRIBER_STATUS_UNSPECIFIED,
    "active": pb.SUBSCRIBER_STATUS_ACTIVE,
    "suspended": pb.SUBSCRIBER_STATUS_SUSPENDED,
    "terminated": pb.SUBSCRIBER_STATUS_TERMINATED,
}
_BOM = b"\xef\xbb\xbf"
_COUNT = re.compile(r"[0-9]{1,9}")


class CsvError(ValueError):
    """Raised when a CSV line or cell cannot be read; names the column (or ``line``/``header``)."""

    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CsvReport:
    """Rows read from a CSV file and the lines or cells that could not be read."""

    rows: tuple[pb.ImportRow, ...]
    errors: tuple[pb.RowError, ...]


def parse_moment(text: str, column: str, *, end_of_day: bool) -> datetime | None:
    """A date (China time; ``end_of_day`` = the next midnight) or an ISO time with offset."""
    text = text.strip(" ")
    if not text:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if end_of_day:
                day += timedelta(days=1)
            moment = datetime.combine(day, time(), CHINA)
        else:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError) as err:
        raise CsvError(column, f"not a date or ISO time: {text[:40]!r}") from err
    if moment.tzinfo is None:
        raise CsvError(column, "needs a UTC offset, e.g. 2027-01-01T00:00:00+08:00")
    try:
        from_timestamp(to_timestamp(moment))  # refuses what the wire format cannot carry
    except (ValueError, OverflowError) as err:
        raise CsvError(column, "out of range (0001-01-01..9999-12-31)") from err
    return moment


def csv_row(line: int, cells: dict[str, str]) -> pb.ImportRow:
    """One CSV record as an import row (raises ``CsvError`` for unreadable cells)."""

    def cell(name: str) -> str:
        return (cells.get(name) or "").strip(" ")

    status = cell("status").lower()
    if status not in STATUS:
        raise CsvError("status", "must be active, suspended or terminated")
    streams = cell("max_streams")
    if streams and not _COUNT.fullmatch(streams):
        raise CsvError("max_streams", "not a whole number (at most 9 digits)")
    row = pb.ImportRow(
        row=line,
        subscriber_id=cell("subscriber_id"),
        display_name=cell("display_name"),
        region_code=cell("region_code"),
        status=STATUS[status],
        max_streams=int(streams or 0),
        contact_phone=cell("contact_phone"),
        contact_email=cell("contact_email"),
        mac=cell("mac"),
        serial=cell("serial"),
        model=cell("model"),
        package_ids=[p.strip(" ") for p in cell("packages").split(";") if p.strip(" ")],
    )
    for name, end in (("service_end", True), ("entitled_from", False), ("entitled_until", True)):
        moment = parse_moment(cell(name), name, end_of_day=end)
        if moment is not None:
            getattr(row, name).FromDatetime(moment)
    return row


def numbered_lines(handle: BinaryIO) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes without the line end), or None for a line over the bound."""
    number = 0
    while chunk := handle.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(chunk) > MAX_LINE_BYTES and not chunk.endswith(b"\n"):
            while (rest := handle.readline(MAX_LINE_BYTES + 1)) and not rest.endswith(b"\n"):
                pass  # skip the rest of the over-long line without keeping it
            yield number, None
            continue
        if number == 1:
            chunk = chunk.removeprefix(_BOM)
        yield number, chunk.removesuffix(b"\n").removesuffix(b"\r")


def _cells(raw: bytes | None) -> list[str]:
    """One line's cells (raises ``CsvError`` naming ``line``)."""
    if raw is None:
        raise CsvError("line", f"longer than {MAX_LINE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CsvError("line", f"not valid UTF-8 (byte {err.start + 1})") from err
    try:
        cells = next(csv.reader([text], strict=True), [])
    except csv.Error as err:
        if "unexpected end of data" in str(err):
            raise CsvError("line", "unterminated quote (a quoted cell ends on its line)") from err
        raise CsvError("line", f"malformed CSV: {err}") from err
    return cells


def _header(lines: Iterator[tuple[int, bytes | None]]) -> list[str]:
    for _, raw in lines:
        if raw is None or raw.strip():
            try:
                header = [h.strip(" ") for h in _cells(raw)]
            except CsvError as err:
                raise CsvError("header", err.reason) from err
            break
    else:
        raise CsvError("header", "the file is empty")
    unknown = sorted(set(header) - set(COLUMNS))
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise CsvError("header", f"unknown columns {unknown} / missing columns {missing}")
    duplicated = sorted({h for h in header if header.count(h) > 1})
    if duplicated:
        raise CsvError("header", f"columns named twice: {duplicated}")
    return header


def _record(header: list[str], raw: bytes | None) -> dict[str, str]:
    cells = _cells(raw)
    if len(cells) != len(header):
        raise CsvError("line", f"{len(cells)} cells; the header has {len(header)}")
    for name, value in zip(header, cells, strict=True):
        if len(value) > MAX_CELL_CHARS:
            raise CsvError(name, f"longer than {MAX_CELL_CHARS} characters")
    return dict(zip(header, cells, strict=True))


def csv_records(handle: BinaryIO) -> Iterator[pb.ImportRow | pb.RowError]:
    """The rows of an open import file, one at a time (memory stays flat whatever its size):
    each a row or the error of its line. Reads the header at once: ``CsvError`` for it here."""
    lines = numbered_lines(handle)
    header = _header(lines)
    return _rows(header, lines)


def _rows(
    header: list[str], lines: Iterator[tuple[int, bytes | None]]
) -> Iterator[pb.ImportRow | pb.RowError]:
    for number, raw in lines:
        if raw is not None and not raw.strip():
            continue
        try:
            yield csv_row(number, _record(header, raw))
        except CsvError as err:
            yield pb.RowError(row=number, field=err.column, error=err.reason)


def read_csv(path: Path) -> CsvReport:
    """Read and check a whole import file: per-line errors; ``CsvError`` only for the header."""
    with path.open("rb") as handle:
        records = list(csv_records(handle))
    return CsvReport(
        tuple(r for r in records if isinstance(r, pb.ImportRow)),
        tuple(r for r in records if isinstance(r, pb.RowError)),
    )
