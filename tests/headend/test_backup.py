"""``headend backup`` / ``headend restore``: the count table on seeded data, the refusals
(tampered backup, non-empty target), both restore targets, the commands' exit codes, and
the whole restore drill on a real ``headend up`` (seed, play, back up, destroy, restore
into a new redis-server, play again with the same credentials)."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from cdn_ctl.domain import Edge, Tier
from cdn_ctl.sim.stb import SetTopBox
from cdn_ctl.store import EdgeStore
from headend import backup_cli, seed
from headend.backup import (
    ENTITIES,
    MANIFEST,
    BackupRefused,
    Entity,
    Manifest,
    backup,
    count,
    restore_to_data_dir,
    restore_to_url,
)
from headend.local import EPG_PORT, FRONT_DOOR_PORT, ORIGIN_PORT, SUBSCRIBER_PORT, TRANSCODE_PORT
from headend.pki import local_pki
from headend.redisconn import RedisSettings
from headend.redisproc import RedisServer
from tests.support.journey import until_live
from tests.support.stack import Up, start_up
from tests.support.world import LIVE, REGION, seed_world, start_services
from transcode.domain import LiveChannel
from transcode.live.store import channel_key, config_mapping

pytestmark = pytest.mark.asyncio(loop_scope="module")

# What the seeded world below holds, entity by entity (every row of ENTITIES).
SEEDED = {
    "channels": 3, "programmes": 25, "carriers": 1, "packages": 2, "subscribers": 4,
    "devices": 5, "entitlements": 4, "edges": 1, "api keys": 1, "live channels": 1,
}  # fmt: skip
SETTINGS = RedisSettings()
# The drill's `headend up` port ranges: below the ephemeral range, apart from test_stack's
# (21000, 21100), the security suite's (22000) and the fault tests' (23000 up).
DRILL_BASES = (21400, 21600, 21800)


def _quiet(_line: str) -> None:
    """Progress lines are not what these tests check."""


@dataclass
class Seeded:
    """A private Redis seeded with the test world, a var dir, and one backup of both."""

    server: RedisServer
    var: Path
    folder: Path
    manifest: Manifest


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Seeded]:
    """The journey world seeded through the services, an edge, a live channel's record,
    a key with a TTL; ``secrets.env`` and a private CA in the var dir; then a backup."""
    root = tmp_path_factory.mktemp("backup")
    server = RedisServer(root / "source")
    server.start()
    client = aioredis.Redis.from_url(server.url)
    services = await start_services(client)
    try:
        await seed_world(services.epg_target, services.subscriber_target, services.api_key)
    finally:
        await services.stop()
    await EdgeStore(client).create(
        Edge("edge-a", REGION, Tier.EDGE, "127.0.0.1", 8101, 100, 1e4, 1e4)
    )
    # As the control service writes it: no FFmpeg needed to count a live channel.
    channel = LiveChannel(LIVE, "udp://127.0.0.1:5000")
    fields = [x for item in config_mapping(channel).items() for x in item]
    await client.hset(channel_key(LIVE), items=fields)
    await client.set("rl:login:probe", "1", ex=3600)
    await client.aclose()
    var = root / "var"
    local_pki(var / "pki", hosts=["127.0.0.1"])
    fd = os.open(var / "secrets.env", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("SESSION_KEYS=s1:abc\nSERVICE_API_KEY=hk_x\n")
    manifest = await backup(server.url, var, root / "backup", settings=SETTINGS, out=_quiet)
    yield Seeded(server, var, root / "backup", manifest)
    server.stop()


@pytest.fixture
def target(tmp_path: Path) -> Iterator[RedisServer]:
    """A new, empty redis-server to restore into."""
    server = RedisServer(tmp_path / "target")
    server.start()
    yield server
    server.stop()


async def _keys(url: str) -> dict[bytes, bytes | str]:
    client = aioredis.Redis.from_url(url)
    try:
        return {k: await client.type(k) async for k in client.scan_iter()}
    finally:
        await client.aclose()


def _tree(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: its bytes and permission bits."""
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
        for p in folder.rglob("*")
        if p.is_file()
    }


async def test_manifest_counts_are_the_seeded_world(seeded: Seeded) -> None:
    assert {e.name for e in ENTITIES} == set(SEEDED)
    assert dict(seeded.manifest.counts) == SEEDED
    assert Manifest.read(seeded.folder) == seeded.manifest


@pytest.mark.parametrize("entity", [pytest.param(e, id=e.name) for e in ENTITIES])
async def test_every_count_pattern_matches_keys_of_seeded_data(
    seeded: Seeded, entity: Entity
) -> None:
    # A key rename (e.g. hash tags for Redis Cluster) that leaves a pattern behind fails here.
    client = aioredis.Redis.from_url(seeded.server.url)
    try:
        matched = [k async for k in client.scan_iter(match=entity.pattern)]
    finally:
        await client.aclose()
    assert matched, f"{entity} matches no key"


async def test_backup_holds_checksummed_files_with_their_modes(seeded: Seeded) -> None:
    files = seeded.manifest.files
    assert {"redis.rdb", "secrets.env", "pki/ca.key", "pki/ca.pem"} <= set(files)
    for name, digest in files.items():
        assert hashlib.sha256((seeded.folder / name).read_bytes()).hexdigest() == digest
    assert stat.S_IMODE(seeded.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((seeded.folder / "redis.rdb").stat().st_mode) == 0o600
    copied = _tree(seeded.folder)
    for name, (data, mode) in _tree(seeded.var).items():
        assert copied[name] == (data, mode), name
    assert stat.S_IMODE((seeded.folder / "pki").stat().st_mode) == 0o700
    assert seeded.manifest.source == seeded.server.url
    assert seeded.manifest.redis_version.split(".")[0] >= "7"


async def test_backup_over_auth_keeps_the_password_out_of_the_manifest(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "auth")
    server.start()
    try:
        client = aioredis.Redis.from_url(server.url)
        await client.set("auth:key:0123456789abcdef", "x")
        await client.config_set("requirepass", "hunter2-secret")
        await client.aclose()
        url = f"unix://:hunter2-secret@{server.socket}"
        manifest = await backup(
            url, tmp_path / "var", tmp_path / "b", settings=SETTINGS, out=_quiet
        )
    finally:
        server.stop()
    assert "hunter2" not in (tmp_path / "b" / MANIFEST).read_text()
    assert manifest.source == f"unix://:***@{server.socket}"
    assert manifest.counts["api keys"] == 1
    assert set(manifest.files) == {"redis.rdb"}  # no secrets.env or pki/ in that var dir


def _tamper(folder: Path, how: str) -> None:
    if how == "changed":
        (folder / "secrets.env").write_text("SESSION_KEYS=s1:forged\n")
    elif how == "missing":
        (folder / "pki" / "ca.pem").unlink()
    elif how == "extra":
        (folder / "notes.txt").write_text("not in the manifest")
    else:  # a different snapshot under the same name
        (folder / "redis.rdb").write_bytes((folder / "redis.rdb").read_bytes() + b"\0")


@pytest.mark.parametrize("how", ["changed", "missing", "extra", "snapshot"])
async def test_a_tampered_backup_is_refused_and_nothing_changes(
    seeded: Seeded, target: RedisServer, tmp_path: Path, how: str
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(seeded.folder, folder)
    _tamper(folder, how)
    var = tmp_path / "var"
    with pytest.raises(BackupRefused, match="does not match its manifest"):
        await restore_to_url(folder, target.url, var, settings=SETTINGS, out=_quiet)
    with pytest.raises(BackupRefused, match="does not match its manifest"):
        await restore_to_data_dir(folder, tmp_path / "data", var, out=_quiet)
    assert await _keys(target.url) == {}
    assert not var.exists()
    assert not (tmp_path / "data").exists()


async def test_a_non_empty_target_is_refused_without_force(
    seeded: Seeded, target: RedisServer, tmp_path: Path
) -> None:
    client = aioredis.Redis.from_url(target.url)
    await client.set("stray", "someone else's")
    with pytest.raises(BackupRefused, match="holds 1 keys"):
        await restore_to_url(seeded.folder, target.url, tmp_path / "var", settings=SETTINGS)
    assert await _keys(target.url) == {b"stray": b"string"}
    assert not (tmp_path / "var").exists()
    diffs = await restore_to_url(
        seeded.folder, target.url, tmp_path / "var", settings=SETTINGS, force=True, out=_quiet
    )
    assert diffs == []
    assert await client.exists("stray") == 0
    await client.aclose()


async def test_differing_key_material_is_refused_without_force(
    seeded: Seeded, target: RedisServer, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    var.mkdir()
    (var / "secrets.env").write_text("SESSION_KEYS=s1:newer\n")
    with pytest.raises(BackupRefused, match=r"secrets\.env differ"):
        await restore_to_url(seeded.folder, target.url, var, settings=SETTINGS, out=_quiet)
    assert await _keys(target.url) == {}
    assert (var / "secrets.env").read_text() == "SESSION_KEYS=s1:newer\n"


async def test_restore_into_a_server_rebuilds_keys_ttls_and_key_material(
    seeded: Seeded, target: RedisServer, tmp_path: Path
) -> None:
    var = tmp_path / "var"
    diffs = await restore_to_url(seeded.folder, target.url, var, settings=SETTINGS, out=_quiet)
    assert diffs == []
    assert await _keys(target.url) == await _keys(seeded.server.url)
    client = aioredis.Redis.from_url(target.url)
    try:
        assert 0 < await client.pttl("rl:login:probe") <= 3_600_000
        assert await count(client) == SEEDED
    finally:
        await client.aclose()
    assert _tree(var) == _tree(seeded.var)
    assert stat.S_IMODE((var / "pki").stat().st_mode) == 0o700


async def test_restore_into_a_data_dir_gives_a_server_that_starts_on_it(
    seeded: Seeded, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    diffs = await restore_to_data_dir(seeded.folder, data, tmp_path / "var", out=_quiet)
    assert diffs == []
    # What `headend up` does next: its embedded redis-server starts on the dir (twice: the
    # first start's own AOF must load too).
    for _ in range(2):
        server = RedisServer(data)
        server.start()
        try:
            assert await _keys(server.url) == await _keys(seeded.server.url)
        finally:
            server.stop()


async def test_restore_command_prints_the_differences_and_exits_1(
    seeded: Seeded,
    target: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(seeded.folder, folder)
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest["counts"]["channels"] = 4  # counts are what restore checks, not a file
    (folder / MANIFEST).write_text(json.dumps(manifest))
    parser = argparse.ArgumentParser()
    backup_cli.register(parser.add_subparsers(dest="command"), lambda: seeded.server.url)
    args = parser.parse_args(["restore", "--from", str(folder), "--redis-url", target.url])
    monkeypatch.setenv("HEADEND_VAR_DIR", str(tmp_path / "var"))
    status = await asyncio.to_thread(args.func, args)
    err = capsys.readouterr().err
    assert status == 1
    assert "counts differ from the manifest" in err
    assert [line.split() for line in err.splitlines() if "channels" in line] == [
        ["channels", "4", "3"]
    ]


def _headend(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``headend <args>`` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "headend", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "said", "status"),
    [
        pytest.param(
            ["restore", "--from", "{missing}", "--redis-url", "{target}"],
            "is not a directory",
            2,
            id="no-such-dir",
        ),
        pytest.param(
            ["restore", "--from", "{tampered}", "--redis-url", "{target}"],
            "checksum mismatch secrets.env",
            2,
            id="checksum",
        ),
        pytest.param(
            ["restore", "--from", "{backup}", "--redis-url", "unix://{missing}"],
            "cannot reach Redis",
            3,
            id="unreachable",
        ),
        pytest.param(
            ["backup", "--out", "{new}", "--redis-url", "unix://{missing}"],
            "cannot reach Redis",
            3,
            id="backup-unreachable",
        ),
        pytest.param(
            ["backup", "--out", "{backup}", "--redis-url", "{target}"],
            "exists",
            2,
            id="backup-exists",
        ),
    ],
)
async def test_commands_stop_with_a_clear_error(
    seeded: Seeded, target: RedisServer, tmp_path: Path, args: list[str], said: str, status: int
) -> None:
    tampered = tmp_path / "tampered"
    shutil.copytree(seeded.folder, tampered)
    _tamper(tampered, "changed")
    names = {
        "missing": tmp_path / "nowhere", "tampered": tampered, "backup": seeded.folder,
        "target": target.url, "new": tmp_path / "new",
    }  # fmt: skip
    command = [a.format(**names) for a in args]
    done = await asyncio.to_thread(_headend, *command, HEADEND_VAR_DIR=str(tmp_path / "var"))
    assert done.returncode == status, done.stdout + done.stderr  # 3: Redis unreachable
    assert said in done.stderr
    assert not (tmp_path / "var").exists()
    assert not (tmp_path / "new").exists()


# ----------------------------------------------------------------------------- the drill


async def _seed_and_start_live(up: Up, folder: Path) -> tuple[seed.Box, str]:
    """The demo world and one live channel on ``up``; the demo box and the channel."""
    targets = seed.Targets(
        f"127.0.0.1:{up.port(EPG_PORT)}",
        f"127.0.0.1:{up.port(SUBSCRIBER_PORT)}",
        f"127.0.0.1:{up.port(TRANSCODE_PORT)}",
    )
    world = await seed.seed(seed.demo_plan(datetime.now(UTC)), targets, up.admin_key())
    first = seed.CHANNELS[0]
    sources = await asyncio.to_thread(seed.make_sources, folder, (first,))
    live = seed.LiveSpec(first.channel_id, sources[first.channel_id].resolve().as_uri())
    await seed.start_live(targets, up.admin_key(), [live])
    return world.boxes[seed.BOX], first.channel_id


async def _play(up: Up, box: seed.Box, channel: str, *, token: str = "") -> str:
    """Log in (or reuse ``token``), read the lineup, play a few seconds; the box token."""
    async with aiohttp.ClientSession() as http:
        await asyncio.wait_for(
            until_live(http, f"http://127.0.0.1:{up.port(ORIGIN_PORT)}/live/{channel}/master.m3u8"),
            120,
        )
        stb = SetTopBox(
            http, f"http://127.0.0.1:{up.port(FRONT_DOOR_PORT)}", mac=box.mac, secret=box.secret
        )
        if token:
            stb.token = token
        else:
            await stb.login()
        assert channel in [c.channel_id for c in await stb.lineup()]
        stats = await stb.play_live(channel, seconds=6)
        await stb.stop(stats.lease)
    assert stats.errors == []
    assert stats.segments >= 1
    return stb.token


@pytest.mark.slow
async def test_restore_drill_the_same_box_plays_again_on_a_new_redis(tmp_path: Path) -> None:
    var = tmp_path / "var"
    media = var / "demo-media"  # under TC_MEDIA_ROOTS, as `headend demo` keeps its clips
    old = RedisServer(tmp_path / "redis-old")
    await asyncio.to_thread(old.start)
    up = await asyncio.to_thread(start_up, var, DRILL_BASES, REDIS_URL=old.url)
    try:
        box, channel = await _seed_and_start_live(up, media)
        token = await _play(up, box, channel)
        env = {"HEADEND_VAR_DIR": str(var), "REDIS_URL": old.url}
        made = await asyncio.to_thread(_headend, "backup", "--out", str(tmp_path / "bk"), **env)
        assert made.returncode == 0, made.stderr
    finally:
        await asyncio.to_thread(up.stop)
    secrets = (var / "secrets.env").read_bytes()
    manifest = Manifest.read(tmp_path / "bk")
    assert manifest.counts["channels"] == len(seed.CHANNELS)
    assert manifest.counts["programmes"] == 48 * len(seed.CHANNELS)
    assert (manifest.counts["subscribers"], manifest.counts["devices"]) == (1, 1)
    assert (manifest.counts["entitlements"], manifest.counts["live channels"]) == (1, 1)
    assert all(n > 0 for n in manifest.counts.values()), manifest.counts

    # Disaster: Redis and its disk are gone, and the key material with them.
    await asyncio.to_thread(old.stop)
    shutil.rmtree(old.data_dir)
    (var / "secrets.env").unlink()

    new = RedisServer(tmp_path / "redis-new")
    await asyncio.to_thread(new.start)
    try:
        done = await asyncio.to_thread(
            _headend, "restore", "--from", str(tmp_path / "bk"), "--redis-url", new.url,
            HEADEND_VAR_DIR=str(var),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "every count matches the manifest" in done.stdout
        client = aioredis.Redis.from_url(new.url)
        try:
            assert await count(client) == manifest.counts
        finally:
            await client.aclose()
        assert (var / "secrets.env").read_bytes() == secrets
        assert stat.S_IMODE((var / "secrets.env").stat().st_mode) == 0o600

        up = await asyncio.to_thread(start_up, var, DRILL_BASES, REDIS_URL=new.url)
        try:
            # The same keys were valid in the restored Redis: none was made anew.
            assert (var / "secrets.env").read_bytes() == secrets
            # The box token issued before the disaster still works, and so does a login
            # with the box's same MAC and secret; the live channel resumed by itself.
            await _play(up, box, channel, token=token)
            await _play(up, box, channel)
        finally:
            await asyncio.to_thread(up.stop)
    finally:
        await asyncio.to_thread(new.stop)
