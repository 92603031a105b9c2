"""Prefetch test builders: a stand-in live origin whose playlists grow when the test
publishes a segment, optionally slow (it answers after ``delay_seconds``: the parent
reached over a thin, far uplink), and hostile playlists the test puts in its place."""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

# Rung name -> declared bits per second; segment bodies are sized from it.
RUNGS = {"low": 400_000, "high": 1_200_000}
SEGMENT_SECONDS = 2.0


class LiveOrigin:
    """Live channels with a master of :data:`RUNGS` and a sliding window of segments
    ``seg_NNNNN.ts`` per rung; :meth:`publish` adds the next segment to every rung."""

    def __init__(
        self, *, delay_seconds: float = 0.0, window: int = 4, segment_bytes: int = 0
    ) -> None:
        self.delay_seconds = delay_seconds
        self.window = window
        self.segment_bytes = segment_bytes
        self.published: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()
        self.sent_bytes = 0
        # path -> body served instead (hostile playlists)
        self.overrides: dict[str, str] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    def publish(self, channel: str) -> str:
        """The next segment of every rung of ``channel``; returns its name."""
        self.published[channel] += 1
        return segment_name(self.published[channel] - 1)

    def _master(self) -> str:
        lines = ["#EXTM3U", "#EXT-X-VERSION:6"]
        for name, bps in RUNGS.items():
            lines += [f"#EXT-X-STREAM-INF:BANDWIDTH={bps}", f"{name}/index.m3u8"]
        return "\n".join(lines) + "\n"

    def _media(self, channel: str) -> str:
        count = self.published[channel]
        first = max(0, count - self.window)
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:6",
            f"#EXT-X-TARGETDURATION:{int(SEGMENT_SECONDS)}",
            f"#EXT-X-MEDIA-SEQUENCE:{first}",
        ]
        for n in range(first, count):
            lines += [f"#EXTINF:{SEGMENT_SECONDS:.3f},", segment_name(n)]
        return "\n".join(lines) + "\n"

    def size(self, rung: str) -> int:
        """A segment's bytes on ``rung``."""
        return self.segment_bytes or int(RUNGS[rung] * SEGMENT_SECONDS / 8)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        parts = path.strip("/").split("/")
        if path in self.overrides:
            body = self.overrides[path].encode()
            self.sent_bytes += len(body)
            return web.Response(body=body, content_type="application/vnd.apple.mpegurl")
        if len(parts) == 3 and parts[0] == "live" and parts[2] == "master.m3u8":
            text = self._master()
        elif len(parts) == 4 and parts[2] in RUNGS and parts[3] == "index.m3u8":
            text = self._media(parts[1])
        elif len(parts) == 4 and parts[2] in RUNGS and parts[3].endswith(".ts"):
            body = (path.encode() * (self.size(parts[2]) // len(path) + 1))[: self.size(parts[2])]
            self.sent_bytes += len(body)
            return web.Response(
                body=body,
                content_type="video/mp2t",
                headers={"Cache-Control": "public, max-age=86400, immutable"},
            )
        else:
            return web.Response(status=404, text="not found")
        self.sent_bytes += len(text)
        return web.Response(
            text=text,
            content_type="application/vnd.apple.mpegurl",
            headers={"Cache-Control": "max-age=1"},
        )

    async def start(self) -> None:
        """Serve on a free loopback port."""
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def address(self) -> str:
        """host:port."""
        return f"127.0.0.1:{self.port}"


def segment_name(n: int) -> str:
    """The file name of segment ``n``."""
    return f"seg_{n:05d}.ts"
