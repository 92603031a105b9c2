"""The HTTP origin: live, VOD and catch-up playlists and segments.

URL layout (all GET/HEAD):

- ``/live/{channel}/master.m3u8``, ``/live/{channel}/{rung}/index.m3u8``,
  ``/live/{channel}/{rung}/{segment}.ts`` — files the live supervisor publishes.
- ``/vod/{asset}/{path}`` — files a packaging job published (master, rung
  playlists, I-frame playlists, segments).
- ``/catchup/{channel}/master.m3u8?from=..&to=..`` and
  ``/catchup/{channel}/{rung}/index.m3u8?from=..&to=..`` — rendered from the
  archive index; ``from``/``to`` are ISO-8601 with an offset or epoch seconds.
  ``utc``/``utcend`` (epoch seconds, what IPTV players fill into the lineup's
  ``catchup-source``) work too, and so does ``programme=<EPG programme id>``
  when the origin has an EPG (``ORIGIN_EPG_TARGET``). The master passes its
  query on to the rung playlists. ``/catchup/{channel}/{rung}/{segment}.ts``
  serves the archived segment.
- ``/catchup/{channel}/w/{from}/{to}/master.m3u8`` (epoch seconds), its
  ``{rung}/index.m3u8`` and ``{rung}/{segment}.ts``: the same with the window in
  the path, so a signed path token (the CDN front door's) covers the window and
  edge caches key on it.
- ``/healthz`` and ``/metrics``.

HTTP semantics in one place (:func:`_respond`): content types, Cache-Control
(short for live playlists, long for segments and VOD/catch-up playlists of a
past window), strong ETags with If-None-Match (304), single byte ranges
(206/416) on segments, gzip for playlists when accepted. Domain errors become
HTTP statuses only in :func:`_errors`.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import logging
import re
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from headend import errors, logs
from headend.httperrors import error_body, http_status
from headend.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from headend.metrics import render
from headend.settings import SettingsError, environ
from transcode import tags
from transcode.archive import ArchiveIndex, render_catchup_media, render_master_for
from transcode.domain import (
    MAX_WINDOW,
    Window,
    parse_window,
    validate_channel_id,
    validate_id,
    validate_rung,
)
from transcode.epg_client import EpgProgrammes
from transcode.errors import ContentNotFound, InvalidRequest
from transcode.settings import OriginSettings

log = logging.getLogger(__name__)

_TYPES = {
    ".m3u8": tags.MIME_PLAYLIST,
    ".ts": tags.MIME_TS,
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".aac": "audio/aac",
}
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\.ts$")
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_PROGRAMME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")  # the EPG's programme id rule
IMMUTABLE = "public, max-age=31536000, immutable"
VOD_PLAYLIST = "public, max-age=86400"
# A catch-up window that ended this recently may still gain segments.
_SETTLED = timedelta(minutes=1)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Body:
    """What to send: bytes (or a file to slice), its validator and caching policy."""

    content_type: str
    cache_control: str
    etag: str
    data: bytes | None = None
    path: Path | None = None
    size: int = 0


class OriginMetrics:
    """Requests and latency by route and status."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "origin_http_requests_total",
            "HTTP requests, by route and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "origin_http_request_seconds",
            "Request handling time, by route.",
            ["route"],
            registry=self.registry,
        )


def _etag_bytes(data: bytes) -> str:
    return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def _etag_file(path: Path) -> tuple[str, int]:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError) as err:
        raise ContentNotFound(f"no such content: {path.name}") from err
    if not path.is_file():
        raise ContentNotFound(f"no such content: {path.name}")
    raw = f"{st.st_ino}-{st.st_size}-{st.st_mtime_ns}".encode()
    return '"' + hashlib.blake2b(raw, digest_size=12).hexdigest() + '"', st.st_size


def _matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    tags_ = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags_


def _accepts_gzip(header: str) -> bool:
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        if coding.strip().lower() in ("gzip", "*"):
            q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
            try:
                return float(q) > 0
            except ValueError:
                return False
    return False


def _byte_range(header: str, size: int) -> tuple[int, int] | bool | None:
    """(start, end inclusive); None to ignore the header; False if unsatisfiable."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # multi-range or malformed: RFC 9110 lets us send the whole body
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = int(last)
        if length == 0:
            return False
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end


def _read(path: Path, start: int, length: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)
    except FileNotFoundError as err:
        raise ContentNotFound(f"no such content: {path.name}") from err


async def _respond(request: web.Request, body: Body) -> web.StreamResponse:
    """Send ``body`` with conditional requests, byte ranges and gzip applied."""
    headers = {
        "Cache-Control": body.cache_control,
        "ETag": body.etag,
        "Content-Type": body.content_type,
    }
    playlist = body.content_type == tags.MIME_PLAYLIST
    size = len(body.data) if body.data is not None else body.size
    gzip_ok = playlist and _accepts_gzip(request.headers.get("Accept-Encoding", ""))
    if playlist:
        headers["Vary"] = "Accept-Encoding"
    else:
        headers["Accept-Ranges"] = "bytes"
    etag = body.etag[:-1] + '-gz"' if gzip_ok else body.etag
    headers["ETag"] = etag
    inm = request.headers.get("If-None-Match")
    if inm is not None and _matches(inm, etag):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    range_header = request.headers.get("Range")
    if range_header and not playlist:
        wanted = _byte_range(range_header, size)
        if wanted is False:
            headers["Content-Range"] = f"bytes */{size}"
            del headers["Content-Type"]
            return web.Response(status=416, headers=headers)
        if isinstance(wanted, tuple):
            start, end = wanted
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            data = await _slice(body, start, end - start + 1)
            return web.Response(status=206, body=data, headers=headers)
    data = await _slice(body, 0, size)
    if gzip_ok:
        data = gzip.compress(data, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return web.Response(status=200, body=data, headers=headers)


async def _slice(body: Body, start: int, length: int) -> bytes:
    if body.data is not None:
        return body.data[start : start + length]
    assert body.path is not None  # a Body has data or a path
    return await asyncio.to_thread(_read, body.path, start, length)


def _file(path: Path, cache_control: str) -> Body:
    content_type = _TYPES.get(path.suffix)
    if content_type is None:
        raise ContentNotFound(f"no such content: {path.name}")
    etag, size = _etag_file(path)
    return Body(content_type, cache_control, etag, path=path, size=size)


def _playlist(text: str, cache_control: str) -> Body:
    data = text.encode()
    return Body(tags.MIME_PLAYLIST, cache_control, _etag_bytes(data), data=data)


def _name(value: str, pattern: re.Pattern[str] = _NAME) -> str:
    if not pattern.match(value) or ".." in value:
        raise ContentNotFound(f"no such content: {value[:64]}")
    return value


class ProgrammeWindows(Protocol):
    """Resolves an EPG programme to its window (``epg_client.EpgProgrammes``)."""

    async def window(self, channel_id: str, programme_id: str) -> Window: ...


class Origin:
    """Request handlers over the origin root and the archive index."""

    def __init__(
        self,
        settings: OriginSettings,
        *,
        redis: aioredis.Redis,
        programmes: ProgrammeWindows | None = None,
    ) -> None:
        self._root = settings.origin_root
        self._programmes = programmes
        self._redis = redis
        self._archive = ArchiveIndex(redis)
        self._live_cache = f"public, max-age={settings.live_max_age_seconds}"
        self.metrics = OriginMetrics()

    def _channel(self, request: web.Request) -> str:
        try:
            return validate_channel_id("channel", request.match_info["channel"])
        except InvalidRequest as err:
            raise ContentNotFound(f"no channel {request.match_info['channel'][:64]}") from err

    def _rung(self, request: web.Request) -> str:
        try:
            return validate_rung(request.match_info["rung"])
        except InvalidRequest as err:
            raise ContentNotFound(f"no rung {request.match_info['rung'][:64]}") from err

    async def live_master(self, request: web.Request) -> web.StreamResponse:
        """The live master playlist."""
        path = self._root / "live" / self._channel(request) / "master.m3u8"
        return await _respond(request, _file(path, self._live_cache))

    async def live_media(self, request: web.Request) -> web.StreamResponse:
        """A live rung playlist."""
        path = self._root / "live" / self._channel(request) / self._rung(request) / "index.m3u8"
        return await _respond(request, _file(path, self._live_cache))

    async def segment(self, request: web.Request) -> web.StreamResponse:
        """A live or archived segment (both paths name the same file)."""
        name = _name(request.match_info["segment"], _SEGMENT)
        path = self._root / "live" / self._channel(request) / self._rung(request) / name
        return await _respond(request, _file(path, IMMUTABLE))

    async def vod(self, request: web.Request) -> web.StreamResponse:
        """A file of a packaged asset."""
        try:
            asset = validate_id("asset", request.match_info["asset"])
        except InvalidRequest as err:
            raise ContentNotFound("no such asset") from err
        parts = [_name(p) for p in request.match_info["tail"].split("/")]
        path = self._root / "vod" / asset / Path(*parts)
        cache = VOD_PLAYLIST if path.suffix == ".m3u8" else IMMUTABLE
        return await _respond(request, _file(path, cache))

    async def _window(self, request: web.Request, channel: str, now: datetime) -> Window:
        """``from``/``to``; the ``utc``/``utcend`` pair IPTV players fill in; or ``programme``."""
        info = request.match_info
        if "from" in info:
            # The path form: the window is part of the (signed) path, not the query.
            return parse_window(info["from"], info["to"], now=now)
        query = request.query
        if "programme" in query:
            return await self._programme_window(channel, query["programme"], now)
        names = ("utc", "utcend") if "from" not in query and "utc" in query else ("from", "to")
        return parse_window(query.get(names[0]), query.get(names[1]), now=now, names=names)

    async def _programme_window(self, channel: str, programme_id: str, now: datetime) -> Window:
        if self._programmes is None:
            raise InvalidRequest("programme", "this origin has no EPG (set ORIGIN_EPG_TARGET)")
        if not _PROGRAMME.match(programme_id):
            raise InvalidRequest("programme", "not a programme id")
        window = await self._programmes.window(channel, programme_id)
        if window.start >= now:
            raise InvalidRequest("programme", "has not started yet")
        if window.end - window.start > MAX_WINDOW:
            raise InvalidRequest("programme", "longer than a catch-up window may be")
        return window

    def _catchup_cache(self, end: datetime, now: datetime) -> str:
        return "public, max-age=3600" if end < now - _SETTLED else self._live_cache

    async def catchup_master(self, request: web.Request) -> web.StreamResponse:
        """A catch-up master playlist for ``[from, to)``."""
        channel = self._channel(request)
        now = datetime.now(UTC)
        window = await self._window(request, channel, now)
        rungs = await self._archive.rungs(channel)
        windows = {r.name: await self._archive.window(channel, r.name, window) for r in rungs}
        # Rung playlists get the same query (window and whatever else the client sent);
        # in the path form they inherit the window from the path.
        query = "" if "from" in request.match_info else "?" + request.query_string
        text = render_master_for(rungs, windows, query=query)
        return await _respond(request, _playlist(text, self._catchup_cache(window.end, now)))

    async def catchup_media(self, request: web.Request) -> web.StreamResponse:
        """A catch-up VOD playlist of one rung for ``[from, to)``."""
        channel, rung = self._channel(request), self._rung(request)
        now = datetime.now(UTC)
        window = await self._window(request, channel, now)
        entries = await self._archive.window(channel, rung, window)
        text = render_catchup_media(entries)
        return await _respond(request, _playlist(text, self._catchup_cache(window.end, now)))

    async def healthz(self, request: web.Request) -> web.StreamResponse:
        """200 when the origin root and Redis are usable."""
        try:
            await self._redis.ping()
        except (aioredis.RedisError, OSError) as err:
            raise errors.Unavailable(f"redis unavailable: {err}") from err
        return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})

    async def metrics_page(self, request: web.Request) -> web.StreamResponse:
        """Prometheus text format."""
        return web.Response(
            body=render(self.metrics.registry),
            headers={"Content-Type": METRICS_CONTENT_TYPE, "Cache-Control": "no-store"},
        )


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


_METRICS = web.AppKey("metrics", OriginMetrics)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place domain errors become HTTP statuses; also records metrics."""
    metrics = request.app[_METRICS]
    start = time.perf_counter()
    route = _route_name(request)
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except errors.HeadendError as err:
        status = http_status(err)
        return web.json_response(
            error_body(err), status=status, headers={"Cache-Control": "no-store"}
        )
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)


def create_app(
    settings: OriginSettings,
    *,
    redis: aioredis.Redis,
    programmes: ProgrammeWindows | None = None,
) -> web.Application:
    """The origin's aiohttp application."""
    origin = Origin(settings, redis=redis, programmes=programmes)
    app = web.Application(middlewares=[_errors])
    app[_METRICS] = origin.metrics
    seg = r"{segment:[^/]+\.ts}"
    app.router.add_get("/healthz", origin.healthz)
    app.router.add_get("/metrics", origin.metrics_page)
    app.router.add_get("/live/{channel}/master.m3u8", origin.live_master)
    app.router.add_get("/live/{channel}/{rung}/index.m3u8", origin.live_media)
    app.router.add_get(f"/live/{{channel}}/{{rung}}/{seg}", origin.segment)
    app.router.add_get("/catchup/{channel}/master.m3u8", origin.catchup_master)
    app.router.add_get("/catchup/{channel}/{rung}/index.m3u8", origin.catchup_media)
    app.router.add_get(f"/catchup/{{channel}}/{{rung}}/{seg}", origin.segment)
    window = "/catchup/{channel}/w/{from:[0-9]{1,12}}/{to:[0-9]{1,12}}"
    app.router.add_get(f"{window}/master.m3u8", origin.catchup_master)
    app.router.add_get(f"{window}/{{rung}}/index.m3u8", origin.catchup_media)
    app.router.add_get(f"{window}/{{rung}}/{seg}", origin.segment)
    app.router.add_get("/vod/{asset}/{tail:.+}", origin.vod)
    return app


async def start_origin(
    settings: OriginSettings,
    *,
    redis: aioredis.Redis,
    programmes: ProgrammeWindows | None = None,
) -> tuple[web.AppRunner, int]:
    """Start serving on ``settings.host:port`` (port 0 picks one); returns the runner and port."""
    app = create_app(settings, redis=redis, programmes=programmes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    port = int(runner.addresses[0][1])
    log.info("origin listening", extra={"address": f"{settings.host}:{port}"})
    return runner, port


async def run_origin(settings: OriginSettings) -> None:
    """Serve until SIGTERM or SIGINT."""
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        await client.ping()
    except (aioredis.RedisError, OSError) as err:
        await client.aclose()
        raise SystemExit(f"transcode origin: cannot reach Redis at REDIS_URL: {err}") from err
    settings.origin_root.mkdir(parents=True, exist_ok=True)
    programmes = None
    if settings.epg_target is not None and settings.epg_api_key is not None:
        programmes = EpgProgrammes(settings.epg_target, settings.epg_api_key)
    runner, _port = await start_origin(settings, redis=client, programmes=programmes)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        if programmes is not None:
            await programmes.close()
        await client.aclose()


def main() -> None:
    """``python -m transcode.origin``: the HTTP origin on ``ORIGIN_HOST:ORIGIN_PORT``."""
    try:
        settings = OriginSettings.from_env(environ())
    except SettingsError as err:
        raise SystemExit(f"transcode origin: {err}") from err
    logs.configure("transcode-origin", settings.log_level)
    asyncio.run(run_origin(settings))


if __name__ == "__main__":
    main()
