"""``headend alert``, run as the console script against real servers (port 0, real Redis),
and the dry run's pure parts (the box and edge figures, the report)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import redis.asyncio as aioredis

from cdn_ctl.client import CdnClient
from cdn_ctl.domain import Edge, Tier
from cdn_ctl.service import EdgeStatus
from epg.alerts.client import AlertClient
from epg.alerts.domain import AlertState
from headend.alert_cli import Impact, boxes_in, describe, edges_in
from headend.auth import KeyStore
from headend.clitools import EXIT_REFUSED, EXIT_USAGE
from subscriber.reports.domain import ViewingRow
from tests.epg.alerts.support import alert
from tests.epg.support import Grpc
from tests.support.rest import every_service
from tests.support.tokens import Tokens

HEADEND = str(Path(sys.executable).with_name("headend"))
AGENCY, OTHER = "emergency:gd-eb", "emergency:gd-eb2"
_CLEARED = (
    "HEADEND_API_KEY", "HEADEND_API_KEY_FILE", "HEADEND_IMPACT_API_KEY", "HEADEND_DEBUG",
    "EPG_TARGET", "SUBSCRIBER_TARGET", "CDN_TARGET",
)  # fmt: skip


async def headend(*args: str, **env: str) -> tuple[int, str, str]:
    """``headend alert ARGS`` with ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    proc = await asyncio.create_subprocess_exec(
        HEADEND, "alert", *args, env={**base, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_issue_confirm_cancel_list_show(grpc_epg: Grpc) -> None:
    first = {"EPG_TARGET": grpc_epg.target, "HEADEND_API_KEY": await grpc_epg.token(AGENCY)}
    second = {**first, "HEADEND_API_KEY": await grpc_epg.token(OTHER)}
    code, out, err = await headend(
        "issue", "--id", "typhoon-1", "--severity", "extreme", "--headline", "Typhoon",
        "--region", "440100,440300", "--region", "450000", "--channel", "cctv1",
        "--card", "Stay indoors", "--card-audio", "file:///media/siren.wav",
        "--end", "2099-01-01T00:00:00+08:00", "-o", "json", **first,
    )  # fmt: skip
    assert (code, err) == (0, "")
    issued = json.loads(out)[0]
    assert issued["state"] == "pending"
    assert issued["regions"] == ["440100", "440300", "450000"]
    assert issued["end"] == "2098-12-31T16:00:00+00:00"
    assert issued["history"][0]["action"] == "issue"
    # The same key may not confirm: refused, exit 1, and the reason said.
    code, out, err = await headend("confirm", "typhoon-1", **first)
    assert code == EXIT_REFUSED
    assert "two-person" in err
    code, out, err = await headend("confirm", "typhoon-1", **second)
    assert (code, err) == (0, "")
    assert "confirmed" in out
    assert "refuse_confirm" in out
    code, out, _ = await headend("list", "-o", "csv", **second)
    assert out.splitlines()[1].startswith("typhoon-1,confirmed,extreme,Typhoon,")
    code, out, err = await headend(
        "cancel", "typhoon-1", "--reason", "passed", "-o", "json", **first
    )
    assert (code, err) == (0, "")
    assert json.loads(out)[0]["history"][-1]["reason"] == "passed"
    async with AlertClient(grpc_epg.target, await grpc_epg.token("admin")) as client:
        assert (await client.get("typhoon-1")).state is AlertState.CANCELLED


async def test_usage_errors(grpc_epg: Grpc) -> None:
    env = {"EPG_TARGET": grpc_epg.target, "HEADEND_API_KEY": await grpc_epg.token(AGENCY)}
    both = ("issue", "--severity", "minor", "--headline", "h", "--region", "440000")
    code, _, err = await headend(*both, "--feed", "f", "--card", "c", **env)
    assert code == EXIT_USAGE
    assert "exactly one" in err
    code, _, err = await headend(*both, "--card", "c", "--start", "2030-01-01T00:00", **env)
    assert code == EXIT_USAGE
    assert "offset" in err


async def test_dry_run_counts_edges_against_real_servers(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, tmp_path: Path
) -> None:
    async with every_service(redis, keys, tmp_path) as targets:
        admin = await tokens("admin")
        async with CdnClient(targets["CDN_TARGET"], admin) as cdn:
            for edge_id, region in (("gz-1", "440103"), ("sz-1", "440304"), ("bj-1", "110101")):
                await cdn.register_edge(
                    Edge(edge_id, region, Tier.EDGE, "10.0.0.1", 8080, 100, 1000.0, 1000.0)
                )
        env = {**targets, "HEADEND_API_KEY": await tokens(AGENCY)}
        args = ("issue", "--id", "d1", "--severity", "severe", "--headline", "Flood",
                "--region", "440100", "--region", "440300", "--feed", "emergency.feed",
                "--dry-run")  # fmt: skip
        # With the emergency key alone the other services refuse: not counted, never zero.
        code, out, err = await headend(*args, **env)
        assert (code, err) == (0, "")
        assert "boxes: not counted" in out
        assert "HEADEND_IMPACT_API_KEY" in out
        code, out, err = await headend(*args, "-o", "json", HEADEND_IMPACT_API_KEY=admin, **env)
        assert (code, err) == (0, "")
        report = json.loads(out)
        assert (report["alert_id"], report["boxes"], report["edges"]) == ("d1", 0, ["gz-1", "sz-1"])
        assert "upper bound" in report["boxes_meaning"]
        async with AlertClient(targets["EPG_TARGET"], admin) as alerts:
            assert await alerts.list_alerts() == []  # a dry run stores nothing


def _row(day: int, region: str, boxes: int) -> ViewingRow:
    return ViewingRow(datetime(2030, 5, day, tzinfo=UTC), region, 0, boxes, 0)


def test_boxes_and_edges_in_the_regions() -> None:
    rows = [
        _row(1, "440103", 10),
        _row(2, "440103", 7),
        _row(2, "440304", 5),
        _row(2, "110101", 99),
    ]
    assert boxes_in(["440100", "440300"], rows) == (22, (date(2030, 5, 1), date(2030, 5, 2)))
    assert boxes_in(["440103"], rows) == (17, (date(2030, 5, 1), date(2030, 5, 2)))
    assert boxes_in(["450000"], rows) == (0, ())
    edges = [
        EdgeStatus(Edge(i, r, Tier.EDGE, "h", 1, 1, 1.0, 1.0), None, 0)
        for i, r in (("b", "440103"), ("a", "440000"), ("c", "110000"))
    ]
    assert edges_in(["440000"], edges) == ("a", "b")
    assert edges_in(["440100"], edges) == ("b",)


def test_the_report_says_what_the_figures_mean() -> None:
    text = describe(alert("x1"), Impact(22, (date(2030, 5, 1),), ("gz-1",)), "table")
    assert text.splitlines() == [
        "alert x1 is valid (dry run: nothing stored)",
        text.splitlines()[1],
        "edges: 1 (registered edges whose region lies inside one of the alert's regions): gz-1",
    ]
    assert text.splitlines()[1].startswith("boxes: 22 (boxes that played any channel")
    assert "days: 2030-05-01" in text
    assert "upper bound" in text
