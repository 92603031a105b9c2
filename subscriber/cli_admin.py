"""``headend subscribers`` commands on the catalogue and the record: packages, define-package,
create-carrier (admin) and audit.

``audit`` reads the carrier's audit stream oldest first from ``--after`` (an entry id,
e.g. the last one a previous run printed) and stops after ``--limit`` entries;
``-o json`` carries each entry's ``before_json``/``after_json`` too.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from headend.output import add_output, emit
from headend.settings import split_list
from subscriber.cli_common import AddCommand, Context, emit_pages, record
from subscriber.client import SubscriberClient
from subscriber.domain import AuditEntry, Package

AUDIT_COLUMNS = ("entry_id", "time", "principal", "rpc", "subject")
PACKAGE_COLUMNS = ("package_id", "name", "channel_ids")
CARRIER_COLUMNS = ("carrier_id", "name", "network_type", "status", "created_at")


async def audit_pages(
    client: SubscriberClient, carrier: str, *, after: str = "", limit: int = 0
) -> AsyncIterator[list[AuditEntry]]:
    """The carrier's audit entries after ``after``, a page at a time (``limit`` 0: all)."""
    token, left = "", limit
    while True:
        entries, token = await client.list_audit(
            carrier, page_size=min(left, 1000) if limit else 0, page_token=token, after=after
        )
        if limit:
            entries = entries[:left]
            left -= len(entries)
        yield entries
        if not token or (limit and left <= 0):
            return


async def _audit(ctx: Context, args: argparse.Namespace) -> int:
    carrier = await ctx.carrier(args.carrier)
    pages = audit_pages(ctx.client, carrier, after=args.after, limit=args.limit)
    await emit_pages(pages, AUDIT_COLUMNS, args.output)
    return 0


async def _packages(ctx: Context, args: argparse.Namespace) -> int:
    packages = await ctx.client.list_packages()
    emit([record(p) for p in packages], PACKAGE_COLUMNS, args.output)
    return 0


async def _define_package(ctx: Context, args: argparse.Namespace) -> int:
    package = Package(args.id, args.name, split_list(args.channels))
    defined = await ctx.client.define_package(package, idempotency_key=args.idempotency_key)
    emit([record(defined)], PACKAGE_COLUMNS, args.output)
    return 0


async def _create_carrier(ctx: Context, args: argparse.Namespace) -> int:
    carrier = await ctx.client.create_carrier(
        args.id, args.name, args.network, idempotency_key=args.idempotency_key
    )
    emit([record(carrier)], CARRIER_COLUMNS, args.output)
    return 0


def add_commands(add: AddCommand) -> None:
    """The catalogue and audit commands."""
    p = add("audit", _audit, "the carrier's audit stream, oldest first")
    p.add_argument("--after", default="", help="start after this entry id")
    p.add_argument("--limit", type=int, default=0, help="at most this many entries (0: all)")
    add_output(p)

    p = add("packages", _packages, "list the package catalogue")
    add_output(p)

    p = add("define-package", _define_package, "admin: create or replace a package")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--channels", required=True, help="comma-separated channel ids")
    add_output(p)

    p = add("create-carrier", _create_carrier, "admin: register a carrier")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--network", required=True, choices=("telecom", "mobile", "cable"))
    add_output(p)
