"""``headend alert``: the alert commands (``epg.cli_alerts``) with what ``issue --dry-run``
needs from two other services, wired here because only the composition root may import
them all.

A dry run first has the EPG server check the alert (stores nothing), then says what it
would reach: the boxes that played in its regions over the last 24 hours (the viewing
reports of the subscriber server, ``SUBSCRIBER_TARGET``) and the registered edges in its
regions (the CDN controller, ``CDN_TARGET``). Both reads need a key that may read every
carrier's figures and the edges (the admin's); an emergency key may not, so they use
``HEADEND_IMPACT_API_KEY`` (or ``_FILE``) when set, else ``HEADEND_API_KEY``; a refused
read is reported as not counted, never as zero.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import IO

from cdn_ctl.cli import DEFAULT_TARGET as CDN_DEFAULT_TARGET
from cdn_ctl.cli import TARGET_VAR as CDN_TARGET_VAR
from cdn_ctl.client import CdnClient
from cdn_ctl.service import EdgeStatus
from epg import cli_alerts
from epg.alerts.domain import Alert
from headend.clitools import API_KEY_VAR, CliError, client_tls
from headend.clock import utc_now
from headend.errors import HeadendError
from headend.regions import covers
from headend.settings import SettingsError, env_secret, environ
from subscriber.cli_common import DEFAULT_TARGET as SUBSCRIBER_DEFAULT_TARGET
from subscriber.cli_common import TARGET_VAR as SUBSCRIBER_TARGET_VAR
from subscriber.reports.client import ViewingReportClient
from subscriber.reports.domain import Dimension, Granularity, ViewingRow

IMPACT_KEY_VAR = "HEADEND_IMPACT_API_KEY"
LOOKBACK = timedelta(hours=24)
BOXES_MEANING = (
    "boxes that played any channel while in one of the alert's regions, counted per region "
    "and per UTC day over the last 24 hours and summed: a box seen on two days or in two "
    "regions counts twice, so this is an upper bound"
)
EDGES_MEANING = "registered edges whose region lies inside one of the alert's regions"


@dataclass(frozen=True, slots=True)
class Impact:
    """What an alert would reach (None: that part could not be read, with why)."""

    boxes: int | None
    days: tuple[date, ...]
    edges: tuple[str, ...] | None
    problems: tuple[str, ...] = ()


def boxes_in(regions: Sequence[str], rows: Iterable[ViewingRow]) -> tuple[int, tuple[date, ...]]:
    """The box figure (:data:`BOXES_MEANING`) from day rows grouped by region, and its days."""
    counted = [r for r in rows if any(covers(area, r.key) for area in regions)]
    days = sorted({r.bucket_start.date() for r in counted})
    return sum(r.unique_boxes for r in counted), tuple(days)


def edges_in(regions: Sequence[str], edges: Iterable[EdgeStatus]) -> tuple[str, ...]:
    """The ids of the edges inside the alert's regions, sorted."""
    return tuple(
        sorted(
            s.edge.edge_id for s in edges if any(covers(area, s.edge.region) for area in regions)
        )
    )


def describe(alert: Alert, impact: Impact, output: str) -> str:
    """The dry run's report: lines for people, one JSON object for programs."""
    if output == "json":
        return json.dumps(
            {
                "alert_id": alert.id,
                "valid": True,
                "boxes": impact.boxes,
                "boxes_meaning": BOXES_MEANING,
                "days": [d.isoformat() for d in impact.days],
                "edges": None if impact.edges is None else list(impact.edges),
                "edges_meaning": EDGES_MEANING,
                "problems": list(impact.problems),
            },
            ensure_ascii=False,
        )
    lines = [f"alert {alert.id} is valid (dry run: nothing stored)"]
    if impact.boxes is None:
        lines.append("boxes: not counted")
    else:
        days = ", ".join(d.isoformat() for d in impact.days) or "none"
        lines.append(f"boxes: {impact.boxes} ({BOXES_MEANING}; days: {days})")
    if impact.edges is None:
        lines.append("edges: not counted")
    else:
        listed = ", ".join(impact.edges) or "none"
        lines.append(f"edges: {len(impact.edges)} ({EDGES_MEANING}): {listed}")
    lines += [f"note: {p}" for p in impact.problems]
    return "\n".join(lines)


async def measure(alert: Alert, *, reports: ViewingReportClient, cdn: CdnClient) -> Impact:
    """Read the figures and the edges; a part the services refuse is left uncounted."""
    boxes: int | None = None
    days: tuple[date, ...] = ()
    edges: tuple[str, ...] | None = None
    problems: list[str] = []
    now = utc_now()
    try:
        rows = await reports.query_viewing(
            now - LOOKBACK, now, granularity=Granularity.DAY, group_by=Dimension.REGION
        )
        boxes, days = boxes_in(alert.regions, rows)
    except HeadendError as err:
        problems.append(f"viewing reports: {err}")
    try:
        edges = edges_in(alert.regions, await cdn.list_edges())
    except HeadendError as err:
        problems.append(f"edges: {err}")
    if problems:
        problems.append(f"set {IMPACT_KEY_VAR} to a key that reads them (the admin's)")
    return Impact(boxes, days, edges, tuple(problems))


async def _dry_run(args: argparse.Namespace, alert: Alert, out: IO[str]) -> int:
    env = environ()
    try:
        key = env_secret(env, IMPACT_KEY_VAR) or env_secret(env, API_KEY_VAR) or ""
    except SettingsError as err:
        raise CliError(str(err)) from err
    tls = client_tls(env)
    sub_target = env.get(SUBSCRIBER_TARGET_VAR, "") or SUBSCRIBER_DEFAULT_TARGET
    cdn_target = env.get(CDN_TARGET_VAR, "") or CDN_DEFAULT_TARGET
    async with (
        ViewingReportClient(sub_target, key, tls=tls, timeout_seconds=60.0) as reports,
        CdnClient(cdn_target, key, tls=tls) as cdn,
    ):
        impact = await measure(alert, reports=reports, cdn=cdn)
    print(describe(alert, impact, args.output), file=out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend alert`` with its dry run."""
    cli_alerts.register(
        subparsers,
        dry_run=_dry_run,
        dry_run_env={
            SUBSCRIBER_TARGET_VAR: "--dry-run: the subscriber server (viewing reports) "
            f"(default {SUBSCRIBER_DEFAULT_TARGET})",
            CDN_TARGET_VAR: f"--dry-run: the CDN controller (edges) (default {CDN_DEFAULT_TARGET})",
            IMPACT_KEY_VAR: f"--dry-run: a key that reads every carrier's figures and the edges "
            f"(the admin's; or {IMPACT_KEY_VAR}_FILE; default: {API_KEY_VAR})",
        },
    )
