"""``headend subscribers`` commands on set-top boxes: bind, activate, unbind, block, replace,
and ``why-not``, which asks the service's own ``Authorize`` why a box may not play a channel.

``why-not`` prints the service's machine-readable reason (the proto's ``DenyReason``
name) beside a one-line explanation of it for the engineer on the phone; it exits 0
whether the box may play or not (the question was answered), and 1 only when the
service refuses the question itself.
"""

from __future__ import annotations

import argparse

from headend.output import add_output, emit
from subscriber.cli_common import AddCommand, Context, record, show_devices
from subscriber.domain import DenyReason

# What each reason means and what fixes it (the checks: subscriber.domain.playback).
EXPLANATIONS: dict[DenyReason | None, str] = {
    None: "the box may play this channel now",
    DenyReason.UNKNOWN_DEVICE: "no box with this MAC is bound to one of your subscribers "
    "(never bound, unbound or replaced): bind it",
    DenyReason.DEVICE_BLOCKED: "the box is blocked: `block --unblock MAC` lifts it",
    DenyReason.CARRIER_NOT_ACTIVE: "the carrier is suspended, so all its boxes are refused: "
    "an admin reactivates the carrier",
    DenyReason.SUBSCRIBER_TERMINATED: "the subscriber is terminated, which is final",
    DenyReason.SUBSCRIBER_SUSPENDED: "the subscriber is suspended: "
    "`status --status active` reactivates it",
    DenyReason.SERVICE_EXPIRED: "the subscriber's service end has passed: "
    "`update ID --service-end` extends it",
    DenyReason.NOT_ENTITLED: "no package the subscriber holds now includes this channel: "
    "entitle one (or check the package's window)",
}
WHY_NOT_COLUMNS = ("mac", "channel_id", "allowed", "reason", "explanation")


async def _bind(ctx: Context, args: argparse.Namespace) -> int:
    device = await ctx.client.bind_device(
        await ctx.carrier(args.carrier),
        args.id,
        args.mac,
        serial=args.serial,
        model=args.model,
        idempotency_key=args.idempotency_key,
    )
    show_devices([device], args)
    return 0


async def _activate(ctx: Context, args: argparse.Namespace) -> int:
    device, secret = await ctx.client.activate_device(
        await ctx.carrier(args.carrier), args.mac, idempotency_key=args.idempotency_key
    )
    # The secret is shown once ("" on a replay): load it onto the box.
    emit([{**record(device), "device_secret": secret}], ("mac", "status", "device_secret"),
         args.output)  # fmt: skip
    return 0


async def _unbind(ctx: Context, args: argparse.Namespace) -> int:
    device = await ctx.client.unbind_device(
        await ctx.carrier(args.carrier), args.mac, idempotency_key=args.idempotency_key
    )
    show_devices([device], args)
    return 0


async def _block(ctx: Context, args: argparse.Namespace) -> int:
    device = await ctx.client.block_device(
        await ctx.carrier(args.carrier),
        args.mac,
        blocked=not args.unblock,
        idempotency_key=args.idempotency_key,
    )
    show_devices([device], args)
    return 0


async def _replace(ctx: Context, args: argparse.Namespace) -> int:
    device = await ctx.client.replace_device(
        await ctx.carrier(args.carrier),
        args.old_mac,
        args.new_mac,
        serial=args.serial,
        model=args.model,
        idempotency_key=args.idempotency_key,
    )
    show_devices([device], args)
    return 0


async def _why_not(ctx: Context, args: argparse.Namespace) -> int:
    decision = await ctx.client.authorize(args.mac, args.channel)
    row = {
        "mac": args.mac,
        "channel_id": args.channel,
        "allowed": decision.allowed,
        "reason": decision.reason or "",
        "explanation": EXPLANATIONS[decision.reason],
        "carrier_id": decision.carrier_id,
        "subscriber_id": decision.subscriber_id,
        "subscriber_version": decision.subscriber_version,
    }
    emit([row], WHY_NOT_COLUMNS, args.output)
    return 0


def add_commands(add: AddCommand) -> None:
    """The box commands."""
    p = add("bind", _bind, "bind a set-top box to a subscriber")
    p.add_argument("--id", required=True)
    p.add_argument("--mac", required=True)
    p.add_argument("--serial", default="")
    p.add_argument("--model", default="")
    add_output(p)

    p = add("activate", _activate, "issue a box's device secret (shown once)")
    p.add_argument("--mac", required=True)
    add_output(p)

    p = add("unbind", _unbind, "unbind a box from its subscriber (the MAC is free again)")
    p.add_argument("mac")
    add_output(p)

    p = add("block", _block, "refuse a box all playback (--unblock lifts it)")
    p.add_argument("mac")
    p.add_argument("--unblock", action="store_true", help="lift the block instead")
    add_output(p)

    p = add("replace", _replace, "swap a subscriber's box for a new one")
    p.add_argument("old_mac")
    p.add_argument("new_mac")
    p.add_argument("--serial", default="", help="the new box's serial number")
    p.add_argument("--model", default="", help="the new box's model")
    add_output(p)

    for name in ("why-not", "authorize"):
        p = add(name, _why_not, "may this box play this channel now, and if not, why")
        p.add_argument("mac")
        p.add_argument("channel", help="the channel's id")
        add_output(p)
