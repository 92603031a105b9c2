"""``headend cdn ...`` against a real CdnControl server."""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from cdn_ctl import cli
from cdn_ctl.server import create_server
from cdn_ctl.settings import CdnSettings
from cdn_ctl.signing import KeyRing
from headend.auth import KeyStore
from headend.rpc import RpcSettings


@pytest.fixture
async def target(redis: aioredis.Redis, keys: KeyStore, ring: KeyRing) -> AsyncIterator[str]:
    server, port = await create_server(
        CdnSettings(rpc=RpcSettings(port=0), keys=ring), redis=redis, keys=keys
    )
    yield f"127.0.0.1:{port}"
    await server.stop(0)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["cdn", *argv])


async def test_register_list_drain(target: str, tokens: Any) -> None:
    env = {"CDN_TARGET": target, "HEADEND_API_KEY": await tokens()}
    out = io.StringIO()
    args = parse("register", "v1", "--region", "110101", "--port", "8101")
    assert await _in_thread(cli.run_register, args, env, out) == 0
    assert await _in_thread(cli.run_drain, parse("drain", "v1"), env, out) == 0
    assert await _in_thread(cli.run_list, parse("edges"), env, out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "registered v1 (version 1)"
    assert lines[1] == "v1: draining"
    assert lines[2].split() == ["EDGE_ID", "REGION", "TIER", "ADDRESS", "HEALTH", "DRAINING",
                                "LEASES", "LOAD", "REASON"]  # fmt: skip
    assert lines[3].split() == ["v1", "110101", "edge", "127.0.0.1:8101", "unknown", "true",
                                "0", "0.0"]  # fmt: skip
    as_json = io.StringIO()
    assert await _in_thread(cli.run_list, parse("edges", "-o", "json"), env, as_json) == 0
    [edge] = json.loads(as_json.getvalue())
    assert (edge["edge_id"], edge["tier"], edge["draining"], edge["version"]) == (
        "v1",
        "edge",
        True,
        2,
    )
    assert (edge["capacity_sessions"], edge["health"], edge["leases"]) == (200, "unknown", 0)
    as_csv = io.StringIO()
    assert await _in_thread(cli.run_list, parse("edges", "-o", "csv"), env, as_csv) == 0
    reader = csv.DictReader(io.StringIO(as_csv.getvalue()))
    assert reader.fieldnames == list(cli.EDGE_COLUMNS)
    assert [(row["edge_id"], row["draining"]) for row in reader] == [("v1", "true")]


async def test_errors_exit_non_zero_and_change_nothing(target: str, tokens: Any) -> None:
    env = {"CDN_TARGET": target, "HEADEND_API_KEY": await tokens()}
    bad = parse("register", "v1", "--region", "1101", "--port", "8101")
    assert await _in_thread(cli.run_register, bad, env, io.StringIO()) == 1
    no_key = {"CDN_TARGET": target}
    good = parse("register", "v1", "--region", "110101", "--port", "8101")
    assert await _in_thread(cli.run_register, good, no_key, io.StringIO()) == 2
    out = io.StringIO()
    assert await _in_thread(cli.run_list, parse("edges"), env, out) == 0
    assert len(out.getvalue().splitlines()) == 1  # the header only


async def _in_thread(
    func: Any, args: argparse.Namespace, env: dict[str, str], out: io.StringIO
) -> int:
    # The commands own their event loop (asyncio.run), as the CLI does.
    return await asyncio.to_thread(lambda: func(args, env=env, out=out))


def test_keygen_renders_a_usable_key() -> None:
    out = io.StringIO()
    assert cli.run_keygen(parse("keygen", "--kid", "k7"), out=out) == 0
    ring = KeyRing.parse(out.getvalue().strip())
    assert ring.active_kid == "k7"
    assert len(ring.active.secret) == 32


def test_render_edge(tmp_path: Path) -> None:
    out = io.StringIO()
    args = parse(
        "render-edge",
        "e1",
        "--port",
        "8101",
        "--upstream",
        "127.0.0.1:8080",
        "--prefix",
        str(tmp_path),
    )
    assert cli.run_render(args, out=out) == 0
    assert "listen 127.0.0.1:8101;" in out.getvalue()
    assert "server 127.0.0.1:8080;" in out.getvalue()
