"""``headend epg now-next|search|gaps``: reading the guide as boxes will see it, and finding
the holes in it before they go on air."""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import IO, Any

from epg.cli_common import PROGRAMME_COLUMNS, add_window, programme_row, runner, when, window
from epg.client import EpgClient
from epg.domain import Programme
from headend.output import add_output, emit

NOW_NEXT_COLUMNS = ("channel_id", "now_start", "now_stop", "now_title", "next_start", "next_title")
GAP_COLUMNS = ("channel_id", "start", "stop", "minutes")


def _side(name: str, p: Programme | None) -> dict[str, Any]:
    if p is None:
        return {name: None}
    return {
        name: programme_row(p),
        f"{name}_id": p.id,
        f"{name}_start": p.start,
        f"{name}_stop": p.stop,
        f"{name}_title": p.title(),
    }


async def now_next(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print what is on air and what follows, per channel (an empty NOW is a gap)."""
    entries = await client.now_next(args.channels, args.at)
    rows = [
        {"channel_id": e.channel_id, **_side("now", e.now), **_side("next", e.next)}
        for e in entries
    ]
    emit(rows, NOW_NEXT_COLUMNS, args.output, out=out)
    return 0


async def search(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print the programmes whose texts contain TEXT (and carry --category)."""
    found = await client.search(
        args.text, category=args.category, start=args.start, stop=args.stop, limit=args.limit
    )
    emit([programme_row(p) for p in found], PROGRAMME_COLUMNS, args.output, out=out)
    return 0


async def gaps(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print the unscheduled stretches of a channel in a window."""
    start, stop = window(args, timedelta(days=7))
    found = await client.list_gaps(args.channel, start, stop, min_seconds=args.min_minutes * 60)
    rows = [
        {
            "channel_id": args.channel,
            "start": g.start,
            "stop": g.stop,
            "minutes": int((g.stop - g.start).total_seconds()) // 60,
        }
        for g in found
    ]
    emit(rows, GAP_COLUMNS, args.output, out=out)
    return 0


def register(sub: argparse._SubParsersAction, env: dict[str, Any]) -> None:
    """Add ``now-next``, ``search`` and ``gaps`` under ``headend epg``."""
    nn = sub.add_parser("now-next", help="what is on air now and next, per channel", **env)
    nn.add_argument(
        "channels",
        metavar="CHANNEL",
        nargs="*",
        help="channel ids (default: every readable channel)",
    )
    nn.add_argument(
        "--at",
        type=when,
        default=None,
        metavar="TIME",
        help="ISO 8601 time with offset (default: now)",
    )
    find = sub.add_parser("search", help="find programmes by title, description or keyword", **env)
    find.add_argument(
        "text",
        metavar="TEXT",
        nargs="?",
        default="",
        help="words in a title, sub-title, description or keyword",
    )
    find.add_argument("--category", default="", help="only programmes in this category")
    find.add_argument(
        "--limit", metavar="N", type=int, default=0, help="at most this many (default 100)"
    )
    add_window(find, "7 days")  # the service's own defaults
    holes = sub.add_parser("gaps", help="stretches of a channel with nothing scheduled", **env)
    holes.add_argument("channel", metavar="CHANNEL")
    add_window(holes, "7 days")
    holes.add_argument(
        "--min-minutes",
        metavar="N",
        type=int,
        default=0,
        help="ignore gaps shorter than this (default: report every one)",
    )
    for parser, command in ((nn, now_next), (find, search), (holes, gaps)):
        add_output(parser)
        parser.set_defaults(func=runner(command))
