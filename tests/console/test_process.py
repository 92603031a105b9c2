"""``python -m console``: settings from the environment, naming a bad one; the process
serves, counts its requests by route and status, and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from console import ConsoleSettings
from console.settings import DEFAULT_PORT
from headend.local import CONSOLE_PORT
from headend.rest.settings import RestSettings
from headend.settings import SettingsError
from tests.support.console import ConsoleFace
from tests.support.net import free_port
from tests.support.tokens import Tokens


def test_defaults_are_the_platforms() -> None:
    settings = ConsoleSettings.from_env({})
    assert settings.port == DEFAULT_PORT == CONSOLE_PORT
    assert (settings.session_idle_seconds, settings.session_max_seconds) == (1800, 43200)
    assert settings.cookie_secure is False
    assert settings.metrics_port is None
    # The services where the REST face finds them: one list of addresses.
    assert settings.targets == RestSettings.from_env({}).targets


def test_settings_are_read() -> None:
    settings = ConsoleSettings.from_env(
        {"CONSOLE_PORT": "9000", "CONSOLE_COOKIE_SECURE": "true", "CDN_TARGET": "cdn:1",
         "CONSOLE_SESSION_IDLE_SECONDS": "60", "CONSOLE_SESSION_MAX_SECONDS": "3600",
         "CONSOLE_METRICS_PORT": "9100"}
    )  # fmt: skip
    assert (settings.port, settings.cookie_secure, settings.metrics_port) == (9000, True, 9100)
    assert (settings.session_idle_seconds, settings.session_max_seconds) == (60, 3600)
    assert settings.target("CDN_TARGET") == "cdn:1"


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"CONSOLE_PORT": "http"}, "CONSOLE_PORT", id="port"),
        pytest.param({"CONSOLE_COOKIE_SECURE": "maybe"}, "CONSOLE_COOKIE_SECURE", id="secure"),
        pytest.param(
            {"CONSOLE_SESSION_IDLE_SECONDS": "0"}, "CONSOLE_SESSION_IDLE_SECONDS", id="idle"
        ),
        pytest.param({"CONSOLE_SESSION_MAX_SECONDS": "x"}, "CONSOLE_SESSION_MAX_SECONDS", id="max"),
        pytest.param({"GRPC_CLIENT_CERT_FILE": "/x"}, "GRPC_CLIENT_CERT_FILE", id="tls"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        ConsoleSettings.from_env(env)
    assert info.value.name == name


async def test_requests_are_counted_by_route_and_status(
    console: ConsoleFace, tokens: Tokens
) -> None:
    async with console.operator() as op:
        await op.login(await tokens())
        await op.get("/api/channels/news1.cn.json")
        await op.get("/nope")
    registry: CollectorRegistry = console.server.metrics.registry

    def count(route: str, status: str) -> float | None:
        labels = {"route": route, "status": status}
        return registry.get_sample_value("console_http_requests_total", labels)

    assert count("POST /login", "303") == 1
    assert count("GET /api/channels/{channel}.json", "200") == 1
    assert count("unmatched", "404") == 1
    assert (
        registry.get_sample_value("console_http_request_seconds_count", {"route": "GET /channels"})
        == 1
    )


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONSOLE_", "GRPC_CLIENT_"))}
    return {**env, "LOG_LEVEL": "info", **extra}


async def test_the_process_serves_and_stops_on_sigterm() -> None:
    metrics = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console",
        env=_env(CONSOLE_PORT="0", CONSOLE_METRICS_PORT=str(metrics)),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    port = 0
    while not port:
        line = json.loads(await proc.stderr.readline())
        if line["msg"] == "console listening":
            port = int(line["address"].rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    form = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{url}/login").read())
    assert b'name="key"' in form
    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
    )
    assert 'console_http_requests_total{route="GET /login",status="200"}' in text
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_a_bad_setting_exits_2_naming_it() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "console",
        env=_env(CONSOLE_PORT="http"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "CONSOLE_PORT" in err.decode()
