"""``headend alert issue|confirm|cancel|list|show``: emergency alerts over gRPC (the EPG
server: ``EPG_TARGET`` or ``--target``, ``HEADEND_API_KEY``: an ``emergency:<agency>`` key to
issue, confirm and cancel; the admin also cancels and reads).

The two-person rule is the server's: whoever issues an alert cannot confirm it with the same
key. ``issue --dry-run`` asks the server to check the alert (it stores nothing); what the
alert would reach (boxes, edges) needs the other services, so the composition root passes
that part in (``headend.alert_cli``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import IO, Any

from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, Card, Severity
from epg.cli_common import DEFAULT_TARGET, TARGET_VAR
from epg.cli_common import codes as comma_list
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
from headend.output import add_output, emit
from headend.settings import environ

PROG = "headend alert"
COLUMNS = ("id", "state", "severity", "headline", "regions", "in_force_from", "in_force_until")
HISTORY_COLUMNS = ("action", "principal", "key_id", "time", "request_id", "reason")
# What a dry run prints once the server accepted the alert: (args, alert, out) -> exit status.
DryRun = Callable[[argparse.Namespace, Alert, IO[str]], Awaitable[int]]


def alert_row(a: Alert) -> dict[str, Any]:
    """An alert as one output row: every field, the severity and state by name."""
    return {
        "id": a.id,
        "state": a.state.value,
        "severity": a.severity.name.lower(),
        "headline": a.headline,
        "description": a.description,
        "regions": a.regions,
        "channel_ids": a.channel_ids,
        "start": a.start,
        "end": a.end,
        "feed_channel_id": a.feed_channel_id,
        "card_text": a.card.text if a.card else "",
        "card_audio_uri": a.card.audio_uri if a.card else "",
        "playout_channel_id": a.playout_channel_id,
        "drill": a.drill,
        "language": a.language,
        "version": a.version,
        "in_force_from": a.in_force_from,
        "in_force_until": a.in_force_until,
        "history": [{c: getattr(s, c) for c in HISTORY_COLUMNS} for s in a.history],
    }


def _listed(values: Iterable[str] | None) -> tuple[str, ...]:
    """Repeated options, each possibly a comma list: ``--region 440000,450000 --region 110000``."""
    return tuple(code for value in values or () for code in comma_list(value))


def alert_from_args(args: argparse.Namespace) -> Alert:
    """The alert ``issue`` was given (the server checks it)."""
    if (args.feed is None) == (args.card is None):
        raise CliError("give exactly one of --feed CHANNEL or --card TEXT")
    if args.card_audio and args.card is None:
        raise CliError("--card-audio goes with --card")
    return Alert(
        id=args.id,
        severity=Severity[args.severity.upper()],
        headline=args.headline,
        description=args.description,
        regions=_listed(args.region),
        channel_ids=_listed(args.channel),
        start=args.start,
        end=args.end,
        feed_channel_id=args.feed or "",
        card=None if args.card is None else Card(args.card, args.card_audio),
        drill=args.drill,
        language=args.language,
    )


def open_client(args: argparse.Namespace, env: Mapping[str, str]) -> AlertClient:
    """A client of ``AlertService`` at ``--target`` (else ``EPG_TARGET``)."""
    target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET, target=args.target)
    return AlertClient(target, key, tls=client_tls(env))


def show(alert: Alert, output: str, out: IO[str]) -> None:
    """One alert (``json``: every field, its history too); a table adds its history."""
    emit([alert_row(alert)], COLUMNS, output, out=out)
    if output == "table":
        print(file=out)
        history = ({c: getattr(s, c) for c in HISTORY_COLUMNS} for s in alert.history)
        emit(history, HISTORY_COLUMNS, output, out=out)


async def run(
    args: argparse.Namespace, client: AlertClient, out: IO[str], dry_run: DryRun | None
) -> int:
    """Run one ``headend alert`` command with ``client``."""
    command = args.alert_command
    if command == "list":
        listed = await client.list_alerts(ended_after=args.ended_after)
        emit((alert_row(a) for a in listed), COLUMNS, args.output, out=out)
        return 0
    if command == "issue":
        alert = alert_from_args(args)
        if args.dry_run:
            checked = await client.issue(alert, validate_only=True)
            if dry_run is not None:
                return await dry_run(args, checked, out)
            show(checked, args.output, out)
            return 0
        found = await client.issue(alert)
    elif command == "confirm":
        found = await client.confirm(args.alert_id)
    elif command == "cancel":
        found = await client.cancel(args.alert_id, args.reason)
    else:
        found = await client.get(args.alert_id)
    show(found, args.output, out)
    return 0


def register(
    subparsers: argparse._SubParsersAction,
    *,
    dry_run: DryRun | None = None,
    dry_run_env: Mapping[str, str] | None = None,
) -> None:
    """Add ``headend alert`` and its commands (``dry_run``: what ``issue --dry-run`` adds
    once the server accepted the alert, reading the variables ``dry_run_env`` describes)."""
    variables = service_env(TARGET_VAR, DEFAULT_TARGET, "EPG")
    env = env_help(variables)
    top = subparsers.add_parser(
        "alert", help="emergency alerts by region: issue, confirm (a second key), cancel", **env
    )
    commands = top.add_subparsers(dest="alert_command", required=True)
    issue = commands.add_parser(
        "issue",
        help="issue an alert: pending until another emergency key confirms it",
        **env_help({**variables, **(dry_run_env or {})}),
    )
    issue.add_argument("--id", default="", help="[a-z0-9][a-z0-9-]{0,39} (default: the server's)")
    issue.add_argument(
        "--severity", required=True, choices=[s.name.lower() for s in Severity], help="CAP severity"
    )
    issue.add_argument("--headline", required=True, help="shown in guides: at most 160 characters")
    issue.add_argument("--description", default="", help="at most 2000 characters")
    issue.add_argument(
        "--region",
        action="append",
        required=True,
        metavar="CODE[,CODE...]",
        help="6-digit region code (province, city or county); repeat or comma-separate",
    )
    issue.add_argument(
        "--channel",
        action="append",
        metavar="ID[,ID...]",
        help="a channel it replaces; repeat or comma-separate (default: every channel)",
    )
    issue.add_argument("--start", type=when, help="ISO 8601 with offset (default: when in force)")
    issue.add_argument("--end", type=when, help="ISO 8601 with offset (default: until cancelled)")
    issue.add_argument("--feed", metavar="CHANNEL", help="a live channel run as the emergency feed")
    issue.add_argument("--card", metavar="TEXT", help="a generated card's text (1-500 characters)")
    issue.add_argument("--card-audio", default="", metavar="file:///PATH", help="card audio loop")
    issue.add_argument("--drill", action="store_true", help="a drill: in force with no second key")
    issue.add_argument("--language", default="zh", help="BCP 47 tag of the texts (default: zh)")
    issue.add_argument(
        "--dry-run",
        action="store_true",
        help="only check it, and count the boxes and edges in its regions",
    )
    for name, helptext in (
        ("confirm", "confirm another key's pending alert (two-person rule)"),
        ("cancel", "end a pending or confirmed alert now"),
        ("show", "one alert and its history"),
    ):
        command = commands.add_parser(name, help=helptext, **env)
        command.add_argument("alert_id")
        if name == "cancel":
            command.add_argument("--reason", default="", help="kept in the history")
        add_output(command)
    add_output(issue)
    listing = commands.add_parser("list", help="alerts, newest first", **env)
    listing.add_argument(
        "--ended-after",
        type=when,
        metavar="TIME",
        help="only those pending or in force at or after this time",
    )
    add_output(listing)
    add_target(top, TARGET_VAR, DEFAULT_TARGET)

    async def main(args: argparse.Namespace) -> int:
        async with open_client(args, environ()) as client:
            return await run(args, client, sys.stdout, dry_run)

    top.set_defaults(func=lambda args: run_command(main(args), prog=PROG))
