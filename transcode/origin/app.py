"""The origin's routes and handlers, its one error mapping, and its process entry point."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from headend import errors
from headend.clock import utc_now
from headend.httperrors import error_body, http_status
from headend.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from headend.metrics import render
from headend.settings import Network
from transcode.archive import (
    LIVE_IFRAMES,
    ArchiveIndex,
    WindowState,
    render_catchup_media,
    render_master_for,
    window_state,
)
from transcode.cues import dateranges_for, read_cues
from transcode.domain import (
    ArchiveEntry,
    Window,
    validate_channel_id,
    validate_id,
    validate_rung,
)
from transcode.errors import (
    ContentNotFound,
    IngestTooLarge,
    InvalidRequest,
    OriginForbidden,
    StoreUnavailable,
)
from transcode.names import CMAF_IFRAMES, CMAF_MASTER, CMAF_PLAYLIST, MPD_NAME
from transcode.origin import guard
from transcode.origin.cmaf_catchup import add_cmaf_catchup_routes
from transcode.origin.cutviews import add_cut_routes
from transcode.origin.http import (
    IMMUTABLE,
    TYPES,
    VOD_PLAYLIST,
    Body,
    check_bounds,
    playlist,
    respond,
)
from transcode.origin.ingest import Ingest, IngestSettings
from transcode.origin.windows import ProgrammeSource, parse_window, programme_window
from transcode.settings import OriginSettings

log = logging.getLogger(__name__)

_CMAF_SEGMENT = re.compile(r"([0-9]{1,15})\.m4s", re.ASCII)
_MEDIA_SEQUENCE = re.compile(rb"#EXT-X-MEDIA-SEQUENCE:([0-9]+)")

_PROGRAMME_CHARS = 128
# A programme lookup is one small read: a stalled EPG must not hold a player long.
EPG_TIMEOUT_SECONDS = 2.0
_MAX_VOD_DEPTH = 8
# Answered for any peer: load balancers and orchestrators probe it.
_OPEN_PATHS = frozenset({"/healthz"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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


def _programme_id(value: str) -> str:
    # The EPG's programme id rule, checked character by character (ASCII only).
    ok = 0 < len(value) <= _PROGRAMME_CHARS and value.isascii() and value[0].isalnum()
    if not ok or not all(c.isalnum() or c in "._:-" for c in value):
        raise InvalidRequest("programme", "not a programme id")
    return value


class Origin:
    """Request handlers over the origin root and the archive index."""

    def __init__(
        self,
        settings: OriginSettings,
        *,
        redis: aioredis.Redis,
        programmes: ProgrammeSource | None = None,
        live_windows: guard.LiveWindows | None = None,
    ) -> None:
        self._root = settings.origin_root.resolve()
        self._programmes = programmes
        self._redis = redis
        self.archive = ArchiveIndex(redis)
        self.live_windows = live_windows or guard.PlaylistLiveWindows(self._root)
        self.live_cache = f"public, max-age={settings.live_max_age_seconds}"
        self.key_base_url = settings.content_key_base_url
        self.metrics = OriginMetrics()

    async def file_body(self, parts: Sequence[str], cache_control: str) -> Body:
        content_type = TYPES.get(Path(parts[-1]).suffix)
        if content_type is None:
            raise ContentNotFound(f"no such content: {parts[-1][:64]}")
        opening = asyncio.ensure_future(asyncio.to_thread(guard.open_under, self._root, parts))
        try:
            opened = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # The thread still finishes: close what it opens, or descriptors leak.
            opening.add_done_callback(_close_opened)
            raise
        return Body(content_type, cache_control, opened.etag, fd=opened.fd, size=opened.size)

    def path_channel(self, request: web.Request) -> str:
        try:
            return validate_channel_id("channel", request.match_info["channel"])
        except InvalidRequest as err:
            raise ContentNotFound(f"no channel {request.match_info['channel'][:64]}") from err

    def path_rung(self, request: web.Request) -> str:
        try:
            return validate_rung(request.match_info["rung"])
        except InvalidRequest as err:
            raise ContentNotFound(f"no rung {request.match_info['rung'][:64]}") from err

    async def live_master(self, request: web.Request) -> web.StreamResponse:
        """The live master playlist."""
        parts = ("live", self.path_channel(request), "master.m3u8")
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_media(self, request: web.Request) -> web.StreamResponse:
        """A live rung playlist."""
        parts = ("live", self.path_channel(request), self.path_rung(request), "index.m3u8")
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_iframes(self, request: web.Request) -> web.StreamResponse:
        """A live video rung's I-frame playlist (a clear channel's; catch-up has none)."""
        parts = ("live", self.path_channel(request), self.path_rung(request), LIVE_IFRAMES)
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_segment(self, request: web.Request) -> web.StreamResponse:
        """A segment of the live window (or just behind it); the archive is not reachable here."""
        channel, rung = self.path_channel(request), self.path_rung(request)
        segment = request.match_info["segment"]
        sequence = guard.segment_sequence(segment)
        await guard.check_live_segment(self.live_windows, channel, rung, sequence)
        return await respond(
            request, await self.file_body(("live", channel, rung, segment), IMMUTABLE)
        )

    async def live_cmaf_master(self, request: web.Request) -> web.StreamResponse:
        """A CMAF channel's live master playlist (``transcode.live.cmaf``)."""
        parts = ("live", self.path_channel(request), CMAF_MASTER)
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_mpd(self, request: web.Request) -> web.StreamResponse:
        """A CMAF channel's live (dynamic) MPD."""
        parts = ("live", self.path_channel(request), MPD_NAME)
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_cmaf_media(self, request: web.Request) -> web.StreamResponse:
        """A CMAF track's live media playlist."""
        parts = ("live", self.path_channel(request), self.path_rung(request), CMAF_PLAYLIST)
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_cmaf_iframes(self, request: web.Request) -> web.StreamResponse:
        """A CMAF video track's live I-frame playlist (``transcode.live.cmaf_iframes``)."""
        parts = ("live", self.path_channel(request), self.path_rung(request), CMAF_IFRAMES)
        return await respond(request, await self.file_body(parts, self.live_cache))

    async def live_cmaf_init(self, request: web.Request) -> web.StreamResponse:
        """A CMAF track's init segment: named by its content, so cached for good."""
        channel, rung = self.path_channel(request), self.path_rung(request)
        init = request.match_info["init"]
        return await respond(
            request, await self.file_body(("live", channel, rung, init), IMMUTABLE)
        )

    async def live_cmaf_segment(self, request: web.Request) -> web.StreamResponse:
        """A CMAF segment of the live window (or just behind it), by the rule of the TS ones,
        against the track's own CMAF playlist."""
        channel, rung = self.path_channel(request), self.path_rung(request)
        segment = request.match_info["segment"]
        match = _CMAF_SEGMENT.fullmatch(segment)
        if match is None or f"{int(match.group(1))}.m4s" != segment:
            raise ContentNotFound(f"no such segment: {segment[:64]}")
        sequence = int(match.group(1))
        first = await asyncio.to_thread(_cmaf_first, self._root, channel, rung)
        if first is None or sequence < first - guard.LIVE_BEHIND_SEGMENTS:
            raise ContentNotFound(f"segment {sequence} is not in the live window of {channel}")
        return await respond(
            request, await self.file_body(("live", channel, rung, segment), IMMUTABLE)
        )

    async def catchup_segment(self, request: web.Request) -> web.StreamResponse:
        """An archived segment: it must be in the archive index (and overlap the path's window)."""
        channel, rung = self.path_channel(request), self.path_rung(request)
        segment = request.match_info["segment"]
        window = None
        if "from" in request.match_info:
            window = await self.path_window(request, channel, utc_now())
        entry = await self.archived(channel, rung, segment)
        if window is not None and not (entry.start < window.end and entry.end > window.start):
            raise ContentNotFound(f"segment {segment} is outside the catch-up window")
        return await respond(request, await self.file_body(entry.path.split("/"), IMMUTABLE))

    async def archived(self, channel: str, rung: str, segment: str) -> ArchiveEntry:
        """The archive's entry of a segment file of the channel's rung (404 when none)."""
        entry = await self.archive.find(channel, rung, guard.segment_sequence(segment))
        if entry is None or entry.path != f"live/{channel}/{rung}/{segment}":
            raise ContentNotFound(f"segment {segment} is not in the archive of {channel}")
        return entry

    async def vod(self, request: web.Request) -> web.StreamResponse:
        """A file of a packaged asset."""
        try:
            asset = validate_id("asset", request.match_info["asset"])
        except InvalidRequest as err:
            raise ContentNotFound("no such asset") from err
        tail = request.match_info["tail"].split("/")
        if len(tail) > _MAX_VOD_DEPTH:
            raise ContentNotFound("no such content")
        parts = ("vod", asset, *(guard.name(p) for p in tail))
        # A VOD manifest (HLS or DASH) may be republished; its segments never change.
        cache = VOD_PLAYLIST if parts[-1].endswith((".m3u8", ".mpd")) else IMMUTABLE
        return await respond(request, await self.file_body(parts, cache))

    async def path_window(self, request: web.Request, channel: str, now: datetime) -> Window:
        """``from``/``to``; the ``utc``/``utcend`` pair IPTV players fill in; or ``programme``."""
        info = request.match_info
        if "from" in info:
            # The path form: the window is part of the (signed) path, not the query.
            return parse_window(info["from"], info["to"], now=now, epoch_only=True)
        query = request.query
        if "programme" in query:
            return await self._programme_window(channel, query["programme"], now)
        names = ("utc", "utcend") if "from" not in query and "utc" in query else ("from", "to")
        return parse_window(query.get(names[0]), query.get(names[1]), now=now, names=names)

    async def _programme_window(self, channel: str, programme_id: str, now: datetime) -> Window:
        if self._programmes is None:
            raise InvalidRequest("programme", "this origin has no EPG (set ORIGIN_EPG_TARGET)")
        return await programme_window(
            self._programmes, channel, _programme_id(programme_id), now=now
        )

    def catchup_cache(self, state: WindowState) -> str:
        # A window still growing or just ended (start-over, timeshift) is cached as live.
        return "public, max-age=3600" if state == "settled" else self.live_cache

    async def catchup_master(self, request: web.Request) -> web.StreamResponse:
        """A catch-up master playlist for ``[from, to)``."""
        channel = self.path_channel(request)
        now = utc_now()
        window = await self.path_window(request, channel, now)
        rungs = await self.archive.rungs(channel)
        windows = {r.name: await self.archive.window(channel, r.name, window) for r in rungs}
        # Rung playlists get the same query (window and whatever else the client sent);
        # in the path form they inherit the window from the path.
        query = "" if "from" in request.match_info else "?" + request.query_string
        text = render_master_for(rungs, windows, query=query)
        # Long-cached only once settled, which depends on the window's end alone.
        state = window_state((), window, now)
        return await respond(request, playlist(text, self.catchup_cache(state)))

    async def catchup_media(self, request: web.Request) -> web.StreamResponse:
        """One rung's playlist for ``[from, to)``: an EVENT playlist growing with the archive
        while ``to`` is ahead (start-over, timeshift), ENDLIST appended at ``to``, VOD once
        the window has settled (:func:`transcode.archive.window_state`)."""
        channel, rung = self.path_channel(request), self.path_rung(request)
        now = utc_now()
        window = await self.path_window(request, channel, now)
        entries = await self.archive.window(channel, rung, window)
        state = window_state(entries, window, now)
        cues = await read_cues(self._redis, channel, window.start, window.end) if entries else []
        text = render_catchup_media(
            entries,
            channel=channel,
            key_base_url=self.key_base_url,
            state=state,
            dateranges=dateranges_for(entries, cues),
        )
        return await respond(request, playlist(text, self.catchup_cache(state)))

    async def keys(self, request: web.Request) -> web.StreamResponse:
        """Content keys are the front door's alone (it checks the box's lease): never here."""
        raise ContentNotFound("this origin serves no content keys")

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


def _cmaf_first(root: Path, channel: str, rung: str) -> int | None:
    """The first sequence number a CMAF track's live playlist lists (None: none)."""
    try:
        opened = guard.open_under(root, ("live", channel, rung, CMAF_PLAYLIST))
    except ContentNotFound:
        return None
    try:
        head = os.pread(opened.fd, 4096, 0)
    finally:
        os.close(opened.fd)
    found = _MEDIA_SEQUENCE.search(head)
    return None if found is None else int(found.group(1))


def _close_opened(opening: asyncio.Future[guard.OpenFile]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result().fd)


def _route_name(request: web.Request) -> str:
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


_METRICS = web.AppKey("metrics", OriginMetrics)
# The one status more specific than its category's (ResourceExhausted would be 429).
_STATUS = ((IngestTooLarge, 413),)
_NETWORKS = web.AppKey("networks", tuple[Network, ...])


def _error_response(err: errors.HeadendError, status: int) -> web.Response:
    return web.json_response(error_body(err), status=status, headers={"Cache-Control": "no-store"})


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
        status = http_status(err, _STATUS)
        return _error_response(err, status)
    except aioredis.RedisError as err:
        log.warning("redis unavailable", extra={"route": route, "error": str(err)})
        unavailable = StoreUnavailable("the archive index (Redis) is unavailable")
        status = http_status(unavailable)
        return _error_response(unavailable, status)
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Peers outside the allow-list get 403 (but for ``/healthz``); oversized input 400."""
    if request.path not in _OPEN_PATHS and not guard.peer_allowed(request, request.app[_NETWORKS]):
        raise OriginForbidden("this origin serves its edges and mid-tiers only")
    check_bounds(request)
    return await handler(request)


def create_app(
    settings: OriginSettings,
    *,
    redis: aioredis.Redis,
    programmes: ProgrammeSource | None = None,
    live_windows: guard.LiveWindows | None = None,
    ingest: IngestSettings | None = None,
) -> web.Application:
    """The origin's aiohttp application; with ``ingest`` enabled it also takes nodes' PUTs."""
    origin = Origin(settings, redis=redis, programmes=programmes, live_windows=live_windows)
    app = web.Application(middlewares=[_errors, _guard])
    app[_METRICS] = origin.metrics
    app[_NETWORKS] = settings.allowed_networks
    seg = r"{segment:[^/]+\.(?:ts|vtt)}"
    app.router.add_get("/healthz", origin.healthz)
    app.router.add_get("/metrics", origin.metrics_page)
    app.router.add_get("/live/{channel}/master.m3u8", origin.live_master)
    app.router.add_get("/live/{channel}/{rung}/index.m3u8", origin.live_media)
    app.router.add_get(f"/live/{{channel}}/{{rung}}/{LIVE_IFRAMES}", origin.live_iframes)
    app.router.add_get(f"/live/{{channel}}/{{rung}}/{seg}", origin.live_segment)
    app.router.add_get(f"/live/{{channel}}/{CMAF_MASTER}", origin.live_cmaf_master)
    app.router.add_get(f"/live/{{channel}}/{MPD_NAME}", origin.live_mpd)
    app.router.add_get(f"/live/{{channel}}/{{rung}}/{CMAF_PLAYLIST}", origin.live_cmaf_media)
    app.router.add_get(f"/live/{{channel}}/{{rung}}/{CMAF_IFRAMES}", origin.live_cmaf_iframes)
    app.router.add_get(
        r"/live/{channel}/{rung}/{init:init-[0-9a-f]{8}\.mp4}", origin.live_cmaf_init
    )
    app.router.add_get(r"/live/{channel}/{rung}/{segment:[0-9]+\.m4s}", origin.live_cmaf_segment)
    app.router.add_get("/catchup/{channel}/master.m3u8", origin.catchup_master)
    app.router.add_get("/catchup/{channel}/{rung}/index.m3u8", origin.catchup_media)
    app.router.add_get(f"/catchup/{{channel}}/{{rung}}/{seg}", origin.catchup_segment)
    # Any text for the window's ends, so a malformed one is a 400 that says why, not a 404.
    window = "/catchup/{channel}/w/{from}/{to}"
    app.router.add_get(f"{window}/master.m3u8", origin.catchup_master)
    app.router.add_get(f"{window}/{{rung}}/index.m3u8", origin.catchup_media)
    app.router.add_get(f"{window}/{{rung}}/{seg}", origin.catchup_segment)
    add_cut_routes(app, origin, seg, redis=redis)
    add_cmaf_catchup_routes(app, origin, root=settings.origin_root.resolve(), redis=redis)
    app.router.add_get("/vod/{asset}/{tail:.+}", origin.vod)
    app.router.add_route("*", "/keys/{tail:.*}", origin.keys)
    if ingest is not None and ingest.enabled:
        taker = Ingest(
            ingest, root=settings.origin_root.resolve(), redis=redis,
            registry=origin.metrics.registry,
        )  # fmt: skip
        app.router.add_put("/ingest/live/{channel}/{tail:.+}", taker.put)
    return app
