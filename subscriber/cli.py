"""``headend subscribers ...``: a carrier's first steps and bulk import, over gRPC.

Talks to ``SUBSCRIBER_TARGET`` with the API key in ``HEADEND_API_KEY`` (``--help``
lists them with their defaults). ``--carrier`` defaults to the key's own carrier.
Failures end as :mod:`headend.clitools` says (one line, the exit status of their kind).

``headend subscribers import FILE.csv`` reads UTF-8 CSV with a header row.
Columns (only the first three are required; order is free):

==================  =========================================================
subscriber_id       the carrier's account id (``[A-Za-z0-9._:-]``, <= 64)
display_name        the account holder's name
region_code         6-digit administrative division code, e.g. ``440305``
status              active (default), suspended or terminated
service_end         ``YYYY-MM-DD`` (service runs through that day, UTC+08:00)
                    or an ISO-8601 time with offset; empty = open-ended
max_streams         concurrent streams, 1-16; empty = the service default
contact_phone       optional
contact_email       optional
mac                 the box's MAC in any common notation; empty = no box
serial, model       the box's serial number and model
packages            package ids separated by ``;`` (entitlements upserted)
entitled_from       ``YYYY-MM-DD`` or ISO time; empty = now (or the start
                    already stored, so re-runs change nothing)
entitled_until      last day (inclusive) or exclusive ISO time; empty = open
==================  =========================================================

Row numbers in the report are CSV line numbers (the header is line 1). One
record per line; unreadable lines and cells are reported per row (rules:
:mod:`subscriber.importfile`), never as a traceback.
Rows are sent in calls of ``--rows-per-call``; each call is acknowledged
once its rows are stored, and the progress bar counts acknowledged rows.
Imports are idempotent upserts: after an interruption, run the same file
again; rows already stored are reported as unchanged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from tqdm import tqdm

from headend.clitools import CliError, api_key, client_tls, env_help, run_command, service_env
from headend.settings import environ, split_list
from protos import subscriber_pb2 as pb
from subscriber import convert
from subscriber.client import SubscriberClient
from subscriber.domain import ImportRow, ImportSummary, Package, RowError
from subscriber.importfile import CsvError, parse_moment, read_csv

__all__ = ["CsvError", "import_rows", "read_csv", "register"]

TARGET_VAR = "SUBSCRIBER_TARGET"
DEFAULT_TARGET = "127.0.0.1:50052"
PROG = "headend subscribers"


async def import_rows(
    client: SubscriberClient,
    carrier: str,
    rows: Sequence[pb.ImportRow],
    *,
    chunk_rows: int = 500,
    rows_per_call: int = 5000,
    on_ack: Callable[[int], object] = lambda n: None,
) -> ImportSummary:
    """Send ``rows`` in calls of ``rows_per_call``; ``on_ack`` after each stored call."""
    total = ImportSummary()
    for start in range(0, len(rows), rows_per_call):
        batch = rows[start : start + rows_per_call]
        read = [convert.import_row(r) for r in batch]
        good = [r for r in read if isinstance(r, ImportRow)]
        refused = tuple(r for r in read if isinstance(r, RowError))
        summary = await client.import_subscribers(carrier, good, chunk_rows=chunk_rows)
        total = total.merge(summary).merge(ImportSummary(rows=len(refused), errors=refused))
        on_ack(len(batch))
    return total


# --- command plumbing ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    client: SubscriberClient

    async def carrier(self, given: str) -> str:
        if given:
            return given
        me = await self.client.whoami()
        if me.role != "carrier":
            raise CliError("--carrier is required with an admin key")
        return me.tenant


Command = Callable[[_Context, argparse.Namespace], Coroutine[Any, Any, int]]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        async def go() -> int:
            env = environ()
            target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET)
            async with SubscriberClient(target, key, tls=client_tls(env)) as client:
                return await command(_Context(client), args)

        return run_command(go(), prog=PROG)

    return run


def _moment(text: str, option: str, *, end_of_day: bool) -> datetime | None:
    """An option's date or time (:func:`parse_moment`); one that cannot be read is a usage error."""
    try:
        return parse_moment(text, option, end_of_day=end_of_day)
    except CsvError as err:
        raise CliError(f"--{option.replace('_', '-')}: {err.reason}") from err


def _show(message: Message) -> None:
    """Print a value in its wire JSON form (field names as in ``protos/subscriber.proto``)."""
    print(json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True))


async def _import(ctx: _Context, args: argparse.Namespace) -> int:
    try:
        report = read_csv(Path(args.file))
    except CsvError as err:  # the file as a whole (its header); a bad row is reported below
        raise CliError(f"{args.file}: {err}") from err
    carrier = await ctx.carrier(args.carrier)
    with tqdm(total=len(report.rows), unit="row", desc="import", disable=args.quiet) as bar:
        summary = await import_rows(
            ctx.client,
            carrier,
            report.rows,
            chunk_rows=args.chunk_rows,
            rows_per_call=args.rows_per_call,
            on_ack=bar.update,
        )
    errors: list[pb.RowError | RowError] = [*report.errors, *summary.errors]
    errors.sort(key=lambda e: e.row)
    for failure in errors:
        print(f"row {failure.row}: {failure.field}: {failure.error}", file=sys.stderr)
    print(
        f"{summary.rows + len(report.errors)} rows: {summary.created} created, "
        f"{summary.updated} updated, {summary.unchanged} unchanged, {len(errors)} failed"
    )
    return 1 if errors else 0


async def _create(ctx: _Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.create_subscriber(
        await ctx.carrier(args.carrier),
        args.id,
        display_name=args.name,
        region_code=args.region,
        service_end=_moment(args.service_end, "service_end", end_of_day=True),
        max_streams=args.max_streams,
        contact_phone=args.phone,
        contact_email=args.email,
        idempotency_key=args.idempotency_key,
    )
    _show(convert.subscriber(subscriber))
    return 0


async def _get(ctx: _Context, args: argparse.Namespace) -> int:
    carrier = await ctx.carrier(args.carrier)
    _show(convert.subscriber(await ctx.client.get_subscriber(carrier, args.id)))
    return 0


async def _status(ctx: _Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.set_subscriber_status(
        await ctx.carrier(args.carrier),
        args.id,
        args.status,
        idempotency_key=args.idempotency_key,
    )
    _show(convert.subscriber(subscriber))
    return 0


async def _bind(ctx: _Context, args: argparse.Namespace) -> int:
    device = await ctx.client.bind_device(
        await ctx.carrier(args.carrier),
        args.id,
        args.mac,
        serial=args.serial,
        model=args.model,
        idempotency_key=args.idempotency_key,
    )
    _show(convert.device(device))
    return 0


async def _activate(ctx: _Context, args: argparse.Namespace) -> int:
    device, secret = await ctx.client.activate_device(
        await ctx.carrier(args.carrier), args.mac, idempotency_key=args.idempotency_key
    )
    _show(convert.device(device))
    print(f"device secret (shown once, load it onto the box): {secret}")
    return 0


async def _entitle(ctx: _Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.entitle(
        await ctx.carrier(args.carrier),
        args.id,
        args.package,
        valid_from=_moment(args.valid_from, "valid_from", end_of_day=False),
        valid_until=_moment(args.valid_until, "valid_until", end_of_day=True),
        idempotency_key=args.idempotency_key,
    )
    _show(convert.subscriber(subscriber))
    return 0


async def _packages(ctx: _Context, args: argparse.Namespace) -> int:
    packages = await ctx.client.list_packages()
    _show(pb.ListPackagesResponse(packages=[convert.package(p) for p in packages]))
    return 0


async def _define_package(ctx: _Context, args: argparse.Namespace) -> int:
    package = Package(args.id, args.name, split_list(args.channels))
    defined = await ctx.client.define_package(package, idempotency_key=args.idempotency_key)
    _show(convert.package(defined))
    return 0


async def _create_carrier(ctx: _Context, args: argparse.Namespace) -> int:
    carrier = await ctx.client.create_carrier(
        args.id, args.name, args.network, idempotency_key=args.idempotency_key
    )
    _show(convert.carrier(carrier))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend subscribers ...``; each command sets ``func(args) -> exit code``."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "subscriber"))
    top = subparsers.add_parser(
        "subscribers", help="carriers' subscribers, boxes and packages", **env
    )
    commands = top.add_subparsers(dest="subscribers_command", required=True)

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, **env)
        parser.set_defaults(func=_run(command))
        parser.add_argument("--carrier", default="", help="carrier id (default: the key's own)")
        parser.add_argument("--idempotency-key", default="", help="makes a retry safe")
        return parser

    p = add("import", _import, "bulk upsert subscribers, boxes and entitlements from CSV")
    p.add_argument("file", help="CSV file (columns: see `pydoc subscriber.cli`)")
    p.add_argument("--chunk-rows", type=int, default=500, help="rows per streamed message")
    p.add_argument("--rows-per-call", type=int, default=5000, help="rows acknowledged together")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("create", _create, "create a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--region", required=True, help="6-digit administrative division code")
    p.add_argument("--service-end", default="", help="YYYY-MM-DD (inclusive) or ISO time")
    p.add_argument("--max-streams", type=int, default=0)
    p.add_argument("--phone", default="")
    p.add_argument("--email", default="")

    p = add("get", _get, "show a subscriber")
    p.add_argument("--id", required=True)

    p = add("status", _status, "suspend, reactivate or terminate a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--status", required=True, choices=("active", "suspended", "terminated"))

    p = add("bind", _bind, "bind a set-top box to a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--serial", default="")
    p.add_argument("--model", default="")

    p = add("activate", _activate, "issue a box's device secret (shown once)")
    p.add_argument("--mac", required=True)

    p = add("entitle", _entitle, "sell a package to a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--package", required=True)
    p.add_argument("--valid-from", default="")
    p.add_argument("--valid-until", default="", help="last day (inclusive) or ISO time")

    add("packages", _packages, "list the package catalogue")

    p = add("define-package", _define_package, "admin: create or replace a package")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--channels", required=True, help="comma-separated channel ids")

    p = add("create-carrier", _create_carrier, "admin: register a carrier")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--network", required=True, choices=("telecom", "mobile", "cable"))
