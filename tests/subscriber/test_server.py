"""``python -m subscriber``: settings, start-up failures as one clear line, serve and stop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from headend.redisproc import RedisServer
from headend.settings import SettingsError
from subscriber.settings import DEFAULT_PORT, SubscriberSettings


def test_settings_defaults_and_overrides() -> None:
    default = SubscriberSettings.from_env({})
    assert (default.rpc.port, default.lease_ttl_seconds, default.redis_url) == (
        DEFAULT_PORT,
        60.0,
        None,
    )
    # Where it asks which channels a broadcaster owns: the EPG's usual address.
    assert (default.owners.target, default.owners.tls) == ("127.0.0.1:50051", None)
    custom = SubscriberSettings.from_env(
        {
            "EPG_TARGET": "epg.internal:50051",
            "SUBSCRIBER_GRPC_PORT": "6000",
            "SUBSCRIBER_LEASE_GRACE_SECONDS": "3",
            "SUBSCRIBER_METRICS_PORT": "9101",
            "REDIS_URL": "redis://r:6379/0",
        }
    )
    assert (custom.rpc.port, custom.lease_grace_seconds, custom.rpc.metrics_port) == (
        6000,
        3.0,
        9101,
    )
    assert custom.owners.target == "epg.internal:50051"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param(
            {"SUBSCRIBER_LEASE_TTL_SECONDS": "0"}, "SUBSCRIBER_LEASE_TTL_SECONDS", id="ttl"
        ),
        pytest.param(
            {"SUBSCRIBER_DEFAULT_MAX_STREAMS": "x"}, "SUBSCRIBER_DEFAULT_MAX_STREAMS", id="streams"
        ),
        pytest.param({"REDIS_URL": "localhost:6379"}, "REDIS_URL", id="redis-url"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        SubscriberSettings.from_env(env)
    assert info.value.name == name


async def _run(env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "subscriber",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()


@pytest.mark.parametrize(
    ("env", "code", "needle"),
    [
        pytest.param({"REDIS_URL": ""}, 2, "REDIS_URL is required", id="no-redis"),
        pytest.param(
            {"REDIS_URL": "unix:///nonexistent/redis.sock"},
            1,
            "cannot reach Redis",
            id="unreachable",
        ),
        pytest.param(
            {"REDIS_URL": "redis://x", "SUBSCRIBER_GRPC_PORT": "http"},
            2,
            "SUBSCRIBER_GRPC_PORT",
            id="bad-port",
        ),
    ],
)
async def test_startup_failures_are_one_clear_line(
    env: dict[str, str], code: int, needle: str
) -> None:
    returncode, err = await _run(env)
    assert returncode == code
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert needle in lines[0]


async def test_serves_health_and_stops_on_sigterm(redis_server: RedisServer) -> None:
    env = {**os.environ, "REDIS_URL": redis_server.url, "SUBSCRIBER_GRPC_PORT": "0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "subscriber",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    port = 0
    while not port:
        line = await proc.stderr.readline()
        assert line, "process exited before it was ready"
        record = json.loads(line)
        if record["msg"] == "subscriber service ready":
            port = record["port"]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(service="headend.subscriber.v1.SubscriberService")
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0
