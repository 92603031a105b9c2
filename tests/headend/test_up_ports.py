"""``headend up`` checks every address its children will bind before it starts any, the
edges' prefetch sidecar metrics (``EDGE_PREFETCH=1``) included: a busy one or one
configured twice is one clear error, and the endpoint list names the metrics address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from headend.local import CDN_ADMIN_PORT, local_children, role_children
from headend.local_secrets import LocalSecrets
from headend.rpc import StartupError
from headend.settings import SettingsError
from headend.stack import Child, Stack, StackSettings, port_clashes

SECRETS = {"CDN_SIGNING_KEYS": "k1:" + "A" * 43}
KEYS = LocalSecrets("k1:x", "s1:y", "hk_admin", "hk_playback")


def _settings(tmp_path: Path, **env: str) -> StackSettings:
    return StackSettings.from_env({"HEADEND_VAR_DIR": str(tmp_path / "var"), **env})


def _edge(tmp_path: Path, **env: str) -> Child:
    [edges] = role_children(_settings(tmp_path), ("edge",), {**SECRETS, **env})
    return edges


def test_the_prefetch_metrics_port_is_the_edges_own_with_prefetch_on(tmp_path: Path) -> None:
    on = _edge(tmp_path, EDGE_PREFETCH="1", EDGE_PREFETCH_METRICS_PORT="9300")
    assert on.ports[-1] == ("127.0.0.1", 9300)
    assert "prefetch metrics http://127.0.0.1:9300/metrics" in on.endpoint
    # Off (the default), or on an ephemeral port: nothing of it to check or list.
    off = {"EDGE_PREFETCH_METRICS_PORT": "9300"}
    for env in (off, {"EDGE_PREFETCH": "1", "EDGE_PREFETCH_METRICS_PORT": "0"}):
        edges = _edge(tmp_path, **env)
        assert all(port != 9300 for _, port in edges.ports)
        assert len(edges.ports) == 3  # the three local edges
        assert "prefetch" not in edges.endpoint


def test_the_whole_stack_checks_it_shifted_with_the_base_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, HEADEND_BASE_PORT="21000")
    # Under ``all`` the children inherit this environment: EDGE_PREFETCH comes from it.
    monkeypatch.setenv("EDGE_PREFETCH", "1")
    edges = next(c for c in local_children(settings, KEYS) if c.name == "edges")
    assert edges.ports[-1] == ("127.0.0.1", 21107)
    assert edges.env["EDGE_PREFETCH_METRICS_PORT"] == "21107"
    assert edges.endpoint.endswith("; prefetch metrics http://127.0.0.1:21107/metrics")
    monkeypatch.delenv("EDGE_PREFETCH")
    edges = next(c for c in local_children(settings, KEYS) if c.name == "edges")
    assert ("127.0.0.1", 21107) not in edges.ports


def test_a_bad_prefetch_setting_is_refused_naming_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        _edge(tmp_path, EDGE_PREFETCH="1", EDGE_PREFETCH_METRICS_PORT="eighty")
    assert caught.value.name == "EDGE_PREFETCH_METRICS_PORT"


def test_a_busy_prefetch_port_stops_the_start_before_anything_runs(
    tmp_path: Path, busy_port: int
) -> None:
    edges = _edge(tmp_path, EDGE_PREFETCH="1", EDGE_PREFETCH_METRICS_PORT=str(busy_port))
    stack = Stack(_settings(tmp_path), out=lambda _line: None)
    with pytest.raises(StartupError, match=f"ports already in use: edges:127.0.0.1:{busy_port}$"):
        stack.start([edges])
    assert not (tmp_path / "var" / "log").exists()  # no child was launched


@pytest.mark.parametrize(
    ("port", "clash"),
    [
        pytest.param("8102", "edges:127.0.0.1:8102 (also edges)", id="an-edges-port"),
        # The edges start first: the front door's admin listener is the second to claim it.
        pytest.param(str(CDN_ADMIN_PORT), "cdn:127.0.0.1:8001 (also edges)", id="the-admin-port"),
    ],
)
def test_a_prefetch_port_configured_twice_stops_the_start(
    tmp_path: Path, port: str, clash: str
) -> None:
    env = {
        **SECRETS,
        "FRONTDOOR_SESSION_KEYS": "s1:" + "B" * 43,
        "FRONTDOOR_API_KEY": "hk_playback",
        "EDGE_PREFETCH": "1",
        "EDGE_PREFETCH_METRICS_PORT": port,
    }
    children = role_children(_settings(tmp_path), ("frontdoor", "edge"), env)
    assert port_clashes(children) == [clash]
    stack = Stack(_settings(tmp_path), out=lambda _line: None)
    with pytest.raises(StartupError, match=rf"ports configured twice: {clash.split(' ')[0]} "):
        stack.start(children)
    assert not (tmp_path / "var" / "log").exists()


@pytest.mark.parametrize(
    ("a", "b", "clash"),
    [
        pytest.param("127.0.0.1", "127.0.0.1", True, id="same-host"),
        pytest.param("0.0.0.0", "127.0.0.1", True, id="any-host"),
        pytest.param("127.0.0.1", "127.0.0.2", False, id="other-hosts"),
    ],
)
def test_port_clashes_by_host(a: str, b: str, clash: bool) -> None:
    children = [Child("one", ["x"], [(a, 9000)]), Child("two", ["x"], [(b, 9000), (b, 9001)])]
    assert port_clashes(children) == ([f"two:{b}:9000 (also one)"] if clash else [])


def test_headend_up_names_the_busy_prefetch_port(tmp_path: Path, busy_port: int) -> None:
    # The base port that puts the prefetch metrics (9107 + base) on the busy port.
    base = busy_port - 107
    proc = subprocess.run(
        [sys.executable, "-m", "headend", "up"],
        env={
            **os.environ,
            "HEADEND_VAR_DIR": str(tmp_path / "var"),
            "HEADEND_BASE_PORT": str(base),
            "EDGE_PREFETCH": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert f"edges:127.0.0.1:{busy_port}" in proc.stderr
    assert "ports already in use" in proc.stderr
    # Only the embedded Redis had started (and was stopped): no child's log.
    assert [p.name for p in (tmp_path / "var" / "log").iterdir()] == ["redis.log"]
