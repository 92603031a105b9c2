"""``headend content-keys`` as an operator runs it: the real console entry point in a child
process against the test's Redis, with its exit statuses."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import sys

import redis.asyncio as aioredis

from headend.contentkeys import ContentKeyStore, scope_for_channel
from headend.redisproc import RedisServer

CH = scope_for_channel("cctv1")


async def content_keys(server: RedisServer, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend", "content-keys", *args,
        env={**os.environ, "REDIS_URL": server.url},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_list_rotate_revoke_and_audit(
    redis: aioredis.Redis, redis_server: RedisServer, store: ContentKeyStore
) -> None:
    first = await store.key_for(CH, 100, rotation_seconds=600)
    code, out, _ = await content_keys(redis_server, "list", CH, "-o", "json")
    assert code == 0
    [row] = json.loads(out)
    assert row["key_id"] == first.key_id
    assert row["current"]
    assert not row["revoked"]
    assert first.key.hex() not in out

    code, out, _ = await content_keys(redis_server, "rotate", CH)
    assert (code, out) == (0, f"rotated {CH}: new segments get new keys\n")
    second = await store.key_for(CH, 100, rotation_seconds=600)
    assert second.key_id != first.key_id

    code, out, _ = await content_keys(redis_server, "revoke", CH, second.key_id)
    assert code == 0
    assert second.key_id in out
    code, out, _ = await content_keys(redis_server, "list", CH, "-o", "csv")
    rows = {r["key_id"]: r for r in csv.DictReader(io.StringIO(out))}
    assert rows[second.key_id]["revoked"] == "true"
    assert rows[first.key_id]["current"] == "false"

    code, out, _ = await content_keys(redis_server, "audit")
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["AT", "PRINCIPAL", "ACTION", "SCOPE", "KEY_ID", "DETAIL"]
    assert [line.split()[2] for line in lines] == ["revoke", "rotate"]
    assert all(line.split()[1].startswith("cli:") for line in lines)


async def test_refusals_exit_with_their_status(
    redis: aioredis.Redis, redis_server: RedisServer
) -> None:
    code, _, err = await content_keys(redis_server, "revoke", CH, "0" * 32)
    assert code == 2
    assert "no content key" in err
    code, _, err = await content_keys(redis_server, "rotate", "box/cctv1")
    assert code == 2
    assert "channel/<id> or asset/<id>" in err
    code, _, err = await content_keys(redis_server, "list", CH)
    assert code == 0
    assert "no content keys" in err
    code, _, err = await content_keys(redis_server, "audit", "--limit", "0")
    assert code == 2
    assert await redis.xlen("ck:{audit}") == 0  # nothing refused was recorded
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "headend", "content-keys", "audit",
        env={**os.environ, "REDIS_URL": "unix:///nonexistent/redis.sock", "REDIS_RETRIES": "0"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err_bytes = await proc.communicate()
    assert proc.returncode == 3, err_bytes
