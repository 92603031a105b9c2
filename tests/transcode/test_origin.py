"""The HTTP origin on a real port: types, caching, gzip, ranges, ETags, catch-up, errors."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from epg.client import EpgClient
from epg.server import create_server as create_epg_server
from epg.settings import EpgSettings
from headend.auth import KeyStore
from headend.rpc import RpcSettings, bearer, client_channel
from protos import epg_pb2, epg_pb2_grpc
from tests.support.tokens import Tokens
from transcode import hls, hls_parse
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry
from transcode.live import channel_key
from transcode.origin import start_origin
from transcode.settings import OriginSettings

PLAYLIST = "application/vnd.apple.mpegurl"
SEGMENT = bytes(range(256)) * 8  # 2048 bytes
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WINDOW = f"from={int(T0.timestamp())}&to={int(T0.timestamp()) + 8}"


@dataclass
class Site:
    base: str
    http: aiohttp.ClientSession
    root: Path


def _write(root: Path, rel: str, data: bytes | str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    media = hls.render_media(
        hls.MediaPlaylist([hls.Segment(f"seg{i}.ts", 6.0) for i in range(50)],
                          playlist_type="VOD", endlist=True)
    )  # fmt: skip
    _write(root, "vod/movie/master.m3u8", "#EXTM3U\n#EXT-X-VERSION:1\n")
    _write(root, "vod/movie/180p/index.m3u8", media)
    _write(root, "vod/movie/180p/seg0.ts", SEGMENT)
    _write(root, "live/ch1/master.m3u8", "#EXTM3U\n#EXT-X-VERSION:1\n")
    _write(root, "live/ch1/180p/index.m3u8", media)
    index = ArchiveIndex(redis)
    await index.register_channel(
        "ch1", catchup_days=7, rungs=[RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)]
    )
    for seq in range(4):
        rel = f"live/ch1/180p/{seq:010d}.ts"
        _write(root, rel, SEGMENT)
        await index.record(
            "ch1", "180p",
            ArchiveEntry(seq, T0 + timedelta(seconds=2 * seq), 2.0, len(SEGMENT), rel, seq == 2),
        )  # fmt: skip
    # The live window starts at segment 0, as the live supervisor would have written.
    await redis.hset(channel_key("ch1"), mapping={"media_sequence": "0"})
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        yield Site(f"http://127.0.0.1:{port}", http, root)
    await runner.cleanup()


async def _get(site: Site, path: str, **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
    headers = {"Accept-Encoding": "identity", **headers}  # aiohttp asks for gzip by default
    async with site.http.get(site.base + path, headers=headers) as response:
        return response, await response.read()


@pytest.mark.parametrize(
    ("path", "content_type", "cache"),
    [
        pytest.param("/live/ch1/master.m3u8", PLAYLIST, "public, max-age=1", id="live-master"),
        pytest.param("/live/ch1/180p/index.m3u8", PLAYLIST, "public, max-age=1", id="live-media"),
        pytest.param("/live/ch1/180p/0000000001.ts", "video/mp2t",
                     "public, max-age=31536000, immutable", id="live-segment"),
        pytest.param("/vod/movie/master.m3u8", PLAYLIST, "public, max-age=86400", id="vod-master"),
        pytest.param("/vod/movie/180p/seg0.ts", "video/mp2t",
                     "public, max-age=31536000, immutable", id="vod-segment"),
        pytest.param(f"/catchup/ch1/180p/index.m3u8?{WINDOW}", PLAYLIST,
                     "public, max-age=3600", id="catchup-media"),
        pytest.param("/catchup/ch1/180p/0000000002.ts", "video/mp2t",
                     "public, max-age=31536000, immutable", id="catchup-segment"),
    ],
)  # fmt: skip
async def test_content_type_and_cache_control(
    site: Site, path: str, content_type: str, cache: str
) -> None:
    response, body = await _get(site, path)
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert response.headers["Cache-Control"] == cache
    assert response.headers["ETag"].startswith('"')
    assert body


async def test_playlists_are_gzipped_when_accepted(site: Site) -> None:
    plain, plain_body = await _get(site, "/vod/movie/180p/index.m3u8")
    zipped, zipped_body = await _get(
        site, "/vod/movie/180p/index.m3u8", **{"Accept-Encoding": "gzip"}
    )
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert zipped.headers["Vary"] == "Accept-Encoding"
    assert gzip.decompress(zipped_body) == plain_body
    assert len(zipped_body) < len(plain_body)
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    refused, _ = await _get(site, "/vod/movie/180p/index.m3u8", **{"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in refused.headers
    segment, body = await _get(site, "/vod/movie/180p/seg0.ts", **{"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in segment.headers
    assert body == SEGMENT


@pytest.mark.parametrize(
    ("header", "status", "content_range", "body"),
    [
        pytest.param("bytes=0-99", 206, "bytes 0-99/2048", SEGMENT[:100], id="first-100"),
        pytest.param("bytes=2000-", 206, "bytes 2000-2047/2048", SEGMENT[2000:], id="open-end"),
        pytest.param("bytes=-48", 206, "bytes 2000-2047/2048", SEGMENT[2000:], id="suffix"),
        pytest.param("bytes=100-99999", 206, "bytes 100-2047/2048", SEGMENT[100:], id="clamped"),
        pytest.param("bytes=4096-5000", 416, "bytes */2048", b"", id="past-end"),
        pytest.param("bytes=0-1,5-6", 200, None, SEGMENT, id="multi-range-whole"),
        pytest.param("items=0-1", 200, None, SEGMENT, id="other-unit-whole"),
    ],
)
async def test_byte_ranges(
    site: Site, header: str, status: int, content_range: str | None, body: bytes
) -> None:
    response, data = await _get(site, "/vod/movie/180p/seg0.ts", Range=header)
    assert response.status == status
    assert response.headers.get("Content-Range") == content_range
    assert response.headers["Accept-Ranges"] == "bytes"
    assert data == body


async def test_etag_if_none_match_gives_304(site: Site) -> None:
    first, _ = await _get(site, "/live/ch1/180p/0000000001.ts")
    etag = first.headers["ETag"]
    again, body = await _get(site, "/live/ch1/180p/0000000001.ts", **{"If-None-Match": etag})
    assert again.status == 304
    assert body == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    other, _ = await _get(site, "/live/ch1/180p/0000000001.ts", **{"If-None-Match": '"nope"'})
    assert other.status == 200
    # A republished playlist gets a new validator.
    _write(site.root, "live/ch1/180p/index.m3u8", "#EXTM3U\n#EXT-X-VERSION:3\n")
    changed, _ = await _get(site, "/live/ch1/180p/index.m3u8")
    pl, _ = await _get(
        site, "/live/ch1/180p/index.m3u8", **{"If-None-Match": changed.headers["ETag"]}
    )
    assert pl.status == 304


async def test_catchup_master_and_media_for_a_past_window(site: Site) -> None:
    response, body = await _get(site, f"/catchup/ch1/master.m3u8?{WINDOW}")
    assert response.status == 200
    master = hls_parse.parse_master(body.decode())
    (variant,) = master.variants
    assert variant.uri == f"180p/index.m3u8?{WINDOW}"
    assert variant.bandwidth == len(SEGMENT) * 8 // 2
    _media, body = await _get(site, f"/catchup/ch1/{variant.uri}")
    playlist = hls_parse.parse_media(body.decode())
    assert [s.uri for s in playlist.segments] == [f"{n:010d}.ts" for n in range(4)]
    assert [s.discontinuity for s in playlist.segments] == [False, False, True, False]
    assert playlist.endlist
    assert playlist.playlist_type == "VOD"
    seg, data = await _get(site, f"/catchup/ch1/180p/{playlist.segments[0].uri}")
    assert seg.status == 200
    assert data == SEGMENT
    iso = "from=2026-11-20T20:00:02%2B08:00&to=2026-11-20T12:00:04Z"
    _one, body = await _get(site, f"/catchup/ch1/180p/index.m3u8?{iso}")
    assert [s.uri for s in hls_parse.parse_media(body.decode()).segments] == ["0000000001.ts"]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        pytest.param("", "from", id="no-window"),
        pytest.param("from=1700000000", "to", id="no-to"),
        pytest.param("from=soon&to=1700000000", "from", id="garbage"),
        pytest.param("from=2026-11-20T12:00:00&to=2026-11-20T13:00:00", "from", id="no-offset"),
        pytest.param("from=1700000100&to=1700000000", "to", id="reversed"),
        pytest.param("from=1700000000&to=1800000000", "to", id="too-long"),
    ],
)
async def test_bad_catchup_window_is_400_with_reason(site: Site, query: str, field: str) -> None:
    for path in ("/catchup/ch1/master.m3u8", "/catchup/ch1/180p/index.m3u8"):
        async with site.http.get(f"{site.base}{path}?{query}") as response:
            assert response.status == 400
            body = await response.json()
        assert body["error"] == "InvalidRequest"
        assert body["field"] == field
        assert body["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/catchup/ch1/180p/index.m3u8?from=1000&to=2000", id="no-archive-in-window"),
        pytest.param(f"/catchup/ch9/master.m3u8?{WINDOW}", id="unknown-channel"),
        pytest.param("/live/ch9/master.m3u8", id="unknown-live"),
        pytest.param("/live/ch1/180p/0000009999.ts", id="missing-segment"),
        pytest.param("/vod/movie/180p/../../../etc/passwd", id="traversal"),
        pytest.param("/vod/movie/%2e%2e/%2e%2e/secret.ts", id="encoded-traversal"),
        pytest.param("/vod/.movie.tmp-1/master.m3u8", id="temp-dir"),
        pytest.param("/vod/movie/180p/index.txt", id="unknown-type"),
        pytest.param("/vod/movie/180p", id="directory"),
    ],
)
async def test_not_found(site: Site, path: str) -> None:
    (site.root / "secret.ts").write_bytes(b"secret")
    async with site.http.get(site.base + path) as response:
        assert response.status == 404
        assert b"secret" not in await response.read()


async def test_head_healthz_and_metrics(site: Site) -> None:
    async with site.http.head(site.base + "/vod/movie/180p/seg0.ts") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(SEGMENT))
    async with site.http.get(site.base + "/healthz") as response:
        assert response.status == 200
        assert (await response.json()) == {"status": "ok"}
    async with site.http.get(site.base + "/metrics") as response:
        text = await response.text()
    assert 'origin_http_requests_total{route="/healthz",status="200"} 1.0' in text
    assert 'route="/vod/{asset}/{tail}",status="200"' in text


async def test_writes_are_not_allowed(site: Site) -> None:
    async with site.http.post(site.base + "/vod/movie/master.m3u8", data=b"x") as response:
        assert response.status == web.HTTPMethodNotAllowed.status_code
    assert (site.root / "vod/movie/master.m3u8").read_text() == "#EXTM3U\n#EXT-X-VERSION:1\n"


async def test_catchup_accepts_the_players_utc_utcend_pair(site: Site) -> None:
    start = int(T0.timestamp())
    query = f"utc={start}&utcend={start + 4}"
    response, body = await _get(site, f"/catchup/ch1/master.m3u8?{query}")
    assert response.status == 200
    (variant,) = hls_parse.parse_master(body.decode()).variants
    assert variant.uri == f"180p/index.m3u8?{query}"
    _, body = await _get(site, f"/catchup/ch1/{variant.uri}")
    assert [s.uri for s in hls_parse.parse_media(body.decode()).segments] == [
        "0000000000.ts",
        "0000000001.ts",
    ]
    async with site.http.get(f"{site.base}/catchup/ch1/master.m3u8?utc=x&utcend=1") as bad:
        assert bad.status == 400
        assert (await bad.json())["field"] == "utc"


@pytest.fixture
async def epg_site(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens, site: Site
) -> AsyncIterator[Site]:
    """The origin above plus a real EPG server holding three programmes on ``ch1``."""
    server, port = await create_epg_server(
        EpgSettings(rpc=RpcSettings(port=0, grace_seconds=0)), redis=redis, keys=keys
    )
    lookup = EpgClient(f"127.0.0.1:{port}", await tokens())
    try:
        await _seed_epg(port, bearer(await tokens()))
        runner, origin_port = await start_origin(
            OriginSettings(redis_url="unused://", origin_root=site.root, port=0),
            redis=redis,
            programmes=lookup,
        )
        yield Site(f"http://127.0.0.1:{origin_port}", site.http, site.root)
        await runner.cleanup()
    finally:
        await lookup.close()
        await server.stop(0)


async def _seed_epg(port: int, admin: tuple[tuple[str, str], ...]) -> None:
    async with client_channel(f"127.0.0.1:{port}") as chan:
        stub = epg_pb2_grpc.EpgServiceStub(chan)
        await stub.CreateChannel(
            epg_pb2.CreateChannelRequest(
                channel_id="ch1",
                channel=epg_pb2.Channel(
                    number=1, catchup_days=7, active=True, owner="newstv",
                    names=[epg_pb2.LocalizedText(lang="zh", text="新闻")],
                )
            ),
            metadata=admin,
        )  # fmt: skip

        def programme(
            pid: str, offset: int, seconds: int, *, catchup: bool = True
        ) -> epg_pb2.Programme:
            start, stop = Timestamp(), Timestamp()
            start.FromDatetime(T0 + timedelta(seconds=offset))
            stop.FromDatetime(T0 + timedelta(seconds=offset + seconds))
            titles = [epg_pb2.LocalizedText(lang="zh", text=pid)]
            return epg_pb2.Programme(
                name=f"channels/ch1/programmes/{pid}", start=start, stop=stop, titles=titles,
                catchup_allowed=catchup,
            )  # fmt: skip

        await stub.PutProgrammes(
            epg_pb2.PutProgrammesRequest(
                parent="channels/ch1",
                programmes=[
                    programme("news", 0, 4),
                    programme("film", 4, 4, catchup=False),
                    programme("later", 4 * 86400 * 365, 60),
                ],
            ),
            metadata=admin,
        )


async def test_catchup_for_an_epg_programme(epg_site: Site) -> None:
    site = epg_site
    response, body = await _get(site, "/catchup/ch1/master.m3u8?programme=news")
    assert response.status == 200
    (variant,) = hls_parse.parse_master(body.decode()).variants
    assert variant.uri == "180p/index.m3u8?programme=news"
    _, body = await _get(site, f"/catchup/ch1/{variant.uri}")
    assert [s.uri for s in hls_parse.parse_media(body.decode()).segments] == [
        "0000000000.ts",
        "0000000001.ts",
    ]


@pytest.mark.parametrize(
    ("query", "status", "error"),
    [
        pytest.param("programme=film", 403, "CatchupNotAllowed", id="no-catchup-rights"),
        pytest.param("programme=nope", 404, "ProgrammeNotFound", id="unknown"),
        pytest.param("programme=later", 400, "InvalidRequest", id="not-started"),
        pytest.param("programme=%2e%2e%2fx", 400, "InvalidRequest", id="bad-id"),
    ],
)
async def test_catchup_programme_refusals(
    epg_site: Site, query: str, status: int, error: str
) -> None:
    site = epg_site
    async with site.http.get(f"{site.base}/catchup/ch1/master.m3u8?{query}") as response:
        assert response.status == status
        assert (await response.json())["error"] == error


async def test_catchup_programme_on_another_channel_is_not_found(
    epg_site: Site,
) -> None:
    site = epg_site
    async with site.http.get(f"{site.base}/catchup/ch2/master.m3u8?programme=news") as response:
        assert response.status == 404
        assert (await response.json())["error"] == "ProgrammeNotFound"


async def test_catchup_programme_without_epg_is_400(site: Site) -> None:
    async with site.http.get(f"{site.base}/catchup/ch1/master.m3u8?programme=news") as response:
        assert response.status == 400
        assert (await response.json())["field"] == "programme"
