"""``headend demo --reset`` (``make demo-reset``): the demo starts from empty."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from headend.demo import reset
from headend.errors import FailedPrecondition
from headend.redisproc import RedisServer
from headend.stack import StackSettings


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
