"""The alerts page over a real EPG (with ``AlertService``) and Redis: pending, confirmed and
cancelled alerts with their states and history, the banner on every admin page while one
is in force (read once per session for a few seconds), the admin's cancel button with its
CSRF token, and no alerts for a broadcaster or a carrier."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from epg.alerts.client import AlertClient
from epg.alerts.domain import Alert, AlertState, Severity
from headend.auth import KeyStore, Principal, key_id
from headend.seed import World
from tests.epg.alerts.support import alert
from tests.support.console import ConsoleFace, Operator, console_face
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, LIVE

AGENCY = Principal("emergency", "x")
BANNER = "Emergency alert in force"


@dataclass
class Agency:
    """Two emergency keys of one agency: the issuer and the second person."""

    issuer: AlertClient
    confirmer: AlertClient
    issuer_key_id: str
    confirmer_key_id: str

    async def in_force(self, given: Alert) -> Alert:
        """``given`` issued and confirmed by the other key."""
        issued = await self.issuer.issue(given)
        return await self.confirmer.confirm(issued.id)


class Clock:
    """The console's session clock (and so its banner cache's), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def typhoon(alert_id: str, **changes: Any) -> Alert:
    """A severe card alert ("Typhoon: stay indoors") for Guangdong on every channel."""
    return dataclasses.replace(alert(alert_id), **changes)


@pytest.fixture
async def agency(targets: dict[str, str], keys: KeyStore) -> AsyncIterator[Agency]:
    _, first = await keys.create(AGENCY)
    _, second = await keys.create(AGENCY)
    async with (
        AlertClient(targets["EPG_TARGET"], first) as issuer,
        AlertClient(targets["EPG_TARGET"], second) as confirmer,
    ):
        yield Agency(issuer, confirmer, key_id(first), key_id(second))


def _by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["id"]: row for row in rows}


async def test_the_page_lists_pending_confirmed_and_cancelled_alerts_with_their_history(
    console: ConsoleFace, tokens: Tokens, agency: Agency
) -> None:
    await agency.issuer.issue(typhoon("pending1", severity=Severity.EXTREME))
    await agency.in_force(
        typhoon(
            "flood1",
            headline="Flood warning",
            regions=("440300", "440305"),
            channel_ids=(LIVE,),
            card=None,
            feed_channel_id="emergency.cn",
            severity=Severity.MODERATE,
        )
    )
    await agency.issuer.issue(typhoon("over1", drill=True))  # a drill: in force at once
    await agency.issuer.cancel("over1", "all clear")
    async with console.operator() as op:
        await op.login(await tokens())
        data = (await op.get("/api/alerts.json")).json
        assert [r["id"] for r in data["open"]] == ["flood1", "pending1"]  # newest first
        assert [r["id"] for r in data["ended"]] == ["over1"]
        rows = _by_id(data["open"] + data["ended"])
        assert {i: (r["state"], r["in_force"], r["cancellable"]) for i, r in rows.items()} == {
            "pending1": ("pending", False, True),
            "flood1": ("confirmed", True, True),
            "over1": ("cancelled", False, False),
        }
        steps = {
            i: [(s["action"], s["principal"], s["key_id"], s["reason"]) for s in r["history"]]
            for i, r in rows.items()
        }
        first, second = agency.issuer_key_id, agency.confirmer_key_id
        assert steps == {
            "pending1": [("issue", "emergency:x", first, "")],
            "flood1": [("issue", "emergency:x", first, ""), ("confirm", "emergency:x", second, "")],
            "over1": [
                ("issue", "emergency:x", first, ""),
                ("cancel", "emergency:x", first, "all clear"),
            ],
        }
        assert rows["flood1"]["in_force_from"] is not None
        assert rows["flood1"]["in_force_until"] is None
        assert rows["over1"]["in_force_until"] is not None
        assert (rows["flood1"]["feed_channel_id"], rows["flood1"]["channels"]) == (
            "emergency.cn",
            [LIVE],
        )
        assert (rows["pending1"]["card"], rows["pending1"]["channels"]) == (
            "Typhoon: stay indoors",
            [],
        )

        html = (await op.get("/alerts")).text
        rows_at = [html.index(f'<tr data-alert="{i}"') for i in ("flood1", "pending1", "over1")]
        assert html.index('id="open"') < rows_at[0] < rows_at[1] < html.index('id="ended"')
        assert html.index('id="ended"') < rows_at[2]
        assert "pending confirmation" in html
        assert "sev sev-extreme" in html
        assert "card: Typhoon: stay indoors" in html
        assert "feed: emergency.cn" in html
        assert "440300, 440305" in html
        assert ">all clear<" in html
        assert first in html
        assert second in html
        # A cancel button on each open alert, none on the ended one.
        assert 'action="/alerts/pending1/cancel"' in html
        assert 'action="/alerts/flood1/cancel"' in html
        assert 'action="/alerts/over1/cancel"' not in html
        zh = (await op.get("/alerts?lang=zh")).text
        assert "紧急警报生效中" in zh
        assert "已取消" in zh
        assert "演练" in zh


async def test_the_banner_shows_while_an_alert_is_in_force_until_it_is_cancelled(
    targets: dict[str, str], world: World, tokens: Tokens, agency: Agency
) -> None:
    clock = Clock()
    async with console_face(targets, clock=clock) as face, face.operator() as op:
        await op.login(await tokens())
        await agency.issuer.issue(typhoon("t1", headline="Flood warning", regions=("440300",)))
        page = await op.get("/edges")
        assert page.status == 200
        assert BANNER not in page.text  # pending: not in force
        await agency.confirmer.confirm("t1")
        # Read once per session for a few seconds: not yet, then on the next read.
        assert BANNER not in (await op.get("/edges")).text
        clock.now += 6
        page = await op.get("/edges")
        assert f"{BANNER}: Flood warning (440300)" in page.text
        assert '<a href="/alerts">' in page.text
        polled = (await op.get("/api/edges.json")).json
        assert [a["id"] for a in polled["alerts_in_force"]] == ["t1"]
        assert polled["regions"]  # the page's own data, unchanged
        assert f"{BANNER}: Flood warning" in (await op.get("/guide")).text

        answer = await op.post("/alerts/t1/cancel", {"reason": "water receding"})
        assert (answer.status, answer.json) == (200, {"alert": "t1", "state": "cancelled"})
        # The action forgot the cached banner: gone at once.
        assert BANNER not in (await op.get("/edges")).text
        assert (await op.get("/api/edges.json")).json["alerts_in_force"] == []
    cancelled = await agency.issuer.get("t1")
    assert cancelled.state is AlertState.CANCELLED
    last = cancelled.history[-1]
    assert (last.action, last.principal, last.reason) == ("cancel", "admin", "water receding")


async def _form_post(op: Operator, path: str, csrf: str, reason: str) -> int:
    """A browser's form post (no script): the token in the form, no header."""
    form = {"reason": reason, **({"csrf": csrf} if csrf else {})}
    return (await op.request("POST", path, data=form)).status


async def test_cancel_needs_the_session_csrf_token(
    console: ConsoleFace, tokens: Tokens, agency: Agency
) -> None:
    await agency.in_force(typhoon("c1"))
    async with console.operator() as op, console.operator() as other:
        await op.login(await tokens())
        await other.login(await tokens())
        for token in ("", "forged", other.csrf):
            assert await _form_post(op, "/alerts/c1/cancel", token, "no") == 403
            assert (await op.post("/alerts/c1/cancel", {"reason": "no"}, csrf=token)).status == 403
        assert (await agency.issuer.get("c1")).state is AlertState.CONFIRMED
        answer = await op.request(
            "POST", "/alerts/c1/cancel", data={"csrf": op.csrf, "reason": "false alarm"}
        )
        assert (answer.status, answer.headers["Location"]) == (303, "/alerts")
        row = _by_id((await op.get("/api/alerts.json")).json["ended"])["c1"]
        assert row["state"] == "cancelled"
        assert row["history"][-1]["reason"] == "false alarm"
        # Once ended, a second cancel is refused and changes nothing.
        again = await op.post("/alerts/c1/cancel", {"reason": "again"})
        assert again.status == 409, again.text
        assert len((await agency.issuer.get("c1")).history) == 3


@pytest.mark.parametrize(
    ("path", "status"), [("/alerts/nope/cancel", 404), ("/alerts/%3Cb%3E/cancel", 400)]
)
async def test_cancelling_a_bad_alert_is_a_clear_error(
    console: ConsoleFace, tokens: Tokens, path: str, status: int
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        answer = await op.post(path, {"reason": "x"})
        assert answer.status == status, answer.text
        assert answer.headers["Content-Type"].startswith("application/problem+json")


async def test_a_file_for_a_reason_is_a_clear_error_and_cancels_nothing(
    console: ConsoleFace, tokens: Tokens, agency: Agency
) -> None:
    await agency.in_force(typhoon("f1"))
    async with console.operator() as op:
        await op.login(await tokens())
        form = aiohttp.FormData()
        form.add_field("reason", b"all clear", filename="reason.txt")
        answer = await op.request(
            "POST", "/alerts/f1/cancel", data=form, headers={"X-CSRF-Token": op.csrf}
        )
        assert answer.status == 400, answer.text
        assert answer.json["invalid_params"][0]["name"] == "reason"
    assert (await agency.issuer.get("f1")).state is AlertState.CONFIRMED


@pytest.mark.parametrize("principal", ["broadcaster:demo", f"carrier:{CARRIER}"])
async def test_a_broadcaster_or_a_carrier_gets_no_alerts(
    console: ConsoleFace, tokens: Tokens, agency: Agency, principal: str
) -> None:
    await agency.in_force(typhoon("b1"))
    async with console.operator() as op:
        landing = (await op.login(await tokens(principal))).headers["Location"]
        page = await op.get(landing)
        assert page.status == 200
        assert 'data-nav="alerts"' not in page.text
        assert BANNER not in page.text
        assert "alerts_in_force" not in (await op.get(f"/api{landing}.json")).json
        html = await op.get("/alerts")
        assert (html.status, "Error 403" in html.text) == (403, True)
        data = await op.get("/api/alerts.json")
        assert data.status == 403
        assert data.headers["Content-Type"].startswith("application/problem+json")
        assert (await op.post("/alerts/b1/cancel", {"reason": "mine"})).status == 403
    assert (await agency.issuer.get("b1")).state is AlertState.CONFIRMED
