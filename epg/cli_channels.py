"""``headend epg channels ...``: the channel catalogue as a scheduler keeps it.

``update`` changes only the options given: it reads the channel, replaces those
fields and sends it back with the version it read (``UpdateChannel``'s
optimistic check), so an edit made meanwhile is refused, never overwritten.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import IO, Any

from epg.cli_common import TEXT_HELP, localized, runner
from epg.client import EpgClient
from epg.domain import DEFAULT_TIMEZONE, Channel
from headend.output import add_output, emit

COLUMNS = (
    "id",
    "number",
    "name",
    "group",
    "catchup_days",
    "timezone",
    "owner",
    "active",
    "version",
)


def channel_row(c: Channel) -> dict[str, Any]:
    """A channel as one output row (every field, and its first name as ``name``)."""
    return {**dataclasses.asdict(c), "name": c.name()}


def _fields(parser: argparse.ArgumentParser, *, create: bool) -> None:
    """The channel's fields as options (on update, None means: leave it as it is)."""
    parser.add_argument(
        "--name",
        dest="names",
        action="append",
        type=localized,
        required=create,
        metavar="[LANG:]NAME",
        help=f"the display name; {TEXT_HELP}",
    )
    parser.add_argument("--number", type=int, help="the logical channel number (LCN)")
    parser.add_argument("--group", help="the lineup group (e.g. satellite, local)")
    parser.add_argument("--logo", dest="logo_url", metavar="URL", help="the logo's http(s) URL")
    parser.add_argument(
        "--catchup-days", type=int, metavar="DAYS", help="how many days back catch-up reaches"
    )
    parser.add_argument(
        "--timezone",
        metavar="IANA",
        help=f"where the channel's wall clock is, for slots (default {DEFAULT_TIMEZONE})"
        if create
        else "where the channel's wall clock is, for slots",
    )
    parser.add_argument("--owner", help="the broadcaster that owns it (the admin only)")
    parser.add_argument(
        "--active",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="in the lineup (--no-active hides it without deleting it)",
    )


def _given(args: argparse.Namespace) -> dict[str, Any]:
    names = ("number", "group", "logo_url", "catchup_days", "timezone", "owner", "active")
    given = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    if args.names:
        given["names"] = tuple(args.names)
    return given


async def list_channels(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print every channel the key may read."""
    channels = await client.list_channels(active_only=args.active_only)
    emit([channel_row(c) for c in channels], COLUMNS, args.output, out=out)
    return 0


async def get_channel(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print one channel."""
    emit([channel_row(await client.get_channel(args.id))], COLUMNS, args.output, out=out)
    return 0


async def create_channel(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Add a channel and print it as stored."""
    fields: dict[str, Any] = {"number": 0, "owner": "", **_given(args)}
    created = await client.create_channel(Channel(id=args.id, **fields))
    emit([channel_row(created)], COLUMNS, args.output, out=out)
    return 0


async def update_channel(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Change the fields given, keep the rest; print the channel as stored."""
    current = await client.get_channel(args.id)
    changed = dataclasses.replace(current, **_given(args))
    updated = await client.update_channel(changed, current.version)
    emit([channel_row(updated)], COLUMNS, args.output, out=out)
    return 0


async def delete_channel(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Remove a channel; print the change's version."""
    version = await client.delete_channel(args.id, force=args.force)
    emit(
        [{"id": args.id, "deleted": True, "version": version}],
        ("id", "deleted", "version"),
        args.output,
        out=out,
    )
    return 0


def register(sub: argparse._SubParsersAction, env: dict[str, Any]) -> None:
    """Add ``channels list|get|create|update|delete`` under ``headend epg``."""
    group = sub.add_parser(
        "channels", help="the channel catalogue: list, add, change, remove", **env
    )
    cmds = group.add_subparsers(dest="channels_command", required=True)
    ls = cmds.add_parser("list", help="every channel your key may read", **env)
    ls.add_argument("--active-only", action="store_true", help="only channels in the lineup")
    get = cmds.add_parser("get", help="one channel, with its version", **env)
    create = cmds.add_parser("create", help="add a channel to the catalogue", **env)
    _fields(create, create=True)
    update = cmds.add_parser(
        "update", help="change a channel's fields (only the options given change)", **env
    )
    _fields(update, create=False)
    delete = cmds.add_parser(
        "delete", help="remove a channel (refused while it has programmes)", **env
    )
    delete.add_argument("--force", action="store_true", help="remove its programmes too")
    for parser, command in (
        (ls, list_channels),
        (get, get_channel),
        (create, create_channel),
        (update, update_channel),
        (delete, delete_channel),
    ):
        if parser is not ls:
            parser.add_argument("id", metavar="ID", help="the channel id (e.g. gd1.gdtv.cn)")
        add_output(parser)
        parser.set_defaults(func=runner(command))
