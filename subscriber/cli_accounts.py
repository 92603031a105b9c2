"""``headend subscribers`` commands on accounts: create, get, list/export, update, status,
entitle and revoke.

``list`` follows the service's page tokens to the end and hands the rows to
:func:`headend.output.emit` as each page arrives, so ``export`` (``list -o csv`` with
every field) of millions of accounts keeps one page in memory. ``update`` changes only
the options given, under the service's optimistic check: it sends the version it read
(or ``--expected-version``), and a change made by someone in between is refused
(ABORTED, exit status 1) rather than overwritten.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from headend.clitools import CliError
from headend.output import add_output
from subscriber.cli_common import (
    SUBSCRIBER_COLUMNS,
    SUBSCRIBER_FIELDS,
    AddCommand,
    Context,
    emit_pages,
    moment,
    show_subscribers,
)
from subscriber.client import SubscriberClient
from subscriber.domain import Subscriber, SubscriberChanges

STATUSES = ("active", "suspended", "terminated")


async def subscriber_pages(
    client: SubscriberClient, carrier: str, *, page_size: int = 0, status: str = ""
) -> AsyncIterator[list[Subscriber]]:
    """Every subscriber of ``carrier``, a page at a time (``status``: only those)."""
    token = ""
    while True:
        subs, token, _ = await client.list_subscribers(
            carrier, page_size=page_size, page_token=token
        )
        yield [s for s in subs if not status or s.status == status]
        if not token:
            return


async def _list(ctx: Context, args: argparse.Namespace) -> int:
    carrier = await ctx.carrier(args.carrier)
    pages = subscriber_pages(ctx.client, carrier, page_size=args.page_size, status=args.status)
    columns = SUBSCRIBER_COLUMNS if args.output == "table" else SUBSCRIBER_FIELDS
    await emit_pages(pages, columns, args.output)
    return 0


async def _create(ctx: Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.create_subscriber(
        await ctx.carrier(args.carrier),
        args.id,
        display_name=args.name,
        region_code=args.region,
        service_end=moment(args.service_end, "service_end", end_of_day=True),
        max_streams=args.max_streams,
        contact_phone=args.phone,
        contact_email=args.email,
        idempotency_key=args.idempotency_key,
    )
    show_subscribers([subscriber], args)
    return 0


async def _get(ctx: Context, args: argparse.Namespace) -> int:
    carrier = await ctx.carrier(args.carrier)
    show_subscribers([await ctx.client.get_subscriber(carrier, args.id)], args)
    return 0


async def _update(ctx: Context, args: argparse.Namespace) -> int:
    if args.service_end and args.clear_service_end:
        raise CliError("--service-end and --clear-service-end contradict each other")
    changes = SubscriberChanges(
        display_name=args.display_name,
        region_code=args.region,
        service_end=moment(args.service_end or "", "service_end", end_of_day=True),
        clear_service_end=args.clear_service_end,
        max_streams=args.max_streams,
        contact_phone=args.phone,
        contact_email=args.email,
    )
    if changes == SubscriberChanges():
        raise CliError("nothing to change: give at least one field option (see --help)")
    carrier = await ctx.carrier(args.carrier)
    version = args.expected_version or (await ctx.client.get_subscriber(carrier, args.id)).version
    subscriber = await ctx.client.update_subscriber(
        carrier,
        args.id,
        changes,
        expected_version=version,
        idempotency_key=args.idempotency_key,
    )
    show_subscribers([subscriber], args)
    return 0


async def _status(ctx: Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.set_subscriber_status(
        await ctx.carrier(args.carrier),
        args.id,
        args.status,
        idempotency_key=args.idempotency_key,
    )
    show_subscribers([subscriber], args)
    return 0


async def _entitle(ctx: Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.entitle(
        await ctx.carrier(args.carrier),
        args.id,
        args.package,
        valid_from=moment(args.valid_from, "valid_from", end_of_day=False),
        valid_until=moment(args.valid_until, "valid_until", end_of_day=True),
        idempotency_key=args.idempotency_key,
    )
    show_subscribers([subscriber], args)
    return 0


async def _revoke(ctx: Context, args: argparse.Namespace) -> int:
    subscriber = await ctx.client.revoke_entitlement(
        await ctx.carrier(args.carrier),
        args.id,
        args.package,
        idempotency_key=args.idempotency_key,
    )
    show_subscribers([subscriber], args)
    return 0


def add_commands(add: AddCommand) -> None:
    """The account commands."""
    p = add("list", _list, "list the carrier's subscribers (every page)")
    p.add_argument("--status", choices=STATUSES, default="", help="only subscribers in it")
    p.add_argument("--page-size", type=int, default=0, help="rows per call (default: service's)")
    add_output(p)

    p = add("export", _list, "every field of every subscriber as CSV (list -o csv)")
    p.add_argument("--status", choices=STATUSES, default="", help="only subscribers in it")
    p.add_argument("--page-size", type=int, default=0, help="rows per call (default: service's)")
    p.set_defaults(output="csv")

    p = add("create", _create, "create a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--region", required=True, help="6-digit administrative division code")
    p.add_argument("--service-end", default="", help="YYYY-MM-DD (inclusive) or ISO time")
    p.add_argument("--max-streams", type=int, default=0)
    p.add_argument("--phone", default="")
    p.add_argument("--email", default="")
    add_output(p)

    p = add("get", _get, "show a subscriber")
    p.add_argument("--id", required=True)
    add_output(p)

    p = add("update", _update, "change a subscriber's fields (only those given)")
    p.add_argument("id", help="the subscriber's id")
    p.add_argument("--display-name")
    p.add_argument("--region", help="6-digit administrative division code")
    p.add_argument("--max-streams", type=int)
    p.add_argument("--service-end", help="YYYY-MM-DD (inclusive) or ISO time")
    p.add_argument("--clear-service-end", action="store_true", help="open-ended service")
    p.add_argument("--phone")
    p.add_argument("--email")
    p.add_argument(
        "--expected-version",
        type=int,
        default=0,
        help="refuse if the subscriber changed since this version (default: the one read now)",
    )
    add_output(p)

    p = add("status", _status, "suspend, reactivate or terminate a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--status", required=True, choices=STATUSES)
    add_output(p)

    p = add("entitle", _entitle, "sell a package to a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--package", required=True)
    p.add_argument("--valid-from", default="")
    p.add_argument("--valid-until", default="", help="last day (inclusive) or ISO time")
    add_output(p)

    p = add("revoke", _revoke, "take a package away from a subscriber")
    p.add_argument("id", help="the subscriber's id")
    p.add_argument("package", help="the package's id")
    add_output(p)
