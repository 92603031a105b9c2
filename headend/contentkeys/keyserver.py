"""A stand-in for a DRM vendor's key server: ``python -m headend.contentkeys.keyserver``.

It answers CPIX 2.3 requests (:mod:`.cpix`) the way a vendor's key server does, so the
CPIX key provider and the whole encrypted path can be exercised here: each ``kid`` gets
a random key the first time it is asked for and the same key afterwards (kept in memory
only), with HLS AES-128 ``URIExtXKey`` signalling. It is not a key server to run in
production: keys die with the process and nothing is audited. Requests need
``Authorization: Bearer <KEYSERVER_TOKEN>``.

Settings: ``KEYSERVER_HOST`` (default 127.0.0.1), ``KEYSERVER_PORT`` (default 8470; 0 picks
one, logged in the ``keyserver listening`` line), ``KEYSERVER_TOKEN`` (secret, required).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import logging
import os
from dataclasses import dataclass, field

from aiohttp import web

from headend import logs
from headend.contentkeys.cipher import KEY_BYTES
from headend.contentkeys.cpix import (
    HLS_AES128_SYSTEM_ID,
    MAX_DOCUMENT_BYTES,
    kid_uuid,
    parse_request,
    render_response,
)
from headend.contentkeys.domain import DrmSignal, ProvidedKey
from headend.contentkeys.errors import InvalidCpixDocument
from headend.rpc.server import EXIT_FAILED, EXIT_STOPPED, load_settings, stop_event
from headend.settings import Env, SettingsError, env_int, env_secret, env_str

log = logging.getLogger(__name__)
CPIX_PATH = "/cpix"
DEFAULT_PORT = 8470


@dataclass(frozen=True, slots=True)
class KeyServerSettings:
    """Where the stand-in key server listens and the bearer token it wants."""

    token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Env) -> KeyServerSettings:
        """``KEYSERVER_*`` from the environment; ``SettingsError`` names the bad one."""
        token = env_secret(env, "KEYSERVER_TOKEN")
        if not token:
            raise SettingsError("KEYSERVER_TOKEN", "required (the bearer token callers send)")
        return cls(
            token=token,
            host=env_str(env, "KEYSERVER_HOST", "127.0.0.1"),
            port=env_int(env, "KEYSERVER_PORT", DEFAULT_PORT, low=0, high=65535),
            log_level=env_str(env, "LOG_LEVEL", "info"),
        )


def create_app(token: str) -> web.Application:
    """The key server's routes: ``POST /cpix``."""
    keys: dict[str, bytes] = {}  # kid -> key: the same kid always gets the same key
    expected = f"Bearer {token}".encode()

    async def cpix(request: web.Request) -> web.Response:
        offered = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(offered, expected):
            return web.Response(status=401, text="a bearer token is required\n")
        try:
            asked = parse_request(await request.read())
        except InvalidCpixDocument as err:
            return web.Response(status=400, text=f"{err.reason}\n")
        key = keys.setdefault(asked.key_id, os.urandom(KEY_BYTES))
        uri = base64.b64encode(f"urn:uuid:{kid_uuid(asked.key_id)}".encode()).decode()
        signals = tuple(
            DrmSignal(system_id, uri_ext_x_key=uri)
            for system_id in asked.system_ids
            if system_id == HLS_AES128_SYSTEM_ID
        )
        log.info("key served", extra={"kid": asked.key_id, "period": asked.period})
        document = render_response(asked, ProvidedKey(asked.key_id, key, signals))
        return web.Response(body=document, content_type="application/xml")

    app = web.Application(client_max_size=MAX_DOCUMENT_BYTES)
    app.router.add_post(CPIX_PATH, cpix)
    return app


async def _serve(settings: KeyServerSettings) -> int:
    stop = stop_event()
    runner = web.AppRunner(create_app(settings.token), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as err:
        await runner.cleanup()
        log.error("cannot listen", extra={"error": str(err)})
        return EXIT_FAILED
    port = int(runner.addresses[0][1])
    log.info("keyserver listening", extra={"address": f"{settings.host}:{port}"})
    await stop.wait()
    await runner.cleanup()
    return EXIT_STOPPED


def main() -> None:
    """Serve until SIGTERM/SIGINT."""
    settings = load_settings("keyserver", KeyServerSettings.from_env)
    logs.configure("keyserver", settings.log_level)
    raise SystemExit(asyncio.run(_serve(settings)))


if __name__ == "__main__":
    main()
