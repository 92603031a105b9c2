"""A real transcode control server on port 0 with a live manager and a job queue: what the
server, CMAF and HEVC tests drive over gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from headend.auth import KeyStore
from headend.rpc import RpcSettings, bearer, client_channel
from protos import transcode_pb2_grpc as pb_grpc
from tests.support.tokens import Tokens
from transcode.archive import ArchiveIndex
from transcode.live import LiveManager
from transcode.queue import JobQueue
from transcode.server import create_server
from transcode.settings import ControlSettings, QueueSettings, SourceSettings
from transcode.sources import SourceGuard


@dataclass
class Rig:
    """The server's port and stub, the admin's metadata, and what it runs on."""

    port: int
    stub: pb_grpc.TranscodeServiceStub
    admin: tuple[tuple[str, str], ...]
    tokens: Tokens
    origin: Path
    queue: JobQueue
    sources: SourceGuard
    redis: aioredis.Redis


@asynccontextmanager
async def server_rig(
    redis: aioredis.Redis,
    keys: KeyStore,
    tokens: Tokens,
    tmp_path: Path,
    source_settings: SourceSettings,
) -> AsyncIterator[Rig]:
    """The control server with its origin under ``tmp_path``, stopped on exit."""
    origin = tmp_path / "origin"
    settings = ControlSettings(
        rpc=RpcSettings(port=0, grace_seconds=0),
        redis_url="unused://",
        origin_root=origin,
        queue=QueueSettings(claim_idle_seconds=1.0),
        sources=source_settings,
    )
    sources = SourceGuard(source_settings)
    manager = LiveManager(
        redis=redis, archive=ArchiveIndex(redis), origin_root=origin, sources=sources
    )
    server, port = await create_server(settings, redis=redis, keys=keys, channels=manager)
    channel = client_channel(f"127.0.0.1:{port}")
    try:
        yield Rig(
            port, pb_grpc.TranscodeServiceStub(channel), bearer(await tokens()), tokens, origin,
            JobQueue(redis), sources, redis,
        )  # fmt: skip
    finally:
        await channel.close()
        await manager.close()
        await server.stop(0)
