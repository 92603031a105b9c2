"""What every ``headend epg`` command shares: its address, how it reads times and texts, and
how it runs (one client per command, its failure ending as ``headend.clitools`` says)."""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from typing import IO, Any

from epg.client import EpgClient
from epg.domain import Programme, Rating, Text
from headend.clitools import api_key, client_tls, run_command, when
from headend.clock import utc_now
from headend.settings import environ

TARGET_VAR = "EPG_TARGET"
DEFAULT_TARGET = "127.0.0.1:50051"
PROG = "headend epg"
# "zh:新闻联播": a language code (as the EPG accepts them) and a colon before the text.
_LANG_PREFIX = re.compile(r"([a-z]{2,3}(?:-[A-Za-z0-9]{2,8})*):(.*)", re.DOTALL)
TEXT_HELP = "prefix a language and a colon (zh:新闻联播); repeat for each language"

PROGRAMME_COLUMNS = (
    "id",
    "channel_id",
    "start",
    "stop",
    "title",
    "category",
    "catchup_allowed",
    "blackout_regions",
)

Command = Callable[[argparse.Namespace, EpgClient, IO[str]], Awaitable[int | None]]


def day(text: str) -> date:
    """A calendar day, YYYY-MM-DD (an argparse ``type``)."""
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (YYYY-MM-DD)") from err


def localized(text: str) -> Text:
    """``zh:新闻联播`` as a text in ``zh``; without a language prefix the language is empty."""
    match = _LANG_PREFIX.fullmatch(text)
    return Text(match[1], match[2]) if match else Text("", text)


def rating(text: str) -> Rating:
    """``CN:G`` as a rating in a system; without a colon the system is empty."""
    system, _, value = text.rpartition(":")
    return Rating(system, value)


def codes(text: str) -> tuple[str, ...]:
    """A comma-separated list (``110000,120000``); empty text is an empty list."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_window(parser: argparse.ArgumentParser, span: str) -> None:
    """``--from`` and ``--to`` (ISO 8601 with offset); the defaults are now and ``span`` on."""
    parser.add_argument(
        "--from",
        dest="start",
        type=when,
        default=None,
        metavar="TIME",
        help="ISO 8601 time with offset (default: now)",
    )
    parser.add_argument(
        "--to",
        dest="stop",
        type=when,
        default=None,
        metavar="TIME",
        help=f"ISO 8601 time with offset (default: from + {span})",
    )


def window(args: argparse.Namespace, span: timedelta) -> tuple[datetime, datetime]:
    """``--from`` (default now, whole seconds) and ``--to`` (default ``span`` after it)."""
    start: datetime = args.start or utc_now().replace(microsecond=0)
    return start, args.stop or start + span


def programme_row(p: Programme) -> dict[str, Any]:
    """A programme as one output row: every field, and its first title and category and its
    rights flattened for the table."""
    return {
        **dataclasses.asdict(p),
        "title": p.title(),
        "category": p.categories[0].text if p.categories else "",
        "catchup_allowed": p.rights.catchup_allowed,
        "blackout_regions": p.rights.blackout_regions,
        "blackout_slate": p.rights.blackout_slate,
    }


def open_client(args: argparse.Namespace, env: Mapping[str, str]) -> EpgClient:
    """A client of the EPG at ``--target`` (else ``EPG_TARGET``) with ``HEADEND_API_KEY``."""
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET, target=args.target)
    return EpgClient(target, key, tls=client_tls(env))


def runner(command: Command) -> Callable[[argparse.Namespace], int]:
    """``func(args)`` for a subcommand: run ``command`` with one client, on stdout."""

    async def run(args: argparse.Namespace) -> int | None:
        async with open_client(args, environ()) as client:
            return await command(args, client, sys.stdout)

    return lambda args: run_command(run(args), prog=PROG)
