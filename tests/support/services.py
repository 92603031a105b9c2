"""Service children for fault tests: ``python -m <service>`` on a private Redis.

A :class:`Platform` is a private ``redis-server`` (AOF, ``appendfsync always``)
with an admin key; tests add the services they need as real child processes
(their JSON log lines are kept, and the port comes from their "listening"
line), kill or restart Redis under them and check what the children did.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headend.auth import ADMIN, KeyStore
from headend.redisconn import connect
from headend.redisproc import RedisServer
from headend.rpc import bearer

REPO = Path(__file__).resolve().parents[2]
# Settings that must not leak from the caller's environment into the children: they
# run with the factory's defaults and their own ports.
_PREFIXES = (
    "REDIS_", "TLS_", "GRPC_CLIENT_", "EPG_", "SUBSCRIBER_", "TRANSCODE_", "TC_", "ORIGIN_",
    "CDN_", "FRONTDOOR_",
)  # fmt: skip


def child_env(redis_url: str, **extra: str) -> dict[str, str]:
    """A clean environment for a service child on ``redis_url`` (ports picked by the OS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PREFIXES)}
    env.update(
        REDIS_URL=redis_url, EPG_GRPC_PORT="0", SUBSCRIBER_GRPC_PORT="0",
        TRANSCODE_GRPC_PORT="0", EPG_DRAIN_SECONDS="0", SUBSCRIBER_DRAIN_SECONDS="0",
        TRANSCODE_DRAIN_SECONDS="0", LOG_LEVEL="info",
    )  # fmt: skip
    env.update(extra)
    return env


class ServiceProcess:
    """``python -m <module>`` as a child process; its JSON log lines are kept as they come.
    ``listening`` is the log line that carries its port (``origin listening`` for an origin)."""

    def __init__(
        self, module: str, env: dict[str, str], *, listening: str = "grpc server listening"
    ) -> None:
        self.module = module
        self.env = env
        self._listening_msg = listening
        self.lines: list[dict[str, Any]] = []
        self.port = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def pid(self) -> int:
        """The child's process id."""
        assert self._proc is not None
        return self._proc.pid

    @property
    def alive(self) -> bool:
        """True while the child runs."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def target(self) -> str:
        """host:port of its gRPC server."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """Its HTTP base URL (an origin's)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self, timeout_seconds: float = 30.0) -> None:
        """Start it and wait for its listening line (the port is in it)."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", self.module, cwd=REPO, env=self.env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())
        try:
            await asyncio.wait_for(self._listening.wait(), timeout_seconds)
        except TimeoutError:
            await self.stop()
            raise AssertionError(f"{self.module} did not start: {self.lines[-5:]}") from None

    async def _read(self) -> None:
        assert self._proc is not None
        assert self._proc.stderr is not None
        async for raw in self._proc.stderr:
            try:
                line = json.loads(raw)
            except ValueError:
                continue  # grpc's own C-core lines
            self.lines.append(line)
            if line.get("msg") == self._listening_msg and not self._listening.is_set():
                self.port = int(str(line["address"]).rsplit(":", 1)[1])
                self._listening.set()

    def problems(self) -> list[dict[str, Any]]:
        """Its warnings and errors (for failure messages)."""
        return [line for line in self.lines if line.get("level") in ("warning", "error")]

    def logged(self, message: str) -> list[dict[str, Any]]:
        """Its log lines whose message is ``message``."""
        return [line for line in self.lines if line.get("msg") == message]

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after a bound."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self._proc.wait(), 15)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 5)


@dataclass
class Platform:
    """A private Redis, an admin key and the service children on it."""

    redis: RedisServer
    admin_key: str
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    @property
    def md(self) -> tuple[tuple[str, str], ...]:
        """Admin call metadata."""
        return bearer(self.admin_key)

    async def start(self, name: str, module: str, **env: str) -> ServiceProcess:
        """Start one service child."""
        service = ServiceProcess(module, child_env(self.redis.url, **env))
        await service.start()
        self.services[name] = service
        return service

    async def stop(self) -> None:
        """Stop every child, then Redis."""
        for service in self.services.values():
            await service.stop()
        await asyncio.to_thread(self.redis.stop)


@contextlib.asynccontextmanager
async def platform(data_dir: Path) -> AsyncIterator[Platform]:
    """Redis (``appendfsync always``) with an admin key; children are added by the test."""
    server = RedisServer(data_dir, appendfsync="always")
    await asyncio.to_thread(server.start)
    client = connect(server.url)
    try:
        _, admin_key = await KeyStore(client).create(ADMIN)
    finally:
        await client.aclose()
    up = Platform(server, admin_key)
    try:
        yield up
    finally:
        await up.stop()
