"""Sizing's CDN controller refresh: what one controller replica's ``Controller.refresh``
costs Redis, on the server ``sizing_measure.py`` seeded (``scripts/sizing.py`` reports it).

Every front door HTTP worker is a controller replica, and each one refreshes every
``CDN_REFRESH_SECONDS`` (``cdn_ctl/routing/controller.py``): it reads the edge registry
(``EdgeStore.all``), publishes its lease counts and reads every other live replica's
(``EdgeStore.publish_leases``), and marks each edge's watched ``channel/rung`` for the
edge's prefetch sidecar (``EdgeStore.mark_watched``: an HSET and an EXPIRE for each edge
its leases are on).

Counted, not read from the code: the real ``Controller`` (its router holding leases on
registered edges, each edge with :func:`measure_refresh`'s ``watched`` channels on one
rung) refreshes under ``MONITOR`` in four set-ups: one edge or all the sample's, each
alone and with :data:`PEERS` other replicas' counts published. Their differences give the
commands per refresh, per edge, per other replica and per edge of its counts
(:class:`headend.sizing.Refresh`). The server's CPU clock times :data:`REPEATS` x
``CPU_ROUNDS`` refreshes without ``MONITOR`` (median) for the cost per edge, and as many
reads of the replicas' counts alone for the other replicas' share.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from sizing_calls import CPU_ROUNDS, monitored, server_cpu  # scripts/, beside this file

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.health import HealthMonitor, HealthPolicy, ProbeResult
from cdn_ctl.routing import Controller, Router
from cdn_ctl.store import EdgeStore
from headend.sizing import Calls, Refresh

# Other replicas whose lease counts the measured one reads (their cost is divided by it).
PEERS = 8
# Runs in one timed round (one refresh of a small sample is too quick to time alone).
REPEATS = 30
# How long the replicas' published counts live (the controller's lease TTL; any will do).
LEASE_TTL_SECONDS = 60
REGION = "440305"


async def _no_probe(edge: Edge) -> ProbeResult:
    """Never called: a refresh reads the monitor's states, it does not probe."""
    raise AssertionError(f"sizing does not probe {edge.edge_id}")


def _controller(store: EdgeStore, replica: str, edges: int, watched: int, rung: str) -> Controller:
    """A controller replica whose router holds ``watched`` leases (one channel each, on
    ``rung``) on each of ``edges`` edges."""
    router = Router()
    forever = time.time() + 86_400
    for e in range(edges):
        for c in range(watched):
            router.hold(
                f"{replica}-{e}-{c}", edge_id=f"sizing-e{e:05d}", channel=f"ch{c}.sizing.cn",
                expires_at=forever, rung=rung,
            )  # fmt: skip
    monitor = HealthMonitor(HealthPolicy(), probe=_no_probe)
    return Controller(
        store=store, router=router, monitor=monitor, replica_id=replica,
        lease_ttl_seconds=LEASE_TTL_SECONDS,
    )  # fmt: skip


async def _clear(redis: aioredis.Redis) -> None:
    """Remove every ``cdn:`` key an earlier set-up left (registry, counts, watch marks)."""
    keys = [key async for key in redis.scan_iter(match="cdn:*", count=1_000)]
    for i in range(0, len(keys), 1_000):
        await redis.delete(*keys[i : i + 1_000])


async def _setup(
    redis: aioredis.Redis, edges: int, peers: int, watched: int, rung: str
) -> tuple[EdgeStore, Controller]:
    """``edges`` registered edges, ``peers`` replicas' counts published on them, and the
    measured replica (leases on each edge), refreshed once so its watch hashes exist."""
    await _clear(redis)
    store = EdgeStore(redis)
    for e in range(edges):
        await store.create(
            Edge(
                f"sizing-e{e:05d}", REGION, Tier.EDGE, f"10.20.{e // 250}.{e % 250 + 1}", 8080,
                2_000, 20_000.0, 1_000.0, parent_id=f"sizing-county{e // 50}",
            )
        )  # fmt: skip
    for p in range(peers):
        await _controller(store, f"sizing-peer{p}", edges, watched, rung).refresh()
    replica = _controller(store, "sizing", edges, watched, rung)
    # Under MONITOR already, so the client's pool has the connections a refresh takes
    # beside MONITOR's (their HELLOs are no refresh's).
    await monitored(redis, functools.partial(_refresh, replica))
    return store, replica


async def _refresh(replica: Controller) -> None:
    if not await replica.refresh():
        raise RuntimeError(f"refresh failed: {replica.status.last_error}")


async def _cpu_us(redis: aioredis.Redis, run: Callable[[], Awaitable[object]]) -> float:
    """Redis CPU (us) of one ``run``: the median of CPU_ROUNDS rounds of :data:`REPEATS`."""
    spent = []
    for _ in range(CPU_ROUNDS):
        before = await server_cpu(redis)
        for _ in range(REPEATS):
            await run()
        spent.append((await server_cpu(redis) - before) * 1e6 / REPEATS)
    return statistics.median(spent)


async def measure_refresh(
    redis: aioredis.Redis,
    *,
    edges: int,
    watched: int,
    rung: str,
    progress: Callable[[str], None],
) -> Refresh:
    """What a controller replica's refresh costs Redis, from a sample of ``edges`` edges
    with ``watched`` channels played on ``rung`` on each (leaves no ``cdn:`` key).

    Commands are counted on whole refreshes, one edge against ``edges``, with and without
    :data:`PEERS` other replicas. The CPU per edge is timed on whole refreshes too; the
    other replicas' share is timed on their counts' reads alone (``EdgeStore.leases``:
    every live replica's hash, as a refresh reads the others'), where it is not lost in
    the rest of the refresh's cost."""
    if edges < 2 or watched < 1:
        raise ValueError("edges must be at least 2 and watched at least 1")
    counts, cpu, reads = {}, {}, {}
    for n, peers in ((1, 0), (edges, 0), (1, PEERS), (edges, PEERS)):
        store, replica = await _setup(redis, n, peers, watched, rung)
        counts[n, peers] = await monitored(redis, functools.partial(_refresh, replica))
        if peers:  # every live replica's counts: the peers' and the measured one's
            now = time.time()
            leases = functools.partial(store.leases, now=now, ttl_seconds=LEASE_TTL_SECONDS)
            reads[n] = await _cpu_us(redis, leases) / (peers + 1)
        else:
            cpu[n] = await _cpu_us(redis, functools.partial(_refresh, replica))
    await _clear(redis)

    def sent(n: int, peers: int) -> float:
        return float(counts[n, peers][0])

    def per(total: float, units: float) -> float:
        return max(0.0, total) / units

    edge = Calls(per(sent(edges, 0) - sent(1, 0), edges - 1), 0.0,
                 per(cpu[edges] - cpu[1], edges - 1))  # fmt: skip
    peer_one = (sent(1, PEERS) - sent(1, 0)) / PEERS
    peer_wide = (sent(edges, PEERS) - sent(edges, 0)) / PEERS
    peer_edge = Calls(per(peer_wide - peer_one, edges - 1), 0.0,
                      per(reads[edges] - reads[1], edges - 1))  # fmt: skip
    scripted = max(c[1] for c in counts.values())
    if scripted:
        raise RuntimeError(f"a refresh ran {scripted} commands in scripts: not modelled")
    cost = Refresh(
        fixed=Calls(sent(1, 0) - edge.sent, 0.0, max(0.0, cpu[1] - edge.cpu_us)),
        edge=edge,
        peer=Calls(peer_one - peer_edge.sent, 0.0, max(0.0, reads[1] - peer_edge.cpu_us)),
        peer_edge=peer_edge,
    )
    progress(
        f"  controller refresh ({edges} edges, {watched} channels watched on each): "
        f"{cost.fixed.sent:.0f} commands + {cost.edge.sent:.2f} an edge + "
        f"{cost.peer.sent:.2f} an other replica; {cost.fixed.cpu_us:.0f} us + "
        f"{cost.edge.cpu_us:.2f} us an edge + {cost.peer.cpu_us:.1f} us an other replica + "
        f"{cost.peer_edge.cpu_us:.3f} us an edge of its counts"
    )
    return cost
