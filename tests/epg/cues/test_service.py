"""The cue use cases on a real Redis: who may do what on which channel, every field's
check with nothing stored, retried inserts, cancellation, the list window, the audit."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from epg.cues import rules
from epg.cues.domain import Cue, CueKind, CueState
from epg.cues.errors import CueEnded, CueExists, CueNotFound, InvalidCue
from epg.cues.service import CueService
from epg.errors import ChannelNotFound, InvalidChannel, NotAllowed
from headend.auth import ADMIN, PLAYBACK, Principal, key_id
from headend.logs import JsonFormatter
from tests.epg.cues.support import CH, CH2, HN, T0, Clock, cue, snapshot

GDTV = Principal("broadcaster", "gdtv")
HNTV = Principal("broadcaster", "hntv")
KEY = "hk_0123456789abcdef_" + "k" * 43
OUTSIDERS = (
    Principal("carrier", "acme"),
    Principal("emergency", "gd-eb"),
    Principal("device", "aa:bb:cc:dd:ee:ff"),
)


async def test_the_owner_and_the_admin_insert_cancel_and_read(cues: CueService) -> None:
    for who, cid in ((GDTV, "c1"), (ADMIN, "c2")):
        inserted = await cues.insert(who, cue(cid), api_key=KEY)
        assert inserted.state is CueState.SCHEDULED
        assert inserted.creator == str(who)
        assert inserted.created == T0
        assert inserted.version == 1
        assert await cues.get(who, CH, cid) == inserted
        assert await cues.get(PLAYBACK, CH, cid) == inserted
    cancelled = await cues.cancel(ADMIN, CH, "c1", api_key=KEY)
    assert cancelled.state is CueState.CANCELLED
    assert cancelled.version == 2
    assert (await cues.cancel(GDTV, CH, "c2", api_key=KEY)).state is CueState.CANCELLED


async def test_another_broadcaster_may_not_touch_the_channel(
    cues: CueService, redis: aioredis.Redis
) -> None:
    await cues.insert(GDTV, cue("c1"), api_key=KEY)
    before = await snapshot(redis)
    with pytest.raises(NotAllowed):
        await cues.insert(HNTV, cue("c2"), api_key=KEY)
    with pytest.raises(NotAllowed):
        await cues.cancel(HNTV, CH, "c1", api_key=KEY)
    with pytest.raises(NotAllowed):
        await cues.get(HNTV, CH, "c1")
    with pytest.raises(NotAllowed):
        await cues.list_cues(HNTV, CH)
    assert await snapshot(redis) == before
    # Its own channel is fine.
    assert (await cues.insert(HNTV, cue("c1", HN), api_key=KEY)).channel_id == HN


@pytest.mark.parametrize("who", OUTSIDERS, ids=str)
async def test_every_other_role_is_refused_everything(
    cues: CueService, redis: aioredis.Redis, who: Principal
) -> None:
    await cues.insert(ADMIN, cue("c1"), api_key=KEY)
    before = await snapshot(redis)
    with pytest.raises(NotAllowed):
        await cues.insert(who, cue("c2"), api_key=KEY)
    with pytest.raises(NotAllowed):
        await cues.insert(who, cue("c2"), api_key=KEY, validate_only=True)
    with pytest.raises(NotAllowed):
        await cues.cancel(who, CH, "c1", api_key=KEY)
    with pytest.raises(NotAllowed):
        await cues.get(who, CH, "c1")
    with pytest.raises(NotAllowed):
        await cues.list_cues(who, None)
    assert await snapshot(redis) == before


async def test_playback_reads_but_changes_nothing(cues: CueService, redis: aioredis.Redis) -> None:
    await cues.insert(ADMIN, cue("c1"), api_key=KEY)
    before = await snapshot(redis)
    with pytest.raises(NotAllowed):
        await cues.insert(PLAYBACK, cue("c2"), api_key=KEY)
    with pytest.raises(NotAllowed):
        await cues.cancel(PLAYBACK, CH, "c1", api_key=KEY)
    assert await snapshot(redis) == before
    assert [c.id for c in await cues.list_cues(PLAYBACK, None)] == ["c1"]


async def test_the_channel_must_exist(cues: CueService) -> None:
    with pytest.raises(ChannelNotFound):
        await cues.insert(ADMIN, cue("c1", "nope.example"), api_key=KEY)
    with pytest.raises(ChannelNotFound):
        await cues.get(PLAYBACK, "nope.example", "c1")
    with pytest.raises(ChannelNotFound):
        await cues.list_cues(ADMIN, "nope.example")
    with pytest.raises(InvalidChannel):
        await cues.insert(ADMIN, cue("c1", "bad id"), api_key=KEY)
    with pytest.raises(CueNotFound):
        await cues.get(ADMIN, CH, "c9")
    with pytest.raises(CueNotFound):
        await cues.cancel(ADMIN, CH, "c9", api_key=KEY)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"id": "Bad_Id"}, "cue_id", id="id"),
        pytest.param({"start": T0 - timedelta(minutes=2)}, "cue.start_time", id="start"),
        pytest.param({"duration_seconds": 6 * 3600 + 1}, "cue.duration_seconds", id="duration"),
        pytest.param({"segmentation_type_id": 1}, "cue.segmentation_type_id", id="type"),
        pytest.param({"event_id": 2**32}, "cue.event_id", id="event"),
        pytest.param({"blackout_regions": ("4401",)}, "cue.blackout_regions[0]", id="region"),
        pytest.param({"description": "\x00"}, "cue.description", id="description"),
    ],
)
async def test_a_bad_field_stores_nothing(
    cues: CueService, redis: aioredis.Redis, changes: dict[str, Any], field: str
) -> None:
    before = await snapshot(redis)
    for validate_only in (False, True):
        with pytest.raises(InvalidCue) as caught:
            await cues.insert(ADMIN, cue(**changes), api_key=KEY, validate_only=validate_only)
        assert caught.value.field == field
    assert await snapshot(redis) == before


async def test_validate_only_stores_nothing(cues: CueService, redis: aioredis.Redis) -> None:
    before = await snapshot(redis)
    checked = await cues.insert(
        GDTV, cue("", start=rules.START_NOW), api_key=KEY, validate_only=True
    )
    assert checked.start == T0
    assert rules.validate_cue_id(checked.id)
    assert await snapshot(redis) == before


async def test_a_retried_insert_returns_the_cue(cues: CueService, clock: Clock) -> None:
    first = await cues.insert(ADMIN, cue("c1", start=rules.START_NOW), api_key=KEY)
    assert first.start == T0
    clock.advance(5)
    assert await cues.insert(GDTV, cue("c1", start=rules.START_NOW), api_key=KEY) == first
    # The event id it signals, given explicitly, is the same cue.
    explicit = cue("c1", event_id=first.event_id, start=rules.START_NOW)
    assert await cues.insert(ADMIN, explicit, api_key=KEY) == first
    with pytest.raises(CueExists):
        await cues.insert(ADMIN, cue("c1", description="other"), api_key=KEY)
    with pytest.raises(CueExists):
        await cues.insert(ADMIN, cue("c1", start=T0), api_key=KEY)


async def test_the_server_makes_an_id(cues: CueService) -> None:
    made = await cues.insert(ADMIN, cue(""), api_key=KEY)
    assert made.id.startswith("20300501-080000-")
    assert await cues.get(ADMIN, CH, made.id) == made


async def test_cancelling_before_during_and_after(cues: CueService, clock: Clock) -> None:
    await cues.insert(ADMIN, cue("soon"), api_key=KEY)  # T0+1h, 2 minutes
    await cues.insert(ADMIN, cue("now", start=T0, duration_seconds=600), api_key=KEY)
    await cues.insert(ADMIN, cue("point", start=T0, duration_seconds=0), api_key=KEY)
    clock.advance(90)
    withdrawn = await cues.cancel(GDTV, CH, "soon", api_key=KEY)
    assert withdrawn.state is CueState.CANCELLED
    assert withdrawn.duration_seconds == 120
    ended = await cues.cancel(GDTV, CH, "now", api_key=KEY)
    assert ended.state is CueState.SCHEDULED
    assert ended.end == clock.now
    assert ended.duration_seconds == 90
    assert ended.version == 2
    for cue_id in ("soon", "now", "point"):
        with pytest.raises(CueEnded):
            await cues.cancel(ADMIN, CH, cue_id, api_key=KEY)


async def test_a_list_is_a_window_by_start(cues: CueService, clock: Clock) -> None:
    await cues.insert(ADMIN, cue("b", start=T0 + timedelta(hours=2)), api_key=KEY)
    await cues.insert(ADMIN, cue("a", start=T0 + timedelta(hours=2)), api_key=KEY)
    await cues.insert(ADMIN, cue("z", CH2, start=T0 + timedelta(hours=1)), api_key=KEY)
    await cues.insert(ADMIN, cue("h", HN, start=T0 + timedelta(hours=3)), api_key=KEY)
    await cues.insert(ADMIN, cue("far", start=T0 + timedelta(days=7)), api_key=KEY)
    await cues.cancel(ADMIN, CH, "b", api_key=KEY)

    def ids(found: list[Cue]) -> list[str]:
        return [c.id for c in found]

    assert ids(await cues.list_cues(ADMIN, None)) == ["z", "a", "b", "h"]
    assert ids(await cues.list_cues(ADMIN, CH)) == ["a", "b"]
    # A broadcaster listing every channel sees its own channels' cues only.
    assert ids(await cues.list_cues(GDTV, None)) == ["z", "a", "b"]
    assert ids(await cues.list_cues(HNTV, None)) == ["h"]
    assert ids(await cues.list_cues(PLAYBACK, None)) == ["z", "a", "b", "h"]
    # The window: what runs in [start, end).
    two = T0 + timedelta(hours=2)
    after_a = two + timedelta(seconds=120)
    assert ids(await cues.list_cues(ADMIN, None, after_a, None)) == ["h", "far"]
    assert ids(await cues.list_cues(ADMIN, None, T0, two)) == ["z"]
    with pytest.raises(InvalidCue) as caught:
        await cues.list_cues(ADMIN, None, T0, T0 + timedelta(days=8, seconds=1))
    assert caught.value.field == "end_time"
    # Nine days on: the cues that ended more than 8 days ago are not listed.
    clock.advance(9 * 86400)
    assert ids(await cues.list_cues(ADMIN, None, T0, T0 + timedelta(days=8))) == ["far"]


async def test_every_change_is_audited(
    cues: CueService, registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="epg.cues.service"):
        await cues.insert(GDTV, cue("c1"), api_key=KEY)
        await cues.insert(GDTV, cue("c1"), api_key=KEY)  # a retry: no second audit
        await cues.cancel(ADMIN, CH, "c1", api_key=KEY)
    lines = [json.loads(JsonFormatter("epg").format(r)) for r in caplog.records]
    assert [(x["action"], x["principal"], x["channel_id"], x["cue_id"]) for x in lines] == [
        ("insert", "broadcaster:gdtv", CH, "c1"),
        ("cancel", "admin", CH, "c1"),
    ]
    assert {x["key_id"] for x in lines} == {key_id(KEY)} != {""}
    assert all("request_id" in x for x in lines)
    assert registry.get_sample_value("epg_cue_changes_total", {"action": "insert"}) == 1
    assert registry.get_sample_value("epg_cue_changes_total", {"action": "cancel"}) == 1


async def test_a_segment_cue(cues: CueService) -> None:
    made = await cues.insert(
        ADMIN,
        cue("s1", kind=CueKind.SEGMENT, segmentation_type_id=0x34, blackout_regions=("440000",)),
        api_key=KEY,
    )
    assert (made.kind, made.segmentation_type_id, made.blackout_regions) == (
        CueKind.SEGMENT, 0x34, ("440000",)
    )  # fmt: skip
