"""Viewing rows as CSV for settlement between broadcasters and carriers: one header line,
then a row per bucket and key, times in ISO 8601 UTC. ``headend reports viewing --csv``
and the console's download both write through :func:`write_csv`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import IO

from subscriber.reports.domain import ViewingRow

COLUMNS = ("bucket_start", "key", "watch_seconds", "unique_boxes", "peak_concurrency")


def write_csv(rows: Iterable[ViewingRow], out: IO[str]) -> None:
    """Write ``rows`` to ``out`` as CSV under :data:`COLUMNS`."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.bucket_start.isoformat().replace("+00:00", "Z"),
                row.key,
                row.watch_seconds,
                row.unique_boxes,
                row.peak_concurrency,
            )
        )


def csv_text(rows: Iterable[ViewingRow]) -> str:
    """``rows`` as one CSV document."""
    out = io.StringIO()
    write_csv(rows, out)
    return out.getvalue()
