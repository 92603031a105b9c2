"""The console's process: its listener, its channels to the services, its metrics
endpoint; ``python -m console``."""

from __future__ import annotations

import logging
import time
from contextlib import AsyncExitStack
from typing import NoReturn

from aiohttp import web

from console.app import STATE, create_app
from console.metrics import ConsoleMetrics
from console.session import Clock, SessionStore
from console.settings import ConsoleSettings
from console.upstream import open_services
from headend.rest.app import listen
from headend.rpc.server import run_face

log = logging.getLogger(__name__)


class ConsoleServer:
    """The started console: its listener, channels and metrics endpoint."""

    def __init__(self, opened: AsyncExitStack, app: web.Application, port: int) -> None:
        self._opened = opened
        self.app = app
        self.port = port

    @property
    def metrics(self) -> ConsoleMetrics:
        """Its request metrics."""
        return self.app[STATE].metrics

    @property
    def sessions(self) -> SessionStore:
        """Its sessions."""
        return self.app[STATE].sessions

    async def stop(self) -> None:
        """Stop answering, then close the channels."""
        await self._opened.aclose()


async def start_console(
    settings: ConsoleSettings, *, clock: Clock = time.monotonic
) -> tuple[ConsoleServer, int]:
    """Serve on ``settings.host:port`` (port 0 picks one); returns the server and its port.

    Raises ``StartupError`` when the address cannot be listened on."""
    opened = AsyncExitStack()
    try:
        services = await open_services(settings, opened)
        app = create_app(settings, services, clock=clock)
        port = await listen(
            app,
            opened,
            host=settings.host,
            port=settings.port,
            registry=app[STATE].metrics.registry,
            metrics_port=settings.metrics_port,
        )
    except BaseException:
        await opened.aclose()
        raise
    log.info("console listening", extra={"address": f"{settings.host}:{port}"})
    return ConsoleServer(opened, app, port), port


def main() -> NoReturn:
    """``python -m console``: the console on ``CONSOLE_HOST:CONSOLE_PORT`` (needs no Redis)."""
    run_face("console", ConsoleSettings.from_env, start_console)
