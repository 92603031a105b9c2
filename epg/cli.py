"""``headend epg ...``: import and export XMLTV over gRPC (``EPG_TARGET``, ``HEADEND_API_KEY``:
see ``--help``); failures end as ``headend.clitools`` says."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from epg.client import EpgClient
from headend.clitools import CliError, api_key, client_tls, env_help, run_command, service_env
from headend.clock import utc_now
from headend.settings import environ
from headend.text import sanitize

TARGET_VAR = "EPG_TARGET"
DEFAULT_TARGET = "127.0.0.1:50051"
PROG = "headend epg"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``epg import`` and ``epg export``; each sets ``func(args) -> int``."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "EPG"))
    epg = subparsers.add_parser(
        "epg", help="the electronic programme guide (XMLTV in and out)", **env
    )
    sub = epg.add_subparsers(dest="epg_command", required=True)
    imp = sub.add_parser("import", help="import an XMLTV file (plain or .gz)", **env)
    imp.add_argument("file", type=Path)
    imp.add_argument("--strict", action="store_true", help="import nothing if any programme is bad")
    imp.add_argument(
        "--map",
        type=Path,
        metavar="FILE",
        help="channel-id mapping: one 'source_id our_id' pair per line",
    )
    imp.add_argument("--owner", default="", help="owner of channels the file creates (admin)")
    imp.set_defaults(func=run_import)
    exp = sub.add_parser("export", help="write an XMLTV guide to stdout", **env)
    exp.add_argument(
        "--channels",
        nargs="*",
        default=[],
        metavar="ID",
        help="channel ids (default: all readable)",
    )
    exp.add_argument(
        "--from",
        dest="start",
        type=_when,
        default=None,
        help="ISO 8601 time with offset (default: now)",
    )
    exp.add_argument(
        "--to",
        dest="stop",
        type=_when,
        default=None,
        help="ISO 8601 time with offset (default: from + 7 days)",
    )
    exp.add_argument("--gzip", action="store_true", help="gzip the output")
    exp.set_defaults(func=run_export)


def _when(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from err
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. +08:00)")
    return value.astimezone(UTC)


def read_map(path: Path) -> dict[str, str]:
    """Read 'source_id our_id' pairs (whitespace, comma or '=' separated; '#' comments)."""
    table: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        text = line.split("#", 1)[0].replace(",", " ").replace("=", " ").strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 2:
            raise CliError(f"{path}:{number}: expected 'source_id our_id'")
        table[parts[0]] = parts[1]
    return table


def _client(env: Mapping[str, str]) -> EpgClient:
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET)
    return EpgClient(target, key, tls=client_tls(env))


async def import_file(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Stream a file to ImportXmltv and print the report; 1 when elements were skipped."""
    async with _client(env) as client:
        if not args.file.is_file():
            raise CliError(f"no such file: {args.file}")
        with args.file.open("rb") as data:
            report = await client.import_xmltv(
                data,
                strict=args.strict,
                owner=args.owner,
                channel_map=read_map(args.map) if args.map else None,
            )
    print(
        f"channels created {report.channels_created} updated {report.channels_updated}; "
        f"programmes written {report.programmes_written} unchanged "
        f"{report.programmes_unchanged} replaced {report.programmes_removed} "
        f"trimmed {report.programmes_trimmed}; version {report.version}",
        file=out,
    )
    for p in report.problems:
        # Problems quote the file: no control character reaches the terminal.
        print(f"{args.file}:{p.line}: {sanitize(p.channel)}: {sanitize(p.reason)}", file=out)
    more = report.problems_total - len(report.problems)
    if more > 0:
        print(f"{args.file}: {more} more problem(s) not listed", file=out)
    return 1 if report.problems or report.problems_total else 0


async def export_guide(args: argparse.Namespace, env: Mapping[str, str], out: IO[bytes]) -> int:
    """Stream ExportXmltv to ``out``."""
    start = args.start or utc_now().replace(microsecond=0)
    stop = args.stop or start + timedelta(days=7)
    async with _client(env) as client:
        async for chunk in client.export_xmltv(args.channels, start, stop, gzip=args.gzip):
            out.write(chunk)
    out.flush()
    return 0


def run_import(args: argparse.Namespace) -> int:
    """``headend epg import FILE [--strict] [--map FILE] [--owner ID]``."""
    return run_command(prog=PROG, command=import_file(args, environ(), sys.stdout))


def run_export(args: argparse.Namespace) -> int:
    """``headend epg export [--channels ...] [--from T] [--to T] [--gzip] > out.xml``."""
    return run_command(prog=PROG, command=export_guide(args, environ(), sys.stdout.buffer))
