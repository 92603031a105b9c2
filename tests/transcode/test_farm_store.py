"""The farm's Redis stores on their own (no node process, no FFmpeg): leases and fenced
writes, node adverts, control intents and handover records. They use the shared ``redis``
fixture, so ``TEST_REDIS=cluster`` runs them on a real Redis Cluster too."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from transcode import archive
from transcode.archive import (
    ArchiveIndex,
    RedisWrite,
    RungInfo,
    facts_key,
    index_key,
    rungs_key,
    tag_of,
)
from transcode.domain import ArchiveEntry, LiveChannel, NodeInfo
from transcode.errors import ChannelRunning, LeaseLost
from transcode.farm import ChannelIntents, FencedWriter, NodeDirectory, Ownership
from transcode.farm.handover import Handovers, handover_key
from transcode.farm.nodes import NODES, node_key
from transcode.farm.ownership import fence_key, owner_key
from transcode.live import CHANNELS, ChannelStore, channel_key


def _channel(channel_id: str) -> LiveChannel:
    return LiveChannel(id=channel_id, source="udp://239.1.1.1:5000", profile="low")


def test_every_key_of_a_channel_shares_its_hash_tag() -> None:
    keys = [
        owner_key("cctv1.cn"), fence_key("cctv1.cn"), handover_key("cctv1.cn"),
        channel_key("cctv1.cn"), index_key("cctv1.cn", "720p"), rungs_key("cctv1.cn"),
        facts_key("cctv1.cn"),
    ]  # fmt: skip
    assert {tag_of(k) for k in keys} == {"cctv1.cn"}
    # The global indexes are in slots of their own.
    assert tag_of(CHANNELS) not in {"cctv1.cn", tag_of(archive.CHANNELS)}


async def test_stale_token_writes_are_refused(redis: aioredis.Redis) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    old = await ownership.claim("ch1", "a")
    assert old is not None
    assert await ownership.claim("ch1", "b") is None  # owned: nobody else gets it
    await redis.delete(owner_key("ch1"))  # as if the lease expired while "a" was paused
    new = await ownership.claim("ch1", "b")
    assert new is not None
    assert new.token > old.token
    write = [RedisWrite("ZADD", index_key("ch1", "90p"), ("1.0", "late"))]
    with pytest.raises(LeaseLost):
        await ownership.write(old, write)  # locally still valid: Redis refuses it
    assert await redis.zcard(index_key("ch1", "90p")) == 0
    assert ownership.metrics.fenced.labels("ch1")._value.get() == 1
    await ownership.write(new, write)
    assert await redis.zcard(index_key("ch1", "90p")) == 1
    assert not await ownership.renew(old)
    assert not await ownership.release(old)
    assert await ownership.owner("ch1") == ("b", new.token)


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(CHANNELS, id="global-index"),
        pytest.param(index_key("ch2", "90p"), id="another-channel"),
    ],
)
async def test_a_fenced_write_outside_the_channels_tag_is_refused_unsent(
    redis: aioredis.Redis, key: str
) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    lease = await ownership.claim("ch1", "a")
    assert lease is not None
    writes = [
        RedisWrite("HSET", channel_key("ch1"), ("state", "LIVE")),
        RedisWrite("ZADD", key, ("1.0", "x")),
    ]
    with pytest.raises(ValueError, match="tag"):
        await ownership.write(lease, writes)
    assert not await redis.exists(channel_key("ch1"), key)
    assert lease.valid()  # a caller's mistake, not a lost lease


async def test_owners_of_many_channels_in_one_read(redis: aioredis.Redis) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    ids = [f"ch{i}" for i in range(12)]  # spread over every master of a cluster
    leases = {c: await ownership.claim(c, f"node-{c}") for c in ids[::2]}
    owners = await ownership.owners(ids)
    assert owners == {c: (f"node-{c}", lease.token) for c, lease in leases.items() if lease}
    assert await ownership.owners([]) == {}


async def test_a_fenced_store_lists_its_channel_only_after_a_write_its_lease_allows(
    redis: aioredis.Redis,
) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    lease = await ownership.claim("a.ch", "n1")
    assert lease is not None
    store = ChannelStore(
        _channel("a.ch"), redis=redis, archive=ArchiveIndex(redis),
        writer=FencedWriter(ownership, lease),
    )  # fmt: skip
    store.follow(lambda: {"state": "LIVE", "updated_at": "now"})
    store.set_rungs([RungInfo("90p", "avc1.42c00b,mp4a.40.2", 160, 90, 25.0)])
    store.add_segments([("90p", _entry(0))])
    store.replay()  # as after a Redis restart: the configuration and the listing again
    await store.flush()
    assert await redis.sismember(CHANNELS, "a.ch")
    assert await redis.sismember(archive.CHANNELS, "a.ch")
    assert await ArchiveIndex(redis).catchup_days() == {"a.ch": 7}
    assert (await redis.hgetall(channel_key("a.ch")))[b"state"] == b"LIVE"

    # Another node takes the channel: the stale lease's next steps are fenced and list nothing.
    await redis.delete(owner_key("a.ch"))
    assert await ownership.claim("a.ch", "n2") is not None
    await redis.delete(CHANNELS, archive.CHANNELS)
    store.set_rungs([RungInfo("90p", "avc1.42c00b,mp4a.40.2", 160, 90, 25.0)])
    await store.flush()  # its first write is the rung facts
    assert store.fenced
    again = ChannelStore(
        _channel("a.ch"), redis=redis, archive=ArchiveIndex(redis),
        writer=FencedWriter(ownership, lease),
    )  # fmt: skip
    again.follow(lambda: {"state": "LIVE", "updated_at": "later"})
    again.replay()
    await again.flush()  # its first write is the configuration and status
    assert again.fenced
    assert not await redis.exists(CHANNELS, archive.CHANNELS)


async def test_retention_skips_a_channel_listed_without_its_facts(redis: aioredis.Redis) -> None:
    index = ArchiveIndex(redis)
    await index.register_channel("kept.ch", catchup_days=3, rungs=[])
    await redis.sadd(archive.CHANNELS, "half.ch")  # a registration cut short after the listing
    assert await index.catchup_days() == {"kept.ch": 3}


async def test_node_adverts_are_listed_and_withdrawn(redis: aioredis.Redis) -> None:
    directory = NodeDirectory(redis)
    await directory.advertise(NodeInfo("n1", "g", 4, 1, False, ("a.ch",)), ttl_seconds=30)
    await directory.advertise(NodeInfo("n2", "", 4, 0, False, ()), ttl_seconds=30)
    assert [n.id for n in await directory.nodes()] == ["n1", "n2"]
    assert (await directory.get("n1")).channels == ("a.ch",)
    await directory.withdraw("n2")
    assert [n.id for n in await directory.nodes()] == ["n1"]
    # An advert gone without its listing (expired, or a withdrawal cut short): pruned.
    await redis.delete(node_key("n1"))
    assert await directory.nodes() == []
    assert not await redis.exists(NODES)


async def test_an_intent_cut_short_after_the_listing_is_hidden_then_completed(
    redis: aioredis.Redis,
) -> None:
    intents = ChannelIntents(redis, stop_wait_seconds=0.1)
    await redis.sadd(CHANNELS, "half.ch")  # a start that stopped after its first step
    assert await intents.list_channels() == []
    started = await intents.start(_channel("half.ch"))
    assert started.channel.id == "half.ch"
    assert [s.channel.id for s in await intents.list_channels()] == ["half.ch"]
    # Started again: the same configuration changes nothing (a retry), another is refused.
    assert (await intents.start(_channel("half.ch"))).channel == started.channel
    with pytest.raises(ChannelRunning):
        await intents.start(dataclasses.replace(_channel("half.ch"), profile="default"))


async def test_a_handover_moves_the_lease_and_clears_its_record(redis: aioredis.Redis) -> None:
    ownership = Ownership(redis, ttl_seconds=5.0)
    handovers = Handovers(redis, ttl_seconds=5.0)
    lease = await ownership.claim("a.ch", "old")
    assert lease is not None
    await handovers.offer(lease, "new", timeout_seconds=5.0)
    offer = await handovers.get("a.ch")
    assert offer is not None
    assert await handovers.mark_ready(offer)
    token = await handovers.transfer(lease, "new")
    assert token == lease.token + 1
    assert await ownership.owner("a.ch") == ("new", token)
    assert await handovers.get("a.ch") is None
    # A second transfer from the stale lease gives nothing away.
    assert await handovers.transfer(lease, "other") is None
    assert await ownership.owner("a.ch") == ("new", token)


def _entry(seq: int) -> ArchiveEntry:
    return ArchiveEntry(
        sequence=seq,
        start=datetime(2026, 11, 20, 12, 0, seq, tzinfo=UTC),
        duration=1.0,
        size=1880,
        path=f"live/a.ch/90p/{seq:010d}.ts",
    )
