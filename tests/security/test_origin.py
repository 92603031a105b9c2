"""The origin refuses what an attacker asked of it: out-of-window segments, the archive
through the live route, out-of-range instants, oversized headers, symlinks out of the
root and peers outside its allow-list. Each refusal serves nothing."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import redis.asyncio as aioredis
import yarl

from headend.settings import parse_networks
from transcode import hls_parse, ingest
from transcode.archive import ArchiveIndex, RungInfo
from transcode.domain import ArchiveEntry
from transcode.origin import LIVE_BEHIND_SEGMENTS, start_origin
from transcode.origin.ingest import IngestSettings
from transcode.settings import OriginSettings

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
START = int(T0.timestamp())
SEGMENTS = 20  # 2 s each: [T0 + 2k, T0 + 2k + 2)
LIVE_FIRST = 14  # the live window is segments 14..19
# A 20-second grant: segments 5..14 overlap it.
FROM, TO = START + 10, START + 30
WINDOW = f"/catchup/ch1/w/{FROM}/{TO}"
SECRET = b"outside-the-origin-root"


def _segment(seq: int) -> bytes:
    return f"segment-{seq:04d}|".encode() * 64


def _write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _live_playlist(first: int) -> bytes:
    """A live rung playlist whose window starts at ``first`` (what the supervisor writes)."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:6", "#EXT-X-TARGETDURATION:2"]
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    for seq in range(first, first + 3):
        lines += ["#EXTINF:2.000,", f"{seq:010d}.ts"]
    return ("\n".join(lines) + "\n").encode()


@dataclass
class Site:
    base: str
    http: aiohttp.ClientSession
    root: Path
    outside: Path


@pytest.fixture
async def site(redis: aioredis.Redis, tmp_path: Path) -> AsyncIterator[Site]:
    root = tmp_path / "origin"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.ts").write_bytes(SECRET)
    (outside / "master.m3u8").write_bytes(SECRET)
    index = ArchiveIndex(redis)
    await index.register_channel(
        "ch1", catchup_days=7, rungs=[RungInfo("180p", "avc1.42c00d,mp4a.40.2", 320, 180, 25.0)]
    )
    for seq in range(SEGMENTS):
        rel = f"live/ch1/180p/{seq:010d}.ts"
        _write(root, rel, _segment(seq))
        entry = ArchiveEntry(seq, T0 + timedelta(seconds=2 * seq), 2.0, 1024, rel)
        await index.record("ch1", "180p", entry)
    # On disk but never indexed (e.g. left by a crash): not part of any catch-up.
    _write(root, "live/ch1/180p/0000000099.ts", _segment(99))
    # Another channel's index entry naming ch1's file.
    await index.record(
        "ch3", "180p", ArchiveEntry(7, T0 + timedelta(seconds=14), 2.0, 1024, "live/ch1/180p/x.ts")
    )
    _write(root, "live/ch1/180p/index.m3u8", _live_playlist(LIVE_FIRST))
    _write(root, "vod/movie/180p/seg0.ts", b"vod")
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=redis
    )
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        yield Site(f"http://127.0.0.1:{port}", http, root, outside)
    await runner.cleanup()


async def _get(site: Site, path: str, **headers: str) -> tuple[int, bytes]:
    headers = {"Accept-Encoding": "identity", **headers}  # aiohttp asks for gzip by default
    async with site.http.get(site.base + path, headers=headers) as response:
        return response.status, await response.read()


# --- window-exact catch-up ------------------------------------------------------------


async def test_window_playlist_lists_exactly_the_segments_the_window_route_serves(
    site: Site,
) -> None:
    status, body = await _get(site, f"{WINDOW}/180p/index.m3u8")
    assert status == 200
    listed = [s.uri for s in hls_parse.parse_media(body.decode()).segments]
    assert listed == [f"{k:010d}.ts" for k in range(5, 15)]
    for seq in range(SEGMENTS):
        status, data = await _get(site, f"{WINDOW}/180p/{seq:010d}.ts")
        if 5 <= seq <= 14:
            assert (status, data) == (200, _segment(seq))
        else:
            assert status == 404, seq
            assert data.startswith(b"{")
            assert b"segment-" not in data


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(f"{WINDOW}/180p/0000000000.ts", id="nine-segments-before"),
        pytest.param(f"{WINDOW}/180p/0000000004.ts", id="ends-where-the-window-starts"),
        pytest.param(f"{WINDOW}/180p/0000000015.ts", id="starts-where-the-window-ends"),
        pytest.param(f"{WINDOW}/180p/0000000099.ts", id="on-disk-not-indexed"),
        pytest.param(f"{WINDOW}/180p/5.ts", id="not-canonical-name"),
        pytest.param(f"{WINDOW}/90p/0000000005.ts", id="other-rung"),
        pytest.param(f"/catchup/ch3/w/{FROM}/{TO}/180p/0000000007.ts", id="index-of-other-channel"),
        pytest.param("/catchup/ch1/180p/0000000099.ts", id="query-form-not-indexed"),
        pytest.param("/catchup/ch9/180p/0000000005.ts", id="query-form-other-channel"),
        # A subtitle segment's name is taken only where the index holds that very file.
        pytest.param(f"{WINDOW}/180p/0000000005.vtt", id="vtt-name-of-a-ts-segment"),
        pytest.param(f"{WINDOW}/180p/5.vtt", id="vtt-not-canonical-name"),
        pytest.param(f"{WINDOW}/180p/0000000005.ts.vtt", id="vtt-double-suffix"),
    ],
)
async def test_catchup_segment_outside_the_index_or_window_is_404(site: Site, path: str) -> None:
    status, data = await _get(site, path)
    assert status == 404
    assert b"segment-" not in data


async def test_query_form_serves_an_archived_segment(site: Site) -> None:
    assert await _get(site, "/catchup/ch1/180p/0000000003.ts") == (200, _segment(3))


# --- the live route does not reach the archive ------------------------------------------


@pytest.mark.parametrize(
    ("seq", "status"),
    [
        pytest.param(SEGMENTS - 1, 200, id="newest"),
        pytest.param(LIVE_FIRST, 200, id="first-of-window"),
        pytest.param(LIVE_FIRST - LIVE_BEHIND_SEGMENTS, 200, id="just-behind"),
        pytest.param(LIVE_FIRST - LIVE_BEHIND_SEGMENTS - 1, 404, id="archive"),
        pytest.param(0, 404, id="oldest-archive"),
    ],
)
async def test_live_route_serves_only_the_live_window(site: Site, seq: int, status: int) -> None:
    got, data = await _get(site, f"/live/ch1/180p/{seq:010d}.ts")
    assert got == status
    assert (data == _segment(seq)) is (status == 200)


async def test_live_route_of_a_channel_that_never_went_live_is_404(site: Site) -> None:
    (site.root / "live/ch1/180p/index.m3u8").unlink()
    status, data = await _get(site, f"/live/ch1/180p/{SEGMENTS - 1:010d}.ts")
    assert status == 404
    assert b"segment-" not in data


# --- out-of-range and non-ASCII instants are 400, never 500 ------------------------------


@pytest.mark.parametrize(
    ("path", "field"),
    [
        pytest.param("/catchup/ch1/master.m3u8?utc=999999999999&utcend=999999999999", "utc",
                     id="utc-huge"),
        pytest.param("/catchup/ch1/master.m3u8?utc=%C2%B2&utcend=%C2%B3", "utc",
                     id="superscript-digits"),
        pytest.param("/catchup/ch1/180p/index.m3u8?utc=%D9%A3%D9%A3&utcend=%D9%A3%D9%A4", "utc",
                     id="arabic-indic-digits"),
        pytest.param("/catchup/ch1/master.m3u8?from=1_000&to=2_000", "from", id="underscores"),
        pytest.param("/catchup/ch1/master.m3u8?from=1e3&to=2e3", "from", id="exponent"),
        pytest.param("/catchup/ch1/master.m3u8?from=99999-01-01T00:00:00%2B00:00"
                     "&to=99999-01-01T01:00:00%2B00:00", "from", id="year-99999"),
        pytest.param("/catchup/ch1/master.m3u8?from=0001-01-01T00:00:00%2B01:00"
                     "&to=0001-01-01T01:00:00%2B01:00", "from", id="year-1-overflows"),
        pytest.param("/catchup/ch1/180p/index.m3u8?from=9999-12-31T23:00:00-05:00"
                     "&to=9999-12-31T23:30:00-05:00", "from", id="year-9999-overflows"),
        pytest.param("/catchup/ch1/master.m3u8?from=1969-12-31T00:00:00Z"
                     "&to=1969-12-31T01:00:00Z", "from", id="before-1970"),
        pytest.param("/catchup/ch1/w/999999999999/999999999999/master.m3u8", "from",
                     id="path-huge"),
        pytest.param("/catchup/ch1/w/999999999999/999999999999/180p/0000000005.ts", "from",
                     id="path-huge-segment"),
        pytest.param("/catchup/ch1/w/%C2%B2/%C2%B3/master.m3u8", "from", id="path-superscript"),
        pytest.param("/catchup/ch1/w/1700000000/1700000000.5/180p/index.m3u8", "to",
                     id="path-fraction"),
        pytest.param("/catchup/ch1/w/-5/10/master.m3u8", "from", id="path-negative"),
    ],
)  # fmt: skip
async def test_bad_instants_are_400_with_the_field(site: Site, path: str, field: str) -> None:
    async with site.http.get(site.base + path) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"] == "InvalidRequest"
    assert body["field"] == field
    assert body["message"].startswith(f"{field}: ")
    async with site.http.get(site.base + "/metrics") as response:
        assert 'status="500"' not in await response.text()


# --- bounded input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "field"),
    [
        pytest.param({"Range": "bytes=" + "9" * 5000 + "-"}, "", "Range", id="range-5000-digits"),
        pytest.param({"If-None-Match": '"x", ' * 400}, "", "If-None-Match", id="inm-2000"),
        pytest.param({}, "?" + "a=1&" * 600, "query", id="query-2400"),
    ],
)
async def test_oversized_input_is_400(
    site: Site, headers: dict[str, str], query: str, field: str
) -> None:
    async with site.http.get(f"{site.base}/vod/movie/180p/seg0.ts{query}", headers=headers) as r:
        assert r.status == 400
        body = await r.json()
    assert body["field"] == field


async def test_overlong_accept_encoding_means_no_gzip(site: Site) -> None:
    async with site.http.get(
        f"{site.base}{WINDOW}/180p/index.m3u8", headers={"Accept-Encoding": "gzip, " * 100}
    ) as response:
        assert response.status == 200
        assert "Content-Encoding" not in response.headers


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("bytes=\u00b2-", id="superscript"),
        pytest.param("bytes=0-9999999999999999999", id="19-digits"),
        pytest.param("bytes=--1", id="garbage"),
    ],
)
async def test_malformed_short_range_is_ignored(site: Site, header: str) -> None:
    assert await _get(site, "/vod/movie/180p/seg0.ts", Range=header) == (200, b"vod")


# --- no symlink leads out of the root ---------------------------------------------------


@pytest.mark.parametrize(
    ("link", "target", "path"),
    [
        pytest.param("vod/movie/180p/leak.ts", "secret.ts", "/vod/movie/180p/leak.ts",
                     id="vod-file"),
        pytest.param("vod/evil", ".", "/vod/evil/secret.ts", id="vod-directory"),
        pytest.param("vod/movie/180p/host.ts", "/etc/hostname", "/vod/movie/180p/host.ts",
                     id="etc-hostname"),
        pytest.param("live/ch2", ".", "/live/ch2/master.m3u8", id="live-channel-directory"),
        pytest.param(f"live/ch1/180p/{SEGMENTS:010d}.ts", "secret.ts",
                     f"/live/ch1/180p/{SEGMENTS:010d}.ts", id="live-segment"),
    ],
)  # fmt: skip
async def test_symlink_out_of_the_root_is_404(
    site: Site, redis: aioredis.Redis, link: str, target: str, path: str
) -> None:
    source = Path(target) if target.startswith("/") else site.outside / target
    (site.root / link).symlink_to(source.resolve())
    status, data = await _get(site, path)
    assert status == 404
    assert SECRET not in data
    if source.is_file():
        assert source.read_bytes() not in data


async def test_symlinked_archive_entry_is_404(site: Site, redis: aioredis.Redis) -> None:
    rel = f"live/ch1/180p/{SEGMENTS:010d}.ts"
    (site.root / rel).symlink_to(site.outside / "secret.ts")
    start = T0 + timedelta(seconds=2 * SEGMENTS)
    await ArchiveIndex(redis).record("ch1", "180p", ArchiveEntry(SEGMENTS, start, 2.0, 6, rel))
    status, data = await _get(site, f"/catchup/ch1/180p/{SEGMENTS:010d}.ts")
    assert status == 404
    assert SECRET not in data


async def test_fifo_in_the_root_is_404_not_a_hang(site: Site) -> None:
    os.mkfifo(site.root / "vod/movie/180p/pipe.ts")
    status, _ = await _get(site, "/vod/movie/180p/pipe.ts")
    assert status == 404


# --- only edges and mid-tiers -------------------------------------------------------------


@pytest.fixture
async def narrow(redis: aioredis.Redis, site: Site) -> AsyncIterator[str]:
    """The same origin allowing only 127.0.0.1/32."""
    settings = OriginSettings(
        redis_url="unused://",
        origin_root=site.root,
        port=0,
        allowed_networks=parse_networks("127.0.0.1/32"),
    )
    runner, port = await start_origin(settings, redis=redis)
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/vod/movie/180p/seg0.ts", id="vod"),
        pytest.param(f"/live/ch1/180p/{SEGMENTS - 1:010d}.ts", id="live"),
        pytest.param("/live/ch1/180p/iframes.m3u8", id="live-iframes"),
        pytest.param("/live/ch1/manifest.mpd", id="live-dash"),
        pytest.param("/live/ch1/master-cmaf.m3u8", id="live-cmaf-master"),
        pytest.param("/live/ch1/180p/cmaf.m3u8", id="live-cmaf-media"),
        pytest.param("/live/ch1/180p/7.m4s", id="live-cmaf-segment"),
        pytest.param("/vod/movie/manifest.mpd", id="vod-dash"),
        pytest.param(f"{WINDOW}/180p/0000000005.ts", id="catchup"),
        pytest.param("/metrics", id="metrics"),
        pytest.param("/nothing/here", id="unknown-path"),
    ],
)
async def test_peer_outside_the_allow_list_is_403(narrow: str, path: str) -> None:
    outsider = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=outsider) as http:
        async with http.get(narrow + path) as response:
            assert response.status == 403
            body = await response.read()
        assert b"segment-" not in body
        assert b"vod" not in body
        async with http.get(narrow + "/healthz") as response:
            assert response.status == 200  # probes need no allow-list entry
    async with aiohttp.ClientSession() as http, http.get(narrow + path) as response:
        assert response.status != 403  # the allowed address gets the usual answer


async def test_redis_down_is_503_not_500_and_live_keeps_flowing(tmp_path: Path) -> None:
    root = tmp_path / "origin"
    _write(root, "live/ch1/180p/0000000001.ts", _segment(1))
    _write(root, "live/ch1/180p/index.m3u8", _live_playlist(1))
    gone = aioredis.Redis.from_url(f"unix://{tmp_path}/no-redis.sock")
    runner, port = await start_origin(
        OriginSettings(redis_url="unused://", origin_root=root, port=0), redis=gone
    )
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}{WINDOW}/180p/0000000005.ts") as response:
                assert response.status == 503
                assert (await response.json())["error"] == "StoreUnavailable"
            # The live window comes from the playlist on disk: no Redis needed.
            async with http.get(f"http://127.0.0.1:{port}/live/ch1/180p/0000000001.ts") as response:
                assert response.status == 200
                assert await response.read() == _segment(1)
    finally:
        await runner.cleanup()
        await gone.aclose()


# --- ingest: nodes' PUTs -----------------------------------------------------------------

INGEST_SECRET = b"k" * 40
INGEST_LIMIT = 4096


async def _start_ingest(redis: aioredis.Redis, root: Path, networks: str) -> tuple[object, str]:
    settings = OriginSettings(
        redis_url="unused://", origin_root=root, port=0, allowed_networks=parse_networks(networks)
    )
    ingest_settings = IngestSettings(
        secrets=(INGEST_SECRET,), max_segment_bytes=INGEST_LIMIT, max_playlist_bytes=1024
    )
    runner, port = await start_origin(settings, redis=redis, ingest=ingest_settings)
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def taker(redis: aioredis.Redis, site: Site) -> AsyncIterator[str]:
    """The site's origin with ingest on, allowing only 127.0.0.1/32."""
    runner, base = await _start_ingest(redis, site.root, "127.0.0.1/32")
    yield base
    await runner.cleanup()  # type: ignore[attr-defined]


def _signed(path: str, body: bytes, *, secret: bytes = INGEST_SECRET, **override: str) -> dict:
    head = ingest.headers(secret, path, ingest.Writer("node-a", 1), int(time.time()), body)
    return {**head, **override}


async def _put(base: str, path: str, body: bytes, head: dict[str, str]) -> int:
    async with aiohttp.ClientSession() as http, http.put(base + path, data=body, headers=head) as r:
        return r.status


async def test_ingest_signed_put_is_written(taker: str, site: Site) -> None:
    path = "/ingest/live/ch9/180p/0000000001.ts"
    assert await _put(taker, path, b"seg", _signed(path, b"seg")) == 204
    assert (site.root / "live/ch9/180p/0000000001.ts").read_bytes() == b"seg"


@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param({"drop": "Authorization"}, "unsigned", id="unsigned"),
        pytest.param({"secret": "w" * 40}, "wrong secret", id="wrong-secret"),
        pytest.param({"body": "other"}, "body not the signed one", id="body-swapped"),
        pytest.param({ingest.TIME_HEADER: "1"}, "signed long ago", id="expired"),
        pytest.param({ingest.TOKEN_HEADER: "99"}, "token not the signed one", id="token-raised"),
        pytest.param({ingest.NODE_HEADER: "a|b"}, "malformed node", id="bad-node"),
    ],
)
async def test_ingest_unauthenticated_put_is_401(
    taker: str, site: Site, change: dict[str, str], why: str
) -> None:
    path = "/ingest/live/ch9/180p/0000000002.ts"
    body = b"seg"
    secret = change.pop("secret", "").encode() or INGEST_SECRET
    head = _signed(path, body, secret=secret)
    if "drop" in change:
        del head[change.pop("drop")]
    if "body" in change:
        body = change.pop("body").encode()
    head.update(change)
    assert await _put(taker, path, body, head) == 401, why
    assert not (site.root / "live/ch9").exists()


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param("ch9/180p/1.ts", id="not-canonical-number"),
        pytest.param("ch9/180p/.hidden.ts", id="dot-file"),
        pytest.param("ch9/180p/%2e%2e%2fescape.ts", id="encoded-traversal"),
        pytest.param("ch9/180p/0000000001.ts/x", id="too-deep"),
        pytest.param("ch9/180p/index.m3u8.tmp", id="other-name"),
        pytest.param("ch9/180p/segment.mp4", id="other-kind"),
        pytest.param("ch9/Bad%20Rung/0000000001.ts", id="bad-rung"),
        pytest.param("..%2fvod/master.m3u8", id="bad-channel"),
        pytest.param("ch9/index.m3u8", id="playlist-without-rung"),
    ],
)
async def test_ingest_bad_path_is_refused(taker: str, site: Site, tail: str) -> None:
    path = f"/ingest/live/{tail}"
    async with aiohttp.ClientSession() as http:
        url = yarl.URL(taker + path, encoded=True)  # sent as written, %2f and all
        head = _signed(url.path, b"x")  # the decoded path: what the origin checks
        async with http.put(url, data=b"x", headers=head) as response:
            assert response.status == 404
    assert not (site.root / "live/ch9").exists()
    assert not (site.root / "vod/master.m3u8").exists()


@pytest.mark.parametrize(
    ("tail", "size"),
    [
        pytest.param("ch9/180p/0000000001.ts", INGEST_LIMIT + 1, id="segment"),
        pytest.param("ch9/180p/index.m3u8", 1025, id="playlist"),
    ],
)
async def test_ingest_oversized_body_is_413(taker: str, site: Site, tail: str, size: int) -> None:
    path, body = f"/ingest/live/{tail}", b"x" * size
    assert await _put(taker, path, body, _signed(path, body)) == 413
    assert not (site.root / "live/ch9").exists()


async def test_ingest_peer_outside_the_allow_list_is_403(taker: str, site: Site) -> None:
    path = "/ingest/live/ch9/master.m3u8"
    outsider = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=outsider) as http:
        async with http.put(taker + path, data=b"m", headers=_signed(path, b"m")) as response:
            assert response.status == 403
    assert not (site.root / "live/ch9").exists()


async def test_ingest_does_not_follow_symlinks_out_of_the_root(taker: str, site: Site) -> None:
    (site.root / "live/ch2").symlink_to(site.outside)
    path = "/ingest/live/ch2/master.m3u8"
    status = await _put(taker, path, b"evil", _signed(path, b"evil"))
    assert status >= 400
    assert (site.outside / "master.m3u8").read_bytes() == SECRET


async def test_ingest_is_off_without_a_secret(site: Site) -> None:
    path = "/ingest/live/ch9/master.m3u8"
    async with aiohttp.ClientSession() as http:
        async with http.put(site.base + path, data=b"m", headers=_signed(path, b"m")) as response:
            assert response.status in (404, 405)
    assert not (site.root / "live/ch9").exists()
