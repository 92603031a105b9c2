"""A CMAF channel on a node reaches an origin on another directory (push + ingest).

Through a recording relay in front of a real origin, every CMAF playlist, the CMAF master
and the MPD arrive only after every init segment and ``.m4s`` they name; the origin then
serves each file byte for byte as the node wrote it. An origin back from an outage gets
the CMAF files it missed that the node still has (the archive index lists the TS only).
A real CMAF channel's files, ended playlists included, reach the origin the same way.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.support.live import Feed, live_channel
from transcode import hls, hls_parse, ingest, names
from transcode.archive import ArchiveIndex, RungInfo
from transcode.dash.model import Mpd
from transcode.dash.parse import parse_mpd
from transcode.domain import ArchiveEntry, ChannelState
from transcode.farm.ownership import Ownership
from transcode.jobs import PackageFormat
from transcode.live import LiveManager
from transcode.live.push import Pusher, PushSettings
from transcode.origin import start_origin
from transcode.origin.ingest import IngestSettings
from transcode.settings import OriginSettings, SourceSettings
from transcode.sources import SourceGuard

SECRET = b"c" * 40
T0 = datetime(2030, 1, 1, tzinfo=UTC)
WINDOW = 4
KEEP = WINDOW + 2  # the .m4s files a node keeps (``transcode.live.cmaf``)
TRACKS = ("90p", "audio")
# Files compared: the CMAF master and MPD; the video track's two playlists, each with its
# init and window; the audio track's playlist, init and window.
SERVED = 2 + 2 * (1 + 1 + WINDOW) + (1 + 1 + WINDOW)
# What the synthetic MPD names, so the relay can check it arrived after them.
_MPD_NAMES = re.compile(r"<!-- names (\S+) -->")


def _init(track: str, seq: int) -> str:
    """The video track's codec parameters change at segment 3: a new init segment."""
    return f"init-{'0000000b' if track == '90p' and seq >= 3 else '0000000a'}.mp4"


def _publish(root: Path, channel: str, seq: int) -> None:
    """Write what a CMAF channel's publisher writes for segment ``seq``, in its order: the
    TS segment and playlist, each track's init (when new) and ``.m4s``, the TS master, then
    each track's ``cmaf.m3u8`` (the video's ``cmaf-iframes.m3u8`` after it), the CMAF master
    and the MPD."""
    base = root / "live" / channel
    first = max(0, seq - WINDOW + 1)
    rung = base / "90p"
    rung.mkdir(parents=True, exist_ok=True)
    (rung / f"{seq:010d}.ts").write_bytes(f"ts-{seq}".encode() * 40)
    ts = [hls.Segment(uri=f"{k:010d}.ts", duration=2.0) for k in range(first, seq + 1)]
    (rung / "index.m3u8").write_text(
        hls.render_media(hls.MediaPlaylist(ts, media_sequence=first, target_duration=2))
    )
    for track in TRACKS:
        directory = base / track
        directory.mkdir(parents=True, exist_ok=True)
        init = directory / _init(track, seq)
        if not init.exists():
            init.write_bytes(f"{init.name}-{track}".encode())
        (directory / f"{seq}.m4s").write_bytes(f"{track}-{seq}".encode() * 30)
        (directory / f"{seq - KEEP}.m4s").unlink(missing_ok=True)
    (base / "master.m3u8").write_text(f"#EXTM3U\n# up to {seq}\n")
    for track in TRACKS:
        segments = [
            hls.Segment(
                uri=f"{k}.m4s",
                duration=2.0,
                program_date_time=T0 + timedelta(seconds=2 * k),
                map=hls.SegmentMap(_init(track, k)),
            )
            for k in range(first, seq + 1)
        ]
        playlist = hls.MediaPlaylist(segments, media_sequence=first, target_duration=2)
        (base / track / names.CMAF_PLAYLIST).write_text(hls.render_media(playlist))
        if track == "90p":
            ranged = [replace(s, byterange=(100, 0)) for s in segments]
            trick = replace(playlist, segments=ranged, iframes_only=True)
            (base / track / names.CMAF_IFRAMES).write_text(hls.render_media(trick))
    (base / names.CMAF_MASTER).write_text(
        '#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="A",URI="audio/cmaf.m3u8"\n'
        '#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI="90p/cmaf-iframes.m3u8"\n'
        f'#EXT-X-STREAM-INF:BANDWIDTH={seq + 1},AUDIO="a"\n90p/cmaf.m3u8\n'
    )
    listed = ",".join(
        f"{t}/{n}" for t in TRACKS for k in range(first, seq + 1)
        for n in (_init(t, k), f"{k}.m4s")
    )  # fmt: skip
    (base / names.MPD_NAME).write_text(f"<MPD><!-- names {listed} --></MPD>\n")


def _named(name: str, body: bytes) -> list[str]:
    """The files (relative to the channel) a pushed CMAF text names."""
    text = body.decode()
    if name == names.MPD_NAME:
        found = _MPD_NAMES.search(text)
        return found.group(1).split(",") if found else _mpd_names(parse_mpd(text))
    if name == names.CMAF_MASTER:
        return [*re.findall(r'URI="([^"]+)"', text), *re.findall(r"^(\S+\.m3u8)$", text, re.M)]
    playlist = hls_parse.parse_media(text)
    maps = [s.map.uri for s in playlist.segments if s.map is not None]
    return [*maps, *(s.uri for s in playlist.segments)]


def _mpd_names(mpd: Mpd) -> list[str]:
    """Each Representation's init segment and the segments its timeline numbers."""
    out: list[str] = []
    for period in mpd.periods:
        for adaptation in period.adaptation_sets:
            for rep in adaptation.representations:
                template = rep.segment_template or adaptation.segment_template
                if template is None:
                    out.append(f"no template for {rep.id}")  # never on the origin: a miss
                    continue
                count = sum(1 + s.r for s in template.timeline)
                numbers = range(template.start_number, template.start_number + count)
                out.append(template.initialization.replace("$RepresentationID$", rep.id))
                out += [
                    template.media.replace("$RepresentationID$", rep.id).replace("$Number$", str(n))
                    for n in numbers
                ]
    return out


@dataclass
class Relay:
    """A real HTTP relay in front of an origin: forwards each PUT as it came, after checking
    that every file a CMAF playlist, master or MPD names is on the origin already."""

    origin_root: Path
    target: str = ""
    puts: list[str] = field(default_factory=list)
    checked: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)

    async def put(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rel = request.path.removeprefix(ingest.PREFIX + "/")
        parts = rel.split("/")
        name = parts[-1]
        if name in (names.CMAF_PLAYLIST, names.CMAF_IFRAMES, names.CMAF_MASTER, names.MPD_NAME):
            here = self.origin_root.joinpath(*parts[:-1])
            channel = self.origin_root.joinpath(*parts[:2])
            for named in _named(name, body):
                where = here if name in (names.CMAF_PLAYLIST, names.CMAF_IFRAMES) else channel
                self.checked += 1
                if not (where / named).is_file():
                    self.missing.append((rel, named))
        self.puts.append(rel)
        headers = {k: v for k, v in request.headers.items() if k.startswith(("X-", "Auth"))}
        async with (
            aiohttp.ClientSession() as http,
            http.put(self.target + request.path, data=body, headers=headers) as response,
        ):
            return web.Response(status=response.status)


@dataclass
class Rig:
    node: Path
    origin_root: Path
    origin_url: str
    http: aiohttp.ClientSession
    redis: aioredis.Redis
    relay: Relay
    relay_url: str
    pushers: list[Pusher] = field(default_factory=list)

    def pusher(self, url: str, **kw: float) -> Pusher:
        settings = PushSettings(
            origins=(url,),
            secret=SECRET,
            retry_first_seconds=0.05,
            retry_max_seconds=0.2,
            timeout_seconds=5.0,
            **{"keep_local_seconds": 0.0, **kw},  # type: ignore[arg-type]
        )
        archive = ArchiveIndex(self.redis)
        pusher = Pusher(settings, root=self.node, archive=archive)
        pusher.start()
        self.pushers.append(pusher)
        return pusher

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.http.get(self.origin_url + path) as response:
            return response.status, await response.read()


async def _serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    return runner, runner.addresses[0][1]


async def _start_origin(root: Path, redis: aioredis.Redis, port: int = 0) -> tuple[object, int]:
    settings = OriginSettings(redis_url="unused://", origin_root=root, port=port)
    return await start_origin(settings, redis=redis, ingest=IngestSettings(secrets=(SECRET,)))


@pytest.fixture
async def rig(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Rig]:
    node, origin_root = tmp_path / "node", tmp_path / "origin"
    node.mkdir()
    origin_root.mkdir()
    origin, port = await _start_origin(origin_root, redis)
    relay = Relay(origin_root, f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_put("/ingest/{tail:.+}", relay.put)
    relay_runner, relay_port = await _serve(app)
    async with aiohttp.ClientSession() as http:
        rig = Rig(node, origin_root, relay.target, http, redis, relay,
                  f"http://127.0.0.1:{relay_port}")  # fmt: skip
        yield rig
        for pusher in rig.pushers:
            await pusher.close(drain_seconds=0)
    await relay_runner.cleanup()
    await origin.cleanup()  # type: ignore[attr-defined]


async def _served_as_on_the_node(rig: Rig, channel: str) -> int:
    """Every CMAF file the node's playlists name, served by the origin as the node has it;
    how many files were compared."""
    base = rig.node / "live" / channel
    compared = 0
    for name in (names.CMAF_MASTER, names.MPD_NAME):
        status, body = await rig.get(f"/live/{channel}/{name}")
        assert (status, body) == (200, (base / name).read_bytes()), name
        compared += 1
    for track in sorted(p.parent.name for p in base.glob(f"*/{names.CMAF_PLAYLIST}")):
        for name in (names.CMAF_PLAYLIST, names.CMAF_IFRAMES):
            if not (base / track / name).exists():
                continue
            status, body = await rig.get(f"/live/{channel}/{track}/{name}")
            assert (status, body) == (200, (base / track / name).read_bytes()), (track, name)
            compared += 1
            for named in dict.fromkeys(_named(name, body)):
                status, data = await rig.get(f"/live/{channel}/{track}/{named}")
                assert status == 200, (track, named)
                assert data == (base / track / named).read_bytes(), (track, named)
                compared += 1
    return compared


async def test_cmaf_files_reach_the_origin_in_order_and_are_served_as_the_node_wrote_them(
    rig: Rig,
) -> None:
    pusher = rig.pusher(rig.relay_url)
    for seq in range(4):  # one at a time: every publication's playlists go out
        _publish(rig.node, "ch1", seq)
        pusher.observe("ch1", seq, ChannelState.LIVE)
        await asyncio.wait_for(pusher.drained(), 10)
    for seq in range(4, 9):  # a burst: the playlists go once nothing newer waits
        _publish(rig.node, "ch1", seq)
        pusher.observe("ch1", seq, ChannelState.LIVE)
    # Published but not yet observed (the publisher is about to call it): the playlists the
    # worker reads name 9 already, so its files go first.
    _publish(rig.node, "ch1", 9)
    await asyncio.wait_for(pusher.drained(), 10)
    assert rig.relay.missing == []
    assert await _served_as_on_the_node(rig, "ch1") == SERVED
    pusher.observe("ch1", 9, ChannelState.LIVE)
    await asyncio.wait_for(pusher.drained(), 10)
    assert rig.relay.missing == []
    assert rig.relay.checked > 100
    assert rig.relay.puts[-1] == f"live/ch1/{names.MPD_NAME}"
    # Every init before the first segment of its track that needs it.
    for track in TRACKS:
        order = [p.rsplit("/", 1)[1] for p in rig.relay.puts if p.startswith(f"live/ch1/{track}/")]
        for seq in range(10):
            assert order.index(_init(track, seq)) < order.index(f"{seq}.m4s"), (track, seq)
    assert await _served_as_on_the_node(rig, "ch1") == SERVED
    # Both init segments of the video track reached the origin, each once.
    inits = [p for p in rig.relay.puts if "/90p/init-" in p]
    assert sorted(inits) == ["live/ch1/90p/init-0000000a.mp4", "live/ch1/90p/init-0000000b.mp4"]
    assert pusher.metrics.files.labels(rig.relay_url, "init")._value.get() == 3
    assert pusher.metrics.failures.labels(rig.relay_url)._value.get() == 0


async def test_an_origin_back_from_an_outage_gets_the_cmaf_files_the_node_still_has(
    rig: Rig,
) -> None:
    index = ArchiveIndex(rig.redis)
    await index.register_channel(
        "ch1", catchup_days=1, rungs=[RungInfo("90p", "avc1.42c00d,mp4a.40.2", 160, 90, 25.0)]
    )
    # Nothing listens on this port until the origin is back on it.
    down, port = await _start_origin(rig.origin_root, rig.redis)
    await down.cleanup()  # type: ignore[attr-defined]
    url = f"http://127.0.0.1:{port}"
    pusher = rig.pusher(url, queue_segments=1)
    last = 11
    for seq in range(last + 1):
        _publish(rig.node, "ch1", seq)
        start = datetime.now(UTC) - timedelta(seconds=2 * (last + 1 - seq))
        rel = f"live/ch1/90p/{seq:010d}.ts"
        await index.record("ch1", "90p", ArchiveEntry(seq, start, 2.0, 100, rel))
        pusher.observe("ch1", seq, ChannelState.LIVE)
    await _until(lambda: pusher.metrics.failures.labels(url)._value.get() >= 1)
    back, _ = await _start_origin(rig.origin_root, rig.redis, port)
    try:
        await asyncio.wait_for(pusher.drained(), 10)
        rig.origin_url = url
        assert await _served_as_on_the_node(rig, "ch1") == SERVED
        for track in TRACKS:
            # The node keeps the last KEEP: the window's went live, the two before it were
            # replayed (the archive index lists their TS), the older ones are gone.
            got = sorted(int(p.stem) for p in (rig.origin_root / "live/ch1" / track).glob("*.m4s"))
            assert got == list(range(last + 1 - KEEP, last + 1)), (track, got)
            for seq in got:
                name = f"live/ch1/{track}/{seq}.m4s"
                assert (rig.origin_root / name).read_bytes() == (rig.node / name).read_bytes()
        ts = sorted(int(p.stem) for p in (rig.origin_root / "live/ch1/90p").glob("*.ts"))
        assert ts == list(range(last + 1))
        # Replayed: the TS files 0..7 and the .m4s of 6 and 7 in both tracks.
        assert pusher.metrics.files.labels(url, "replay")._value.get() == 8 + 2 * 2
    finally:
        await back.cleanup()  # type: ignore[attr-defined]


async def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.xdist_group("live")
async def test_a_live_cmaf_channel_is_served_by_an_origin_on_another_directory(
    rig: Rig, source_settings: SourceSettings
) -> None:
    lease = await Ownership(rig.redis, ttl_seconds=120).claim("cm1", "node-a")
    assert lease is not None
    settings = PushSettings(origins=(rig.relay_url,), secret=SECRET, timeout_seconds=5.0,
                            keep_local_seconds=0.0)  # fmt: skip
    pusher = Pusher(settings, root=rig.node, leases={"cm1": lease})
    pusher.start()
    rig.pushers.append(pusher)
    published: list[int] = []

    def observe(channel: str, seq: int, state: ChannelState) -> None:
        pusher.observe(channel, seq, state)
        published.append(seq)

    manager = LiveManager(
        redis=rig.redis,
        archive=ArchiveIndex(rig.redis),
        origin_root=rig.node,
        sources=SourceGuard(source_settings),
        observer=observe,
    )
    feed = Feed().start()
    try:
        channel = replace(live_channel("cm1", feed.source), formats=(PackageFormat.CMAF,))
        await manager.start(channel)
        await _until(lambda: len(published) >= 3, 60)
        await manager.stop("cm1")
        pusher.ended("cm1", lease)  # what the node does once it has ended the playlists
    finally:
        feed.stop()
        await manager.close()
    await asyncio.wait_for(pusher.drained(), 20)
    assert rig.relay.missing == []
    assert rig.relay.checked > 10
    assert f"live/cm1/{names.MPD_NAME}" in rig.relay.puts
    node = rig.node / "live/cm1"
    assert {p.parent.name for p in node.glob(f"*/{names.CMAF_PLAYLIST}")} == {
        "90p", "180p", "audio"
    }  # fmt: skip
    assert await _served_as_on_the_node(rig, "cm1") > 3 * 3
    status, playlist = await rig.get(f"/live/cm1/90p/{names.CMAF_PLAYLIST}")
    assert status == 200
    assert hls_parse.parse_media(playlist.decode()).endlist
