"""``headend epg ...``: the broadcaster's scheduling desk over gRPC (``EPG_TARGET`` or
``--target``, ``HEADEND_API_KEY``: see ``--help``); failures end as ``headend.clitools`` says.

This module holds the group and XMLTV in and out; the catalogue is in
``epg.cli_channels``, the schedule and slots in ``epg.cli_programmes``, the
guide queries in ``epg.cli_guide``, and what they share in ``epg.cli_common``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import IO

from epg import cli_channels, cli_guide, cli_programmes
from epg.cli_common import DEFAULT_TARGET, PROG, TARGET_VAR, add_window, open_client, window
from headend.clitools import CliError, add_target, env_help, run_command, service_env
from headend.settings import environ
from headend.text import sanitize

__all__ = ["DEFAULT_TARGET", "TARGET_VAR", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend epg`` and its commands; each sets ``func(args) -> int``."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "EPG"))
    epg = subparsers.add_parser(
        "epg",
        help="the electronic programme guide: channels, schedules, gaps, XMLTV in and out",
        **env,
    )
    sub = epg.add_subparsers(dest="epg_command", required=True)
    cli_channels.register(sub, env)
    cli_programmes.register(sub, env)
    cli_guide.register(sub, env)
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
    add_window(exp, "7 days")
    exp.add_argument("--gzip", action="store_true", help="gzip the output")
    exp.set_defaults(func=run_export)
    add_target(epg, TARGET_VAR, DEFAULT_TARGET)


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


async def import_file(args: argparse.Namespace, env: Mapping[str, str], out: IO[str]) -> int:
    """Stream a file to ImportXmltv and print the report; 1 when elements were skipped."""
    async with open_client(args, env) as client:
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
    start, stop = window(args, timedelta(days=7))
    async with open_client(args, env) as client:
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
