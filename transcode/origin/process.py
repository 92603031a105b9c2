"""The origin as a process: listening, its EPG client and archive retention, its settings,
and ``python -m transcode.origin``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis
from aiohttp import web

from epg.client import EpgClient
from headend.redisconn import RedisSettings
from headend.rpc import StartupError, run_service
from headend.settings import Env
from transcode import ingest as ingest_protocol
from transcode.archive import ArchiveIndex, Retention
from transcode.origin.app import EPG_TIMEOUT_SECONDS, create_app
from transcode.origin.ingest import IngestSettings
from transcode.origin.windows import ProgrammeSource
from transcode.settings import OriginSettings

# The origin's log lines keep the one logger name they always had.
log = logging.getLogger("transcode.origin.app")


async def start_origin(
    settings: OriginSettings,
    *,
    redis: aioredis.Redis,
    programmes: ProgrammeSource | None = None,
    ingest: IngestSettings | None = None,
) -> tuple[web.AppRunner, int]:
    """Start serving on ``settings.host:port`` (port 0 picks one); returns the runner and port.

    Raises ``StartupError`` when the address cannot be listened on."""
    app = create_app(settings, redis=redis, programmes=programmes, ingest=ingest)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as err:
        await runner.cleanup()
        address = f"{settings.host}:{settings.port}"
        raise StartupError(f"cannot listen on {address}: {err.strerror or err}") from err
    port = int(runner.addresses[0][1])
    log.info("origin listening", extra={"address": f"{settings.host}:{port}"})
    return runner, port


class _Running:
    """A started origin process: its listener and its clients, closed last opened first."""

    def __init__(self, opened: AsyncExitStack) -> None:
        self._opened = opened

    async def stop(self) -> None:
        """Stop answering, then close the clients."""
        await self._opened.aclose()


async def create_origin(
    settings: OriginSettings, redis: aioredis.Redis, *, ingest: IngestSettings | None = None
) -> tuple[_Running, int]:
    """The origin process on ``redis``: its HTTP server, with catch-up by programme id when
    ``ORIGIN_EPG_TARGET`` is set. With ingest enabled the origin's root holds its own copy
    of every channel's archive, so it also runs archive retention over that root."""
    settings.origin_root.mkdir(parents=True, exist_ok=True)
    mark_root(settings.origin_root)
    async with AsyncExitStack() as opened:
        if ingest is not None and ingest.enabled:
            opened.push_async_callback(
                start_retention(redis, settings.origin_root, ingest.retention_interval_seconds)
            )
        programmes = None
        if settings.epg_target is not None and settings.epg_api_key is not None:
            programmes = EpgClient(
                settings.epg_target,
                settings.epg_api_key,
                tls=settings.epg_tls,
                timeout_seconds=EPG_TIMEOUT_SECONDS,
            )
            opened.push_async_callback(programmes.close)
        runner, port = await start_origin(
            settings, redis=redis, programmes=programmes, ingest=ingest
        )
        opened.push_async_callback(runner.cleanup)
        return _Running(opened.pop_all()), port


def mark_root(root: Path) -> None:
    """Leave ``ingest.ROOT_MARKER`` in the origin's root: a node pushing to origins refuses
    it as its own directory (its local trim would delete this origin's archive)."""
    try:
        (root / ingest_protocol.ROOT_MARKER).write_text(f"origin pid {os.getpid()}\n")
    except OSError as err:  # a read-only shared root: serving still works
        log.warning("origin root not marked", extra={"root": str(root), "error": str(err)})


def start_retention(
    redis: aioredis.Redis, root: Path, interval_seconds: float
) -> Callable[[], Awaitable[None]]:
    """Run archive retention over ``root`` until the returned stopper is awaited."""
    stop = asyncio.Event()
    retention = Retention(ArchiveIndex(redis), root=root)
    task = asyncio.create_task(
        retention.run(interval_seconds=interval_seconds, stop=stop), name="origin/retention"
    )

    async def stopper() -> None:
        stop.set()
        await task

    return stopper


@dataclass(frozen=True, slots=True)
class OriginProcessSettings:
    """What ``python -m transcode.origin`` reads: the origin's settings and its ingest face."""

    origin: OriginSettings
    ingest: IngestSettings

    @property
    def redis_url(self) -> str | None:
        """The shared Redis."""
        return self.origin.redis_url

    @property
    def log_level(self) -> str:
        """The process's log level."""
        return self.origin.log_level

    @property
    def redis(self) -> RedisSettings:
        """How the Redis client connects."""
        return self.origin.redis

    @classmethod
    def from_env(cls, env: Env) -> OriginProcessSettings:
        """``OriginSettings`` and ``IngestSettings`` from the environment."""
        return cls(OriginSettings.from_env(env), IngestSettings.from_env(env))


async def _create_process(
    settings: OriginProcessSettings, redis: aioredis.Redis
) -> tuple[_Running, int]:
    return await create_origin(settings.origin, redis, ingest=settings.ingest)


def main() -> None:
    """``python -m transcode.origin``: the HTTP origin on ``ORIGIN_HOST:ORIGIN_PORT``."""
    run_service("transcode-origin", OriginProcessSettings.from_env, _create_process)
