"""Attacks on a real nginx edge in front of a real recording origin.

Each test asserts the edge's answer and what reached (or did not reach) the
origin, byte for byte: the origin taps its sockets and records every request
head nginx sent, so a request line the origin's own parser would reject still
shows up here.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from cdn_ctl.domain import Tier
from cdn_ctl.edge import STATS_PATH, EdgeConfig, EdgeProcess
from cdn_ctl.errors import TokenInvalid
from cdn_ctl.signing import KeyRing, sign_path, token_prefix, verify_path
from tests.support.cdn import EdgeFactory, edge_factory, rotation_ring

pytestmark = pytest.mark.slow

SEGMENT = "live/ch1/180p/seg_00012.ts"
MEDIA = "#EXTM3U\n#EXT-X-TARGETDURATION:6\n" + "#EXTINF:6.000,\nseg_00012.ts\n" * 40
# Another loopback address: not in the edge's default limit exemption, not a mid's child.
STRANGER = "127.0.0.2"


def segment_body(path: str) -> bytes:
    """What the origin serves for a segment path."""
    return (path.encode() * 800)[:18800]


class _Tap(asyncio.Protocol):
    """Wraps aiohttp's protocol for one connection and records the request heads it
    receives before aiohttp parses them."""

    def __init__(self, inner: asyncio.Protocol, heads: list[bytes]) -> None:
        self._inner = inner
        self._heads = heads
        self._buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        # nginx sends heads only (the edge never forwards a body).
        while b"\r\n\r\n" in self._buffer:
            head, self._buffer = self._buffer.split(b"\r\n\r\n", 1)
            self._heads.append(head)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buffer:
            self._heads.append(self._buffer)  # a partial head is recorded too
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class RecordingOrigin:
    """A real aiohttp origin on port 0 that records every request head as received."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.gate: asyncio.Event | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None

    @property
    def lines(self) -> list[bytes]:
        """The request lines, in arrival order."""
        return [head.split(b"\r\n", 1)[0] for head in self.heads]

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.gate is not None:
            await self.gate.wait()
        name = request.path.rsplit("/", 1)[-1]
        if name.endswith(".ts"):
            return web.Response(
                body=segment_body(request.path),
                content_type="video/mp2t",
                headers={"Cache-Control": "public, max-age=86400, immutable"},
            )
        if name.endswith(".m3u8"):
            # Vary, as the real origin sends for playlists it may gzip.
            return web.Response(
                text=MEDIA,
                content_type="application/vnd.apple.mpegurl",
                headers={"Cache-Control": "max-age=60", "Vary": "Accept-Encoding"},
            )
        return web.Response(status=404, text="not found")

    async def start(self) -> None:
        """Serve on a free loopback port through the tap."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Tap(server(), self.heads), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response as it came off the socket."""

    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def body(self) -> bytes:
        """Everything after the head."""
        return self.raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in self.raw else b""


async def send(
    edge: EdgeProcess,
    target: bytes | str,
    *,
    method: bytes = b"GET",
    headers: tuple[str, ...] = (),
    body: bytes = b"",
    source: str = "127.0.0.1",
) -> Reply:
    """One request over a fresh socket, the target sent exactly as given (no client
    library normalises or escapes it)."""
    raw_target = target.encode() if isinstance(target, str) else target
    head = [method + b" " + raw_target + b" HTTP/1.1", b"Host: edge", b"Connection: close"]
    head += [h.encode() for h in headers]
    reader, writer = await asyncio.open_connection(
        edge.config.listen_host, edge.config.listen_port, local_addr=(source, 0)
    )
    try:
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(-1), timeout=10)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    fields = rest.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    parsed = dict(f.split(": ", 1) for f in fields if ": " in f)
    return Reply(int(status_line.split()[1]), {k.lower(): v for k, v in parsed.items()}, raw)


async def eventually(check: Callable[[], Awaitable[bool]], *, within_seconds: float) -> None:
    """Poll an observable condition of a real process, failing after a generous bound."""
    deadline = time.monotonic() + within_seconds
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@pytest.fixture
def ring() -> KeyRing:
    """Two keys, as during a rotation overlap."""
    return rotation_ring()


@pytest.fixture
async def origin() -> AsyncIterator[RecordingOrigin]:
    """A recording origin on a free port."""
    recording = RecordingOrigin()
    await recording.start()
    yield recording
    if recording.gate is not None:
        recording.gate.set()
    await recording.stop()


@pytest.fixture
async def edges(tmp_path: Path, ring: KeyRing) -> AsyncIterator[EdgeFactory]:
    """``await edges("e1", upstream=origin.address, **config)`` -> a started nginx edge."""
    async with edge_factory(tmp_path, ring) as make:
        yield make


def prefix(ring: KeyRing, *, scope: str = "live/ch1/", ttl: int = 60) -> str:
    """A valid token prefix for ``scope``, unbound to any address."""
    return token_prefix(ring, scope=scope, expires_at=int(time.time()) + ttl, client_ip=None)


def signed(ring: KeyRing, path: str = SEGMENT) -> str:
    """A valid signed path for ``path`` (scope ``live/ch1/``), unbound to any address."""
    return sign_path(ring, scope="live/ch1/", path=path, expires_at=int(time.time()) + 60)


async def _active(edge: EdgeProcess) -> int:
    reply = await send(edge, "/nginx_status")
    return int(re.search(rb"Active connections: (\d+)", reply.body).group(1))  # type: ignore[union-attr]


# -- 1. slow clients ---------------------------------------------------------------------

HALF_REQUESTS = 1500


async def _half_request(edge: EdgeProcess) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection(edge.config.listen_host, edge.config.listen_port)
    writer.write(b"GET /t/")  # never finished
    await writer.drain()
    return reader, writer


async def _closed_by_edge(reader: asyncio.StreamReader) -> bool:
    try:
        return await reader.read(1) == b""
    except ConnectionResetError:
        return True  # reset_timedout_connection: an RST instead of a FIN


async def test_idle_half_requests_neither_starve_a_signed_request_nor_outlive_the_timeout(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """1,500 idle half-requests (more than the old 1,024 connections of one worker):
    a signed request still gets its 200, and the edge closes them after the header
    timeout. (No per-client limit can count a connection that has not finished its
    request line; the timeout and the connection headroom are the defence.)"""
    edge = await edges("e1", upstream=origin.address, header_timeout_seconds=5)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(HALF_REQUESTS // 100):
            held += await asyncio.gather(*(_half_request(edge) for _ in range(100)))
        await eventually(lambda: _at_least_active(edge, HALF_REQUESTS), within_seconds=5)

        started = time.monotonic()
        async with aiohttp.ClientSession() as http:
            async with http.get(
                edge.url + signed(ring), timeout=aiohttp.ClientTimeout(total=10)
            ) as resp:
                assert resp.status == 200
                assert await resp.read() == segment_body("/" + SEGMENT)
        assert time.monotonic() - started < 5  # generous: it is milliseconds
        # The half-requests were all still open while it was served ...
        assert await _active(edge) >= HALF_REQUESTS
        # ... and the edge closes every one of them after the header timeout.
        closed = await asyncio.wait_for(
            asyncio.gather(*(_closed_by_edge(reader) for reader, _ in held)), timeout=5 + 30
        )
        assert all(closed)
        assert await _active(edge) == 1  # this status request
    finally:
        for _, writer in held:
            writer.close()
    assert origin.lines == [b"GET /" + SEGMENT.encode() + b" HTTP/1.1"]


async def _at_least_active(edge: EdgeProcess, count: int) -> bool:
    return await _active(edge) >= count


def test_rendered_limits_and_timeouts(tmp_path: Path) -> None:
    from cdn_ctl.edge import render_nginx_conf

    conf = render_nginx_conf(EdgeConfig("e1", 8101, "127.0.0.1:8080"), tmp_path)
    for line in (
        "worker_processes auto;",
        "worker_connections 8192;",
        "worker_rlimit_nofile 16640;",
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "send_timeout 15s;",
        "keepalive_timeout 15s;",
        "keepalive_requests 1000;",
        "reset_timedout_connection on;",
        "large_client_header_buffers 4 4k;",
        "client_max_body_size 1k;",
        "limit_conn_status 429;",
        "limit_req_status 429;",
        "limit_conn edge_conns 256;",
        "limit_req zone=edge_rate burst=200 nodelay;",
        "127.0.0.1/32 1;",
        "::1/128 1;",
        "server_tokens off;",
        "autoindex off;",
    ):
        assert line in conf


async def test_concurrent_requests_per_client_are_limited_with_429(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address, client_requests_max=2)
    origin.gate = asyncio.Event()
    paths = [f"live/ch1/180p/seg_0010{i}.ts" for i in range(3)]
    held = [
        asyncio.create_task(send(edge, signed(ring, path), source=STRANGER)) for path in paths[:2]
    ]

    async def both_arrived() -> bool:
        return len(origin.lines) == 2

    await eventually(both_arrived, within_seconds=10)
    third = await send(edge, signed(ring, paths[2]), source=STRANGER)
    origin.gate.set()
    assert third.status == 429
    assert [reply.status for reply in await asyncio.gather(*held)] == [200, 200]
    assert sorted(origin.lines) == sorted(f"GET /{p} HTTP/1.1".encode() for p in paths[:2])


async def test_signed_request_rate_per_client_is_limited_with_429_and_loopback_is_exempt(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address, client_rate_per_second=1, client_burst=2)
    paths = [f"live/ch1/180p/seg_002{i:02d}.ts" for i in range(10)]
    statuses = [(await send(edge, signed(ring, p), source=STRANGER)).status for p in paths]
    passed = statuses.count(200)
    # 1 + burst pass at once; ten requests take far less than the 7 s that would refill.
    assert 3 <= passed < len(paths)
    assert set(statuses) == {200, 429}
    assert origin.lines == [
        f"GET /{p} HTTP/1.1".encode() for p, s in zip(paths, statuses, strict=True) if s == 200
    ]
    # The exempt network (loopback 127.0.0.1 by default) is not limited.
    exempt = [(await send(edge, signed(ring, p))).status for p in paths]
    assert exempt == [200] * len(paths)


# -- 2. canonical paths only ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("rest", "status"),
    [
        pytest.param("live/ch1/180p/seg_00012%0d.ts", 400, id="cr"),
        pytest.param("live/ch1/180p/seg_00012%0d%0aX-Evil:%201.ts", 400, id="crlf-header"),
        pytest.param("live/ch1/180p/seg%2000012.ts", 400, id="space"),
        pytest.param("live/ch1/%2e%2e/ch2/180p/seg_00012.ts", 400, id="dotdot-escaped"),
        pytest.param("live/ch1/../ch2/180p/seg_00012.ts", 400, id="dotdot"),
        pytest.param("live/ch1/./180p/seg_00012.ts", 400, id="dot"),
        pytest.param("live/ch1/180p/seg_00012.ts%3Fbust=1", 400, id="escaped-query"),
        pytest.param("live/ch1%2F180p/seg_00012.ts", 400, id="escaped-slash"),
        pytest.param("live/ch1//180p/seg_00012.ts", 400, id="double-slash"),
        pytest.param("live/ch1/180p/seg_00012%00.ts", 400, id="escaped-nul"),
        pytest.param("live/ch1/180p/seg_00012\x00.ts", 400, id="nul"),
        pytest.param("live/ch1/180p\\seg_00012.ts", 400, id="backslash"),
        pytest.param("live/ch1/180p/seg_00012%41.ts", 400, id="escaped-letter"),
        pytest.param("live/ch1/180p/seg_00012.ts?x=%0d", 400, id="escaped-query-value"),
        pytest.param("live/ch1/180p/seg_00012.ts?x=<script>", 400, id="query-markup"),
        pytest.param("live/ch1/" + "a/" * 600 + "seg.ts", 400, id="overlong"),
        pytest.param("live/ch1/" + "a/" * 3000 + "seg.ts", 414, id="beyond-header-buffers"),
    ],
)
async def test_non_canonical_signed_paths_are_refused_and_never_reach_the_origin(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing, rest: str, status: int
) -> None:
    edge = await edges("e1", upstream=origin.address)
    token = prefix(ring)
    reply = await send(edge, token + rest)
    assert reply.status == status
    assert origin.heads == []
    # The error page echoes neither the token nor the path.
    assert token.encode() not in reply.raw
    assert b"seg" not in reply.raw
    assert b"ch1" not in reply.raw


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/live/ch1/180p/seg%0d.ts", id="unsigned-cr"),
        pytest.param("/%2e%2e/etc/passwd", id="unsigned-dotdot"),
        pytest.param("/t/%2e%2e/live/ch1/180p/seg_00012.ts", id="token-dotdot"),
        pytest.param("http://evil/live/ch1/180p/seg%0d.ts", id="absolute-form"),
    ],
)
async def test_non_canonical_unsigned_paths_are_refused(
    origin: RecordingOrigin, edges: EdgeFactory, target: str
) -> None:
    edge = await edges("e1", upstream=origin.address)
    assert (await send(edge, target)).status == 400
    assert origin.heads == []


async def test_the_origin_gets_the_canonical_path_without_the_query(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    first = await send(edge, signed(ring) + "?bust=1")
    second = await send(edge, signed(ring) + "?bust=2&session=s1")
    third = await send(edge, signed(ring))
    assert [r.status for r in (first, second, third)] == [200, 200, 200]
    assert [r.headers["x-cache"] for r in (first, second, third)] == ["MISS", "HIT", "HIT"]
    # One upstream fetch, one cache entry, the exact path and nothing else.
    assert origin.lines == [f"GET /{SEGMENT} HTTP/1.1".encode()]
    assert len(list((edge.prefix / "cache").rglob("*"))) == 3  # two levels and one file


async def test_header_values_do_not_split_the_cache(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """The origin sends Vary: Accept-Encoding; the edge neither forwards the box's
    Accept-Encoding nor keys on it, and compresses playlists itself."""
    edge = await edges("e1", upstream=origin.address)
    path = signed(ring, "live/ch1/180p/index.m3u8")
    encodings = ["gzip", "identity", "gzip, bust-1", "bust-2", "br"]
    replies = [await send(edge, path, headers=(f"Accept-Encoding: {e}",)) for e in encodings]
    assert [r.status for r in replies] == [200] * len(encodings)
    assert [r.headers["x-cache"] for r in replies] == ["MISS"] + ["HIT"] * (len(encodings) - 1)
    assert [r.headers.get("content-encoding") for r in replies] == [
        "gzip",
        None,
        "gzip",
        None,
        None,
    ]
    assert origin.lines == [b"GET /live/ch1/180p/index.m3u8 HTTP/1.1"]
    assert b"accept-encoding" not in origin.heads[0].lower()


# -- 3. signatures compared as the Python verifier does -----------------------------------


async def test_a_non_canonical_signature_encoding_is_refused_like_in_python(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """The last of 43 base64url characters carries 2 padding bits: flipping them decodes
    to the same digest. The verifiers compare the canonical text (in constant time), so
    that spelling is refused at the edge and in Python alike."""
    edge = await edges("e1", upstream=origin.address)
    path = signed(ring)
    parts = path.split("/")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(parts[5][-1])
    parts[5] = parts[5][:-1] + alphabet[last ^ 1]
    twin = "/".join(parts)
    assert (await send(edge, twin)).status == 403
    with pytest.raises(TokenInvalid):
        verify_path(ring, twin, client_ip="127.0.0.1", now=time.time())
    assert origin.heads == []


def test_the_njs_verifier_compares_signatures_in_constant_time() -> None:
    from importlib import resources

    script = resources.files("cdn_ctl").joinpath("edge_verify.js").read_text()
    assert "=== v.tok_sig" not in script
    assert "equal(sign(" in script
    assert "diff |= a.charCodeAt(i) ^ b.charCodeAt(i);" in script


# -- 4. methods, listings, error pages -----------------------------------------------------


@pytest.mark.parametrize(
    "method", [b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"PURGE", b"PROPFIND"]
)
async def test_only_get_and_head_on_signed_paths(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing, method: bytes
) -> None:
    edge = await edges("e1", upstream=origin.address)
    reply = await send(
        edge, signed(ring), method=method, headers=("Content-Length: 2",), body=b"{}"
    )
    assert reply.status == 405
    assert reply.headers["allow"] == "GET, HEAD"
    assert origin.heads == []


async def test_head_is_served_and_bodies_are_never_forwarded(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    head = await send(edge, signed(ring), method=b"HEAD")
    assert (head.status, head.body, "allow" in head.headers) == (200, b"", False)
    big = await send(edge, signed(ring), headers=("Content-Length: 4096",), body=b"x" * 4096)
    assert big.status == 413
    small = await send(
        edge,
        signed(ring, "live/ch1/180p/seg_00013.ts"),
        headers=("Content-Length: 11",),
        body=b"smuggled=1&",
    )
    assert small.status == 200
    assert origin.lines == [
        f"GET /{SEGMENT} HTTP/1.1".encode(),  # HEAD fills the cache with a GET
        b"GET /live/ch1/180p/seg_00013.ts HTTP/1.1",
    ]
    assert all(b"content-length" not in h.lower() and b"smuggled" not in h for h in origin.heads)


@pytest.mark.parametrize("target", ["/", "/t/", "/live/", "/live/ch1/", "/cache/", "/logs/"])
async def test_no_directory_listings(
    origin: RecordingOrigin, edges: EdgeFactory, target: str
) -> None:
    edge = await edges("e1", upstream=origin.address)
    reply = await send(edge, target)
    assert reply.status == 403
    assert b"Index of" not in reply.raw
    assert origin.heads == []


async def test_error_pages_do_not_echo_the_request_or_the_version(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    edge = await edges("e1", upstream=origin.address)
    marker = "zz-marker-zz"
    replies = [
        await send(edge, prefix(ring) + f"live/ch1/{marker}%0d.ts"),  # 400
        await send(edge, prefix(ring, scope="live/ch2/") + f"live/ch1/{marker}.ts"),  # 403
        await send(edge, prefix(ring, ttl=-5) + f"live/ch1/{marker}.ts"),  # 410
        await send(edge, signed(ring, f"live/ch1/{marker}.ts"), method=b"PUT"),  # 405
        await send(edge, f"/{marker}", headers=(f"X-{marker}: {marker}",)),  # 403
    ]
    assert [r.status for r in replies] == [400, 403, 410, 405, 403]
    for reply in replies:
        assert marker.encode() not in reply.raw
        assert reply.headers["server"] == "nginx"
    assert origin.heads == []


# -- 5. the mid tier's unsigned location ---------------------------------------------------


async def test_mid_tier_serves_unsigned_paths_to_its_children_only(
    origin: RecordingOrigin, edges: EdgeFactory
) -> None:
    mid = await edges(
        "mid1", upstream=origin.address, tier=Tier.MID, trusted_children=("127.0.0.1",)
    )
    stranger = await send(mid, "/" + SEGMENT, source=STRANGER)
    assert stranger.status == 403
    assert origin.heads == []
    assert (await send(mid, "/live/ch1/%2e%2e/ch2/x.ts")).status == 400
    assert (await send(mid, "/" + SEGMENT, method=b"POST")).status == 405
    assert origin.heads == []
    child = await send(mid, "/" + SEGMENT + "?bust=1")
    assert child.status == 200
    assert origin.lines == [f"GET /{SEGMENT} HTTP/1.1".encode()]


async def test_village_edge_and_mid_tier_pass_only_canonical_paths_upstream(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    mid = await edges(
        "mid1", upstream=origin.address, tier=Tier.MID, trusted_children=("127.0.0.1",)
    )
    village = await edges("va", upstream=f"127.0.0.1:{mid.config.listen_port}")
    assert (await send(village, prefix(ring) + "live/ch1/180p/seg%0d.ts")).status == 400
    assert (await send(village, signed(ring) + "?x=1")).status == 200
    assert origin.lines == [f"GET /{SEGMENT} HTTP/1.1".encode()]


# -- 6. the traffic counters ---------------------------------------------------------------


async def test_traffic_counters_answer_the_controllers_token_only(
    origin: RecordingOrigin, edges: EdgeFactory, ring: KeyRing
) -> None:
    """The counters need a token signed for STATS_PATH with the edges' keys: no box holds
    one (a box's live or catch-up token, even for a channel named like the path, is
    refused), and neither does anyone without the keys or from a mid tier's children."""
    mid = await edges(
        "mid1", upstream=origin.address, tier=Tier.MID, trusted_children=("127.0.0.1",)
    )
    edge = await edges("e1", upstream=f"127.0.0.1:{mid.config.listen_port}")
    assert (await send(edge, signed(ring))).status == 200  # one miss, counted
    stranger = KeyRing.parse("k2:" + "A" * 43, "k2")
    refused = [
        "/" + STATS_PATH,
        prefix(ring) + STATS_PATH,
        prefix(ring, scope="live/_edge/") + STATS_PATH,
        prefix(ring, scope="catchup/ch1/w/1/2/") + STATS_PATH,
        prefix(stranger, scope=STATS_PATH) + STATS_PATH,
        prefix(ring, scope=STATS_PATH).replace("/-/", "/127.0.0.9/") + STATS_PATH,
    ]
    for target in refused:
        for server in (edge, mid):
            reply = await send(server, target, source=STRANGER)
            assert reply.status in (400, 403), target
            assert b"hits" not in reply.body
    expired = token_prefix(ring, scope=STATS_PATH, expires_at=int(time.time()) - 1, client_ip=None)
    assert (await send(edge, expired + STATS_PATH)).status == 410
    # The mid tier's children fetch paths unsigned: its counters are not one of them (the
    # path is only passed up, like any other).
    child = await send(mid, "/" + STATS_PATH)
    assert (child.status, b"hits" in child.body) == (404, False)
    allowed = await send(edge, prefix(ring, scope=STATS_PATH) + STATS_PATH, source=STRANGER)
    assert allowed.status == 200
    assert allowed.headers["cache-control"] == "no-store"
    body = json.loads(allowed.body)
    assert (body["hits"], body["misses"]) == (0, 1)
    assert body["upstream_bytes"] > len(segment_body("/" + SEGMENT))
