"""The operator console on port 0 in front of real gRPC servers, and an HTTP client that
logs in the way a browser does (the login form's CSRF token, cookies, the session's CSRF
token for POSTs)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
import redis.asyncio as aioredis

from cdn_ctl.domain import Health
from cdn_ctl.health import HealthMonitor, HealthPolicy
from cdn_ctl.routing import Controller, Router
from cdn_ctl.store import EdgeStore
from console import ConsoleServer, ConsoleSettings, start_console
from console.session import Clock
from headend.rpc import TARGETS, bearer, client_channel
from headend.seed import BoxSpec, Plan, SubscriberSpec, Targets, World, seed
from protos import cdn_pb2, cdn_pb2_grpc
from tests.support.net import free_port
from tests.support.world import OTHER_REGION, REGION, seed_world
from transcode.jobs import Job, JobState
from transcode.queue import JobQueue

_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@dataclass
class Answer:
    """One HTTP answer: status, headers and body text."""

    status: int
    headers: Mapping[str, str]
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Operator:
    """One browser's worth of console client: its own cookies, its session's CSRF token."""

    base: str
    http: aiohttp.ClientSession
    csrf: str = ""
    principal: str = ""
    history: list[Answer] = field(default_factory=list)

    async def request(
        self, method: str, path: str, *, data: Any = None, headers: Mapping[str, str] | None = None
    ) -> Answer:
        """One request, redirects not followed."""
        async with self.http.request(
            method, self.base + path, data=data, headers=headers, allow_redirects=False
        ) as response:
            answer = Answer(response.status, dict(response.headers), await response.text())
        self.history.append(answer)
        return answer

    async def get(self, path: str, **kwargs: Any) -> Answer:
        return await self.request("GET", path, **kwargs)

    async def login(self, key: str) -> Answer:
        """The login form, then its POST with ``key``; keeps the session's CSRF token."""
        form = await self.get("/login")
        token = _CSRF.search(form.text)
        assert token is not None, form.text
        answer = await self.request("POST", "/login", data={"csrf": token[1], "key": key})
        if answer.status == 303:
            page = await self.get(answer.headers["Location"])
            meta = _META.search(page.text)
            self.csrf = meta[1] if meta else ""
        return answer

    async def post(
        self, path: str, data: Mapping[str, str] | None = None, *, csrf: str | None = None
    ) -> Answer:
        """A POST as the page's script sends it: the CSRF header (``csrf``: another one)."""
        token = self.csrf if csrf is None else csrf
        headers = {"X-CSRF-Token": token, "Accept": "application/json"} if token else {}
        return await self.request("POST", path, data=dict(data or {}), headers=headers)

    def session_cookie(self) -> str:
        """The session id the browser holds."""
        return next(c.value for c in self.http.cookie_jar if c.key == "console_session")


@dataclass
class ConsoleFace:
    """The started console and a way to make operators of it."""

    base: str
    server: ConsoleServer

    @asynccontextmanager
    async def operator(self) -> AsyncIterator[Operator]:
        """A new client with its own cookie jar (cookies on 127.0.0.1 allowed)."""
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            yield Operator(self.base, http)


@asynccontextmanager
async def console_face(
    targets: Mapping[str, str], *, clock: Clock | None = None, **settings: Any
) -> AsyncIterator[ConsoleFace]:
    """The console with ``targets`` (``EPG_TARGET`` -> address; the others a closed port) on
    127.0.0.1 port 0; stopped on exit."""
    closed = f"127.0.0.1:{free_port()}"
    chosen = tuple((name, targets.get(name, closed)) for name, _ in TARGETS)
    config = ConsoleSettings(targets=chosen, port=0, **settings)
    server, port = await (
        start_console(config) if clock is None else start_console(config, clock=clock)
    )
    try:
        yield ConsoleFace(f"http://127.0.0.1:{port}", server)
    finally:
        await server.stop()


RIVAL = "rival"
RIVAL_MAC = "0a:00:00:00:00:01"


def rival_plan() -> Plan:
    """A second carrier, ``rival``, with one subscriber (``zed``) and one box, holding the
    platform's ``basic`` package (seed :func:`tests.support.world.journey_plan` first)."""
    return Plan(
        channels=(),
        guides={},
        carrier_id=RIVAL,
        carrier_name="Rival Telecom",
        network_type="telecom",
        packages=(),
        subscribers=(
            SubscriberSpec("zed", "Zed", OTHER_REGION, 1, ("basic",), (BoxSpec("z1", RIVAL_MAC),)),
        ),
    )


async def seed_console_world(targets: Mapping[str, str], api_key: str) -> World:
    """The journey world, the rival carrier, and the journey's three edges registered."""
    world = await seed_world(targets["EPG_TARGET"], targets["SUBSCRIBER_TARGET"], api_key)
    await seed(rival_plan(), Targets(targets["EPG_TARGET"], targets["SUBSCRIBER_TARGET"]), api_key)
    async with client_channel(targets["CDN_TARGET"]) as channel:
        cdn = cdn_pb2_grpc.CdnControlServiceStub(channel)
        for edge_id, region, port in EDGES:
            await cdn.RegisterEdge(
                cdn_pb2.RegisterEdgeRequest(
                    edge_id=edge_id,
                    edge=cdn_pb2.Edge(
                        region=region, tier=cdn_pb2.TIER_EDGE, host="127.0.0.1", port=port,
                        capacity_sessions=100, capacity_mbps=1000, uplink_mbps=1000,
                    ),
                ),
                metadata=bearer(api_key),
            )  # fmt: skip
    return world


# The journey's edges (two village edges in the boxes' county, one in another), at ports
# nothing listens on: the console reads the registry, routing tests ask the router.
EDGES = (("edge-a", REGION, 9), ("edge-b", REGION, 11), ("edge-c", OTHER_REGION, 13))


async def dead_letters(
    redis: aioredis.Redis, *job_ids: str, source: str = "/m/a.mp4", profile: str = "default"
) -> None:
    """Jobs of ``source`` dead-lettered through the queue's own steps (no FFmpeg, no
    worker), each job's asset named as the job."""
    queue = JobQueue(redis)
    now = datetime.now(UTC)
    for job_id in job_ids:
        await queue.submit(Job(job_id, source, job_id, profile, JobState.QUEUED, now, now))
        delivery = await queue.next_delivery("console-test", block_ms=10, claim_idle_ms=60_000)
        assert delivery is not None
        await queue.begin(delivery, "console-test")
        await queue.dead_letter(delivery, reason=f"DiskFull: {job_id}")


async def routing_to(redis: aioredis.Redis, channel: str, region: str) -> str:
    """The edge a new lease of ``channel`` in ``region`` gets now: a controller's router
    loaded from the registry the console changes, every edge taken as up (nothing listens
    at the registered edges' ports, so nothing is probed)."""
    router = Router()
    controller = Controller(
        store=EdgeStore(redis),
        router=router,
        monitor=HealthMonitor(HealthPolicy(), probe=_NoProbes()),
        replica_id="console-test",
        lease_ttl_seconds=60,
    )
    assert await controller.refresh()
    router.set_health(dict.fromkeys(router.edges, Health.UP))
    return router.route(channel, region).edge.edge_id


class _NoProbes:
    """A prober never called: :func:`routing_to` only refreshes from the registry."""

    async def __call__(self, edge: Any) -> Any:
        raise AssertionError("routing_to does not probe")
