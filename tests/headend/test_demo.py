"""``headend demo --reset`` (``make demo-reset``): the demo starts from empty; the journey's
encrypted step (a box plays an encrypted channel across a key rotation)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio

from cdn_ctl.sim.stb import SetTopBox
from headend.contentkeys import ContentKeySettings, KekRing
from headend.demo import play_encrypted, reset
from headend.errors import FailedPrecondition
from headend.redisproc import RedisServer
from headend.stack import StackSettings
from tests.support.journey import Stack, build_stack
from tests.support.world import LIVE

# The stack's channel: 2-second segments, a key every 6 s of media.
ROTATION_SECONDS = 6


def _settings(var: Path, **env: str) -> StackSettings:
    return StackSettings.from_env({"HEADEND_VAR_DIR": str(var), **env})


@pytest.fixture
def var(tmp_path: Path) -> Path:
    """A state dir as a stopped demo leaves it."""
    var = tmp_path / "var"
    for folder in ("redis", "log", "pki", "origin/live", "edges/edge-a", "demo-media"):
        (var / folder).mkdir(parents=True)
    (var / "secrets.env").write_text("SERVICE_API_KEY=x\n")
    return var


@pytest.fixture
def running(var: Path) -> Iterator[RedisServer]:
    """The state dir's Redis up, as while ``headend up`` runs on it."""
    server = RedisServer(var / "redis")
    server.start()
    yield server
    server.stop()


def test_reset_deletes_the_state_dir_and_says_what_it_held(var: Path) -> None:
    assert reset(_settings(var)) == [
        "demo-media", "edges", "log", "origin", "pki", "redis", "secrets.env",
    ]  # fmt: skip
    assert not var.exists()
    assert reset(_settings(var)) == []


def test_the_command_refuses_before_it_starts_anything(var: Path, repo_root: Path) -> None:
    (var / "thesis.tex").write_text("years of work")
    done = subprocess.run(
        [sys.executable, "-m", "headend", "demo", "--reset"],
        cwd=repo_root, env={"HEADEND_VAR_DIR": str(var), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "thesis.tex" in done.stderr
    assert sorted(p.name for p in var.iterdir()) == [
        "demo-media", "edges", "log", "origin", "pki", "redis", "secrets.env", "thesis.tex",
    ]  # fmt: skip


@pytest.mark.usefixtures("running")
def test_reset_refuses_while_a_stack_runs_on_the_dir(var: Path) -> None:
    with pytest.raises(FailedPrecondition, match="running"):
        reset(_settings(var))
    assert (var / "secrets.env").exists()


def test_reset_refuses_a_dir_holding_what_headend_never_makes(var: Path) -> None:
    (var / "thesis.tex").write_text("years of work")
    with pytest.raises(FailedPrecondition, match=r"thesis\.tex"):
        reset(_settings(var))
    assert (var / "thesis.tex").exists()
    assert (var / "secrets.env").exists()


def test_reset_refuses_when_the_data_is_in_an_external_redis(var: Path) -> None:
    with pytest.raises(FailedPrecondition, match="REDIS_URL"):
        reset(_settings(var, REDIS_URL="redis://127.0.0.1:6379/0"))
    assert (var / "secrets.env").exists()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """The platform with its live channel encrypted."""
    keys = ContentKeySettings(keks=KekRing.generate("demo"), rotation_seconds=ROTATION_SECONDS)
    folder = tmp_path_factory.mktemp("demo-encrypted")
    async with build_stack(redis_server.url, folder, content_keys=keys) as up:
        yield up


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.xdist_group("demo-encrypted")
@pytest.mark.asyncio(loop_scope="module")
async def test_the_encrypted_step_plays_across_a_rotation_and_shows_the_edge_refusing_keys(
    stack: Stack,
) -> None:
    lines: list[str] = []
    seeded = stack.world.boxes["c1"]
    async with aiohttp.ClientSession() as http:
        box = SetTopBox(http, stack.url, mac=seeded.mac, secret=seeded.secret)
        await box.login()
        await play_encrypted(box, LIVE, ROTATION_SECONDS, out=lines.append)
    text = "\n".join(lines)
    assert lines[0] == f"7. encrypted: {LIVE} (AES-128, a new key every 6 s of media)"
    played = re.search(
        r"^    played (\d+) segments \(\d+ s of media\), decrypted (\d+); keys fetched from "
        r"the front door (\d+): ([0-9a-f]{8}(?:, [0-9a-f]{8})*); errors 0$",
        text,
        re.MULTILINE,
    )
    assert played, text
    segments, decrypted, keys = (int(n) for n in played.groups()[:3])
    assert segments == decrypted >= 1
    assert keys == len(played[4].split(", ")) >= 2
    edge = rf"http://127\.0\.0\.1:\d+/keys/{re.escape(LIVE)}/{played[4][-8:]}\.\.\."
    assert re.search(
        rf"^    at the edge: GET {edge} -> 404 \(keys come from the front door only\)$",
        text,
        re.MULTILINE,
    ), text
