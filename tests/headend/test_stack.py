"""``headend up``: starts everything, stops everything, fails clearly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import redis

from headend.redisproc import RedisServer


def _up(var: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "headend", "up", *args],
        env={**os.environ, "HEADEND_VAR_DIR": str(var), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_leaves_no_child_process(tmp_path: Path) -> None:
    # Its own port range, below Linux's ephemeral range (32768-60999) where other
    # tests' port-0 servers land, so neither they nor a running demo collide with it.
    proc = _up(tmp_path / "var", HEADEND_BASE_PORT="21000")
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("headend is up"):
            break
    if not lines or not lines[-1].startswith("headend is up"):
        proc.kill()
        pytest.fail("".join(lines) + proc.communicate(timeout=30)[1])
    descendants = psutil.Process(proc.pid).children(recursive=True)
    names = " ".join(" ".join(p.cmdline()) for p in descendants)
    for part in ("redis-server", "-m epg", "-m subscriber", "-m transcode.origin", "nginx"):
        assert part in names
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(descendants, timeout=10)
    assert alive == []
    # Nor anything that escaped the tree (nginx, FFmpeg) still working in the var dir.
    leftovers = []
    for p in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if str(tmp_path) in " ".join(p.cmdline()):
                leftovers.append(p)
    assert leftovers == []
    assert (tmp_path / "var" / "redis" / "appendonlydir").is_dir()


@pytest.mark.parametrize(
    ("env", "field"),
    [
        pytest.param({"REDIS_APPENDFSYNC": "sometimes"}, "REDIS_APPENDFSYNC", id="fsync"),
        pytest.param({"REDIS_URL": "http://nope"}, "REDIS_URL", id="redis-url"),
        pytest.param({"HEADEND_BASE_PORT": "eighty"}, "HEADEND_BASE_PORT", id="port"),
        pytest.param({"HEADEND_RESTART_LIMIT": "-1"}, "HEADEND_RESTART_LIMIT", id="restart-limit"),
        pytest.param(
            {"HEADEND_RESTART_WINDOW_SECONDS": "soon"},
            "HEADEND_RESTART_WINDOW_SECONDS",
            id="restart-window",
        ),
    ],
)
def test_bad_setting_names_the_field_and_starts_nothing(
    tmp_path: Path, env: dict[str, str], field: str
) -> None:
    proc = _up(tmp_path / "var", **env)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert field in err
    assert not (tmp_path / "var" / "redis").exists()


def test_unreachable_external_redis_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    proc = _up(tmp_path / "var", REDIS_URL=f"redis://127.0.0.1:{port}/0")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 3  # unavailable (headend.clitools)
    assert err.strip().splitlines()[-1].startswith("headend: cannot reach Redis")


def test_transcode_node_role_runs_only_a_node(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        proc = _up(
            tmp_path / "var", "--role", "transcode-node",
            REDIS_URL=server.url, HEADEND_BASE_PORT="21100", TC_NODE_ID="enc-1",
            TC_NODE_GROUP="county-a",
        )  # fmt: skip
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("headend is up"):
                break
        if not lines or not lines[-1].startswith("headend is up"):
            proc.kill()
            pytest.fail("".join(lines) + proc.communicate(timeout=30)[1])
        descendants = psutil.Process(proc.pid).children(recursive=True)
        names = [" ".join(p.cmdline()) for p in descendants]
        assert any("-m transcode node" in n for n in names), names
        for other in ("redis-server", "-m epg", "-m transcode.origin", "nginx"):
            assert not any(other in n for n in names), names
        client = redis.Redis.from_url(server.url)
        try:
            assert client.hget("tc:node:enc-1", "group") == b"county-a"
        finally:
            client.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        _gone, alive = psutil.wait_procs(descendants, timeout=10)
        assert alive == []
        assert not (tmp_path / "var" / "redis").exists()  # never an embedded Redis
    finally:
        server.stop()


def test_transcode_node_role_needs_the_farms_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "headend", "up", "--role", "transcode-node"],
        env={**env, "HEADEND_VAR_DIR": str(tmp_path / "var")},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "REDIS_URL" in err.strip().splitlines()[-1]
