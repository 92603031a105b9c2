"""``headend subscribers ...``: a carrier's first steps and bulk import, over gRPC.

Talks to ``SUBSCRIBER_TARGET`` (default ``127.0.0.1:50052``) with the API key
in ``HEADEND_API_KEY``. ``--carrier`` defaults to the key's own carrier.

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
import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from tqdm import tqdm

from headend.clitools import CliError, describe_rpc_error, open_channel
from headend.rpc import bearer
from headend.settings import environ
from protos import keys_pb2, keys_pb2_grpc
from protos import subscriber_pb2 as pb
from protos import subscriber_pb2_grpc as pb_grpc
from subscriber.importfile import STATUS, CsvError, parse_time, read_csv

__all__ = ["CsvError", "import_rows", "read_csv", "register"]

DEFAULT_TARGET = "127.0.0.1:50052"


def _chunks(rows: Sequence[pb.ImportRow], size: int) -> Iterator[Sequence[pb.ImportRow]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


async def import_rows(
    stub: pb_grpc.SubscriberServiceStub,
    token: str,
    carrier: str,
    rows: Sequence[pb.ImportRow],
    *,
    chunk_rows: int = 500,
    rows_per_call: int = 5000,
    on_ack: Callable[[int], object] = lambda n: None,
) -> pb.ImportSummary:
    """Stream ``rows`` in calls of ``rows_per_call``; ``on_ack`` after each stored call."""
    total = pb.ImportSummary()
    for call_rows in _chunks(rows, rows_per_call):

        async def chunks(
            batch: Sequence[pb.ImportRow] = call_rows,
        ) -> AsyncIterator[pb.ImportChunk]:
            for part in _chunks(batch, chunk_rows):
                yield pb.ImportChunk(carrier_id=carrier, rows=part)

        summary = await stub.ImportSubscribers(chunks(), metadata=bearer(token))
        for name in ("rows", "created", "updated", "unchanged", "failed"):
            setattr(total, name, getattr(total, name) + getattr(summary, name))
        total.errors.extend(summary.errors)
        on_ack(len(call_rows))
    return total


# --- command plumbing ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    stub: pb_grpc.SubscriberServiceStub
    keys: keys_pb2_grpc.KeyServiceStub
    token: str

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        return bearer(self.token)

    async def carrier(self, given: str) -> str:
        if given:
            return given
        me = await self.keys.WhoAmI(keys_pb2.WhoAmIRequest(), metadata=self.md)
        role, _, tenant = me.principal.partition(":")
        if role != "carrier":
            raise SystemExit("subscribers: --carrier is required with an admin key")
        return tenant


Command = Callable[[_Context, argparse.Namespace], Coroutine[Any, Any, int]]


def _run(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        env = environ()
        token = env.get("HEADEND_API_KEY", "")
        if not token:
            print("subscribers: set HEADEND_API_KEY to your API key", file=sys.stderr)
            return 2

        async def go() -> int:
            async with open_channel(env, env.get("SUBSCRIBER_TARGET") or DEFAULT_TARGET) as channel:
                ctx = _Context(
                    pb_grpc.SubscriberServiceStub(channel),
                    keys_pb2_grpc.KeyServiceStub(channel),
                    token,
                )
                try:
                    return await command(ctx, args)
                except grpc.aio.AioRpcError as err:
                    print(f"subscribers: {describe_rpc_error(err)}", file=sys.stderr)
                    return 1
                except CsvError as err:
                    print(f"subscribers: {err}", file=sys.stderr)
                    return 2

        try:
            return asyncio.run(go())
        except CliError as err:  # a bad GRPC_CLIENT_* setting
            print(f"subscribers: {err}", file=sys.stderr)
            return 2

    return run


def _show(message: Any) -> None:
    from google.protobuf import json_format

    print(json_format.MessageToJson(message, indent=None, preserving_proto_field_name=True))


async def _import(ctx: _Context, args: argparse.Namespace) -> int:
    try:
        report = read_csv(Path(args.file))
    except (OSError, CsvError) as err:
        print(f"subscribers import: {err}", file=sys.stderr)
        return 2
    carrier = await ctx.carrier(args.carrier)
    with tqdm(total=len(report.rows), unit="row", desc="import", disable=args.quiet) as bar:
        summary = await import_rows(
            ctx.stub,
            ctx.token,
            carrier,
            report.rows,
            chunk_rows=args.chunk_rows,
            rows_per_call=args.rows_per_call,
            on_ack=bar.update,
        )
    errors = sorted([*report.errors, *summary.errors], key=lambda e: e.row)
    for failure in errors:
        print(f"row {failure.row}: {failure.field}: {failure.error}", file=sys.stderr)
    print(
        f"{summary.rows + len(report.errors)} rows: {summary.created} created, "
        f"{summary.updated} updated, {summary.unchanged} unchanged, {len(errors)} failed"
    )
    return 1 if errors else 0


async def _create(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.CreateSubscriberRequest(
        carrier_id=await ctx.carrier(args.carrier),
        subscriber_id=args.id,
        display_name=args.name,
        region_code=args.region,
        max_streams=args.max_streams,
        contact_phone=args.phone,
        contact_email=args.email,
        idempotency_key=args.idempotency_key,
    )
    end = parse_time(args.service_end, "service_end", end_of_day=True)
    if end is not None:
        request.service_end.CopyFrom(end)
    _show(await ctx.stub.CreateSubscriber(request, metadata=ctx.md))
    return 0


async def _get(ctx: _Context, args: argparse.Namespace) -> int:
    carrier = await ctx.carrier(args.carrier)
    _show(
        await ctx.stub.GetSubscriber(
            pb.GetSubscriberRequest(carrier_id=carrier, subscriber_id=args.id), metadata=ctx.md
        )
    )
    return 0


async def _status(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.SetSubscriberStatusRequest(
        carrier_id=await ctx.carrier(args.carrier),
        subscriber_id=args.id,
        status=STATUS[args.status],
        idempotency_key=args.idempotency_key,
    )
    _show(await ctx.stub.SetSubscriberStatus(request, metadata=ctx.md))
    return 0


async def _bind(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.BindDeviceRequest(
        carrier_id=await ctx.carrier(args.carrier),
        subscriber_id=args.id,
        mac=args.mac,
        serial=args.serial,
        model=args.model,
        idempotency_key=args.idempotency_key,
    )
    _show(await ctx.stub.BindDevice(request, metadata=ctx.md))
    return 0


async def _activate(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.ActivateDeviceRequest(
        carrier_id=await ctx.carrier(args.carrier),
        mac=args.mac,
        idempotency_key=args.idempotency_key,
    )
    reply = await ctx.stub.ActivateDevice(request, metadata=ctx.md)
    _show(reply.device)
    print(f"device secret (shown once, load it onto the box): {reply.device_secret}")
    return 0


async def _entitle(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.EntitleRequest(
        carrier_id=await ctx.carrier(args.carrier),
        subscriber_id=args.id,
        package_id=args.package,
        idempotency_key=args.idempotency_key,
    )
    for name, text, end in (
        ("valid_from", args.valid_from, False),
        ("valid_until", args.valid_until, True),
    ):
        stamp = parse_time(text, name, end_of_day=end)
        if stamp is not None:
            getattr(request, name).CopyFrom(stamp)
    _show(await ctx.stub.Entitle(request, metadata=ctx.md))
    return 0


async def _packages(ctx: _Context, args: argparse.Namespace) -> int:
    _show(await ctx.stub.ListPackages(pb.ListPackagesRequest(), metadata=ctx.md))
    return 0


async def _define_package(ctx: _Context, args: argparse.Namespace) -> int:
    package = pb.Package(
        package_id=args.id,
        name=args.name,
        channel_ids=[c.strip() for c in args.channels.split(",") if c.strip()],
    )
    _show(
        await ctx.stub.DefinePackage(
            pb.DefinePackageRequest(package=package, idempotency_key=args.idempotency_key),
            metadata=ctx.md,
        )
    )
    return 0


async def _create_carrier(ctx: _Context, args: argparse.Namespace) -> int:
    request = pb.CreateCarrierRequest(
        carrier_id=args.id,
        name=args.name,
        network_type=pb.NetworkType.Value(args.network.upper()),  # type: ignore[arg-type]
        idempotency_key=args.idempotency_key,
    )
    _show(await ctx.stub.CreateCarrier(request, metadata=ctx.md))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend subscribers ...``; each command sets ``func(args) -> exit code``."""
    top = subparsers.add_parser("subscribers", help="carriers' subscribers, boxes and packages")
    commands = top.add_subparsers(dest="subscribers_command", required=True)

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text)
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
