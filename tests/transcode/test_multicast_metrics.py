"""A node's multicast processes on the node's own ``/metrics`` (prometheus_client's
multiprocess mode, ``transcode.live.multicast.collect``): the real process, started by the
node's side (``MulticastProcess``) inside a namespace of the test's own, its series read
over HTTP from the node's endpoint while it sends, its live gauge gone once it ends, its
counters kept in the sum; and the directory's life with a node built by ``assemble``."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import struct
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter, values
from prometheus_client.parser import text_string_to_metric_families

from headend.metrics import MetricsEndpoint
from headend.tasks import Supervisor, SupervisorMetrics
from tests.support.live import FAST, Feed, live_channel
from tests.support.mpegts import LiveWindowWriter, hls_segments
from tests.support.netns import in_netns, needs_netns, netns
from transcode.archive import ArchiveIndex
from transcode.domain import Multicast, MulticastProtocol
from transcode.farm.process import assemble
from transcode.live.multicast.collect import MULTIPROC_ENV, MulticastMetricsDir
from transcode.live.multicast.process import MulticastProcess
from transcode.live.push import PushSettings
from transcode.settings import LiveSettings, MulticastSettings, NodeProcessSettings

DATAGRAMS = "transcode_multicast_datagrams_total"
NULL_SHARE = "transcode_multicast_null_share"
CONTENT = "transcode_multicast_packets_total"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(port: int) -> Samples:
    """The node's /metrics over HTTP, as {(sample name, labels): value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _news(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({"channel": "news", **labels}.items()))


async def _until(port: int, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``check`` holds (bounded by the caller's timeout)."""
    while True:
        samples = await asyncio.to_thread(_scrape, port)
        if check(samples):
            return samples
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("mcmetrics")
    return hls_segments(root, "clip", 4, source="testsrc2", rate=25)


@pytest.fixture
def ns() -> Iterator[str]:
    with netns() as name:
        yield name


@needs_netns
@pytest.mark.timeout(90)
async def test_the_node_metrics_show_each_multicast_process_and_keep_its_counters(
    clip: list[Path], ns: str, tmp_path: Path
) -> None:
    registry = CollectorRegistry()
    own = Counter("test_node_own_total", "One of the node's ordinary metrics.", registry=registry)
    own.inc(5)
    metrics_dir = MulticastMetricsDir(registry, parent=tmp_path)
    endpoint = MetricsEndpoint(registry, "127.0.0.1", 0)
    writer = LiveWindowWriter(tmp_path / "news")
    for segment in clip:
        writer.publish(segment)
    group = f"239.{secrets.randbelow(200) + 10}.{secrets.randbelow(250)}.1"
    multicast = Multicast(group, 5000 + secrets.randbelow(1000) * 2, MulticastProtocol.RTP)

    def runner() -> MulticastProcess:
        process = MulticastProcess(writer.rung_dir.parent, "news", multicast, stop_seconds=5,
                                   metrics_dir=metrics_dir)  # fmt: skip
        process.command = in_netns(ns, process.command)
        return process

    first, second = runner(), runner()
    try:
        task = asyncio.create_task(first.run())
        await first.started.wait()
        pid = first.pid
        assert pid is not None
        async with asyncio.timeout(30):
            seen = await _until(endpoint.port, lambda s: s.get(_news(DATAGRAMS), 0) > 0)
            # Growing while it sends, with its packets and live gauge beside it.
            grown = await _until(
                endpoint.port,
                lambda s: (
                    s.get(_news(DATAGRAMS), 0) > seen[_news(DATAGRAMS)]
                    and s.get(_news(CONTENT, kind="content"), 0) > 0
                    and _news(NULL_SHARE) in s
                ),
            )
        assert 0 <= grown[_news(NULL_SHARE)] <= 1
        assert grown[("test_node_own_total", ())] == 5  # the node's own metrics are there too
        assert (metrics_dir.path / f"gauge_livemax_{pid}.db").is_file()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert first.pid is None
        ended = await asyncio.to_thread(_scrape, endpoint.port)
        assert _news(NULL_SHARE) not in ended  # the ended process's gauge is dropped
        assert ended[_news(DATAGRAMS)] >= grown[_news(DATAGRAMS)]  # its count stays
        assert not (metrics_dir.path / f"gauge_livemax_{pid}.db").exists()
        assert (metrics_dir.path / f"counter_{pid}.db").is_file()

        # A restarted process adds to the channel's counters: they never go down.
        task = asyncio.create_task(second.run())
        async with asyncio.timeout(30):
            again = await _until(
                endpoint.port,
                lambda s: (
                    s.get(_news(DATAGRAMS), 0) > ended[_news(DATAGRAMS)] and _news(NULL_SHARE) in s
                ),
            )
        assert second.pid != pid
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        last = await asyncio.to_thread(_scrape, endpoint.port)
        assert last[_news(DATAGRAMS)] >= again[_news(DATAGRAMS)]
        assert _news(NULL_SHARE) not in last
    finally:
        first.kill_now()
        second.kill_now()
        metrics_dir.close()
    # Closed (the node stopped): the directory is gone and nothing of it is served.
    assert not metrics_dir.path.exists()
    closed = await asyncio.to_thread(_scrape, endpoint.port)
    endpoint.close()
    assert not any(name.startswith("transcode_multicast_") for name, _ in closed)
    assert closed[("test_node_own_total", ())] == 5
    assert values.ValueClass is values.MutexValue  # the node's values stay in memory
    assert MULTIPROC_ENV not in os.environ


def test_a_child_environment_carries_the_directory_and_the_node_keeps_its_own(
    tmp_path: Path,
) -> None:
    registry = CollectorRegistry()
    metrics_dir = MulticastMetricsDir(registry, parent=tmp_path)
    try:
        base = {"PATH": "/bin", "prometheus_multiproc_dir": "/elsewhere", MULTIPROC_ENV: "/old"}
        env = metrics_dir.child_env(base)
        assert env == {"PATH": "/bin", MULTIPROC_ENV: str(metrics_dir.path)}
        assert base[MULTIPROC_ENV] == "/old"  # the node's environment is left alone
        assert metrics_dir.child_env()[MULTIPROC_ENV] == str(metrics_dir.path)
        assert MULTIPROC_ENV not in os.environ
        assert metrics_dir.path.parent == tmp_path
        assert oct(metrics_dir.path.stat().st_mode & 0o777) == oct(0o700)
        assert list(metrics_dir.path.iterdir()) == []  # a new run starts with nothing stale
        other = MulticastMetricsDir(CollectorRegistry(), parent=tmp_path)
        assert other.path != metrics_dir.path  # two nodes on one host never share one
        other.close()
        metrics_dir.process_ended(os.getpid() + 1_000_000)  # nothing of it: nothing to do
    finally:
        metrics_dir.close()
    assert not metrics_dir.path.exists()
    metrics_dir.close()  # twice: nothing more
    metrics_dir.process_ended(1)  # after close: nothing to do
    assert list(registry.collect()) == []  # the collector is off the registry


def test_a_missing_parent_is_refused_and_leaves_nothing_registered(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    with pytest.raises(FileNotFoundError):
        MulticastMetricsDir(registry, parent=tmp_path / "missing")
    assert list(registry.collect()) == []
    assert not (tmp_path / "missing").exists()


def _child_counts(env: dict[str, str]) -> None:
    """A real child process counting as a multicast process does (the same metric)."""
    code = (
        "from transcode.live.multicast.sender import MulticastMetrics\n"
        "MulticastMetrics().datagrams.labels('probe').inc(3)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60,
                   cwd=Path(__file__).resolve().parents[2])  # fmt: skip


@pytest.mark.parametrize(
    ("enabled", "wired"), [pytest.param(True, True, id="on"), pytest.param(False, False, id="off")]
)
async def test_an_assembled_node_reads_its_multicast_processes_until_it_closes(
    redis: aioredis.Redis, tmp_path: Path, enabled: bool, wired: bool
) -> None:
    settings = NodeProcessSettings(
        redis_url="unused://",
        origin_root=tmp_path / "origin",
        live=LiveSettings(multicast=MulticastSettings(enabled=enabled)),
    )
    metrics = SupervisorMetrics()
    tasks = Supervisor(backoff=settings.live.restart_backoff, metrics=metrics, stop_seconds=1)
    node, pusher = assemble(
        settings, redis=redis, index=ArchiveIndex(redis), push=PushSettings(), tasks=tasks
    )
    metrics_dir = node.manager._multicast_metrics
    try:
        assert (metrics_dir is not None) is wired
        if metrics_dir is not None:
            await asyncio.to_thread(_child_counts, metrics_dir.child_env())
            sample = metrics.registry.get_sample_value(DATAGRAMS, {"channel": "probe"})
            assert sample == 3
    finally:
        await node.close()
        await pusher.close()
        await tasks.close()
    if metrics_dir is not None:
        assert not metrics_dir.path.exists()
        assert metrics.registry.get_sample_value(DATAGRAMS, {"channel": "probe"}) is None


def test_a_file_being_created_or_unreadable_never_fails_the_node_scrape(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    own = Counter("test_node_own_total", "One of the node's ordinary metrics.", registry=registry)
    own.inc()
    metrics_dir = MulticastMetricsDir(registry, parent=tmp_path)
    try:
        _child_counts(metrics_dir.child_env())
        # A starting process's file, opened but not sized yet: left out, the rest is read.
        (metrics_dir.path / "counter_999999999.db").touch()
        assert registry.get_sample_value(DATAGRAMS, {"channel": "probe"}) == 3
        # A file that cannot be read (its header claims more than it holds): the
        # processes' series are left out of this scrape, the node's own still served.
        broken = metrics_dir.path / "counter_999999998.db"
        broken.write_bytes(struct.pack("i", 64) + bytes(4))
        assert registry.get_sample_value(DATAGRAMS, {"channel": "probe"}) is None
        assert registry.get_sample_value("test_node_own_total") == 1
        broken.unlink()
        assert registry.get_sample_value(DATAGRAMS, {"channel": "probe"}) == 3
    finally:
        metrics_dir.close()


@needs_netns
@pytest.mark.timeout(120)
async def test_a_real_node_serves_its_channel_multicast_metrics(
    redis: aioredis.Redis, ns: str, tmp_path: Path
) -> None:
    """A node as ``python -m transcode node`` builds it (``assemble``, its registry on an
    HTTP endpoint), a live channel on a real FFmpeg feed with a multicast output, the
    process started by the node inside the namespace: its series on the node's /metrics
    while it sends; the channel stopped, the gauge gone and the count kept."""
    live = replace(FAST, multicast=MulticastSettings(exec_prefix=("ip", "netns", "exec", ns)))
    settings = NodeProcessSettings(redis_url="unused://", origin_root=tmp_path / "origin",
                                   live=live)  # fmt: skip
    metrics = SupervisorMetrics()
    tasks = Supervisor(backoff=live.restart_backoff, metrics=metrics, stop_seconds=5)
    node, pusher = assemble(
        settings, redis=redis, index=ArchiveIndex(redis), push=PushSettings(), tasks=tasks
    )
    endpoint = MetricsEndpoint(metrics.registry, "127.0.0.1", 0)
    group = f"239.{secrets.randbelow(200) + 10}.{secrets.randbelow(250)}.2"
    feed = Feed().start()
    channel = replace(live_channel("news", feed.source),
                      multicast=Multicast(group, 5002, MulticastProtocol.RTP))  # fmt: skip
    try:
        await node.manager.start(channel)
        async with asyncio.timeout(60):
            seen = await _until(endpoint.port, lambda s: s.get(_news(DATAGRAMS), 0) > 0)
            grown = await _until(
                endpoint.port,
                lambda s: (
                    s.get(_news(DATAGRAMS), 0) > seen[_news(DATAGRAMS)] and _news(NULL_SHARE) in s
                ),
            )
        # The node's own series sit beside them on the same endpoint.
        assert any(name.startswith("transcode_live_") for name, _ in grown)
        await node.manager.stop("news")
        stopped = await asyncio.to_thread(_scrape, endpoint.port)
        assert _news(NULL_SHARE) not in stopped
        assert stopped[_news(DATAGRAMS)] >= grown[_news(DATAGRAMS)]
    finally:
        feed.stop()
        metrics_dir = node.manager._multicast_metrics
        await node.close()
        await pusher.close()
        await tasks.close()
        endpoint.close()
    assert metrics_dir is not None
    assert not metrics_dir.path.exists()  # removed at the node's clean shutdown


@pytest.mark.parametrize(
    "replaced",
    [pytest.param(False, id="removed"), pytest.param(True, id="replaced-by-a-symlink")],
)
def test_a_directory_removed_under_the_node_is_made_anew_for_the_next_process(
    tmp_path: Path, replaced: bool
) -> None:
    registry = CollectorRegistry()
    metrics_dir = MulticastMetricsDir(registry, parent=tmp_path)
    first = metrics_dir.path
    elsewhere = tmp_path / "someone-elses"
    elsewhere.mkdir()
    try:
        shutil.rmtree(first)  # a temporary-file cleaner, the node idle
        if replaced:
            first.symlink_to(elsewhere)  # the name taken meanwhile, by someone counting too
            subprocess.run([sys.executable, "-c", "from prometheus_client import Counter\n"
                            f"Counter('{DATAGRAMS[:-6]}', 'x', ['channel']).labels('x').inc()"],
                           env={**os.environ, MULTIPROC_ENV: str(elsewhere)}, check=True,
                           timeout=60)  # fmt: skip
        assert list(registry.collect()) == []  # nothing to read: the scrape still answers
        _child_counts(metrics_dir.child_env())
        assert metrics_dir.path != first
        assert metrics_dir.path.is_dir()
        assert oct(metrics_dir.path.stat().st_mode & 0o777) == oct(0o700)
        assert registry.get_sample_value(DATAGRAMS, {"channel": "probe"}) == 3
        assert registry.get_sample_value(DATAGRAMS, {"channel": "x"}) is None  # not read
        assert len(list(elsewhere.iterdir())) == (1 if replaced else 0)  # nor written to
    finally:
        metrics_dir.close()
    assert not metrics_dir.path.exists()
