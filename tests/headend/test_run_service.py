"""``run_service``: one start-up and shutdown path, and one set of exit codes, for every server.

A small probe service (a gRPC server with one component beside it) runs as a real
process; start-up failures are one line on stderr, and the component is stopped
whether the process is signalled after start-up or during it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from headend.auth import KeyStore
from headend.redisproc import RedisServer
from headend.rpc import RpcSettings, StartupError, start_server
from headend.rpc.server import EXIT_FAILED, EXIT_SETTINGS, EXIT_STOPPED

# The probe: PROBE_* gRPC settings, REDIS_URL, and a component that reports on stdout
# (with PROBE_HANG it never finishes starting, so the process is signalled mid-start).
PROBE = """
import asyncio, contextlib, os
from dataclasses import dataclass, field

from headend.auth import KeyStore
from headend.redisconn import RedisSettings
from headend.rpc import RpcSettings, run_service, start_server
from headend.settings import env_redis_url


@dataclass(frozen=True)
class Settings:
    rpc: RpcSettings
    redis_url: str | None
    redis: RedisSettings = field(default_factory=RedisSettings)
    log_level: str = "info"

    @classmethod
    def from_env(cls, env):
        return cls(
            RpcSettings.from_env(env, "PROBE", default_port=0),
            env_redis_url(env),
            RedisSettings.from_env(env),
        )


@contextlib.asynccontextmanager
async def component():
    print("component started", flush=True)
    if os.environ.get("PROBE_HANG"):
        try:
            await asyncio.Event().wait()
        finally:
            print("component unwound", flush=True)
    yield
    print("component stopped", flush=True)


async def create(settings, redis):
    return await start_server(
        settings.rpc, services=[], authenticator=KeyStore(redis), components=[component()]
    )


run_service("probe", Settings.from_env, create)
"""


async def _probe(repo_root: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PROBE_", "REDIS_"))}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", PROBE,
        cwd=repo_root, env={**clean, "PROBE_DRAIN_SECONDS": "0", **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _ready_port(proc: asyncio.subprocess.Process) -> int:
    assert proc.stderr is not None
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, "the probe exited before it was ready"
        record = json.loads(line)
        if record["msg"] == "probe service ready":
            return int(record["port"])


async def _finish(proc: asyncio.subprocess.Process) -> tuple[int, list[str], str]:
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode().splitlines(), err.decode()


@pytest.mark.parametrize(
    ("env", "code", "needle"),
    [
        pytest.param({"REDIS_URL": "redis://x", "PROBE_GRPC_PORT": "http"},
                     EXIT_SETTINGS, "setting PROBE_GRPC_PORT", id="bad-setting"),
        pytest.param({}, EXIT_SETTINGS, "REDIS_URL is required", id="no-redis-url"),
        pytest.param({"REDIS_URL": "unix:///nonexistent/redis.sock"},
                     EXIT_FAILED, "cannot reach Redis", id="redis-unreachable"),
    ],
)  # fmt: skip
async def test_a_process_that_cannot_start_says_why_in_one_line(
    repo_root: Path, env: dict[str, str], code: int, needle: str
) -> None:
    returncode, out, err = await _finish(await _probe(repo_root, env))

    assert returncode == code
    (line,) = err.strip().splitlines()
    assert line.startswith("probe: ")
    assert needle in line
    assert out == []  # nothing was started


async def test_a_port_in_use_exits_failed_before_any_component_starts(
    repo_root: Path, redis_server: RedisServer, busy_port: int
) -> None:
    env = {"REDIS_URL": redis_server.url, "PROBE_GRPC_PORT": str(busy_port)}

    returncode, out, err = await _finish(await _probe(repo_root, env))

    assert returncode == EXIT_FAILED
    assert f"probe: cannot listen on 127.0.0.1:{busy_port}" in err.strip().splitlines()[-1]
    assert out == []


async def test_sigterm_stops_the_server_then_its_components_and_exits_zero(
    repo_root: Path, redis_server: RedisServer
) -> None:
    proc = await _probe(repo_root, {"REDIS_URL": redis_server.url})
    port = await _ready_port(proc)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    proc.send_signal(signal.SIGTERM)
    returncode, out, _ = await _finish(proc)

    assert returncode == EXIT_STOPPED
    assert out == ["component started", "component stopped"]


async def _health(port: int) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return int(reply.status)


async def _until_health(port: int, status: int) -> None:
    for _ in range(300):
        if await _health(port) == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health never became {status}")


async def test_health_follows_the_store_past_a_grace_and_comes_back_with_it(
    repo_root: Path, tmp_path: Path
) -> None:
    store = RedisServer(tmp_path / "redis")
    store.start()
    proc = await _probe(
        repo_root,
        {"REDIS_URL": store.url, "REDIS_UNREACHABLE_GRACE_SECONDS": "1", "REDIS_RETRIES": "0"},
    )
    try:
        port = await _ready_port(proc)
        assert await _health(port) == health_pb2.HealthCheckResponse.SERVING
        store.kill()
        await _until_health(port, health_pb2.HealthCheckResponse.NOT_SERVING)
        store.start()
        await _until_health(port, health_pb2.HealthCheckResponse.SERVING)
    finally:
        proc.send_signal(signal.SIGTERM)
        returncode, _, err = await _finish(proc)
        store.stop()
    assert returncode == EXIT_STOPPED
    assert "store health changed" in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_a_signal_during_start_up_unwinds_what_started_and_exits_zero(
    repo_root: Path, redis_server: RedisServer, sig: signal.Signals
) -> None:
    proc = await _probe(repo_root, {"REDIS_URL": redis_server.url, "PROBE_HANG": "1"})
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"component started\n"

    proc.send_signal(sig)
    returncode, out, err = await _finish(proc)

    assert returncode == EXIT_STOPPED
    assert out == ["component unwound"]
    assert "Traceback" not in err


# ---------------------------------------------------------------- components, in process


def _component(
    name: str, events: list[str], *, fail: bool = False
) -> contextlib.AbstractAsyncContextManager[None]:
    @contextlib.asynccontextmanager
    async def run() -> AsyncIterator[None]:
        events.append(f"start {name}")
        if fail:
            raise StartupError(f"{name} cannot start")
        try:
            yield
        finally:
            events.append(f"stop {name}")

    return run()


async def test_components_start_in_order_and_stop_after_the_server_in_reverse(
    keys: KeyStore,
) -> None:
    events: list[str] = []
    server, port = await start_server(
        RpcSettings(port=0, grace_seconds=0),
        services=[],
        authenticator=keys,
        components=[_component("a", events), _component("b", events)],
    )
    assert events == ["start a", "start b"]

    await server.stop(0)

    assert events == ["start a", "start b", "stop b", "stop a"]
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # the server's port is free again


async def test_a_component_that_cannot_start_stops_the_others_and_frees_the_port(
    keys: KeyStore,
) -> None:
    events: list[str] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    with pytest.raises(StartupError, match="b cannot start"):
        await start_server(
            RpcSettings(port=port, grace_seconds=0),
            services=[],
            authenticator=keys,
            components=[_component("a", events), _component("b", events, fail=True)],
        )

    assert events == ["start a", "start b", "stop a"]
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
