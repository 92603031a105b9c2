"""Catch-up windows as CMAF-HLS and MPEG-DASH, packaged on request at a real origin from a
real archive (FFmpeg-made TS segments of two rungs with audio, indexed in a real Redis):
the CMAF playlists list exactly the TS catch-up playlists' segments, each remuxed segment
holds its TS segment's packets on the window's timeline, the MPD's SegmentTimeline is
every segment's tfdt, ffprobe reads the MPD and the master, and bad requests get a clear
4xx and leave the origin root as it was."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis

from tests.support.media import ffmpeg
from transcode import hls_parse
from transcode.archive import ArchiveIndex, RungInfo
from transcode.dash.model import Mpd, timeline_ticks
from transcode.dash.parse import parse_mpd
from transcode.domain import ArchiveEntry
from transcode.fmp4 import MediaSegment, read_init, read_segment
from transcode.fmp4.writer import VIDEO_TIMESCALE
from transcode.live.cmaf import AUDIO_TRACK, track_start
from transcode.origin import start_origin
from transcode.settings import OriginSettings

RUNGS = (("180p", 320, 180), ("90p", 160, 90))
TRACKS = ("180p", "90p", AUDIO_TRACK)
KEY_ID = "0123456789abcdef0123456789abcdef"
# Between the two runs of the archive: the channel was off air (a restart, a discontinuity).
GAP_SECONDS = 4.0


@dataclass(frozen=True)
class Made:
    """FFmpeg's TS segments of each rung, in two runs (different sources, so the second
    starts a new timeline), with the durations FFmpeg's playlist gives them."""

    files: dict[str, list[Path]]
    durations: list[float]
    run_lengths: tuple[int, int]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    out = tmp_path_factory.mktemp("cmaf-catchup")
    files: dict[str, list[Path]] = {}
    durations: dict[str, list[float]] = {}
    lengths: list[int] = []
    for run, (source, seconds) in enumerate((("testsrc2", 6), ("smptebars", 4))):
        for rung, width, height in RUNGS:
            ffmpeg(
                *("-f", "lavfi", "-i", f"{source}=s={width}x{height}:r=25"),
                *("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"),
                *("-t", str(seconds), "-pix_fmt", "yuv420p", "-c:v", "libx264"),
                *("-preset", "ultrafast", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0"),
                *("-c:a", "aac", "-b:a", "64k", "-f", "hls", "-hls_time", "2"),
                *("-hls_playlist_type", "vod"),
                *("-hls_segment_filename", str(out / f"{rung}-{run}-%d.ts")),
                str(out / f"{rung}-{run}.m3u8"),
            )
            listed = hls_parse.parse_media((out / f"{rung}-{run}.m3u8").read_text())
            files.setdefault(rung, []).extend(out / s.uri for s in listed.segments)
            durations.setdefault(rung, []).extend(s.duration for s in listed.segments)
        lengths.append(len(files[RUNGS[0][0]]) - sum(lengths))
    assert durations["180p"] == durations["90p"]  # one GOP rule: the rungs are aligned
    assert lengths == [3, 2]
    return Made(files, durations["180p"], (lengths[0], lengths[1]))


@dataclass
class Site:
    base: str
    http: aiohttp.ClientSession
    root: Path
    entries: dict[str, list[ArchiveEntry]]  # channel ch1's, by rung
    start: datetime  # ch1's first segment's start (two hours ago: its windows are settled)

    async def get(self, path: str) -> tuple[bytes, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path) as response:
            body = await response.read()
            assert response.status == 200, body
            return body, response

    def files(self) -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in self.root.rglob("*")}


async def _archive(
    index: ArchiveIndex,
    root: Path,
    made: Made,
    channel: str,
    start: datetime,
    *,
    key_id: str = "",
    gap: float = GAP_SECONDS,
) -> dict[str, list[ArchiveEntry]]:
    """Put ``made`` into ``channel``'s archive from ``start``: its first run, then after
    ``gap`` seconds its second run behind a discontinuity."""
    await index.register_channel(
        channel,
        catchup_days=1,
        # CODECS as a node registers them: the CMAF master must state the init segments'.
        rungs=[RungInfo(r, "avc1.42c01e,mp4a.40.2", w, h, 25.0) for r, w, h in RUNGS],
    )
    out: dict[str, list[ArchiveEntry]] = {}
    for rung, _, _ in RUNGS:
        at = start
        for seq, (path, duration) in enumerate(zip(made.files[rung], made.durations, strict=True)):
            rel = f"live/{channel}/{rung}/{seq:010d}.ts"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, root / rel)
            restart = seq == made.run_lengths[0]
            if restart:
                at += timedelta(seconds=gap)
            entry = ArchiveEntry(
                seq, at, duration, path.stat().st_size, rel, discontinuity=restart, key_id=key_id
            )
            await index.record(channel, rung, entry)
            out.setdefault(rung, []).append(entry)
            at = entry.end
    return out


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path, made: Made) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    index = ArchiveIndex(redis)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    entries = await _archive(index, root, made, "ch1", start)
    await _archive(index, root, made, "enc", start, key_id=KEY_ID)
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    async with aiohttp.ClientSession() as http:
        yield Site(f"http://127.0.0.1:{port}", http, root, entries, start)
    await runner.cleanup()


def _window(channel: str, first: datetime, last: datetime) -> str:
    return f"/catchup/{channel}/w/{int(first.timestamp())}/{int(last.timestamp())}"


def _settled(site: Site) -> str:
    return _window("ch1", site.start - timedelta(seconds=30), site.start + timedelta(minutes=2))


def _contract(entries: list[ArchiveEntry], timescale: int) -> list[int]:
    """The transcode.dash timing contract, written out: the window's first start, then the
    running total of the durations, each rounded once."""
    first = track_start(entries[0].start.timestamp(), timescale)
    out, total = [first], 0.0
    for entry in entries:
        total += entry.duration
        out.append(first + round(total * timescale))
    return out


async def _track(site: Site, window: str, track: str) -> list[tuple[bytes, bytes]]:
    """Each segment of a track's CMAF playlist with its init segment, as served."""
    body, _ = await site.get(f"{window}/{track}/cmaf.m3u8")
    listed = hls_parse.parse_media(body.decode())
    out = []
    for segment in listed.segments:
        assert segment.map is not None
        init, _ = await site.get(f"{window}/{track}/{segment.map.uri}")
        data, _ = await site.get(f"{window}/{track}/{segment.uri}")
        out.append((init, data))
    return out


def _read(init: bytes, data: bytes) -> MediaSegment:
    return read_segment(data, read_init(init))


async def test_the_cmaf_playlists_list_the_ts_catchup_segments(site: Site) -> None:
    window = _settled(site)
    body, response = await site.get(f"{window}/master-cmaf.m3u8")
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    master = hls_parse.parse_master(body.decode())
    assert [v.uri for v in master.variants] == ["90p/cmaf.m3u8", "180p/cmaf.m3u8"]
    assert [(r.type, r.uri) for r in master.renditions] == [("AUDIO", "audio/cmaf.m3u8")]
    audio_init, _ = await site.get(f"{window}/audio/init-0.mp4")
    audio_codec = read_init(audio_init)[0].codec
    for variant in master.variants:
        init, response = await site.get(f"{window}/{variant.uri.split('/')[0]}/init-0.mp4")
        assert response.content_type == "video/mp4"
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert variant.codecs == f"{read_init(init)[0].codec},{audio_codec}"
        assert variant.audio == master.renditions[0].group_id
    for track in TRACKS:
        rung = "180p" if track == AUDIO_TRACK else track
        ts_body, _ = await site.get(f"{window}/{rung}/index.m3u8")
        body, response = await site.get(f"{window}/{track}/cmaf.m3u8")
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        ts, cmaf = hls_parse.parse_media(ts_body.decode()), hls_parse.parse_media(body.decode())
        assert (cmaf.media_sequence, cmaf.playlist_type, cmaf.endlist) == (0, "VOD", True)
        assert cmaf.media_sequence == ts.media_sequence
        assert [s.uri for s in ts.segments] == [f"{n:010d}.ts" for n in range(5)]
        assert [s.uri for s in cmaf.segments] == [f"{n}.m4s" for n in range(5)]
        for field in ("duration", "program_date_time", "discontinuity", "dateranges"):
            assert [getattr(s, field) for s in cmaf.segments] == [
                getattr(s, field) for s in ts.segments
            ], field
        maps = [s.map.uri if s.map else None for s in cmaf.segments]
        assert maps == ["init-0.mp4"] * 3 + ["init-3.mp4"] * 2  # a run per discontinuity


def _probe_packets(path: Path) -> dict[str, int]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-show_entries",
         "stream=codec_type,nb_read_packets", "-of", "json", str(path)],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return {s["codec_type"]: int(s["nb_read_packets"]) for s in json.loads(out)["streams"]}


async def test_each_segment_holds_its_ts_packets_on_the_window_timeline(
    site: Site, tmp_path: Path
) -> None:
    window = _settled(site)
    entries = site.entries["180p"]
    contract = _contract(entries, VIDEO_TIMESCALE)
    before = site.files()
    for track in TRACKS:
        rung = "180p" if track == AUDIO_TRACK else track
        kind = "audio" if track == AUDIO_TRACK else "video"
        for seq, (init, data) in enumerate(await _track(site, window, track)):
            joined = tmp_path / f"{track}-{seq}.mp4"
            joined.write_bytes(init + data)
            ts = _probe_packets(site.root / site.entries[rung][seq].path)
            assert _probe_packets(joined) == {kind: ts[kind]}, (track, seq)
            if kind == "video":
                segment = _read(init, data)
                # tfdt is the contract's tick, and the duration tiles the EXTINF exactly.
                assert (segment.start, segment.duration) == (
                    contract[seq],
                    contract[seq + 1] - contract[seq],
                )
                if seq < 3:  # no gap before it: its archived start, to a tick
                    exact = entries[seq].start.timestamp() * VIDEO_TIMESCALE
                    assert abs(segment.start - exact) <= 1
    # The second run follows the first on the timeline: the off-air gap is left out.
    dated = (entries[3].start.timestamp() - GAP_SECONDS) * VIDEO_TIMESCALE
    assert abs(contract[3] - dated) <= 1
    # A packaged segment is served like a file: byte ranges, validators.
    _, whole = (await _track(site, window, "180p"))[1]
    url = f"{site.base}{window}/180p/1.m4s"
    async with site.http.get(url, headers={"Range": "bytes=0-99"}) as response:
        assert (response.status, await response.read()) == (206, whole[:100])
        etag = response.headers["ETag"]
    async with site.http.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304
    assert site.files() == before  # packaged in memory: nothing written


def _timelines(mpd: Mpd) -> dict[str, list[tuple[int, int, int]]]:
    """Each Representation's segments as (Period index, t, d), in order."""
    out: dict[str, list[tuple[int, int, int]]] = {}
    for p, period in enumerate(mpd.periods):
        for aset in period.adaptation_sets:
            for rep in aset.representations:
                template = rep.segment_template or aset.segment_template
                assert template is not None
                ticks = timeline_ticks(template.timeline, template.presentation_time_offset)
                assert ticks[0][0] == template.presentation_time_offset  # the Period's start
                out.setdefault(rep.id, []).extend((p, t, d) for t, d in ticks)
    return out


async def test_the_static_mpd_times_every_segment_as_its_tfdt(site: Site) -> None:
    window = _settled(site)
    body, response = await site.get(f"{window}/manifest.mpd")
    assert response.content_type == "application/dash+xml"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    mpd = parse_mpd(body.decode())
    assert mpd.type == "static"
    assert [p.id for p in mpd.periods] == ["p0", "p1"]  # a Period per discontinuity
    timelines = _timelines(mpd)
    assert set(timelines) == set(TRACKS)
    for track in TRACKS:
        segments = [_read(i, d) for i, d in await _track(site, window, track)]
        listed = timelines[track]
        assert [p for p, _, _ in listed] == [0, 0, 0, 1, 1]
        for (_, t, d), segment in zip(listed, segments, strict=True):
            if track == AUDIO_TRACK:
                # Audio keeps its lip sync with the video: within an AAC frame or two.
                assert abs(segment.start - t) <= 2048
                assert abs(segment.duration - d) <= 2048
            else:
                assert (segment.start, segment.duration) == (t, d)
    total = sum(e.duration for e in site.entries["180p"])  # the off-air gap left out
    assert mpd.media_presentation_duration == timedelta(seconds=round(total, 6))


def _ffprobe_streams(url: str) -> list[str]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", url],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    return sorted({line.strip(",") for line in out.split()})


async def test_ffprobe_reads_the_mpd_and_the_cmaf_master(site: Site) -> None:
    url = site.base + _settled(site)
    for name in ("manifest.mpd", "master-cmaf.m3u8"):
        codecs = await asyncio.to_thread(_ffprobe_streams, f"{url}/{name}")
        assert codecs == ["aac", "h264"], name


async def test_a_growing_window_gets_a_dynamic_mpd(
    site: Site, redis: aioredis.Redis, made: Made
) -> None:
    # A programme on air: its archive so far ends now, the window ends in ten minutes.
    now = datetime.now(UTC)
    start = now - timedelta(seconds=sum(made.durations) + 1)
    entries = await _archive(ArchiveIndex(redis), site.root, made, "air", start, gap=0.0)
    window = _window("air", start - timedelta(seconds=5), now + timedelta(minutes=10))
    body, response = await site.get(f"{window}/180p/cmaf.m3u8")
    assert response.headers["Cache-Control"] == "public, max-age=1"
    listed = hls_parse.parse_media(body.decode())
    assert (listed.playlist_type, listed.endlist) == ("EVENT", False)
    body, response = await site.get(f"{window}/manifest.mpd")
    assert response.headers["Cache-Control"] == "public, max-age=1"
    mpd = parse_mpd(body.decode())
    assert mpd.type == "dynamic"
    began = mpd.availability_start_time
    assert began is not None
    assert began == entries["180p"][0].start  # the first Period's start
    dated = listed.segments[0].program_date_time  # as the playlist gives it, to the ms
    assert dated is not None
    assert timedelta(0) <= began - dated < timedelta(milliseconds=1)
    segments = [_read(i, d) for i, d in await _track(site, window, "180p")]
    assert [(t, d) for _, t, d in _timelines(mpd)["180p"]] == [
        (s.start, s.duration) for s in segments
    ]


def _error(body: bytes) -> str:
    return str(json.loads(body)["message"])


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        pytest.param(
            "/catchup/ch1/w/{to}/{from}/manifest.mpd",
            400,
            "must be after from",
            id="window-reversed",
        ),
        pytest.param(
            "/catchup/ch1/w/{from}/x/master-cmaf.m3u8", 400, "epoch seconds", id="window-malformed"
        ),
        pytest.param("{short}/180p/2.m4s", 404, "outside the catch-up window", id="outside"),
        pytest.param("{short}/180p/init-2.mp4", 404, "outside", id="init-outside"),
        pytest.param("{window}/180p/init-1.mp4", 404, "no run", id="init-not-a-run"),
        pytest.param("{window}/180p/init-01.mp4", 404, "no such init", id="init-padded"),
        pytest.param("{window}/180p/01.m4s", 404, "no such segment", id="padded"),
        pytest.param("{window}/180p/9.m4s", 404, "outside", id="not-archived"),
        pytest.param("{window}/720p/cmaf.m3u8", 404, "no CMAF track 720p", id="unknown-rung"),
        pytest.param("{window}/BAD!/cmaf.m3u8", 404, "no rung", id="bad-track-name"),
        pytest.param("{window}/180p/0000000000.m4s", 404, "no such segment", id="ts-name"),
        pytest.param(
            "/catchup/nope/w/{from}/{to}/master-cmaf.m3u8",
            404,
            "no archived segments",
            id="no-channel",
        ),
        pytest.param("{enc}/master-cmaf.m3u8", 404, "encrypted", id="encrypted-master"),
        pytest.param("{enc}/180p/cmaf.m3u8", 404, "encrypted", id="encrypted-media"),
        pytest.param("{enc}/audio/0.m4s", 404, "encrypted", id="encrypted-segment"),
        pytest.param("{enc}/manifest.mpd", 404, "encrypted", id="encrypted-mpd"),
    ],
)
async def test_bad_requests_are_refused_clearly_and_write_nothing(
    site: Site, path: str, status: int, says: str
) -> None:
    first = int((site.start - timedelta(seconds=30)).timestamp())
    last = int((site.start + timedelta(minutes=2)).timestamp())
    filled = path.format(
        window=_settled(site),
        enc=_window("enc", site.start, site.start + timedelta(minutes=2)),
        short=_window("ch1", site.start, site.start + timedelta(seconds=3)),
        **{"from": first, "to": last},
    )
    before = site.files()
    async with site.http.get(site.base + filled) as response:
        body = await response.read()
        assert response.status == status, body
        assert response.headers["Cache-Control"] == "no-store"
    assert says in _error(body)
    assert site.files() == before


async def test_a_window_just_ended_gets_a_static_mpd_cached_as_live(
    site: Site, redis: aioredis.Redis, made: Made
) -> None:
    # A programme that ended a moment ago: EVENT with ENDLIST, so a static MPD, still
    # cached briefly (players that watched it grow reload it).
    now = datetime.now(UTC)
    start = now - timedelta(seconds=sum(made.durations) + 5)
    await _archive(ArchiveIndex(redis), site.root, made, "done", start, gap=0.0)
    window = _window("done", start, now - timedelta(seconds=1))
    body, response = await site.get(f"{window}/audio/cmaf.m3u8")
    listed = hls_parse.parse_media(body.decode())
    assert (listed.playlist_type, listed.endlist) == ("EVENT", True)
    body, response = await site.get(f"{window}/manifest.mpd")
    assert response.headers["Cache-Control"] == "public, max-age=1"
    mpd = parse_mpd(body.decode())
    assert mpd.type == "static"
    assert len(_timelines(mpd)["180p"]) == len(listed.segments)
