"""``python -m headend.rest``: settings from the environment, naming a bad one; the process
serves, exposes its metrics and stops on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import urllib.request

import pytest

from cdn_ctl.cli import DEFAULT_TARGET as CDN_DEFAULT
from epg.cli_common import DEFAULT_TARGET as EPG_DEFAULT
from headend.local import API_PORT
from headend.rest import PUBLIC_RPCS, RestSettings
from headend.rest.settings import DEFAULT_PORT
from headend.settings import SettingsError
from subscriber.cli_common import DEFAULT_TARGET as SUBSCRIBER_DEFAULT
from subscriber.server.app import PUBLIC_METHODS, SERVICE_NAME
from tests.support.net import free_port
from transcode.cli import DEFAULT_TARGET as TRANSCODE_DEFAULT


def test_defaults_are_the_platforms() -> None:
    settings = RestSettings.from_env({})
    assert settings.port == DEFAULT_PORT == API_PORT
    assert settings.max_body_bytes == 1 << 20
    assert settings.metrics_port is None
    # The addresses every caller of the services defaults to.
    assert dict(settings.targets) == {
        "EPG_TARGET": EPG_DEFAULT,
        "SUBSCRIBER_TARGET": SUBSCRIBER_DEFAULT,
        "TRANSCODE_TARGET": TRANSCODE_DEFAULT,
        "CDN_TARGET": CDN_DEFAULT,
    }
    # What the document calls public is what the servers let in without a key.
    assert {f"/{SERVICE_NAME}/{m}" for m in PUBLIC_METHODS} == PUBLIC_RPCS


def test_settings_are_read() -> None:
    settings = RestSettings.from_env(
        {"API_PORT": "9000", "API_MAX_BODY_BYTES": "2048", "EPG_TARGET": "epg:1",
         "API_METRICS_PORT": "9100", "API_TIMEOUT_SECONDS": "5"}
    )  # fmt: skip
    assert (settings.port, settings.max_body_bytes, settings.metrics_port) == (9000, 2048, 9100)
    assert (settings.target("EPG_TARGET"), settings.timeout_seconds) == ("epg:1", 5.0)


@pytest.mark.parametrize(
    ("env", "name"),
    [
        pytest.param({"API_PORT": "http"}, "API_PORT", id="port"),
        pytest.param({"API_MAX_BODY_BYTES": "10"}, "API_MAX_BODY_BYTES", id="body"),
        pytest.param({"API_TIMEOUT_SECONDS": "0"}, "API_TIMEOUT_SECONDS", id="timeout"),
        pytest.param({"GRPC_CLIENT_CERT_FILE": "/x"}, "GRPC_CLIENT_CERT_FILE", id="tls"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], name: str) -> None:
    with pytest.raises(SettingsError) as info:
        RestSettings.from_env(env)
    assert info.value.name == name


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "GRPC_CLIENT_"))}
    return {**env, "LOG_LEVEL": "info", **extra}


async def test_the_process_serves_and_stops_on_sigterm() -> None:
    metrics = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend.rest",
        env=_env(API_PORT="0", API_METRICS_PORT=str(metrics)),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    port = 0
    while not port:
        line = json.loads(await proc.stderr.readline())
        if line["msg"] == "api listening":
            port = int(line["address"].rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    spec = await asyncio.to_thread(lambda: urllib.request.urlopen(f"{url}/openapi.json").read())
    assert json.loads(spec)["openapi"] == "3.1.0"
    text = await asyncio.to_thread(
        lambda: urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics").read().decode()
    )
    assert 'api_http_requests_total{route="GET /openapi.json",status="200"}' in text
    proc.send_signal(signal.SIGTERM)
    assert await proc.wait() == 0


async def test_a_bad_setting_exits_2_naming_it() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend.rest",
        env=_env(API_PORT="http"), stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "API_PORT" in err.decode()
