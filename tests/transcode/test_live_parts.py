"""The live package's parts on their own: segment lists and whole-segment checks, the FFmpeg
wrapper's bounded stop, the store queue through an outage, the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from headend.settings import SettingsError
from tests.support.live import make_clip
from tests.support.net import free_udp_port
from transcode.archive import ArchiveIndex, RedisWrite, RungInfo, index_key, rungs_key
from transcode.domain import (
    ArchiveEntry,
    ChannelState,
    ChannelStatus,
    LiveChannel,
    RungRate,
)
from transcode.farm import ChannelIntents
from transcode.live import (
    CHANNELS,
    ChannelStore,
    Epoch,
    Listed,
    channel_key,
    config_mapping,
    next_sequence_on_disk,
    parse_list,
    status_from_hash,
    status_mapping,
    whole_ts,
)
from transcode.live.store import PlainWriter
from transcode.measure import TS_PACKET
from transcode.settings import LiveSettings, NodeSettings


@pytest.fixture(scope="module")
def segment(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real MPEG-TS file of a few hundred packets."""
    return make_clip(tmp_path_factory.mktemp("ts") / "whole.ts", seconds=1)


def test_a_list_yields_only_complete_rows() -> None:
    text = "seg_000000.ts,0.000000,2.000000\nseg_000001.ts,2.000000,4.0"
    assert parse_list(text) == [Listed("seg_000000.ts", 0.0, 2.0)]
    assert parse_list(text + "00000\n")[-1] == Listed("seg_000001.ts", 2.0, 4.0)
    assert parse_list("seg_000000.ts,0.0\n") == []
    assert parse_list("seg_000000.ts,zero,1\nseg_000001.ts,1,2\n") == []


@pytest.mark.parametrize(
    ("cut", "why"),
    [
        pytest.param(None, "", id="whole"),
        pytest.param(0, "0 bytes", id="empty"),
        pytest.param(16384, "not whole TS packets", id="page-cut"),
        pytest.param(TS_PACKET * 3 + 1, "not whole TS packets", id="one-byte-over"),
    ],
)
def test_whole_ts(segment: Path, tmp_path: Path, cut: int | None, why: str) -> None:
    data = segment.read_bytes()
    path = tmp_path / "s.ts"
    path.write_bytes(data if cut is None else data[:cut])
    problem = whole_ts(path)
    assert (why in problem) if why else problem == ""


def test_whole_ts_wants_sync_bytes(tmp_path: Path) -> None:
    path = tmp_path / "junk.ts"
    path.write_bytes(b"\x00" * TS_PACKET * 4)
    assert whole_ts(path) == "no TS sync byte"
    assert whole_ts(tmp_path / "absent.ts") == "missing"


async def test_an_epoch_stops_within_its_bound_and_keeps_ffmpegs_last_error(
    tmp_path: Path,
) -> None:
    # FFmpeg waiting on a UDP port nobody sends to (no timeout): it only ends when told.
    epoch = Epoch("source", 1, tmp_path / "e", ["90p"])
    url = f"udp://127.0.0.1:{free_udp_port()}"
    await epoch.start(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                       "-i", url, "-f", "null", "-"])  # fmt: skip
    assert epoch.running
    async with asyncio.timeout(10):
        code = await epoch.stop(grace_seconds=2.0)
    assert code is not None
    assert not epoch.running
    epoch.close()

    broken = Epoch("slate", 2, tmp_path / "b", ["90p"])
    await broken.start(["ffmpeg", "-hide_banner", "-nostdin", "-i", str(tmp_path / "nope.ts")])
    async with asyncio.timeout(10):
        assert await broken.wait() != 0
    broken.poll()  # reads what is left on the error pipe
    assert "No such file" in broken.last_error()
    broken.close()


async def test_kill_now_needs_no_await(tmp_path: Path) -> None:
    epoch = Epoch("source", 1, tmp_path / "e", ["90p"])
    await epoch.start(["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                       "-i", f"udp://127.0.0.1:{free_udp_port()}", "-f", "null", "-"])  # fmt: skip
    epoch.kill_now()
    async with asyncio.timeout(10):
        assert await epoch.wait() == -9
    epoch.close()


def test_next_sequence_comes_from_the_files_on_disk(tmp_path: Path) -> None:
    assert next_sequence_on_disk(tmp_path / "none") == 0
    for rung, seq in (("90p", 41), ("180p", 42)):
        (tmp_path / rung).mkdir()
        (tmp_path / rung / f"{seq:010d}.ts").write_bytes(b"")
    (tmp_path / ".work").mkdir()
    (tmp_path / ".work" / "0000000099.ts").write_bytes(b"")
    (tmp_path / "90p" / "index.m3u8").write_text("")
    assert next_sequence_on_disk(tmp_path) == 43


def _entry(seq: int) -> ArchiveEntry:
    return ArchiveEntry(
        sequence=seq,
        start=datetime.fromtimestamp(1_800_000_000 + 2 * seq, UTC),
        duration=2.0,
        size=188 * 10,
        path=f"live/a.ch/90p/{seq:010d}.ts",
    )


async def test_the_store_queue_survives_an_outage_and_writes_each_entry_once(
    tmp_path: Path,
) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    client: aioredis.Redis = connect(server.url, RedisSettings(retries=0))
    try:
        store = ChannelStore(
            LiveChannel(id="a.ch", source="udp://239.1.1.1:5000"),
            redis=client,
            archive=ArchiveIndex(client),
        )
        status = {"state": "LIVE", "reason": "", "updated_at": "now"}
        store.follow(lambda: dict(status))
        store.add_segments([("90p", _entry(0))])
        store.set_rungs([RungInfo("90p", "avc1.42c00b,mp4a.40.2", 160, 90, 25.0)])
        assert (await store.flush()).sequences == [0]
        assert store.idle()

        server.kill()
        store.add_segments([("90p", _entry(1))])
        store.add_segments([("90p", _entry(2))])
        for first in (True, False):
            with pytest.raises((aioredis.RedisError, OSError)) as info:
                await store.flush()
            assert store.failed(info.value) is first
        assert store.backlog == 2
        status["state"] = "DEGRADED"

        await asyncio.to_thread(server.start)
        await client.delete(channel_key("a.ch"))  # as if Redis had come back without it
        flushed = await store.flush()
        assert (flushed.recovered, flushed.sequences, flushed.caught_up) == (True, [1, 2], 2)
        assert not store.down
        # Entries are unique members: sending one again adds nothing.
        await ArchiveIndex(client).record_many("a.ch", [("90p", _entry(2))])
        assert await client.zcard(index_key("a.ch", "90p")) == 3
        saved = await client.hgetall(channel_key("a.ch"))
        assert saved[b"state"] == b"DEGRADED"
        assert saved[b"source"] == b"udp://239.1.1.1:5000"  # the configuration, written again
        assert await client.sismember(CHANNELS, "a.ch")
        assert await client.hexists(rungs_key("a.ch"), "90p")
    finally:
        await client.aclose()
        server.stop()


async def test_the_store_writes_its_recent_entries_again_after_redis_lost_them(
    redis: aioredis.Redis,
) -> None:
    store = ChannelStore(
        LiveChannel(id="a.ch", source="udp://239.1.1.1:5000"),
        redis=redis,
        archive=ArchiveIndex(redis),
    )
    store.follow(lambda: {"state": "LIVE", "updated_at": "now"})
    for seq in range(3):
        store.add_segments([("90p", _entry(seq))])
        await store.flush()
    # A crash lost what Redis had acknowledged but not yet written to its AOF.
    await redis.flushall()
    store.replay()
    flushed = await store.flush()
    assert flushed.sequences == []  # nothing new: the same entries again
    assert await redis.zcard(index_key("a.ch", "90p")) == 3
    assert (await redis.hgetall(channel_key("a.ch")))[b"source"] == b"udp://239.1.1.1:5000"


class CountingWriter:
    """The plain writer, counting its steps (each one round trip)."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self._plain = PlainWriter(redis)
        self.steps: list[list[str]] = []

    async def write(self, writes: Sequence[RedisWrite]) -> None:
        self.steps.append([w.command for w in writes])
        await self._plain.write(writes)


async def test_a_published_segment_and_the_status_naming_it_are_one_write(
    redis: aioredis.Redis,
) -> None:
    writer = CountingWriter(redis)
    channel = LiveChannel(id="a.ch", source="udp://239.1.1.1:5000")
    store = ChannelStore(channel, redis=redis, archive=ArchiveIndex(redis), writer=writer)
    status = ChannelStatus(channel, ChannelState.LIVE)
    store.follow(lambda: status_mapping(status, 0))
    store.replay()  # writes the configuration too, as a channel taken over does
    await store.flush()
    writer.steps.clear()
    for seq in range(3):
        published = datetime.fromtimestamp(1_800_000_000 + 2 * seq, UTC)
        status = replace(
            status, media_sequence=seq, last_segment_at=published, target_duration_seconds=2,
            rungs=(RungRate("90p", 250_000 + seq), RungRate("audio-en", 64_000)),
        )  # fmt: skip
        store.add_segments([("90p", _entry(seq)), ("180p", _entry(seq))])
        await store.flush()
    # One step per segment: its index entries and the status that names it together.
    assert writer.steps == [["ZADD", "ZADD", "HSET"]] * 3
    # As the control service reads it on a farm.
    saved = await ChannelIntents(redis).get("a.ch")
    assert (saved.last_segment_at, saved.target_duration_seconds, saved.rungs) == (
        status.last_segment_at, 2, (RungRate("90p", 250_002), RungRate("audio-en", 64_000)),
    )  # fmt: skip


def test_a_status_saved_before_its_segment_facts_were_kept_reads_without_them() -> None:
    channel = LiveChannel(id="a.ch", source="udp://239.1.1.1:5000")
    status = ChannelStatus(channel, ChannelState.LIVE)
    mapping = {**config_mapping(channel), **status_mapping(status, 0)}
    for name in ("last_segment_at", "target_duration", "rungs"):
        del mapping[name]
    saved = status_from_hash({k.encode(): v.encode() for k, v in mapping.items()})
    assert (saved.last_segment_at, saved.target_duration_seconds, saved.rungs) == (None, 0, ())


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param(
            {"TC_LIVE_STORE_RETRY_SECONDS": "0"}, "TC_LIVE_STORE_RETRY_SECONDS", id="retry"
        ),
        pytest.param({"TC_THUMBNAIL_SECONDS": "-1"}, "TC_THUMBNAIL_SECONDS", id="thumbnail"),
        pytest.param({"TC_LIVE_STOP_SECONDS": "x"}, "TC_LIVE_STOP_SECONDS", id="stop"),
        pytest.param(
            {"TC_LIVE_RESTART_FIRST_SECONDS": "5", "TC_LIVE_RESTART_MAX_SECONDS": "1"},
            "TC_LIVE_RESTART_MAX_SECONDS",
            id="cap-below-first",
        ),
        pytest.param(
            {"TC_LIVE_DISK_HEADROOM_SEGMENTS": "0"}, "TC_LIVE_DISK_HEADROOM_SEGMENTS", id="headroom"
        ),
    ],
)
def test_bad_live_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        LiveSettings.from_env(env)
    assert info.value.name == name


def test_live_settings_defaults() -> None:
    settings = LiveSettings.from_env({})
    assert settings == LiveSettings()
    assert settings.restart_backoff.cap_seconds == 10.0
    assert settings.thumbnail_seconds == 10.0
    assert LiveSettings.from_env({"TC_THUMBNAIL_SECONDS": "0"}).thumbnail_seconds == 0


@pytest.mark.parametrize("node_id", ["enc/1", "enc 1", "enc|1", "x" * 129, "enc\t1"])
def test_a_node_id_that_cannot_be_a_resource_name_is_refused(node_id: str) -> None:
    with pytest.raises(SettingsError, match="TC_NODE_ID"):
        NodeSettings.from_env({"TC_NODE_ID": node_id})
    assert NodeSettings.from_env({"TC_NODE_ID": "enc-1.gz"}).node_id == "enc-1.gz"
