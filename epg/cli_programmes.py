"""``headend epg programmes ...`` and ``headend epg slots expand``: a channel's schedule.

``programmes edit`` changes only the options given: it reads the programme and
writes it back whole under its own id (``PutProgrammes`` replaces a programme
of the same id), so the blackout, catch-up and texts not named stay as they
were. Every write is checked for overlaps: refused with the conflicting ids,
or, with ``--replace``, trimming or removing what it overlaps.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from datetime import time, timedelta
from typing import IO, Any

from epg.cli_common import (
    PROGRAMME_COLUMNS,
    TEXT_HELP,
    add_window,
    codes,
    day,
    localized,
    programme_row,
    rating,
    runner,
    when,
    window,
)
from epg.client import EpgClient
from epg.domain import FoldPolicy, GapPolicy, Programme, SlotRule, WritePolicy, WriteResult
from headend.output import add_output, emit

RESULT_COLUMNS = ("id", "change", "version")
_WEEKDAYS = re.compile(r"[1-7](?:-[1-7])?(?:,[1-7](?:-[1-7])?)*")
# Option -> Programme field, for the repeated texts a programme carries.
_TEXTS = (
    ("titles", "--title"),
    ("sub_titles", "--sub-title"),
    ("descriptions", "--description"),
    ("categories", "--category"),
    ("keywords", "--keyword"),
)


def _policy(args: argparse.Namespace) -> WritePolicy:
    return WritePolicy.REPLACE if args.replace else WritePolicy.REFUSE


def _emit_result(result: WriteResult, args: argparse.Namespace, out: IO[str]) -> None:
    rows = [
        {"id": pid, "change": change, "version": result.version}
        for change, ids in (
            ("written", result.written),
            ("unchanged", result.unchanged),
            ("removed", result.removed),
            ("trimmed", result.trimmed),
        )
        for pid in ids
    ]
    emit(rows, RESULT_COLUMNS, args.output, out=out)


def weekdays(text: str) -> frozenset[int]:
    """``1-5`` or ``6,7`` (ISO: 1 is Monday) as the domain's weekdays (0 is Monday)."""
    if _WEEKDAYS.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not ISO weekdays like 1-5 or 6,7")
    days: set[int] = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        days.update(range(int(first) - 1, int(last or first)))
    return frozenset(days)


def clock(text: str) -> time:
    """A local wall-clock time ``HH:MM``."""
    try:
        value = time.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time HH:MM") from err
    if value.second or value.microsecond or value.tzinfo is not None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a local HH:MM, without seconds or offset")
    return value


def _fields(parser: argparse.ArgumentParser, *, add: bool) -> None:
    """A programme's fields as options (on edit, None means: leave it as it is)."""
    for end in ("start", "stop"):
        parser.add_argument(
            f"--{end}",
            type=when,
            required=add,
            metavar="TIME",
            help="ISO 8601 time with offset (2026-03-02T19:00:00+08:00)",
        )
    for field, option in _TEXTS:
        parser.add_argument(
            option,
            dest=field,
            action="append",
            type=localized,
            metavar="[LANG:]TEXT",
            required=add and field == "titles",
            help=TEXT_HELP,
        )
    parser.add_argument(
        "--rating",
        dest="ratings",
        action="append",
        type=rating,
        metavar="[SYSTEM:]VALUE",
        help="a content rating (CN:G); repeatable",
    )
    parser.add_argument("--icon", dest="icons", action="append", metavar="URL", help="repeatable")
    parser.add_argument(
        "--episode", dest="episode_onscreen", metavar="TEXT", help="as shown on screen (E12)"
    )
    parser.add_argument(
        "--xmltv-ns", dest="episode_xmltv_ns", metavar="N.N.N/N", help="XMLTV episode (0.11.0/1)"
    )
    for name, what in (("premiere", "a premiere"), ("previously-shown", "a repeat")):
        parser.add_argument(
            f"--{name}",
            action=argparse.BooleanOptionalAction,
            default=None,
            help=f"mark it as {what}",
        )
    parser.add_argument(
        "--catchup",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether boxes may watch it back (default on add: yes)",
    )
    parser.add_argument(
        "--blackout-regions",
        type=codes,
        metavar="CODE,...",
        help="6-digit region codes where it must not be shown (110000 is all of Beijing)",
    )
    parser.add_argument("--blackout-slate", metavar="URL", help="what those regions see instead")
    parser.add_argument(
        "--audio",
        dest="audio_languages",
        type=codes,
        metavar="LANG,...",
        help='its audio languages, the default (original) first (zh,en); "" for none',
    )
    parser.add_argument(
        "--subtitles",
        dest="subtitle_languages",
        type=codes,
        metavar="LANG,...",
        help='languages of the subtitles a viewer can turn on (zh,en); "" for none',
    )
    if not add:
        parser.add_argument(
            "--clear-blackout",
            action="store_true",
            help="show it everywhere again (no regions, no slate)",
        )
    parser.add_argument(
        "--replace",
        action="store_true",
        help="trim or remove what it overlaps (default: refuse the overlap)",
    )


def _changed(p: Programme, args: argparse.Namespace) -> Programme:
    """``p`` with the options given applied."""
    names = (
        "start",
        "stop",
        "episode_onscreen",
        "episode_xmltv_ns",
        "premiere",
        "previously_shown",
        "audio_languages",
        "subtitle_languages",
    )
    given: dict[str, Any] = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    for name in (*(field for field, _ in _TEXTS), "ratings", "icons"):
        if getattr(args, name):
            given[name] = tuple(getattr(args, name))
    rights = p.rights
    if getattr(args, "clear_blackout", False):
        rights = dataclasses.replace(rights, blackout_regions=(), blackout_slate="")
    for name, value in (
        ("catchup_allowed", args.catchup),
        ("blackout_regions", args.blackout_regions),
        ("blackout_slate", args.blackout_slate),
    ):
        if value is not None:
            rights = dataclasses.replace(rights, **{name: value})
    return dataclasses.replace(p, **given, rights=rights)


async def list_programmes(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print a channel's programmes in a window."""
    start, stop = window(args, timedelta(days=1))
    found = await client.range(args.channel, start, stop)
    emit([programme_row(p) for p in found], PROGRAMME_COLUMNS, args.output, out=out)
    return 0


async def get_programme(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Print one programme with its rights."""
    found = await client.get_programme(args.id)
    emit([programme_row(found)], PROGRAMME_COLUMNS, args.output, out=out)
    return 0


async def add_programme(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Schedule one programme; print what the write did."""
    blank = Programme(
        id=args.id, channel_id=args.channel, start=args.start, stop=args.stop, titles=()
    )
    result = await client.put_programmes(
        args.channel, [_changed(blank, args)], policy=_policy(args)
    )
    _emit_result(result, args, out)
    return 0


async def edit_programme(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Change the fields given of one programme, keep the rest; print what the write did."""
    current = await client.get_programme(args.id)
    result = await client.put_programmes(
        current.channel_id, [_changed(current, args)], policy=_policy(args)
    )
    _emit_result(result, args, out)
    return 0


async def delete_programmes(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Remove programmes by id or those starting in a window; print the ids removed."""
    version, removed = await client.delete_programmes(
        args.channel, ids=args.ids, start=args.start, stop=args.stop
    )
    _emit_result(WriteResult(version, (), (), removed, ()), args, out)
    return 0


async def expand_slots(args: argparse.Namespace, client: EpgClient, out: IO[str]) -> int:
    """Expand a weekly slot into programmes; print them (written unless ``--dry-run``)."""
    rule = SlotRule(
        weekdays=args.weekdays,
        at=args.at,
        duration=timedelta(minutes=args.minutes),
        titles=tuple(args.titles),
        first_day=args.first_day,
        last_day=args.last_day,
        gap_policy=GapPolicy(args.gap),
        fold_policy=FoldPolicy(args.fold),
        categories=tuple(args.categories or ()),
        descriptions=tuple(args.descriptions or ()),
    )
    found, _ = await client.expand_slots(
        args.channel, rule, policy=_policy(args), dry_run=args.dry_run
    )
    emit([programme_row(p) for p in found], PROGRAMME_COLUMNS, args.output, out=out)
    return 0


def register(sub: argparse._SubParsersAction, env: dict[str, Any]) -> None:
    """Add ``programmes list|get|add|edit|delete`` and ``slots expand`` under ``headend epg``."""
    group = sub.add_parser(
        "programmes", help="a channel's schedule: list, add, edit, black out, remove", **env
    )
    cmds = group.add_subparsers(dest="programmes_command", required=True)
    ls = cmds.add_parser("list", help="a channel's programmes in a window", **env)
    ls.add_argument("channel", metavar="CHANNEL")
    add_window(ls, "1 day")
    get = cmds.add_parser("get", help="one programme, with its catch-up and blackout", **env)
    get.add_argument("id", metavar="ID", help="the programme id")
    add = cmds.add_parser("add", help="schedule a programme on a channel", **env)
    add.add_argument("channel", metavar="CHANNEL")
    add.add_argument("--id", default="", help="its id (default: derived from channel and start)")
    _fields(add, add=True)
    edit = cmds.add_parser(
        "edit",
        help="change a programme (only the options given): times, texts, catch-up, blackout",
        **env,
    )
    edit.add_argument("id", metavar="ID", help="the programme id")
    _fields(edit, add=False)
    delete = cmds.add_parser(
        "delete", help="remove programmes by id, or all that start in --from/--to", **env
    )
    delete.add_argument("channel", metavar="CHANNEL")
    delete.add_argument("ids", metavar="ID", nargs="*", help="programme ids")
    delete.add_argument(
        "--from", dest="start", type=when, metavar="TIME", help="ISO 8601 time with offset"
    )
    delete.add_argument(
        "--to", dest="stop", type=when, metavar="TIME", help="ISO 8601 time with offset"
    )
    slots = sub.add_parser("slots", help="recurring slots in the channel's local time", **env)
    expand = slots.add_subparsers(dest="slots_command", required=True).add_parser(
        "expand", help="schedule a weekly slot (weekdays 19:00 for 30 minutes) over days", **env
    )
    expand.add_argument("channel", metavar="CHANNEL")
    expand.add_argument(
        "--days",
        dest="weekdays",
        type=weekdays,
        required=True,
        metavar="1-5",
        help="ISO weekdays, 1 Monday to 7 Sunday (1-5, 6,7)",
    )
    expand.add_argument("--at", type=clock, required=True, help="local wall-clock time HH:MM")
    expand.add_argument("--minutes", type=int, required=True, help="how long each one runs")
    expand.add_argument("--first-day", type=day, required=True, metavar="YYYY-MM-DD")
    expand.add_argument("--last-day", type=day, required=True, metavar="YYYY-MM-DD")
    for field, option in _TEXTS:
        if field in ("titles", "descriptions", "categories"):  # what a slot rule carries
            expand.add_argument(
                option,
                dest=field,
                action="append",
                type=localized,
                required=field == "titles",
                metavar="[LANG:]TEXT",
                help=TEXT_HELP,
            )
    expand.add_argument(
        "--gap",
        choices=[g.value for g in GapPolicy],
        default="shift_forward",
        help="a local time the clocks skip (default: shift_forward)",
    )
    expand.add_argument(
        "--fold",
        choices=[f.value for f in FoldPolicy],
        default="first",
        help="a local time that occurs twice (default: first)",
    )
    expand.add_argument(
        "--replace",
        action="store_true",
        help="trim or remove what the slots overlap (default: refuse)",
    )
    expand.add_argument("--dry-run", action="store_true", help="print them, write nothing")
    for parser, command in (
        (ls, list_programmes),
        (get, get_programme),
        (add, add_programme),
        (edit, edit_programme),
        (delete, delete_programmes),
        (expand, expand_slots),
    ):
        add_output(parser)
        parser.set_defaults(func=runner(command))
