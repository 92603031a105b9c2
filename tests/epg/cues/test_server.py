"""``CueService`` over gRPC and REST on a real EPG server (port 0, real Redis): the client,
the feed's cue changes, paging, the wire's checks and every role."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from epg.client import EpgClient
from epg.cues.client import CueClient
from epg.cues.domain import Cue, CueKind, CueState
from epg.cues.errors import CueEnded, CueExists, CueNotFound, InvalidCue
from epg.cues.rules import START_NOW
from epg.errors import ChannelNotFound, NotAllowed
from headend.auth import ADMIN
from headend.rpc import bearer, client_channel, to_timestamp
from protos import cues_pb2, cues_pb2_grpc, epg_pb2
from tests.epg.cues.support import CH, CH2, HN
from tests.epg.support import Grpc, channel
from tests.support.rest import rest_face

GDTV = "broadcaster:gdtv"


async def _channels(grpc_epg: Grpc) -> None:
    async with EpgClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as epg:
        for number, (cid, owner) in enumerate(((CH, "gdtv"), (CH2, "gdtv"), (HN, "hntv")), 1):
            await epg.create_channel(channel(cid, owner=owner, number=number))


def _cue(cue_id: str = "c1", channel_id: str = CH, **changes: Any) -> Cue:
    """A two-minute break an hour from now."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    base = Cue(cue_id, channel_id, CueKind.BREAK, start, duration_seconds=120.0)
    return dataclasses.replace(base, **changes)


async def test_the_client_inserts_reads_lists_and_cancels(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    async with (
        CueClient(grpc_epg.target, await grpc_epg.token(GDTV)) as owner,
        CueClient(grpc_epg.target, await grpc_epg.token("playback")) as player,
    ):
        dry = await owner.insert(_cue(), validate_only=True)
        assert dry.id == "c1"
        with pytest.raises(CueNotFound):
            await owner.get(CH, "c1")
        made = await owner.insert(_cue(blackout_regions=("440000",), description="match"))
        assert made.state is CueState.SCHEDULED
        assert made.creator == GDTV
        assert made.event_id == _cue().event
        assert made.created is not None
        assert await owner.insert(_cue(blackout_regions=("440000",), description="match")) == made
        with pytest.raises(CueExists):
            await owner.insert(_cue(description="other"))
        assert await player.get(CH, "c1") == made
        now = await owner.insert(_cue("c2", CH2, start=START_NOW, duration_seconds=60))
        assert abs((now.start - datetime.now(UTC)).total_seconds()) < 60
        assert (await owner.insert(_cue("", CH2))).id
        with pytest.raises(InvalidCue) as caught:
            await owner.insert(_cue("c3", blackout_regions=("440000", "12")))
        assert caught.value.field == "cue.blackout_regions[1]"
        with pytest.raises(ChannelNotFound):
            await owner.insert(_cue("c3", "nope.example"))
        with pytest.raises(NotAllowed):
            await owner.insert(_cue("c3", HN))
        start = datetime.now(UTC) - timedelta(hours=1)
        listed = await player.list_cues(None, start, start + timedelta(days=1))
        assert [c.channel_id for c in listed] == [CH2, CH, CH2]
        assert [c.id for c in await owner.list_cues(CH, start, start + timedelta(days=1))] == ["c1"]
        cancelled = await owner.cancel(CH, "c1")
        assert cancelled.state is CueState.CANCELLED
        ended = await owner.cancel(CH2, "c2")
        assert ended.state is CueState.SCHEDULED
        assert ended.duration_seconds < 60
        with pytest.raises(CueEnded):
            await owner.cancel(CH, "c1")
        # Cancelled cues are listed too.
        assert [c.state for c in await player.list_cues(CH, start, start + timedelta(days=1))] == [
            CueState.CANCELLED
        ]


async def test_the_feed_carries_every_change_with_the_channel(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    watchers = {
        "admin": [CH],  # filtered on the cue's channel
        "playback": [],
        GDTV: [],
        "broadcaster:hntv": [],
        "carrier:acme": [],
        "playback ": [CH2],  # filtered on another channel
    }
    streams = {
        who: grpc_epg.stub.WatchChanges(
            epg_pb2.WatchChangesRequest(channel_ids=ids), metadata=await grpc_epg.md(who.strip())
        )
        for who, ids in watchers.items()
    }
    for stream in streams.values():
        await stream.initial_metadata()  # positioned: every later change is seen
    async with CueClient(grpc_epg.target, await grpc_epg.token(GDTV)) as owner:
        await owner.insert(_cue())
        await owner.cancel(CH, "c1")
    # Then a change of each channel: every watcher reads up to the first it sees.
    async with EpgClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as epg:
        for cid in (CH2, CH):
            current = await epg.get_channel(cid)
            await epg.update_channel(dataclasses.replace(current, active=False), current.version)
    seen: dict[str, list[tuple[int, str, list[str]]]] = {who: [] for who in watchers}

    async def read(who: str) -> None:
        async for change in streams[who]:
            if change.kind == epg_pb2.CHANGE_KIND_CHANNEL:
                return
            seen[who].append((change.kind, change.channel_id, list(change.programme_ids)))

    await asyncio.gather(*(read(who) for who in ("admin", "playback", "playback ", GDTV)))
    for stream in streams.values():
        stream.cancel()
    for who in ("admin", "playback", GDTV):
        assert seen[who] == [(epg_pb2.CHANGE_KIND_CUES, CH, ["c1"])] * 2, who
    assert seen["playback "] == []


async def test_others_never_hear_of_cues(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    streams = {
        who: grpc_epg.stub.WatchChanges(
            epg_pb2.WatchChangesRequest(), metadata=await grpc_epg.md(who)
        )
        for who in ("broadcaster:hntv", "carrier:acme")
    }
    for stream in streams.values():
        await stream.initial_metadata()
    async with CueClient(grpc_epg.target, await grpc_epg.token(GDTV)) as owner:
        await owner.insert(_cue())
    async with EpgClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as epg:
        current = await epg.get_channel(HN)
        await epg.update_channel(dataclasses.replace(current, active=False), current.version)
    for who, stream in streams.items():
        async for change in stream:
            # The carrier and hntv see the channel change; nothing of gdtv's cue came first.
            assert (change.kind, change.channel_id) == (epg_pb2.CHANGE_KIND_CHANNEL, HN), who
            break
        stream.cancel()


async def test_pages_by_start(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    async with CueClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as admin:
        base = _cue().start
        for i in range(5):
            await admin.insert(_cue(f"p{i}", start=base + timedelta(minutes=5 - i)))
    async with client_channel(grpc_epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        md = await grpc_epg.md("playback")
        names, token = [], ""
        while True:
            reply = await stub.ListCues(
                cues_pb2.ListCuesRequest(parent="channels/-", page_size=2, page_token=token),
                metadata=md,
            )
            assert len(reply.cues) <= 2
            names += [c.name for c in reply.cues]
            token = reply.next_page_token
            if not token:
                break
        assert names == [f"channels/{CH}/cues/p{i}" for i in (4, 3, 2, 1, 0)]
        first = await stub.ListCues(
            cues_pb2.ListCuesRequest(parent="channels/-", page_size=2), metadata=md
        )
        # A token is bound to its query.
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListCues(
                cues_pb2.ListCuesRequest(
                    parent=f"channels/{CH}", page_size=2, page_token=first.next_page_token
                ),
                metadata=md,
            )
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


async def _code(call: object) -> grpc.StatusCode:
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


async def test_the_wire_checks_names_kinds_and_windows(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    bad = grpc.StatusCode.INVALID_ARGUMENT
    good = cues_pb2.Cue(kind=cues_pb2.CUE_KIND_BREAK, duration_seconds=30)
    async with client_channel(grpc_epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        md = await grpc_epg.md(ADMIN)
        for request in (
            cues_pb2.InsertCueRequest(parent="channels/-", cue=good),
            cues_pb2.InsertCueRequest(parent="", cue=good),
            cues_pb2.InsertCueRequest(parent=f"channels/{CH}/x", cue=good),
            cues_pb2.InsertCueRequest(parent=f"channels/{CH}", cue=cues_pb2.Cue()),
            cues_pb2.InsertCueRequest(parent=f"channels/{CH}", cue=good, cue_id="UPPER"),
        ):
            assert await _code(stub.InsertCue(request, metadata=md)) is bad, request
        for name in ("", f"channels/{CH}", f"channels/{CH}/cues/Bad", "cues/c1"):
            assert await _code(stub.GetCue(cues_pb2.GetCueRequest(name=name), metadata=md)) is bad
            cancel = cues_pb2.CancelCueRequest(name=name)
            assert await _code(stub.CancelCue(cancel, metadata=md)) is bad
        now = datetime.now(UTC)
        wide = cues_pb2.ListCuesRequest(
            parent="channels/-",
            start_time=to_timestamp(now),
            end_time=to_timestamp(now + timedelta(days=9)),
        )
        assert await _code(stub.ListCues(wide, metadata=md)) is bad
        assert await _code(stub.ListCues(cues_pb2.ListCuesRequest(), metadata=md)) is bad
        listed = await stub.ListCues(cues_pb2.ListCuesRequest(parent="channels/-"), metadata=md)
        assert list(listed.cues) == []
        dry = await stub.InsertCue(
            cues_pb2.InsertCueRequest(parent=f"channels/{CH}", cue=good, validate_only=True),
            metadata=md,
        )
        assert dry.HasField("start_time")
        assert dry.end_time.seconds - dry.start_time.seconds == 30


@pytest.mark.parametrize(
    ("who", "reads", "writes"),
    [
        pytest.param("admin", True, True, id="admin"),
        pytest.param(GDTV, True, True, id="owner"),
        pytest.param("playback", True, False, id="playback"),
        pytest.param("broadcaster:hntv", False, False, id="other-broadcaster"),
        pytest.param("carrier:acme", False, False, id="carrier"),
        pytest.param("device:aa:bb:cc:dd:ee:ff", False, False, id="device"),
        pytest.param("emergency:gd-eb", False, False, id="emergency"),
        pytest.param(None, False, False, id="no-key"),
    ],
)
async def test_every_role(grpc_epg: Grpc, who: str | None, reads: bool, writes: bool) -> None:
    await _channels(grpc_epg)
    async with CueClient(grpc_epg.target, await grpc_epg.token(ADMIN)) as admin:
        await admin.insert(_cue())
    ok, denied = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED
    if who is None:
        denied = grpc.StatusCode.UNAUTHENTICATED
    async with client_channel(grpc_epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        md = None if who is None else bearer(await grpc_epg.token(who))
        name = f"channels/{CH}/cues/c1"
        got = await _code(stub.GetCue(cues_pb2.GetCueRequest(name=name), metadata=md))
        assert got is (ok if reads else denied)
        listing = cues_pb2.ListCuesRequest(parent=f"channels/{CH}")
        assert await _code(stub.ListCues(listing, metadata=md)) is (ok if reads else denied)
        insert = cues_pb2.InsertCueRequest(parent=f"channels/{CH}", cue_id="c2", cue=cues_pb2.Cue())
        got = await _code(stub.InsertCue(insert, metadata=md))
        assert got is (grpc.StatusCode.INVALID_ARGUMENT if writes else denied)
        cancel = cues_pb2.CancelCueRequest(name=name)
        assert await _code(stub.CancelCue(cancel, metadata=md)) is (ok if writes else denied)


async def test_rest_paths(grpc_epg: Grpc) -> None:
    await _channels(grpc_epg)
    owner = await grpc_epg.token(GDTV)
    start = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    async with rest_face({"EPG_TARGET": grpc_epg.target}) as api:
        body = {
            "kind": "CUE_KIND_SEGMENT",
            "segmentationTypeId": 0x30,
            "startTime": start.isoformat().replace("+00:00", "Z"),
            "durationSeconds": 90,
            "blackoutRegions": ["440100"],
        }
        made = await api.request(
            "POST", f"/v1/channels/{CH}/cues", token=owner, body=body, params={"cueId": "r1"}
        )
        assert made.status == 200, made.text
        assert made.json["name"] == f"channels/{CH}/cues/r1"
        assert made.json["state"] == "CUE_STATE_SCHEDULED"
        got = await api.request(
            "GET", f"/v1/channels/{CH}/cues/r1", token=await grpc_epg.token("playback")
        )
        assert got.json == made.json
        listed = await api.request("GET", "/v1/channels/-/cues", token=owner)
        assert [c["name"] for c in listed.json["cues"]] == [made.json["name"]]
        cancelled = await api.request(
            "POST", f"/v1/channels/{CH}/cues/r1:cancel", token=owner, body={}
        )
        assert cancelled.json["state"] == "CUE_STATE_CANCELLED"
        refused = await api.request(
            "GET", f"/v1/channels/{CH}/cues", token=await grpc_epg.token("carrier:acme")
        )
        assert refused.status == 403
        bad = await api.request(
            "POST", f"/v1/channels/{CH}/cues", token=owner, body={"kind": "CUE_KIND_BREAK",
            "blackoutRegions": ["1"], "durationSeconds": 5},
        )  # fmt: skip
        assert bad.status == 400
        assert "cue.blackout_regions[0]" in bad.problem["detail"]
        gone = await api.request("GET", f"/v1/channels/{CH}/cues/nope", token=owner)
        assert gone.status == 404
