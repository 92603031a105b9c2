"""``AlertService`` over gRPC and REST on a real EPG server (port 0, real Redis): the client,
the feed's alert changes, paging and every role."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from epg.alerts.client import AlertClient
from epg.alerts.domain import AlertState
from epg.alerts.errors import AlertNotFound, InvalidAlert
from epg.client import EpgClient
from epg.errors import NotAllowed
from headend.auth import Principal, key_id
from headend.rpc import bearer, client_channel
from protos import alerts_pb2, alerts_pb2_grpc, epg_pb2
from tests.epg.alerts.support import alert
from tests.epg.support import Grpc, channel
from tests.support.rest import rest_face

AGENCY = Principal("emergency", "gd-eb")
OTHER = Principal("emergency", "gd-eb2")
SOON = datetime.now(UTC) + timedelta(days=1)


async def test_the_client_issues_confirms_cancels_and_lists(grpc_epg: Grpc) -> None:
    first, second = await grpc_epg.token(AGENCY), await grpc_epg.token(OTHER)
    async with (
        AlertClient(grpc_epg.target, first) as issuer,
        AlertClient(grpc_epg.target, second) as confirmer,
    ):
        dry = await issuer.issue(alert("a1"), validate_only=True)
        assert dry.id == "a1"
        assert dry.history == ()
        with pytest.raises(AlertNotFound):
            await issuer.get("a1")
        issued = await issuer.issue(alert(), alert_id="a1")
        assert issued.state is AlertState.PENDING
        assert issued.history[0].key_id == key_id(first)
        assert issued.history[0].request_id
        with pytest.raises(NotAllowed, match="two-person"):
            await issuer.confirm("a1")
        confirmed = await confirmer.confirm("a1")
        assert confirmed.state is AlertState.CONFIRMED
        assert confirmed.in_force_from is not None
        assert [s.action for s in confirmed.history] == ["issue", "refuse_confirm", "confirm"]
        assert confirmed.playout_channel_id == "alert-a1"
        cancelled = await issuer.cancel("a1", reason="all clear")
        assert cancelled.state is AlertState.CANCELLED
        assert (await confirmer.get("a1")) == cancelled
        with pytest.raises(InvalidAlert) as caught:
            await issuer.issue(alert("a2", regions=("440000", "999999")))
        assert caught.value.field == "alert.regions[1]"
        assert [a.id for a in await issuer.list_alerts()] == ["a1"]
        assert await issuer.list_alerts(ended_after=SOON) == []


async def test_the_feed_carries_every_step_even_filtered_by_channel(grpc_epg: Grpc) -> None:
    first, second = await grpc_epg.token(AGENCY), await grpc_epg.token(OTHER)
    async with EpgClient(grpc_epg.target, await grpc_epg.token("admin")) as epg:
        await epg.create_channel(channel("cctv1"))
    seen: dict[str, list[epg_pb2.Change]] = {"admin": [], "playback": [], "carrier:acme": []}
    streams = {
        who: grpc_epg.stub.WatchChanges(
            epg_pb2.WatchChangesRequest(channel_ids=["cctv1"] if who == "admin" else []),
            metadata=await grpc_epg.md(who),
        )
        for who in seen
    }
    for stream in streams.values():
        await stream.initial_metadata()  # positioned: every later change is seen
    async with AlertClient(grpc_epg.target, first) as issuer:
        await issuer.issue(alert("a1"))
        async with AlertClient(grpc_epg.target, second) as confirmer:
            await confirmer.confirm("a1")
        await issuer.cancel("a1")
    # The last change, which every watcher sees: each reads up to it.
    async with EpgClient(grpc_epg.target, await grpc_epg.token("admin")) as epg:
        await epg.delete_channel("cctv1")

    async def read(who: str) -> None:
        async for change in streams[who]:
            if (change.kind, change.channel_id) == (epg_pb2.CHANGE_KIND_CHANNEL, "cctv1"):
                return
            seen[who].append(change)

    await asyncio.gather(*(read(who) for who in streams))
    for stream in streams.values():
        stream.cancel()
    for who in ("admin", "playback"):
        assert [(c.kind, c.channel_id, list(c.programme_ids)) for c in seen[who]] == [
            (epg_pb2.CHANGE_KIND_ALERTS, "", ["a1"])
        ] * 3
    # A carrier never hears of alerts.
    assert seen["carrier:acme"] == []


async def test_pages_newest_first(grpc_epg: Grpc) -> None:
    first = await grpc_epg.token(AGENCY)
    async with AlertClient(grpc_epg.target, first) as issuer:
        for i in range(5):
            await issuer.issue(alert(f"a{i}", drill=True))
            await asyncio.sleep(0.002)  # issue times differ by a millisecond at least
    async with client_channel(grpc_epg.target) as chan:
        stub = alerts_pb2_grpc.AlertServiceStub(chan)
        names, token = [], ""
        while True:
            reply = await stub.ListAlerts(
                alerts_pb2.ListAlertsRequest(page_size=2, page_token=token),
                metadata=await grpc_epg.md("playback"),
            )
            assert len(reply.alerts) <= 2
            names += [a.name for a in reply.alerts]
            token = reply.next_page_token
            if not token:
                break
        assert names == [f"alerts/a{i}" for i in (4, 3, 2, 1, 0)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListAlerts(
                alerts_pb2.ListAlertsRequest(page_token="nonsense"),
                metadata=await grpc_epg.md("admin"),
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("who", "reads", "cancels"),
    [
        pytest.param("admin", True, True, id="admin"),
        pytest.param("playback", True, False, id="playback"),
        pytest.param("broadcaster:cctv", False, False, id="broadcaster"),
        pytest.param("carrier:acme", False, False, id="carrier"),
        pytest.param("device:aa:bb:cc:dd:ee:ff", False, False, id="device"),
        pytest.param("emergency:other-agency", True, True, id="emergency"),
    ],
)
async def test_every_role(grpc_epg: Grpc, who: str, reads: bool, cancels: bool) -> None:
    async with AlertClient(grpc_epg.target, await grpc_epg.token(AGENCY)) as issuer:
        await issuer.issue(alert("a1"))
    denied = grpc.StatusCode.PERMISSION_DENIED
    async with client_channel(grpc_epg.target) as chan:
        stub = alerts_pb2_grpc.AlertServiceStub(chan)
        md = bearer(await grpc_epg.token(who))

        async def code(call: object) -> grpc.StatusCode:
            try:
                await call  # type: ignore[misc]
            except grpc.aio.AioRpcError as err:
                return err.code()
            return grpc.StatusCode.OK

        ok = grpc.StatusCode.OK
        got = await code(stub.GetAlert(alerts_pb2.GetAlertRequest(name="alerts/a1"), metadata=md))
        assert got is (ok if reads else denied)
        got = await code(stub.ListAlerts(alerts_pb2.ListAlertsRequest(), metadata=md))
        assert got is (ok if reads else denied)
        issue = alerts_pb2.IssueAlertRequest(alert_id="a2", alert=alerts_pb2.Alert())
        got = await code(stub.IssueAlert(issue, metadata=md))
        assert got is (grpc.StatusCode.INVALID_ARGUMENT if who.startswith("emergency") else denied)
        confirm = alerts_pb2.ConfirmAlertRequest(name="alerts/a1")
        got = await code(stub.ConfirmAlert(confirm, metadata=md))
        assert got is (ok if who.startswith("emergency") else denied)
        cancel = alerts_pb2.CancelAlertRequest(name="alerts/a1")
        got = await code(stub.CancelAlert(cancel, metadata=md))
        assert got is (ok if cancels else denied)


async def test_rest_paths(grpc_epg: Grpc) -> None:
    first, second = await grpc_epg.token(AGENCY), await grpc_epg.token(OTHER)
    async with rest_face({"EPG_TARGET": grpc_epg.target}) as api:
        body = {
            "severity": "SEVERITY_EXTREME",
            "headline": "Flood",
            "regions": ["440100"],
            "content": {"feedChannelId": "emergency.feed"},
        }
        issued = await api.request(
            "POST", "/v1/alerts", token=first, body=body, params={"alertId": "f1"}
        )
        assert issued.status == 200, issued.text
        assert issued.json["state"] == "ALERT_STATE_PENDING"
        assert issued.json["playoutChannelId"] == "emergency.feed"
        own = await api.request("POST", "/v1/alerts/f1:confirm", token=first, body={})
        assert own.status == 403
        assert "two-person" in own.problem["detail"]
        done = await api.request("POST", "/v1/alerts/f1:confirm", token=second, body={})
        assert done.json["state"] == "ALERT_STATE_CONFIRMED"
        got = await api.request("GET", "/v1/alerts/f1", token=await grpc_epg.token("playback"))
        assert [s["action"] for s in got.json["history"]] == ["issue", "refuse_confirm", "confirm"]
        listed = await api.request("GET", "/v1/alerts", token=await grpc_epg.token("admin"))
        assert [a["name"] for a in listed.json["alerts"]] == ["alerts/f1"]
        cancelled = await api.request(
            "POST", "/v1/alerts/f1:cancel", token=await grpc_epg.token("admin"),
            body={"reason": "drill over"},
        )  # fmt: skip
        assert cancelled.json["state"] == "ALERT_STATE_CANCELLED"
        refused = await api.request("GET", "/v1/alerts", token=await grpc_epg.token("carrier:acme"))
        assert refused.status == 403
