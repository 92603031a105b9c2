"""``headend cue insert|cancel|list|show``: cues scheduled into live channels over gRPC (the
EPG server: ``EPG_TARGET`` or ``--target``, ``HEADEND_API_KEY``: the admin's, or the key of
the broadcaster owning the channel; the playback role reads).

A cue is an SCTE-35 signal the farm puts into the channel's live playlists at its time (a
break: out and return; a segment: time_signals of a segmentation type), and the regions
whose boxes see the slate while it runs. ``insert --dry-run`` has the server check it
(it stores nothing).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import IO, Any

from epg.cli_common import DEFAULT_TARGET, TARGET_VAR, add_window, codes, window
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind
from epg.cues.rules import START_NOW
from headend.clitools import (
    CliError,
    add_target,
    api_key,
    client_tls,
    env_help,
    run_command,
    service_env,
    when,
)
from headend.clock import utc_now
from headend.output import add_output, emit
from headend.settings import environ

PROG = "headend cue"
COLUMNS = (
    "channel_id", "id", "kind", "state", "start", "end", "duration_seconds",
    "segmentation_type_id", "event_id", "blackout_regions", "description",
)  # fmt: skip
# The window ``list`` reads by default: from now, as far as the server allows.
LIST_SPAN = timedelta(days=8)


def cue_row(c: Cue) -> dict[str, Any]:
    """A cue as one output row: every field, the kind and state by name."""
    return {
        "channel_id": c.channel_id,
        "id": c.id,
        "kind": c.kind.value,
        "state": c.state.value,
        "start": None if c.start == START_NOW else c.start,
        "end": None if c.start == START_NOW else c.end,
        "duration_seconds": c.duration_seconds,
        "segmentation_type_id": c.segmentation_type_id,
        "event_id": c.event_id,
        "blackout_regions": c.blackout_regions,
        "description": c.description,
        "creator": c.creator,
        "created": c.created,
    }


def at(text: str) -> datetime:
    """``now`` (the server's), ``+SECONDS`` from now, or an ISO 8601 time with its offset (an
    argparse ``type``)."""
    if text == "now":
        return START_NOW
    if text.startswith("+"):
        try:
            return utc_now() + timedelta(seconds=float(text[1:]))
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"{text!r} is not +SECONDS") from err
    return when(text)


def number(text: str) -> int:
    """A whole number, decimal or ``0x`` hexadecimal (an argparse ``type``)."""
    try:
        return int(text, 0)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (decimal or 0x..)") from err


def cue_from_args(args: argparse.Namespace) -> Cue:
    """The cue ``insert`` was given (the server checks it)."""
    kind = CueKind(args.kind) if args.kind else CueKind.SEGMENT if args.type else CueKind.BREAK
    if kind is CueKind.BREAK and args.type:
        raise CliError("--type goes with --kind segment")
    return Cue(
        id=args.id,
        channel_id=args.channel,
        kind=kind,
        start=args.at,
        duration_seconds=args.duration,
        segmentation_type_id=args.type,
        event_id=args.event_id,
        blackout_regions=codes(args.blackout),
        description=args.description,
    )


def open_client(args: argparse.Namespace, env: Mapping[str, str]) -> CueClient:
    """A client of ``CueService`` at ``--target`` (else ``EPG_TARGET``)."""
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET, target=args.target)
    return CueClient(target, key, tls=client_tls(env))


async def run(args: argparse.Namespace, client: CueClient, out: IO[str]) -> int:
    """Run one ``headend cue`` command with ``client``."""
    command = args.cue_command
    if command == "list":
        start, stop = window(args, LIST_SPAN)
        listed = await client.list_cues(args.channel, start, stop)
        emit((cue_row(c) for c in listed), COLUMNS, args.output, out=out)
        return 0
    if command == "insert":
        found = await client.insert(cue_from_args(args), validate_only=args.dry_run)
    elif command == "cancel":
        found = await client.cancel(args.channel, args.cue_id)
    else:
        found = await client.get(args.channel, args.cue_id)
    emit([cue_row(found)], COLUMNS, args.output, out=out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend cue`` and its commands."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "EPG"))
    top = subparsers.add_parser(
        "cue", help="SCTE-35 cues and blackouts scheduled into live channels", **env
    )
    commands = top.add_subparsers(dest="cue_command", required=True)
    insert = commands.add_parser("insert", help="schedule a cue into a channel", **env)
    insert.add_argument("channel", help="the channel id")
    insert.add_argument("--id", default="", help="[a-z0-9][a-z0-9-]{0,39} (default: the server's)")
    insert.add_argument(
        "--kind",
        choices=[k.value for k in CueKind],
        help="break: splice_insert out and return; segment: time_signals "
        "(default: segment with --type, else break)",
    )
    insert.add_argument(
        "--type", type=number, default=0, metavar="N", help="segmentation_type_id, 1-255 or 0x.."
    )
    insert.add_argument(
        "--at",
        type=at,
        default=START_NOW,
        metavar="TIME",
        help="ISO 8601 with offset, now, or +SECONDS (default: now)",
    )
    insert.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="seconds; 0: a point signal (default 0)",
    )
    insert.add_argument("--event-id", type=number, default=0, metavar="N", help="32-bit id")
    insert.add_argument(
        "--blackout",
        default="",
        metavar="CODE[,CODE...]",
        help="6-digit regions whose boxes see the slate while it runs (needs --duration)",
    )
    insert.add_argument("--description", default="", help="at most 200 characters")
    insert.add_argument("--dry-run", action="store_true", help="only check it; store nothing")
    add_output(insert)
    for name, helptext in (
        ("cancel", "withdraw a cue not started yet, or end a running one now"),
        ("show", "one cue"),
    ):
        command = commands.add_parser(name, help=helptext, **env)
        command.add_argument("channel", help="the channel id")
        command.add_argument("cue_id")
        add_output(command)
    listing = commands.add_parser("list", help="cues by start, of one channel or all", **env)
    listing.add_argument("channel", nargs="?", help="the channel id (default: every readable)")
    add_window(listing, "8 days")
    add_output(listing)
    listing.add_argument(
        "--json", dest="output", action="store_const", const="json", help="same as -o json"
    )
    add_target(top, TARGET_VAR, DEFAULT_TARGET)

    async def main(args: argparse.Namespace) -> int:
        async with open_client(args, environ()) as client:
            return await run(args, client, sys.stdout)

    top.set_defaults(func=lambda args: run_command(main(args), prog=PROG))
