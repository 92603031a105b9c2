"""The origin across hosts: a node on its own directory pushes to two origins on theirs.

The ingest path rules take a CMAF channel's files (each name, its size limit) and refuse
any other name with nothing written; an origin prunes the CMAF segments it stops serving.
Two real origin apps (port 0, each with its own root) take the node's PUTs; both serve
the live channel and its catch-up archive; an origin that was down catches up with the
live window and then gets the older segments it missed replayed from the archive index;
a stale owner's late PUT is refused and changes nothing; the control process's embedded
node pushes too, ended playlists included; a pushing node refuses an origin's root.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yarl
from aiohttp import web

from headend.redisproc import RedisServer
from headend.rpc.server import EXIT_SETTINGS
from headend.settings import SettingsError
from tests.support.live import Feed, live_channel
from tests.support.media import Media
from tests.support.services import ServiceProcess, child_env
from transcode import hls, hls_parse, ingest
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry, ChannelState, LiveChannel, Window
from transcode.farm import ChannelIntents
from transcode.farm.ownership import Ownership, owner_key
from transcode.live import LiveManager
from transcode.live.push import Pusher, PushSettings, check_root
from transcode.live.window import cmaf_name
from transcode.origin import LIVE_BEHIND_SEGMENTS, start_origin
from transcode.origin.ingest import IngestSettings
from transcode.origin.process import mark_root, start_retention
from transcode.settings import OriginSettings, SourceSettings
from transcode.sources import SourceGuard

SECRET = b"s" * 40
RUNGS = ("180p", "90p")
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class Origin:
    """One origin app with its own root; ``stop``/``start`` keep its port."""

    root: Path
    redis: aioredis.Redis
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Origin:
        settings = OriginSettings(redis_url="unused://", origin_root=self.root, port=self.port)
        self.root.mkdir(parents=True, exist_ok=True)
        self.runner, self.port = await start_origin(
            settings, redis=self.redis, ingest=IngestSettings(secrets=(SECRET,))
        )
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@dataclass
class Rig:
    node_root: Path
    origins: list[Origin]
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    pushers: list[Pusher] = field(default_factory=list)

    def pusher(
        self,
        leases: dict[str, object] | None = None,
        archive: ArchiveIndex | None = None,
        **kw: float,
    ) -> Pusher:
        settings = PushSettings(
            origins=tuple(o.url for o in self.origins),
            secret=SECRET,
            retry_first_seconds=0.05,
            retry_max_seconds=0.2,
            timeout_seconds=5.0,
            **{"keep_local_seconds": 0.0, **kw},  # type: ignore[arg-type]
        )
        pusher = Pusher(
            settings,
            root=self.node_root,
            leases=leases,  # type: ignore[arg-type]
            archive=archive,
        )
        pusher.start()
        self.pushers.append(pusher)
        return pusher

    async def get(self, origin: Origin, path: str) -> tuple[int, bytes]:
        async with self.http.get(origin.url + path) as response:
            return response.status, await response.read()


@pytest.fixture
async def rig(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Rig]:
    origins = [await Origin(tmp_path / f"origin-{n}", redis).start() for n in "ab"]
    node_root = tmp_path / "node"
    node_root.mkdir()
    async with aiohttp.ClientSession() as http:
        rig = Rig(node_root, origins, http, redis)
        yield rig
        for pusher in rig.pushers:
            await pusher.close(drain_seconds=0)
    for origin in origins:
        await origin.stop()


async def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def _publish(root: Path, channel: str, seq: int, window: int = 4) -> None:
    """Write what a publisher writes for segment ``seq``: files, rung playlists, master."""
    first = max(0, seq - window + 1)
    for rung in RUNGS:
        directory = root / "live" / channel / rung
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"{seq:010d}.ts").write_bytes(f"{rung}-{seq}".encode() * 50)
        segments = [
            hls.Segment(
                uri=f"{k:010d}.ts", duration=2.0, program_date_time=T0 + timedelta(seconds=2 * k)
            )
            for k in range(first, seq + 1)
        ]
        text = hls.render_media(
            hls.MediaPlaylist(segments=segments, media_sequence=first, target_duration=2)
        )
        (directory / "index.m3u8").write_text(text)
    (root / "live" / channel / "master.m3u8").write_text(f"#EXTM3U\n# up to {seq}\n")


async def test_origin_down_then_back_catches_up_with_the_live_window(rig: Rig) -> None:
    down = rig.origins[1]
    pusher = rig.pusher()
    for seq in range(2):
        _publish(rig.node_root, "ch1", seq)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    await asyncio.wait_for(pusher.drained(), 10)
    await down.stop()
    for seq in range(2, 8):
        _publish(rig.node_root, "ch1", seq)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    # The live origin keeps up while the other one is down.
    await _until(lambda: b"up to 7" in (rig.origins[0].root / "live/ch1/master.m3u8").read_bytes())
    assert pusher.metrics.failures.labels(down.url)._value.get() >= 1
    assert pusher.metrics.backlog.labels(down.url)._value.get() >= 1
    await down.start()
    await asyncio.wait_for(pusher.drained(), 10)
    for origin in rig.origins:
        for rung in RUNGS:
            local = (rig.node_root / "live/ch1" / rung / "index.m3u8").read_bytes()
            status, body = await rig.get(origin, f"/live/ch1/{rung}/index.m3u8")
            assert (status, body) == (200, local)
            for s in hls_parse.parse_media(body.decode()).segments:
                status, data = await rig.get(origin, f"/live/ch1/{rung}/{s.uri}")
                assert status == 200
                assert data == (rig.node_root / "live/ch1" / rung / s.uri).read_bytes()
        status, master = await rig.get(origin, "/live/ch1/master.m3u8")
        assert (status, master) == (200, b"#EXTM3U\n# up to 7\n")


async def _index(index: ArchiveIndex, channel: str, seq: int, last: int) -> None:
    """Index segment ``seq`` in every rung as the publisher does: 2 s segments, ``last``
    ending now."""
    start = datetime.now(UTC) - timedelta(seconds=2 * (last + 1 - seq))
    for rung in RUNGS:
        rel = f"live/{channel}/{rung}/{seq:010d}.ts"
        await index.record(channel, rung, ArchiveEntry(seq, start, 2.0, 100, rel))


async def test_origin_down_longer_than_the_queue_gets_the_missed_segments_replayed(
    rig: Rig,
) -> None:
    index = ArchiveIndex(rig.redis)
    await index.register_channel(
        "ch1",
        catchup_days=1,
        rungs=[RungInfo(r, "avc1.42c00d,mp4a.40.2", 320, 180, 25.0) for r in RUNGS],
    )
    down = rig.origins[1]
    pusher = rig.pusher(archive=index, queue_segments=2)
    for seq in range(2):
        _publish(rig.node_root, "ch1", seq)
        await _index(index, "ch1", seq, 11)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    await asyncio.wait_for(pusher.drained(), 10)
    await down.stop()
    for seq in range(2, 12):  # 10 segments while down: the queue keeps 2
        _publish(rig.node_root, "ch1", seq)
        await _index(index, "ch1", seq, 11)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    await _until(lambda: b"up to 11" in (rig.origins[0].root / "live/ch1/master.m3u8").read_bytes())
    assert pusher.metrics.dropped.labels(down.url)._value.get() >= 1
    await down.start()
    await asyncio.wait_for(pusher.drained(), 10)
    for rung in RUNGS:
        for seq in range(12):  # the live window (8..11) and every older one it missed
            name = f"live/ch1/{rung}/{seq:010d}.ts"
            assert (down.root / name).read_bytes() == (rig.node_root / name).read_bytes(), name
    # Replayed from the node's files: 2..7 in both rungs (8..11 went out as the live window).
    assert pusher.metrics.files.labels(down.url, "replay")._value.get() == 6 * 2
    # The origin that stayed up may have dropped some too (a queue of 2): nothing is sent
    # twice, live or replayed.
    up = rig.origins[0].url
    sent = [pusher.metrics.files.labels(up, kind)._value.get() for kind in ("segment", "replay")]
    assert sum(sent) == 12 * 2, sent


async def test_replay_goes_no_further_back_than_the_node_keeps(rig: Rig) -> None:
    index = ArchiveIndex(rig.redis)
    await index.register_channel(
        "ch1",
        catchup_days=1,
        rungs=[RungInfo(r, "avc1.42c00d,mp4a.40.2", 320, 180, 25.0) for r in RUNGS],
    )
    down = rig.origins[1]
    await down.stop()
    # Keep 11 s: of the 2 s segments indexed up to 2 s ago (seq 19), only those from 11 s
    # ago on (14 overlaps it) are still the node's to replay; the live window is 16..19.
    pusher = rig.pusher(archive=index, queue_segments=1, keep_local_seconds=11.0)
    for seq in range(20):
        _publish(rig.node_root, "ch1", seq)
        await _index(index, "ch1", seq, 19)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    await down.start()
    await asyncio.wait_for(pusher.drained(), 10)
    got = sorted(int(p.stem) for p in (down.root / "live/ch1/90p").glob("*.ts"))
    assert got == list(range(14, 20)), got


async def test_a_pushing_node_refuses_an_origins_root(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    root.mkdir()
    push = PushSettings(origins=("http://o1:8080",), secret=SECRET)
    check_root(push, root)  # a plain directory is fine
    mark_root(root)  # what every origin process does at start
    with pytest.raises(SettingsError) as caught:
        check_root(push, root)
    assert caught.value.name == "ORIGIN_ROOT"
    check_root(PushSettings(), root)  # no push: a shared root is the ordinary set-up
    env = child_env(
        "redis://127.0.0.1:1/0",
        ORIGIN_ROOT=str(root),
        TC_ORIGIN_PUSH_URLS="http://127.0.0.1:1",
        ORIGIN_INGEST_SECRET=SECRET.decode(),
    )
    for args in (("transcode", "node"), ("transcode",)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", *args, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == EXIT_SETTINGS, err
        assert b"ORIGIN_ROOT" in err.strip().splitlines()[-1], err


@pytest.mark.slow
@pytest.mark.xdist_group("live")
async def test_the_control_process_embedded_node_pushes_and_ends_playlists(
    rig: Rig, redis_server: RedisServer, media: Media, tmp_path: Path
) -> None:
    env = child_env(
        redis_server.url,
        ORIGIN_ROOT=str(rig.node_root),
        TC_ORIGIN_PUSH_URLS=",".join(o.url for o in rig.origins),
        ORIGIN_INGEST_SECRET=SECRET.decode(),
        TC_MEDIA_ROOTS=str(media.clip.parent.resolve()),
        TC_NODE_LEASE_SECONDS="2",
        TC_NODE_TICK_SECONDS="0.3",
        TC_LIVE_STOP_SECONDS="2",
    )
    control = ServiceProcess("transcode", env)
    await control.start()
    try:
        intents = ChannelIntents(rig.redis)
        channel = LiveChannel(
            id="emb", source=f"file://{media.clip}", profile="low", segment_seconds=1,
            window_segments=6, catchup_days=1,
        )  # fmt: skip
        await intents.start(channel)
        playlists = [o.root / "live/emb/90p/index.m3u8" for o in rig.origins]

        def pushed(count: int) -> bool:
            return all(
                p.exists() and len(hls_parse.parse_media(p.read_text()).segments) >= count
                for p in playlists
            )

        await _until(lambda: pushed(2), 45)
        stopped = await intents.stop("emb")
        assert stopped.state is ChannelState.STOPPED
        await _until(lambda: all("#EXT-X-ENDLIST" in p.read_text() for p in playlists), 15)
        local = (rig.node_root / "live/emb/90p/index.m3u8").read_text()
        for origin, playlist in zip(rig.origins, playlists, strict=True):
            assert playlist.read_text() == local
            for segment in hls_parse.parse_media(local).segments:
                name = f"live/emb/90p/{segment.uri}"
                assert (origin.root / name).read_bytes() == (rig.node_root / name).read_bytes()
    finally:
        await control.stop()


async def test_stale_token_refused_and_file_unchanged(rig: Rig) -> None:
    origin = rig.origins[0]
    await rig.redis.set(owner_key("ch1"), "node-b|5")
    path = "/ingest/live/ch1/180p/0000000001.ts"

    async def put(node: str, token: int, body: bytes) -> int:
        writer = ingest.Writer(node, token)
        head = ingest.headers(SECRET, path, writer, int(time.time()), body)
        async with rig.http.put(origin.url + path, data=body, headers=head) as response:
            return response.status

    assert await put("node-b", 5, b"new owner") == 204
    assert await put("node-a", 4, b"late old owner") == 409
    # Same token, another node: not the owner either.
    assert await put("node-a", 5, b"impostor") == 409
    target = origin.root / "live/ch1/180p/0000000001.ts"
    assert target.read_bytes() == b"new owner"
    # With no owner in Redis (lease expired), the highest token accepted still fences.
    await rig.redis.delete(owner_key("ch1"))
    await asyncio.sleep(0.3)  # past the origin's owner cache
    assert await put("node-a", 4, b"late old owner") == 409
    assert target.read_bytes() == b"new owner"
    assert await put("node-c", 6, b"next owner") == 204
    assert target.read_bytes() == b"next owner"


async def test_pusher_drops_segments_the_origin_fences(rig: Rig) -> None:
    lease_b = Ownership(rig.redis, ttl_seconds=60)
    claimed = await lease_b.claim("ch1", "node-b")
    assert claimed is not None
    await lease_b.release(claimed)
    newer = await lease_b.claim("ch1", "node-c")
    assert newer is not None
    # node-b still believes it holds its (older) lease: the origins refuse what it pushes.
    claimed.lost = False
    claimed.deadline = time.monotonic() + 60
    pusher = rig.pusher(leases={"ch1": claimed})
    _publish(rig.node_root, "ch1", 0)
    pusher.observe("ch1", 0, ChannelState.LIVE)
    await asyncio.wait_for(pusher.drained(), 10)
    for origin in rig.origins:
        assert not (origin.root / "live/ch1/180p/0000000000.ts").exists()
        assert pusher.metrics.dropped.labels(origin.url)._value.get() == 1


@pytest.mark.slow
@pytest.mark.xdist_group("live")
async def test_node_on_its_own_directory_feeds_live_and_catchup_to_both_origins(
    rig: Rig,
) -> None:
    lease = await Ownership(rig.redis, ttl_seconds=120).claim("ch1", "node-a")
    assert lease is not None
    pusher = rig.pusher(leases={"ch1": lease})
    published: list[int] = []

    def observe(channel: str, seq: int, state: ChannelState) -> None:
        pusher.observe(channel, seq, state)
        published.append(seq)

    index = ArchiveIndex(rig.redis)
    manager = LiveManager(
        redis=rig.redis,
        archive=index,
        origin_root=rig.node_root,
        sources=SourceGuard(SourceSettings()),
        observer=observe,
    )
    feed = Feed().start()
    try:
        await manager.start(live_channel("ch1", feed.source))
        await _until(lambda: len(published) >= 3, 60)
        await manager.stop("ch1")
    finally:
        feed.stop()
        await manager.close()
    await asyncio.wait_for(pusher.drained(), 10)
    rungs = [r.name for r in await index.rungs("ch1")]
    assert rungs == list(RUNGS)
    now = datetime.now(UTC)
    entries = await index.window(
        "ch1", "90p", Window(now - timedelta(hours=1), now + timedelta(minutes=1))
    )
    assert len(entries) >= 3
    start, end = int(entries[0].start.timestamp()), int(entries[-1].end.timestamp()) + 1
    for origin in rig.origins:
        # Live: the playlists and every segment they name, byte for byte the node's.
        status, master = await rig.get(origin, "/live/ch1/master.m3u8")
        assert status == 200
        assert b"90p/index.m3u8" in master
        for rung in RUNGS:
            status, body = await rig.get(origin, f"/live/ch1/{rung}/index.m3u8")
            assert status == 200
            names = [s.uri for s in hls_parse.parse_media(body.decode()).segments]
            assert names
            for name in names:
                status, data = await rig.get(origin, f"/live/ch1/{rung}/{name}")
                assert status == 200
                assert data == (rig.node_root / "live/ch1" / rung / name).read_bytes()
        # Catch-up: the window the node published, from the index, served by each origin.
        status, body = await rig.get(origin, f"/catchup/ch1/w/{start}/{end}/90p/index.m3u8")
        assert status == 200
        listed = [s.uri for s in hls_parse.parse_media(body.decode()).segments]
        assert listed == [Path(e.path).name for e in entries]
        for name in listed:
            status, data = await rig.get(origin, f"/catchup/ch1/w/{start}/{end}/90p/{name}")
            assert status == 200
            assert data == (rig.node_root / "live/ch1/90p" / name).read_bytes()


async def test_origin_runs_retention_over_its_own_root(rig: Rig) -> None:
    origin = rig.origins[0]
    index = ArchiveIndex(rig.redis)
    await index.register_channel(
        "ch1", catchup_days=1, rungs=[RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)]
    )
    old = datetime.now(UTC) - timedelta(days=3)
    rel = "live/ch1/180p/0000000001.ts"
    (origin.root / "live/ch1/180p").mkdir(parents=True)
    (origin.root / rel).write_bytes(b"old")
    await index.record("ch1", "180p", ArchiveEntry(1, old, 2.0, 3, rel))
    stop = start_retention(rig.redis, origin.root, 0.05)
    try:
        await _until(lambda: not (origin.root / rel).exists(), 10)
    finally:
        await stop()


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"TC_ORIGIN_PUSH_URLS": "http://o1:8080"}, "ORIGIN_INGEST_SECRET",
                     id="push-without-secret"),
        pytest.param({"TC_ORIGIN_PUSH_URLS": "ftp://o1", "ORIGIN_INGEST_SECRET": "s" * 40},
                     "TC_ORIGIN_PUSH_URLS", id="not-http"),
    ],
)  # fmt: skip
def test_push_settings_name_the_bad_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as caught:
        PushSettings.from_env(env)
    assert caught.value.name == name


def test_push_is_off_by_default_and_ingest_needs_a_long_secret() -> None:
    assert not PushSettings.from_env({}).enabled
    assert not IngestSettings.from_env({}).enabled
    with pytest.raises(SettingsError):
        IngestSettings.from_env({"ORIGIN_INGEST_SECRET": "short"})


# -- a CMAF channel's files ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tail", "kind"),
    [
        pytest.param("master-cmaf.m3u8", "playlist", id="cmaf-master"),
        pytest.param("manifest.mpd", "playlist", id="mpd"),
        pytest.param("90p/cmaf.m3u8", "playlist", id="track-playlist"),
        pytest.param("audio/cmaf.m3u8", "playlist", id="audio-playlist"),
        pytest.param("90p/cmaf-iframes.m3u8", "playlist", id="track-iframes"),
        pytest.param("90p/init-0123abcd.mp4", "init", id="init"),
        pytest.param("audio/init-ffffffff.mp4", "init", id="audio-init"),
        pytest.param("90p/0.m4s", "segment", id="segment-zero"),
        pytest.param("90p/1234.m4s", "segment", id="segment"),
        pytest.param("audio/999999999999999.m4s", "segment", id="segment-15-digits"),
        pytest.param("subs/0000000012.vtt", "segment", id="webvtt"),
        pytest.param("90p/0000000012.ts", "segment", id="ts"),
        pytest.param("master.m3u8", "playlist", id="ts-master"),
    ],
)
def test_ingest_takes_a_cmaf_channels_files_with_their_size_kind(tail: str, kind: str) -> None:
    path = ingest.parse_path("ch1", tail)
    assert path.parts == ("live", "ch1", *tail.split("/"))
    assert path.kind == kind
    assert path.is_segment is (kind == "segment")


def test_ingest_takes_the_segment_names_the_live_cmaf_writes() -> None:
    assert cmaf_name(7) == "7.m4s"
    ingest.parse_path("ch1", f"90p/{cmaf_name(7)}")


def _put_head(path: str, body: bytes, token: int = 1) -> dict[str, str]:
    return ingest.headers(SECRET, path, ingest.Writer("node-a", token), int(time.time()), body)


async def _put(rig: Rig, origin: Origin, tail: str, body: bytes) -> int:
    url = yarl.URL(f"{origin.url}/ingest/live/{tail}", encoded=True)  # sent as written
    async with rig.http.put(url, data=body, headers=_put_head(url.path, body)) as response:
        return response.status


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param("ch1/90p/01.m4s", id="leading-zero"),
        pytest.param("ch1/90p/0000000001.m4s", id="padded"),
        pytest.param("ch1/90p/-1.m4s", id="negative"),
        pytest.param("ch1/90p/1234567890123456.m4s", id="16-digits"),
        pytest.param("ch1/90p/1.m4s.tmp", id="temporary"),
        pytest.param("ch1/90p/.1.m4s", id="dot-file"),
        pytest.param("ch1/90p/init-XYZ.mp4", id="init-not-hex"),
        pytest.param("ch1/90p/init-ABCDEF01.mp4", id="init-upper-case"),
        pytest.param("ch1/90p/init-0123abc.mp4", id="init-7-digits"),
        pytest.param("ch1/90p/init-0123abcd0.mp4", id="init-9-digits"),
        pytest.param("ch1/90p/init.mp4", id="init-unnamed"),
        pytest.param("ch1/x.mpd", id="other-mpd"),
        pytest.param("ch1/90p/manifest.mpd", id="mpd-in-a-track"),
        pytest.param("ch1/90p/master-cmaf.m3u8", id="master-in-a-track"),
        pytest.param("ch1/cmaf.m3u8", id="track-playlist-at-channel"),
        pytest.param("ch1/init-0123abcd.mp4", id="init-at-channel"),
        pytest.param("ch1/7.m4s", id="segment-at-channel"),
        pytest.param("ch1/90p/sub/7.m4s", id="too-deep"),
        pytest.param("ch1/90p/..%2f..%2fmanifest.mpd", id="encoded-traversal"),
        pytest.param("ch1/..%2fmanifest.mpd", id="channel-traversal"),
        pytest.param("ch1/Bad%20Rung/7.m4s", id="bad-track"),
        pytest.param("ch1/90p/1.vtt", id="vtt-not-padded"),
    ],
)
async def test_ingest_refuses_other_cmaf_names_and_writes_nothing(rig: Rig, tail: str) -> None:
    origin = rig.origins[0]
    before = sorted(rig.node_root.parent.rglob("*"))
    assert await _put(rig, origin, tail, b"x") == 404
    assert sorted(rig.node_root.parent.rglob("*")) == before


async def test_ingest_limits_init_segments_like_playlists(
    redis: aioredis.Redis, tmp_path: Path
) -> None:
    root = tmp_path / "origin"
    root.mkdir()
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0),
        redis=redis,
        ingest=IngestSettings(secrets=(SECRET,), max_segment_bytes=8192, max_playlist_bytes=1024),
    )
    base = f"http://127.0.0.1:{port}/ingest/live/ch1"
    try:
        async with aiohttp.ClientSession() as http:

            async def put(tail: str, size: int) -> int:
                path, body = f"/ingest/live/ch1/{tail}", b"x" * size
                async with http.put(
                    base + "/" + tail, data=body, headers=_put_head(path, body)
                ) as r:
                    return r.status

            assert await put("90p/init-0123abcd.mp4", 1025) == 413
            assert await put("90p/cmaf.m3u8", 1025) == 413
            assert await put("manifest.mpd", 1025) == 413
            assert await put("90p/7.m4s", 8193) == 413
            assert not (root / "live").exists()
            assert await put("90p/7.m4s", 4096) == 204  # a segment: over the playlist limit
            assert await put("90p/init-0123abcd.mp4", 1024) == 204
    finally:
        await runner.cleanup()
    assert (root / "live/ch1/90p/7.m4s").stat().st_size == 4096
    assert (root / "live/ch1/90p/init-0123abcd.mp4").stat().st_size == 1024


def _cmaf_playlist(first: int, last: int, init: str = "init-0123abcd.mp4") -> bytes:
    segments = [
        hls.Segment(uri=f"{k}.m4s", duration=2.0, map=hls.SegmentMap(init))
        for k in range(first, last + 1)
    ]
    text = hls.render_media(
        hls.MediaPlaylist(segments=segments, media_sequence=first, target_duration=2)
    )
    return text.encode()


async def test_an_origin_prunes_cmaf_segments_it_no_longer_serves(rig: Rig) -> None:
    origin = rig.origins[0]
    track = origin.root / "live/ch1/90p"
    for seq in range(12):
        assert await _put(rig, origin, f"ch1/90p/{seq}.m4s", f"m4s-{seq}".encode()) == 204
    assert await _put(rig, origin, "ch1/90p/init-0123abcd.mp4", b"init") == 204
    assert await _put(rig, origin, "ch1/90p/cmaf.m3u8", _cmaf_playlist(8, 11)) == 204
    # Served: the window (8..11) and LIVE_BEHIND_SEGMENTS (3) behind it; the rest is gone.
    kept = sorted(int(p.stem) for p in track.glob("*.m4s"))
    assert kept == list(range(8 - LIVE_BEHIND_SEGMENTS, 12))
    assert (track / "init-0123abcd.mp4").read_bytes() == b"init"
    for seq in (4, 5, 11):
        status, _ = await rig.get(origin, f"/live/ch1/90p/{seq}.m4s")
        assert status == (404 if seq < 5 else 200), seq
    # An unreadable playlist is stored as sent and prunes nothing.
    assert await _put(rig, origin, "ch1/90p/cmaf.m3u8", b"not a playlist") == 204
    assert sorted(int(p.stem) for p in track.glob("*.m4s")) == kept
