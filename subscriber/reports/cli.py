"""``headend reports ...``: viewing figures over gRPC, for operators and settlement.

``headend reports viewing --from 2027-03-01T00:00:00Z --to 2027-03-02T00:00:00Z --by
channel --granularity hour [--csv]`` prints one row per bucket and key (``--csv``: the
settlement CSV of :mod:`subscriber.reports.export`); ``headend reports viewers`` the
boxes playing now. Talks to ``--target``, else ``SUBSCRIBER_TARGET``, with
``HEADEND_API_KEY``; a carrier's key reads its own boxes' figures only.
"""

from __future__ import annotations

import argparse
import sys

from headend.clitools import (
    add_target,
    api_key,
    client_tls,
    env_help,
    run_command,
    service_env,
    when,
)
from headend.output import add_output, emit
from headend.settings import environ
from subscriber.cli_common import DEFAULT_TARGET, TARGET_VAR
from subscriber.reports.client import ViewingReportClient
from subscriber.reports.domain import Dimension, Granularity
from subscriber.reports.export import COLUMNS, write_csv

PROG = "headend reports"
VIEWER_COLUMNS = ("channel_id", "carrier_id", "viewers")


def _client(args: argparse.Namespace) -> ViewingReportClient:
    env = environ()
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET, target=args.target)
    return ViewingReportClient(target, key, tls=client_tls(env), timeout_seconds=60.0)


async def _viewing(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        rows = await client.query_viewing(
            args.start,
            args.end,
            granularity=Granularity(args.granularity),
            group_by=Dimension(args.by),
            channel_id=args.channel,
            carrier_id=args.carrier,
            region=args.region,
        )
    if args.csv:
        write_csv(rows, sys.stdout)
    else:
        emit(({c: getattr(row, c) for c in COLUMNS} for row in rows), COLUMNS, args.output)
    return 0


async def _viewers(args: argparse.Namespace) -> int:
    async with _client(args) as client:
        found, _ = await client.count_viewers(args.channel)
    emit(({c: getattr(v, c) for c in VIEWER_COLUMNS} for v in found), VIEWER_COLUMNS, args.output)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend reports viewing`` and ``headend reports viewers``."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "subscriber"))
    top = subparsers.add_parser("reports", help="viewing figures and viewers now", **env)
    commands = top.add_subparsers(dest="reports_command", required=True)
    viewing = commands.add_parser(
        "viewing", help="watch time, distinct boxes and peaks per hour or day", **env
    )
    viewing.add_argument(
        "--from",
        dest="start",
        type=when,
        required=True,
        help="window start, ISO 8601 with offset (rounded down to a bucket)",
    )
    viewing.add_argument(
        "--to",
        dest="end",
        type=when,
        default=None,
        help="window end (rounded up to a bucket; default: now)",
    )
    viewing.add_argument(
        "--by",
        choices=[d.value for d in Dimension],
        default="channel",
        help="what each row's key names (default: channel)",
    )
    viewing.add_argument(
        "--granularity",
        choices=[g.value for g in Granularity],
        default="hour",
        help="bucket length, UTC (default: hour)",
    )
    viewing.add_argument("--channel", default="", help="only this channel")
    viewing.add_argument("--carrier", default="", help="only this carrier")
    viewing.add_argument("--region", default="", help="only this 6-digit region code")
    viewing.add_argument("--csv", action="store_true", help="the settlement CSV")
    add_output(viewing)
    viewing.set_defaults(func=lambda args: run_command(_viewing(args), prog=PROG))
    viewers = commands.add_parser(
        "viewers", help="boxes playing now, by channel and carrier", **env
    )
    viewers.add_argument("--channel", default="", help="only this channel")
    add_output(viewers)
    viewers.set_defaults(func=lambda args: run_command(_viewers(args), prog=PROG))
    add_target(top, TARGET_VAR, DEFAULT_TARGET)
