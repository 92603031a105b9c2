"""The REST face on port 0 in front of real gRPC servers (one, or every service of the
platform), and a plain HTTP client for it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from cdn_ctl.server import create_server as create_cdn
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing, SigningKey
from epg.owners import OwnersSettings
from epg.server import create_server as create_epg
from epg.settings import EpgSettings
from headend.auth import KeyStore
from headend.rest import ApiServer, RestSettings, start_api
from headend.rpc import TARGETS, RpcServer, RpcSettings
from subscriber.server import create_server as create_subscriber
from subscriber.settings import SubscriberSettings
from tests.support.net import free_port
from transcode.archive import ArchiveIndex
from transcode.live import LiveManager
from transcode.server import create_server as create_transcode
from transcode.settings import ControlSettings, QueueSettings


@dataclass
class Reply:
    """One HTTP answer: status, headers, and the body as JSON (None when it is not JSON)."""

    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def problem(self) -> dict[str, Any]:
        """The body, checked to be an RFC 9457 problem of this status."""
        assert self.headers["Content-Type"].split(";")[0] == "application/problem+json", self.text
        body = json.loads(self.text)
        assert body["status"] == self.status
        assert body["type"] == "about:blank"
        assert body["title"]
        return body


@dataclass
class RestClient:
    """A plain aiohttp client of the face at ``base``."""

    base: str
    session: aiohttp.ClientSession
    server: ApiServer

    async def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Any = None,
    ) -> Reply:
        """One request; ``body`` is sent as JSON, ``data`` as it is."""
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        async with self.session.request(
            method, self.base + path, data=data, headers=sent, params=params
        ) as response:
            text = await response.text()
            return Reply(response.status, dict(response.headers), text)


@asynccontextmanager
async def rest_face(targets: Mapping[str, str], **settings: Any) -> AsyncIterator[RestClient]:
    """The face with ``targets`` (``EPG_TARGET`` -> address; the others point at a closed
    port) on 127.0.0.1 port 0, and a client session; both closed on exit."""
    closed = f"127.0.0.1:{free_port()}"
    chosen = tuple((name, targets.get(name, closed)) for name, _ in TARGETS)
    server, port = await start_api(RestSettings(targets=chosen, port=0, **settings))
    try:
        async with aiohttp.ClientSession() as session:
            yield RestClient(f"http://127.0.0.1:{port}", session, server)
    finally:
        await server.stop()


@asynccontextmanager
async def every_service(
    redis: aioredis.Redis, keys: KeyStore, work: Path
) -> AsyncIterator[dict[str, str]]:
    """Every gRPC server of the platform on port 0 over ``redis`` (transcode's live channels
    under ``work``): the face's targets (``EPG_TARGET`` -> address ...)."""
    started: list[RpcServer] = []
    origin = work / "origin"
    manager = LiveManager(redis=redis, archive=ArchiveIndex(redis), origin_root=origin)
    try:
        epg, epg_port = await create_epg(
            EpgSettings(rpc=RpcSettings(port=0)), redis=redis, keys=keys
        )
        started.append(epg)
        # Subscriber and transcode ask this EPG which channels a broadcaster owns.
        owners = OwnersSettings(target=f"127.0.0.1:{epg_port}")
        sub, sub_port = await create_subscriber(
            SubscriberSettings(rpc=RpcSettings(port=0), owners=owners), redis=redis, keys=keys
        )
        started.append(sub)
        control = ControlSettings(
            rpc=RpcSettings(port=0), redis_url="unused://", origin_root=origin,
            queue=QueueSettings(), owners=owners,
        )  # fmt: skip
        tc, tc_port = await create_transcode(control, redis=redis, keys=keys, channels=manager)
        started.append(tc)
        ring = KeyRing((SigningKey("k1", b"rest-security-secret-0123"),), "k1")
        cdn, cdn_port = await create_cdn(
            CdnSettings(rpc=RpcSettings(port=0), keys=ring), redis=redis, keys=keys
        )
        started.append(cdn)
        ports = {"EPG_TARGET": epg_port, "SUBSCRIBER_TARGET": sub_port,
                 "TRANSCODE_TARGET": tc_port, "CDN_TARGET": cdn_port}  # fmt: skip
        yield {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        await manager.close()
        for server in started:
            await server.stop(0)
