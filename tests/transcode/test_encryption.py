"""Encrypted live channels with real FFmpeg: aligned key rotation, files unreadable in clear,
FFmpeg playing the live and catch-up playlists with keys from a stand-in front door, and a
key store outage that never lets a clear segment out."""

from __future__ import annotations

import argparse
import asyncio
import math
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from headend.contentkeys import (
    ContentKey,
    ContentKeySettings,
    ContentKeyStore,
    KekRing,
    scope_for_channel,
)
from headend.contentkeys.cipher import decrypt_segment
from headend.redisconn import RedisSettings, connect
from headend.redisproc import RedisServer
from tests.support.live import RUNGS, Feed, LiveRig, live_channel, live_rig, make_clip
from transcode import cli, hls, hls_parse
from transcode.archive import ArchiveIndex
from transcode.convert import channel_from_pb, channel_to_pb
from transcode.domain import ArchiveEntry, ChannelEncryption, ChannelState, Window
from transcode.errors import InvalidRequest
from transcode.live import config_mapping, status_from_hash
from transcode.live.encryption import ChannelKeys, LiveEncryption, live_encryption
from transcode.origin import start_origin
from transcode.settings import OriginSettings

# Live channels encode in real time: one worker, so two live tests never share the cores.
pytestmark = pytest.mark.xdist_group("live")

ROTATION_SECONDS = 4  # two 2 s segments per key
EVER = Window(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


class FrontDoorStandIn:
    """Stands in for the front door's key route (``GET /keys/{channel}/{key_id}``) with no
    box checks: it serves the stored key, and records which ids were asked for."""

    def __init__(self, store: ContentKeyStore) -> None:
        self._store = store
        self.asked: list[str] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _key(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        self.asked.append(key_id)
        key = await self._store.get(scope_for_channel(request.match_info["channel"]), key_id)
        return web.Response(body=key.key, content_type="application/octet-stream")

    async def start(self) -> FrontDoorStandIn:
        app = web.Application()
        app.router.add_get("/keys/{channel}/{key_id}", self._key)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass
class KeyStoreSpy:
    """The real key store, counting the channel's asks and their failures (for handshakes)."""

    store: ContentKeyStore
    calls: int = 0
    failures: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def key_for(self, scope: str, period: int, *, rotation_seconds: int) -> ContentKey:
        self.calls += 1
        try:
            return await self.store.key_for(scope, period, rotation_seconds=rotation_seconds)
        except Exception:
            self.failures += 1
            raise
        finally:
            self.changed.set()

    async def until_failures(self, count: int) -> None:
        while self.failures < count:
            self.changed.clear()
            await self.changed.wait()


@dataclass
class Keys:
    server: RedisServer
    client: aioredis.Redis
    store: ContentKeyStore
    spy: KeyStoreSpy
    front_door: FrontDoorStandIn


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[Keys]:
    """A content key store on a Redis of its own (killable apart from the archive's)."""
    server = RedisServer(tmp_path / "keys-redis")
    server.start()
    client = connect(server.url, RedisSettings(socket_timeout_seconds=1.0))
    store = ContentKeyStore(client, KekRing.generate("kek1"))
    front_door = await FrontDoorStandIn(store).start()
    try:
        yield Keys(server, client, store, KeyStoreSpy(store), front_door)
    finally:
        await front_door.stop()
        await client.aclose()
        if server.pid is not None:
            server.stop()


@pytest.fixture
async def rig(tmp_path: Path, keys: Keys) -> AsyncIterator[LiveRig]:
    encryption = LiveEncryption(keys.spy, base_url=keys.front_door.url, rotation_seconds=600)
    async with live_rig(tmp_path, media_roots=(tmp_path,), encryption=encryption) as rig:
        yield rig


def _channel(tmp_path: Path, channel_id: str) -> tuple[str, ChannelEncryption]:
    clip = make_clip(tmp_path / f"{channel_id}.ts")
    return f"file://{clip}", ChannelEncryption(enabled=True, rotation_seconds=ROTATION_SECONDS)


def _readable_ts(path: Path) -> bool:
    """ffprobe, reading the file as MPEG-TS, finds a video stream in it. (Left to guess the
    format, ffprobe now and then takes ciphertext for some raw video stream: random bytes
    look like one to a weak probe, never like TS packets.)"""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-f", "mpegts", "-show_entries", "stream=codec_type",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode == 0 and "video" in done.stdout


def _play(source: str) -> tuple[int, int, str]:
    """FFmpeg decodes the playlist (keys over http); (exit code, video frames, errors)."""
    done = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
         "-allowed_extensions", "ALL", "-protocol_whitelist", "file,http,tcp,crypto",
         "-i", source, "-map", "0:v:0", "-f", "framecrc", "-"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    frames = sum(1 for line in done.stdout.splitlines() if line and not line.startswith("#"))
    return done.returncode, frames, done.stderr


def _check_encrypted(root: Path, entry: ArchiveEntry, key: ContentKey, tmp: Path) -> None:
    """Not readable as it is; decrypted with ``key`` and IV = its number, a valid TS."""
    data = (root / entry.path).read_bytes()
    assert not _readable_ts(root / entry.path), f"{entry.path} is readable in clear"
    clear = tmp / f"clear-{entry.sequence}.ts"
    clear.write_bytes(decrypt_segment(data, key.key, entry.sequence))
    assert _readable_ts(clear), f"{entry.path} does not decrypt to a valid TS"


async def _entries(rig: LiveRig, channel: str) -> dict[str, list[ArchiveEntry]]:
    index = ArchiveIndex(rig.redis)
    return {rung: await index.window(channel, rung, EVER) for rung in RUNGS}


async def test_an_encrypted_channel_rotates_aligned_keys_that_ffmpeg_plays_live_and_catchup(
    rig: LiveRig, keys: Keys, tmp_path: Path
) -> None:
    source, encryption = _channel(tmp_path, "enc1")
    await rig.manager.start(replace(live_channel("enc1", source), encryption=encryption))
    # Eight 2 s segments span at least three 4 s key periods.
    await asyncio.wait_for(rig.recorder.until(lambda: rig.recorder.last_indexed("enc1") >= 7), 120)
    await rig.manager.stop("enc1")  # ends the playlists, so FFmpeg reads them to the end

    entries = await _entries(rig, "enc1")
    by_seq = {rung: {e.sequence: e for e in found} for rung, found in entries.items()}
    common = sorted(set(by_seq[RUNGS[0]]) & set(by_seq[RUNGS[1]]))
    assert len(common) >= 8
    scope = scope_for_channel("enc1")
    used: dict[str, ContentKey] = {}
    for seq in common:
        key_ids = {by_seq[rung][seq].key_id for rung in RUNGS}
        assert len(key_ids) == 1, f"segment {seq}: rungs used different keys {key_ids}"
        key_id = key_ids.pop()
        assert key_id, f"segment {seq} was published in clear"
        key = used.get(key_id) or await keys.store.get(scope, key_id)
        used[key_id] = key
        start = by_seq[RUNGS[0]][seq].start
        assert key.period == math.floor(start.timestamp() / ROTATION_SECONDS)
        for rung in RUNGS:
            _check_encrypted(rig.root, by_seq[rung][seq], key, tmp_path)
    assert len(used) >= 2, "no rotation in eight segments of 4 s keys"

    # The live playlists name each segment's key; FFmpeg plays one with the front door's keys.
    playlist_path = rig.root / "live" / "enc1" / "90p" / "index.m3u8"
    playlist = hls_parse.parse_media(playlist_path.read_text())
    assert playlist.endlist
    for segment in playlist.segments:
        seq = int(segment.uri.removesuffix(".ts"))
        expected = f"{keys.front_door.url}/keys/enc1/{by_seq['90p'][seq].key_id}"
        assert segment.key == hls.SegmentKey(expected, seq)
    assert len({s.key.uri for s in playlist.segments if s.key}) >= 2
    code, frames, errors = await asyncio.to_thread(_play, str(playlist_path))
    assert (code, errors) == (0, "")
    assert frames >= 20 * sum(s.duration for s in playlist.segments)
    assert {s.key.uri.rsplit("/", 1)[1] for s in playlist.segments if s.key} <= set(
        keys.front_door.asked
    )

    # Catch-up over two segments either side of a rotation, from the origin.
    archived = by_seq["90p"]
    change = next(s for s in common[1:] if archived[s].key_id != archived[s - 1].key_id)
    before, after = archived[change - 1], archived[change]
    window = f"from={before.start.timestamp() + 0.1:.3f}&to={after.end.timestamp() - 0.1:.3f}"
    runner, port = await start_origin(
        OriginSettings(
            redis_url="unused://",
            origin_root=rig.root,
            port=0,
            content_key_base_url=keys.front_door.url,
        ),
        redis=rig.redis,
    )
    try:
        url = f"http://127.0.0.1:{port}/catchup/enc1/90p/index.m3u8?{window}"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            text = await response.text()
        key_lines = [line for line in text.splitlines() if line.startswith("#EXT-X-KEY")]
        assert key_lines == [
            f'#EXT-X-KEY:METHOD=AES-128,URI="{keys.front_door.url}/keys/enc1/{before.key_id}"',
            f'#EXT-X-KEY:METHOD=AES-128,URI="{keys.front_door.url}/keys/enc1/{after.key_id}"',
        ]
        catchup = hls_parse.parse_media(text)
        # The IVs the playlist implies are the numbers the segments were encrypted with.
        assert [s.key.sequence for s in catchup.segments if s.key] == [change - 1, change]
        code, frames, errors = await asyncio.to_thread(_play, url)
        assert (code, errors) == (0, "")
        assert frames >= 20 * (before.duration + after.duration)
        async with aiohttp.ClientSession() as http:
            keys_url = f"http://127.0.0.1:{port}/keys/enc1/{after.key_id}"
            async with http.get(keys_url) as response:
                assert response.status == 404
                assert await response.read() != used[after.key_id].key
    finally:
        await runner.cleanup()


async def test_an_unreachable_key_store_keeps_the_last_key_and_never_publishes_clear(
    rig: LiveRig, keys: Keys, tmp_path: Path
) -> None:
    source, encryption = _channel(tmp_path, "enc2")
    keys.server.stop()  # no key can be made: nothing may be published
    await rig.manager.start(replace(live_channel("enc2", source), encryption=encryption))
    await asyncio.wait_for(keys.spy.until_failures(2), 120)
    supervisor = rig.manager.supervisor("enc2")
    assert supervisor is not None
    status = supervisor.status()
    assert status.state is ChannelState.DEGRADED
    assert "no content key yet" in status.reason
    assert rig.recorder.last_seq("enc2") == -1
    assert not list((rig.root / "live" / "enc2").glob("*/*.ts"))

    await asyncio.to_thread(keys.server.start)
    await asyncio.wait_for(rig.recorder.until(lambda: rig.recorder.last_indexed("enc2") >= 1), 120)
    last = rig.recorder.last_indexed("enc2")
    key_id = {e.sequence: e for e in (await _entries(rig, "enc2"))["90p"]}[last].key_id
    key = await keys.store.get(scope_for_channel("enc2"), key_id)

    keys.server.kill()
    failed = keys.spy.failures
    # Three more segments: at least one starts in a new 4 s period, whose key cannot be made.
    await asyncio.wait_for(
        rig.recorder.until(lambda: rig.recorder.last_indexed("enc2") >= last + 3), 120
    )
    assert keys.spy.failures > failed
    entries = (await _entries(rig, "enc2"))["90p"]
    during = [e for e in entries if e.sequence > last]
    assert len(during) >= 3
    assert any(math.floor(e.start.timestamp() / ROTATION_SECONDS) != key.period for e in during), (
        "the outage never crossed a rotation"
    )
    for entry in during:
        assert entry.key_id == key_id, "a segment of the outage was not encrypted with the last key"
        _check_encrypted(rig.root, entry, key, tmp_path)
    playlist = hls_parse.parse_media(
        (rig.root / "live" / "enc2" / "90p" / "index.m3u8").read_text()
    )
    assert all(s.key is not None for s in playlist.segments)


async def test_the_origin_refuses_key_paths(redis: aioredis.Redis, tmp_path: Path) -> None:
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=tmp_path, port=0), redis=redis
    )
    try:
        async with aiohttp.ClientSession() as http:
            for method, path in (
                ("GET", f"/keys/ch1/{'a' * 32}"),
                ("GET", f"/keys/asset/film/{'a' * 32}"),
                ("HEAD", "/keys/ch1"),
                ("POST", "/keys/"),
            ):
                async with http.request(method, f"http://127.0.0.1:{port}{path}") as response:
                    assert response.status == 404, (method, path)
                    assert response.headers["Cache-Control"] == "no-store"
    finally:
        await runner.cleanup()


async def test_a_channel_asks_for_its_key_once_per_period_not_per_rung(
    redis: aioredis.Redis,
) -> None:
    spy = KeyStoreSpy(ContentKeyStore(redis, KekRing.generate("kek1")))
    encryption = LiveEncryption(spy, base_url="http://fd", rotation_seconds=600)
    channel = replace(
        live_channel("enc3", "udp://127.0.0.1:5000"), encryption=ChannelEncryption(True)
    )
    keys = ChannelKeys(channel, encryption, timeout_seconds=2.0, recheck_seconds=3600)
    start = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # a period boundary (600 s)

    first = [await keys.key_at(start + timedelta(seconds=6 * n)) for n in range(100)]
    second = await keys.key_at(start + timedelta(seconds=600))

    assert spy.calls == 2
    assert None not in first
    assert second is not None
    assert len({k.key_id for k in first if k}) == 1
    assert second.key_id not in {k.key_id for k in first if k}
    assert keys.uri(second.key_id) == f"http://fd/keys/enc3/{second.key_id}"
    assert keys.rotation_seconds == 600  # the node's default: the channel names none


def test_encryption_settings_round_trip_through_the_message_and_the_channel_hash() -> None:
    channel = replace(
        live_channel("enc4", "udp://127.0.0.1:5000"),
        encryption=ChannelEncryption(enabled=True, rotation_seconds=4),
    )

    assert channel_from_pb(channel_to_pb(channel)).encryption == channel.encryption
    saved = {k.encode(): v.encode() for k, v in config_mapping(channel).items()}
    assert status_from_hash(saved).channel == channel


@pytest.mark.parametrize(
    "seconds", [pytest.param(1, id="too-short"), pytest.param(86401, id="too-long")]
)
def test_a_rotation_out_of_range_is_refused(seconds: int) -> None:
    channel = replace(
        live_channel("enc5", "udp://127.0.0.1:5000"),
        encryption=ChannelEncryption(enabled=True, rotation_seconds=seconds),
    )

    with pytest.raises(InvalidRequest) as caught:
        channel.validate()

    assert caught.value.field == "channel.encryption.rotation_seconds"


def test_the_cli_starts_a_channel_encrypted_with_its_rotation() -> None:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())

    args = parser.parse_args(
        ["channel", "start", "cctv1", "udp://239.1.1.1:5000", "--encrypt", "--key-rotation", "300"]
    )
    clear = parser.parse_args(["channel", "start", "cctv1", "udp://239.1.1.1:5000"])

    assert (args.encrypt, args.key_rotation) == (True, 300)
    assert (clear.encrypt, clear.key_rotation) == (False, 0)


async def test_slate_segments_of_an_encrypted_channel_are_encrypted_too(
    rig: LiveRig, keys: Keys, tmp_path: Path
) -> None:
    feed = Feed().start()
    channel = replace(
        live_channel("enc6", feed.source),
        encryption=ChannelEncryption(enabled=True, rotation_seconds=ROTATION_SECONDS),
    )
    try:
        await rig.manager.start(channel)
        await asyncio.wait_for(rig.recorder.until(lambda: rig.recorder.last_seq("enc6") >= 1), 120)
        feed.stop()  # the source is lost: the slate goes on air

        def slate_indexed() -> bool:
            slate = [p.seq for p in rig.recorder.published["enc6"] if p.state is ChannelState.SLATE]
            return bool(slate) and rig.recorder.last_indexed("enc6") >= slate[0]

        await asyncio.wait_for(rig.recorder.until(slate_indexed), 120)
    finally:
        feed.stop()
    slate_seqs = {p.seq for p in rig.recorder.published["enc6"] if p.state is ChannelState.SLATE}
    entries = [e for e in (await _entries(rig, "enc6"))["90p"] if e.sequence in slate_seqs]
    assert entries
    scope = scope_for_channel("enc6")
    for entry in entries:
        assert entry.key_id, f"slate segment {entry.sequence} was published in clear"
        _check_encrypted(rig.root, entry, await keys.store.get(scope, entry.key_id), tmp_path)


async def test_a_node_without_keks_has_no_encryption_and_publishes_nothing_encrypted(
    redis: aioredis.Redis,
) -> None:
    assert live_encryption(ContentKeySettings(), redis) is None
    configured = live_encryption(
        ContentKeySettings(keks=KekRing.generate("kek1"), rotation_seconds=300), redis
    )
    assert configured is not None
    assert configured.rotation_seconds == 300
    channel = replace(
        live_channel("enc7", "udp://127.0.0.1:5000"), encryption=ChannelEncryption(True)
    )

    keys = ChannelKeys(channel, None, timeout_seconds=1.0)

    assert await keys.key_at(datetime.now(UTC)) is None
    assert "CONTENT_KEKS" in keys.problem
