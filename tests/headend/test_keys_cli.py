"""``headend keys create`` for every tenant role, the emergency agency's included, and the key
id helper audit records use (never the secret)."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from headend.auth import KeyStore, Principal, key_id
from headend.cli import main
from headend.redisproc import RedisServer


def _authenticate(url: str, token: str) -> Principal:
    async def run() -> Principal:
        client = aioredis.Redis.from_url(url)
        try:
            return await KeyStore(client).authenticate(token)
        finally:
            await client.aclose()

    return asyncio.run(run())


@pytest.mark.parametrize("role", ["emergency", "carrier", "broadcaster"])
def test_create_a_tenant_key(
    role: str,
    redis_server: RedisServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["keys", "create", "--role", role, "--tenant", "gd-eb"]) == 0
    printed = dict(
        line.split(":", 1) for line in capsys.readouterr().out.splitlines() if ":" in line
    )
    token = printed["token"].strip()
    assert printed["principal"].strip() == f"{role}:gd-eb"
    assert key_id(token) == printed["key id"].strip()
    assert key_id(token) not in token.rsplit("_", 1)[1]  # the id is not the secret
    assert _authenticate(redis_server.url, token) == Principal.parse(f"{role}:gd-eb")


def test_an_emergency_key_needs_its_agency(
    redis_server: RedisServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    assert main(["keys", "create", "--role", "emergency"]) != 0
    assert "tenant" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param("hk_0123456789abcdef_" + "x" * 43, "0123456789abcdef", id="a-key"),
        pytest.param("hk_0123456789abcdef", "", id="no-secret"),
        pytest.param("not-a-key", "", id="other"),
        pytest.param("", "", id="empty"),
    ],
)
def test_key_id(token: str, expected: str) -> None:
    assert key_id(token) == expected
