"""The helpdesk view by MAC, and tenant isolation: a carrier's key finds only its own
boxes and counts only its own subscribers, on pages and JSON alike."""

from __future__ import annotations

import pytest

from headend.rpc import bearer, client_channel
from headend.seed import World
from protos import subscriber_pb2, subscriber_pb2_grpc
from tests.support.console import RIVAL, RIVAL_MAC, ConsoleFace
from tests.support.tokens import Tokens
from tests.support.world import CARRIER, LIVE, PREMIUM


async def _authorize(target: str, key: str, mac: str, channel: str) -> bool:
    async with client_channel(target) as chan:
        answer = await subscriber_pb2_grpc.SubscriberServiceStub(chan).Authorize(
            subscriber_pb2.AuthorizeRequest(mac=mac, channel_id=channel), metadata=bearer(key)
        )
    return answer.allowed


async def test_helpdesk_explains_why_a_box_was_refused(
    console: ConsoleFace, tokens: Tokens, world: World, targets: dict[str, str]
) -> None:
    box = world.boxes["e1"]
    playback = await tokens("playback")
    assert not await _authorize(targets["SUBSCRIBER_TARGET"], playback, box.mac, PREMIUM)
    assert await _authorize(targets["SUBSCRIBER_TARGET"], playback, box.mac, LIVE)
    for principal in ("admin", f"carrier:{CARRIER}"):
        async with console.operator() as op:
            await op.login(await tokens(principal))
            mac = box.mac.upper().replace(":", "-")  # any common notation
            data = (await op.get(f"/api/helpdesk.json?mac={mac}")).json
            assert data["device"]["mac"] == box.mac
            assert data["subscriber"]["id"] == "erin"
            assert [e["package"] for e in data["entitlements"]] == ["basic"]
            assert PREMIUM not in data["channels"]
            assert LIVE in data["channels"]
            refused = [e for e in data["events"] if not e["allowed"]]
            assert [(e["channel"], e["reason"]) for e in refused] == [(PREMIUM, "NOT_ENTITLED")]
            page = await op.get(f"/helpdesk?mac={mac}")
            assert page.status == 200
            assert "not entitled to this channel" in page.text
            zh = await op.get(f"/helpdesk?mac={mac}&lang=zh")
            assert "未订购该频道" in zh.text


@pytest.mark.parametrize(
    "mac", ["zz:zz:zz:zz:zz:zz", "01:00:5e:00:00:01", "00:00:00:00:00:00", "12345", "'<x>"]
)
async def test_a_bad_mac_is_a_clear_error(console: ConsoleFace, tokens: Tokens, mac: str) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        answer = await op.get(f"/api/helpdesk.json?mac={mac}")
        assert answer.status == 400
        assert answer.json["invalid_params"][0]["name"] == "mac"
        page = await op.get(f"/helpdesk?mac={mac}")
        assert page.status == 400
        assert "not a MAC address" in page.text or "address" in page.text
        assert "<x>" not in page.text  # escaped


async def test_a_carrier_cannot_see_another_carriers_box(
    console: ConsoleFace, tokens: Tokens, world: World
) -> None:
    async with console.operator() as op:
        await op.login(await tokens(f"carrier:{CARRIER}"))
        for path in (f"/api/helpdesk.json?mac={RIVAL_MAC}", f"/helpdesk?mac={RIVAL_MAC}"):
            answer = await op.get(path)
            assert answer.status in (403, 404), answer.text
            assert "zed" not in answer.text.lower()
    async with console.operator() as op:
        await op.login(await tokens(f"carrier:{RIVAL}"))
        data = (await op.get(f"/api/helpdesk.json?mac={RIVAL_MAC}")).json
        assert data["subscriber"]["id"] == "zed"
        mine = world.boxes["a1"].mac
        assert (await op.get(f"/api/helpdesk.json?mac={mine}")).status in (403, 404)


async def test_a_carrier_counts_only_its_own_subscribers(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        carriers = {
            c["carrier"]: c for c in (await op.get("/api/subscribers.json")).json["carriers"]
        }
        assert (carriers[CARRIER]["active"], carriers[RIVAL]["active"]) == (4, 1)
    for mine, theirs in ((CARRIER, RIVAL), (RIVAL, CARRIER)):
        async with console.operator() as op:
            await op.login(await tokens(f"carrier:{mine}"))
            data = (await op.get("/api/subscribers.json")).json
            assert [c["carrier"] for c in data["carriers"]] == [mine]
            page = (await op.get("/subscribers")).text
            assert f'data-carrier="{mine}"' in page
            assert f'data-carrier="{theirs}"' not in page
