"""The cue store on a real Redis: one script writes a cue and its change to the EPG feed
(never one without the other), retried inserts, the compare-and-set of a change, trimming
and the bound per channel."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from epg.cues.domain import CueState
from epg.cues.errors import CueChanged, CueExists, CueNotFound, TooManyCues
from epg.cues.store import CUE_CHANNELS, CueStore, cues_key, ends_key
from epg.store import EpgStore
from epg.store.base import CHANGES, VERSION
from tests.epg.cues.support import CH, CH2, T0, cue


async def test_an_insert_and_its_change_go_together(
    cue_store: CueStore, store: EpgStore, redis: aioredis.Redis
) -> None:
    before = await store.version()
    stored, new = await cue_store.insert(cue("c1", version=1), start_given=True, now=T0)
    assert new
    assert stored == cue("c1", version=1)
    assert await cue_store.get(CH, "c1") == stored
    assert await redis.smembers(CUE_CHANNELS) == {CH.encode()}
    changes = await store.read_changes(before, block_ms=10)
    assert [(c.kind, c.channel_id, c.programme_ids) for c in changes] == [("cues", CH, ("c1",))]
    assert changes[0].version == await store.version() == before + 1
    # The same cue again is the stored one, and no new change.
    again, new = await cue_store.insert(cue("c1", version=1), start_given=True, now=T0)
    assert (again, new) == (stored, False)
    # Another cue under the same id: refused, nothing written.
    with pytest.raises(CueExists):
        await cue_store.insert(cue("c1", duration_seconds=30), start_given=True, now=T0)
    assert await store.read_changes(before + 1, block_ms=10) == []
    assert await cue_store.get(CH, "c1") == stored


async def test_a_start_of_now_is_what_a_retry_compares(cue_store: CueStore) -> None:
    first, _ = await cue_store.insert(cue("c1"), start_given=False, now=T0)
    later = cue("c1", start=T0 + timedelta(hours=1, seconds=5))
    again, new = await cue_store.insert(later, start_given=False, now=T0)
    assert (again, new) == (first, False)
    with pytest.raises(CueExists):
        await cue_store.insert(later, start_given=True, now=T0)


async def test_a_change_is_a_compare_and_set_with_its_feed_entry(
    cue_store: CueStore, store: EpgStore
) -> None:
    stored, _ = await cue_store.insert(cue("c1", version=1), start_given=True, now=T0)
    version = await store.version()
    cancelled = dataclasses.replace(stored, state=CueState.CANCELLED, version=2)
    assert await cue_store.replace(stored, cancelled) == cancelled
    changes = await store.read_changes(version, block_ms=10)
    assert [(c.kind, c.channel_id, c.programme_ids) for c in changes] == [("cues", CH, ("c1",))]
    # The version read is no longer stored: refused, nothing written.
    with pytest.raises(CueChanged):
        await cue_store.replace(stored, dataclasses.replace(cancelled, version=3))
    with pytest.raises(CueNotFound):
        await cue_store.replace(cue("zz", version=1), cue("zz", version=2))
    assert await store.version() == version + 1
    # The fingerprint of the insert survives the change: a retried insert still matches.
    with pytest.raises(CueExists):
        await cue_store.insert(cue("c1", duration_seconds=1), start_given=True, now=T0)
    again, new = await cue_store.insert(cue("c1", version=1), start_given=True, now=T0)
    assert (again, new) == (cancelled, False)


async def test_ended_cues_go_eight_days_after_their_end(
    cue_store: CueStore, redis: aioredis.Redis
) -> None:
    await cue_store.insert(cue("old", start=T0, duration_seconds=60), start_given=True, now=T0)
    end = T0 + timedelta(seconds=60)
    later = cue("new", start=end + timedelta(days=8))
    # Just 8 days after its end: kept.
    await cue_store.insert(later, start_given=True, now=end + timedelta(days=8))
    assert await cue_store.get(CH, "old") is not None
    await cue_store.insert(
        cue("newer", start=end + timedelta(days=8)),
        start_given=True,
        now=end + timedelta(days=8, milliseconds=1),
    )
    assert await cue_store.get(CH, "old") is None
    assert await redis.zscore(ends_key(CH), "old") is None
    assert await redis.hlen(cues_key(CH)) == 2


async def test_a_channel_keeps_at_most_max_cues(cue_store: CueStore) -> None:
    for i in range(2):  # two that have ended by T0 + 1 day
        await cue_store.insert(
            cue(f"e{i}", start=T0 + timedelta(minutes=i)), start_given=True, now=T0
        )
    for i in range(3):
        await cue_store.insert(cue(f"f{i}", start=T0 + timedelta(days=2)), start_given=True, now=T0)
    # Full (5): the oldest ended one goes for a new one.
    day = T0 + timedelta(days=1)
    await cue_store.insert(cue("g0", start=T0 + timedelta(days=2)), start_given=True, now=day)
    assert await cue_store.get(CH, "e0") is None
    assert await cue_store.get(CH, "e1") is not None
    await cue_store.insert(cue("g1", start=T0 + timedelta(days=2)), start_given=True, now=day)
    assert await cue_store.get(CH, "e1") is None
    # Nothing ended any more: refused, and nothing dropped.
    with pytest.raises(TooManyCues):
        await cue_store.insert(cue("g2", start=T0 + timedelta(days=2)), start_given=True, now=day)
    assert {c.id for c in await cue_store.ending_after([CH], T0)} == {
        "f0", "f1", "f2", "g0", "g1"
    }  # fmt: skip
    # Another channel has a bound of its own.
    await cue_store.insert(cue("h0", CH2), start_given=True, now=day)


async def test_reads_of_many_channels_in_one_call(
    cue_store: CueStore, redis: aioredis.Redis
) -> None:
    await cue_store.insert(cue("a", CH, start=T0, duration_seconds=60), start_given=True, now=T0)
    await cue_store.insert(cue("b", CH2, start=T0), start_given=True, now=T0)
    await cue_store.insert(cue("p", CH2, start=T0, duration_seconds=0), start_given=True, now=T0)
    assert sorted(c.id for c in await cue_store.ending_after([CH, CH2], T0)) == ["a", "b", "p"]
    after = T0 + timedelta(seconds=61)
    assert [c.id for c in await cue_store.ending_after([CH, CH2], after)] == ["b"]
    assert await cue_store.ending_after([], T0) == []
    assert await cue_store.channels() == sorted([CH, CH2])
    assert await redis.exists(VERSION, CHANGES) == 2
