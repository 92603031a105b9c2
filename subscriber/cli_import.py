"""``headend subscribers import``: stream a CSV file to the service, check it, keep the rejects.

The file is read a row at a time (:func:`subscriber.importfile.csv_records`) and
sent in calls of ``--rows-per-call``, so memory stays flat however many rows it
holds: one call's rows, plus the refused rows' errors for the report.

``--dry-run`` sends nothing: it checks every row as the service would, with the
service's own rule (:func:`subscriber.domain.validate_import_row`) against the
catalogue read from the service, and reports what would be refused. It cannot see
what only the stored data decides (a MAC bound to another subscriber, a terminated
account): those are reported by the real import.

``--rejects FILE`` writes every refused row as CSV: its line number, field and
error, and the line as it stood in the file, ready to fix and send again.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from headend.clitools import CliError
from headend.errors import InvalidArgument
from headend.output import emit
from protos import subscriber_pb2 as pb
from subscriber import convert, domain
from subscriber.cli_common import AddCommand, Context
from subscriber.client import SubscriberClient
from subscriber.domain import ImportRow, ImportSummary, Package, RowError
from subscriber.importfile import CsvError, csv_records, numbered_lines
from subscriber.settings import SubscriberSettings

REJECT_COLUMNS = ("row", "field", "error", "line")


def _batches(
    rows: Iterable[pb.ImportRow | pb.RowError], size: int
) -> Iterator[tuple[list[ImportRow], list[RowError], int]]:
    """Rows in groups of ``size``: those read, those that could not be, and the group's size."""
    it = iter(rows)
    while batch := list(itertools.islice(it, size)):
        read = [
            RowError(r.row, r.field, r.error)
            if isinstance(r, pb.RowError)
            else convert.import_row(r)
            for r in batch
        ]
        good = [r for r in read if isinstance(r, ImportRow)]
        yield good, [r for r in read if isinstance(r, RowError)], len(batch)


async def import_rows(
    client: SubscriberClient,
    carrier: str,
    rows: Iterable[pb.ImportRow | pb.RowError],
    *,
    chunk_rows: int = 500,
    rows_per_call: int = 5000,
    on_ack: Callable[[int], object] = lambda n: None,
) -> ImportSummary:
    """Send ``rows`` in calls of ``rows_per_call``; ``on_ack`` after each stored call."""
    total = ImportSummary()
    for good, refused, size in _batches(rows, rows_per_call):
        summary = await client.import_subscribers(carrier, good, chunk_rows=chunk_rows)
        total = total.merge(summary).merge(ImportSummary(rows=len(refused), errors=tuple(refused)))
        on_ack(size)
    return total


def check_rows(
    rows: Iterable[pb.ImportRow | pb.RowError],
    packages: Mapping[str, Package],
    *,
    now: datetime,
    on_ack: Callable[[int], object] = lambda n: None,
) -> ImportSummary:
    """What the service would refuse of ``rows`` (nothing is sent): ``unchanged`` counts the
    rows it would accept, since only the service knows which it would create or update."""
    # Any valid default gives the same verdict: it only stands in for an empty max_streams.
    default_max_streams = SubscriberSettings().default_max_streams
    total = ImportSummary()
    for good, refused, size in _batches(rows, 1000):
        for row in good:
            try:
                domain.validate_import_row(
                    row, default_max_streams=default_max_streams, packages=packages, now=now
                )
            except InvalidArgument as err:
                refused.append(RowError(row.row, err.field, err.reason))
        accepted = size - len(refused)
        total = total.merge(ImportSummary(size, unchanged=accepted, errors=tuple(refused)))
        on_ack(size)
    return total


def write_rejects(source: Path, errors: Iterable[RowError], target: Path) -> None:
    """Write ``errors`` (in row order) as CSV with each row's line from ``source``."""
    by_row: dict[int, list[RowError]] = {}
    for failure in errors:
        by_row.setdefault(failure.row, []).append(failure)

    def rows() -> Iterator[dict[str, object]]:
        with source.open("rb") as handle:
            for number, raw in numbered_lines(handle):
                for failure in by_row.get(number, ()):
                    line = "" if raw is None else raw.decode("utf-8", errors="replace")
                    yield {"row": number, "field": failure.field, "error": failure.error,
                           "line": line}  # fmt: skip

    with target.open("w", encoding="utf-8", newline="") as out:
        emit(rows(), REJECT_COLUMNS, "csv", out=out)


def _data_lines(path: Path) -> int:
    """About how many rows ``path`` holds (its lines after the header), for the progress bar."""
    with path.open("rb") as handle:
        return max(
            sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b"")) - 1, 0
        )


async def _import(ctx: Context, args: argparse.Namespace) -> int:
    path = Path(args.file)
    carrier = await ctx.carrier(args.carrier)
    packages = {p.package_id: p for p in await ctx.client.list_packages()} if args.dry_run else {}
    # Lines are read between calls, on this loop: the command has nothing else to run.
    with path.open("rb") as handle:  # noqa: ASYNC230
        try:
            rows = csv_records(handle)
        except CsvError as err:  # the file as a whole (its header); a bad row is reported below
            raise CliError(f"{args.file}: {err}") from err
        with tqdm(total=_data_lines(path), unit="row", desc="import", disable=args.quiet) as bar:
            if args.dry_run:
                summary = check_rows(rows, packages, now=datetime.now(UTC), on_ack=bar.update)
            else:
                summary = await import_rows(
                    ctx.client,
                    carrier,
                    rows,
                    chunk_rows=args.chunk_rows,
                    rows_per_call=args.rows_per_call,
                    on_ack=bar.update,
                )
    errors = sorted(summary.errors, key=lambda e: e.row)
    for failure in errors:
        print(f"row {failure.row}: {failure.field}: {failure.error}", file=sys.stderr)
    if args.rejects:
        write_rejects(path, errors, Path(args.rejects))
    if args.dry_run:
        print(f"{summary.rows} rows: {summary.unchanged} valid, {len(errors)} failed "
              "(dry run: nothing written)")  # fmt: skip
    else:
        print(
            f"{summary.rows} rows: {summary.created} created, {summary.updated} updated, "
            f"{summary.unchanged} unchanged, {len(errors)} failed"
        )
    return 1 if errors else 0


def add_commands(add: AddCommand) -> None:
    """The bulk import command."""
    p = add("import", _import, "bulk upsert subscribers, boxes and entitlements from CSV")
    p.add_argument("file", help="CSV file (columns: see `pydoc subscriber.cli`)")
    p.add_argument("--chunk-rows", type=int, default=500, help="rows per streamed message")
    p.add_argument("--rows-per-call", type=int, default=5000, help="rows acknowledged together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    p.add_argument("--rejects", metavar="FILE", help="write the refused rows here as CSV")
