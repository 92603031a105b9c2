"""The standalone node process: ``python -m transcode node``.

It connects to the farm's Redis, runs a :class:`~transcode.farm.node.Node` over its
own :class:`~transcode.live.LiveManager` (with the origin pusher when
``TC_ORIGIN_PUSH_URLS`` is set), serves metrics, and stops on SIGTERM/SIGINT with
the exit codes of every service (``headend.rpc.server``).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis

from headend import logs
from headend.contentkeys import ContentKeySettings
from headend.metrics import MetricsEndpoint
from headend.redisconn import RedisUnreachable, connect_checked
from headend.rpc.server import EXIT_FAILED, load_settings, stop_event
from headend.settings import Env
from headend.tasks import Supervisor, SupervisorMetrics
from transcode.archive import ArchiveIndex
from transcode.farm.node import Node
from transcode.farm.ownership import FarmMetrics
from transcode.live import LiveManager
from transcode.live.encryption import live_encryption
from transcode.live.multicast.collect import MulticastMetricsDir
from transcode.live.push import Pusher, PushSettings, check_root
from transcode.settings import LiveSettings, NodeProcessSettings, NodeSettings, SourceSettings
from transcode.sources import SourceGuard

log = logging.getLogger(__name__)

_NAME = "transcode-node"


class NodeParts(Protocol):
    """The settings a node is built from (a node process's, or a control's embedded one)."""

    @property
    def origin_root(self) -> Path: ...

    @property
    def sources(self) -> SourceSettings: ...

    @property
    def live(self) -> LiveSettings: ...

    @property
    def node(self) -> NodeSettings: ...

    @property
    def content_keys(self) -> ContentKeySettings: ...


def assemble(
    settings: NodeParts,
    *,
    redis: aioredis.Redis,
    index: ArchiveIndex,
    push: PushSettings,
    tasks: Supervisor,
) -> tuple[Node, Pusher]:
    """A node over a live manager of its own, and the pusher mirroring what it publishes
    (idle when ``push`` is off); neither is started. Metrics go on ``tasks``' registry,
    with the multicast processes' (``transcode.live.multicast.collect``)."""
    registry = tasks.metrics.registry
    multicast = settings.live.multicast.enabled
    multicast_metrics = MulticastMetricsDir(registry) if multicast else None
    pusher = Pusher(push, root=settings.origin_root, registry=registry, archive=index)
    manager = LiveManager(
        redis=redis,
        archive=index,
        origin_root=settings.origin_root,
        sources=SourceGuard(settings.sources),
        settings=settings.live,
        tasks=tasks,
        registry=registry,
        observer=pusher.observe,
        encryption=live_encryption(settings.content_keys, redis),
        multicast_metrics=multicast_metrics,
    )
    node = Node(
        settings.node,
        redis=redis,
        manager=manager,
        metrics=FarmMetrics(registry),
        on_ended=pusher.ended,
    )
    pusher.bind(node.leases)
    return node, pusher


async def run_node(
    settings: NodeProcessSettings, *, stop: asyncio.Event, push: PushSettings | None = None
) -> None:
    """Run a standalone node until ``stop``; ``RedisUnreachable`` if Redis does not answer.
    With ``push`` on, every published file is mirrored to the origins (``live/push.py``);
    ``SettingsError`` if ``ORIGIN_ROOT`` is an origin's root then."""
    push = push or PushSettings()
    check_root(push, settings.origin_root)
    client = await connect_checked(settings.redis_url, settings.redis, name=_NAME)
    supervisor_metrics = SupervisorMetrics()
    registry = supervisor_metrics.registry
    tasks = Supervisor(
        backoff=settings.live.restart_backoff,
        metrics=supervisor_metrics,
        stop_seconds=settings.live.stop_seconds,
    )
    node, pusher = assemble(
        settings, redis=client, index=ArchiveIndex(client), push=push, tasks=tasks
    )
    pusher.start()
    endpoint = None
    if settings.node.metrics_port is not None:
        endpoint = MetricsEndpoint(registry, settings.node.metrics_host, settings.node.metrics_port)
    node.start()
    log.info("transcode node ready", extra={"node": node.id, "group": settings.node.group,
                                            "capacity": settings.node.capacity_units})  # fmt: skip
    try:
        await stop.wait()
    finally:
        await node.close()
        await pusher.close()
        await tasks.close()
        if endpoint is not None:
            endpoint.close()
        await client.aclose()


def _load(env: Env) -> tuple[NodeProcessSettings, PushSettings]:
    settings = NodeProcessSettings.from_env(env)
    push = PushSettings.from_env(env)
    check_root(push, settings.origin_root)
    return settings, push


async def _serve(settings: NodeProcessSettings, push: PushSettings) -> None:
    await run_node(settings, stop=stop_event(), push=push)


def main() -> None:
    """``python -m transcode node``: a transcode node until SIGTERM/SIGINT, with the exit
    codes of every service (``headend.rpc.server``)."""
    settings, push = load_settings(_NAME, _load)
    logs.configure(_NAME, settings.log_level)
    try:
        asyncio.run(_serve(settings, push))
    except RedisUnreachable as err:
        print(f"{_NAME}: {err}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from err
