"""``headend subscribers`` commands for the helpdesk: device-events, counts and
provisioning-errors.

``device-events MAC`` prints the box's latest requests, newest first, each refused one
with why (``--leases``: its subscriber's live leases instead); without ``--carrier`` the
box is looked up under whichever carrier the key may read. ``counts`` prints subscribers
by carrier and status; ``provisioning-errors`` the latest refused provisioning requests
and failed import rows (an admin key without ``--carrier``: every carrier's).
"""

from __future__ import annotations

import argparse

from headend.output import add_output, emit
from subscriber.cli_common import AddCommand, Context, record

EVENT_COLUMNS = ("time", "kind", "channel_id", "allowed", "refusal", "detail", "lease_id")
LEASE_COLUMNS = ("lease_id", "mac", "channel_id", "expires_at")
COUNT_COLUMNS = ("carrier_id", "status", "count")
ERROR_COLUMNS = ("time", "carrier_id", "principal", "rpc", "subject", "reason", "message")


async def _device_events(ctx: Context, args: argparse.Namespace) -> int:
    _, events, leases = await ctx.client.device_events(
        args.mac, carrier_id=args.carrier or "-", limit=args.limit
    )
    if args.leases:
        emit([record(lease) for lease in leases], LEASE_COLUMNS, args.output)
    else:
        emit([{**record(e), "allowed": e.allowed} for e in events], EVENT_COLUMNS, args.output)
    return 0


async def _counts(ctx: Context, args: argparse.Namespace) -> int:
    counts = await ctx.client.count_subscribers()
    emit([record(c) for c in counts], COUNT_COLUMNS, args.output)
    return 0


async def _provisioning_errors(ctx: Context, args: argparse.Namespace) -> int:
    carrier = args.carrier
    if not carrier:
        me = await ctx.client.whoami()
        carrier = me.tenant if me.role == "carrier" else ""
    found = await ctx.client.provisioning_errors(carrier, limit=args.limit)
    emit([record(e) for e in found], ERROR_COLUMNS, args.output)
    return 0


def add_commands(add: AddCommand) -> None:
    """The helpdesk commands."""
    p = add("device-events", _device_events, "a box's latest requests and why any was refused")
    p.add_argument("mac")
    p.add_argument("--limit", type=int, default=0, help="at most this many (0: 50; max 200)")
    p.add_argument("--leases", action="store_true", help="its subscriber's live leases instead")
    add_output(p)

    p = add("counts", _counts, "subscribers by carrier and status")
    add_output(p)

    p = add("provisioning-errors", _provisioning_errors, "latest refused provisioning requests")
    p.add_argument("--limit", type=int, default=0, help="at most this many (0: 50; max 500)")
    add_output(p)
