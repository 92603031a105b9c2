"""Hostile inputs to every ``CueService`` method, sent by keys that may use it (the admin,
the owning broadcaster, the playback role): each is INVALID_ARGUMENT naming the field (never
UNKNOWN or INTERNAL), and nothing in Redis changed. Who may call what at all is
``test_grpc_methods`` (every method, every role, no key) and ``tests/epg/cues``.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from google.protobuf.timestamp_pb2 import Timestamp

from epg.client import EpgClient
from headend.auth import ADMIN, KeyStore
from headend.rpc import bearer, client_channel, to_timestamp
from protos import cues_pb2, cues_pb2_grpc
from tests.epg.cues.support import snapshot
from tests.epg.support import LINE_BREAKERS, NOT_XML, Grpc, channel, serve_epg

CH = "gd1.gdtv.cn"
PARENT = f"channels/{CH}"
SOON = datetime.now(UTC) + timedelta(hours=1)
# The far future: a Timestamp no datetime holds.
YEAR_10000 = Timestamp(seconds=253402300800)


@pytest.fixture
async def epg(redis: aioredis.Redis, keys: KeyStore, tokens: Any) -> AsyncIterator[Grpc]:
    """The EPG on port 0 with the channel ``CH`` of gdtv and a cue ``c1`` on it."""
    async with serve_epg(redis, keys, tokens) as served:
        async with EpgClient(served.target, await served.token(ADMIN)) as client:
            await client.create_channel(channel(CH, owner="gdtv"))
        async with client_channel(served.target) as chan:
            await cues_pb2_grpc.CueServiceStub(chan).InsertCue(
                cues_pb2.InsertCueRequest(
                    parent=PARENT,
                    cue_id="c1",
                    cue=cues_pb2.Cue(kind=cues_pb2.CUE_KIND_BREAK, start_time=to_timestamp(SOON)),
                ),
                metadata=await served.md(ADMIN),
            )
        yield served


def _cue(**fields: Any) -> cues_pb2.Cue:
    base: dict[str, Any] = {
        "kind": cues_pb2.CUE_KIND_BREAK,
        "start_time": to_timestamp(SOON),
        "duration_seconds": 60,
    }
    return cues_pb2.Cue(**{**base, **fields})


_TEXTS = [pytest.param(c, id=f"U+{ord(c):04X}") for c in LINE_BREAKERS + NOT_XML]
INSERTS = [
    pytest.param(cues_pb2.InsertCueRequest(parent="channels/..", cue=_cue()), "parent", id="dots"),
    pytest.param(cues_pb2.InsertCueRequest(parent="x" * 5000, cue=_cue()), "parent", id="huge"),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue_id="../c", cue=_cue()), "cue_id", id="id"
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue_id="c" * 41, cue=_cue()), "cue_id", id="long"
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(kind=99)), "cue.kind", id="kind-99"
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(start_time=YEAR_10000)),
        "cue.start_time",
        id="year-10000",
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(duration_seconds=math.nan)),
        "cue.duration_seconds",
        id="nan",
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(duration_seconds=-math.inf)),
        "cue.duration_seconds",
        id="minus-inf",
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(blackout_regions=["440000\n"])),
        "cue.blackout_regions[0]",
        id="region-newline",
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(blackout_regions=["x" * 10_000])),
        "cue.blackout_regions[0]",
        id="region-huge",
    ),
    pytest.param(
        cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(description="x" * 100_000)),
        "cue.description",
        id="description-huge",
    ),
]


async def _refused(call: Any, field: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert field in (caught.value.details() or ""), caught.value.details()


@pytest.mark.parametrize(("request_", "field"), INSERTS)
@pytest.mark.parametrize("who", [ADMIN, "broadcaster:gdtv"])
async def test_bad_inserts_are_refused_and_store_nothing(
    epg: Grpc, redis: aioredis.Redis, request_: cues_pb2.InsertCueRequest, field: str, who: str
) -> None:
    md = bearer(await epg.token(who))
    before = await snapshot(redis)
    async with client_channel(epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        await _refused(stub.InsertCue(request_, metadata=md), field)
    assert await snapshot(redis) == before


@pytest.mark.parametrize("bad", _TEXTS)
async def test_no_control_character_is_stored_in_a_description(
    epg: Grpc, redis: aioredis.Redis, bad: str
) -> None:
    before = await snapshot(redis)
    request = cues_pb2.InsertCueRequest(parent=PARENT, cue=_cue(description=f"a{bad}b"))
    async with client_channel(epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        await _refused(stub.InsertCue(request, metadata=await epg.md(ADMIN)), "cue.description")
    assert await snapshot(redis) == before


NAMES = ["", "c1", f"{PARENT}/cues/", f"{PARENT}/cues/c1/x", f"{PARENT}/cues/C1",
         "channels/-/cues/c1", "channels/../cues/c1", f"{PARENT}/cues/" + "c" * 300,
         "x" * 5000]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
async def test_bad_names_are_refused(epg: Grpc, redis: aioredis.Redis, name: str) -> None:
    keys = [bearer(await epg.token(who)) for who in (ADMIN, "playback")]
    before = await snapshot(redis)
    async with client_channel(epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        for md in keys:
            await _refused(stub.GetCue(cues_pb2.GetCueRequest(name=name), metadata=md), "name")
        cancel = cues_pb2.CancelCueRequest(name=name)
        await _refused(stub.CancelCue(cancel, metadata=keys[0]), "name")
    assert await snapshot(redis) == before


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        pytest.param(cues_pb2.ListCuesRequest(parent=""), "parent", id="no-parent"),
        pytest.param(cues_pb2.ListCuesRequest(parent="channels/--"), "parent", id="dashes"),
        pytest.param(
            cues_pb2.ListCuesRequest(parent="channels/-", start_time=YEAR_10000),
            "start_time",
            id="year-10000",
        ),
        pytest.param(
            cues_pb2.ListCuesRequest(
                parent="channels/-",
                start_time=to_timestamp(SOON),
                end_time=to_timestamp(SOON - timedelta(seconds=1)),
            ),
            "end_time",
            id="reversed",
        ),
        pytest.param(
            cues_pb2.ListCuesRequest(
                parent="channels/-", start_time=Timestamp(seconds=0), end_time=YEAR_10000
            ),
            "end_time",
            id="years-wide",
        ),
        pytest.param(
            cues_pb2.ListCuesRequest(parent="channels/-", page_token="x" * 4000),
            "page_token",
            id="token",
        ),
        pytest.param(
            cues_pb2.ListCuesRequest(parent="channels/-", page_size=-1), "page_size", id="size"
        ),
    ],
)
async def test_bad_lists_are_refused(
    epg: Grpc, request_: cues_pb2.ListCuesRequest, field: str
) -> None:
    async with client_channel(epg.target) as chan:
        stub = cues_pb2_grpc.CueServiceStub(chan)
        for who in (ADMIN, "playback", "broadcaster:gdtv"):
            md = bearer(await epg.token(who))
            await _refused(stub.ListCues(request_, metadata=md), field)
