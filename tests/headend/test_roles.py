"""``headend up --role``: one table for the whole stack and for each host's share of it;
roles that other hosts reach refuse to bind only to loopback; roles run as separate
processes on one shared Redis, as if on separate hosts."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from headend.local import (
    CDN_GRPC_PORT,
    EPG_PORT,
    FRONT_DOOR_PORT,
    ROLE_NAMES,
    SUBSCRIBER_PORT,
    local_children,
    parse_roles,
    role_children,
)
from headend.local_secrets import LocalSecrets
from headend.redisproc import RedisServer
from headend.settings import SettingsError
from headend.stack import StackSettings
from tests.support.stack import Up, grpc_not_serving, http_ok, start_up

# Every secret a role needs, given directly (the refusal tests are about addresses).
SECRETS = {
    "CDN_SIGNING_KEYS": "k1:" + "A" * 43,
    "FRONTDOOR_SESSION_KEYS": "s1:" + "B" * 43,
    "FRONTDOOR_API_KEY": "hk_playback",
    "ORIGIN_EPG_API_KEY": "hk_playback",
}


def _settings(tmp_path: Path, **env: str) -> StackSettings:
    return StackSettings.from_env({"HEADEND_VAR_DIR": str(tmp_path / "var"), **env})


def test_all_and_every_subset_come_from_one_table(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    whole = local_children(settings, LocalSecrets("k1:x", "s1:y", "hk_admin", "hk_playback"))
    subset = role_children(settings, ROLE_NAMES, SECRETS)
    # The same children, in the same order, on the same addresses; the node is a role of
    # its own (the control service embeds one under ``all``).
    assert [c.name for c in subset] == [*(c.name for c in whole[:3]), "transcode-node",
                                        *(c.name for c in whole[3:])]  # fmt: skip
    by_name = {c.name: c for c in subset}
    for child in whole:
        assert by_name[child.name].argv == child.argv
        assert by_name[child.name].ports == child.ports
    # Secrets come from secrets.env under ``all`` (a NAME_FILE in the shell is overridden)
    # and never from the table for a subset: the child reads them from its environment.
    cdn = next(c for c in whole if c.name == "cdn")
    assert cdn.env["CDN_SIGNING_KEYS"] == "k1:x"
    assert cdn.env["CDN_SIGNING_KEYS_FILE"] == ""
    assert not any(k in c.env for c in subset for k in SECRETS)


def test_a_subset_takes_the_operators_settings_over_the_defaults(tmp_path: Path) -> None:
    env = {**SECRETS, "EPG_GRPC_HOST": "0.0.0.0", "EPG_GRPC_PORT": "6051"}
    [epg] = role_children(_settings(tmp_path), ("epg",), env)
    assert epg.ports == [("0.0.0.0", 6051)]
    assert epg.env["EPG_GRPC_PORT"] == "6051"
    # Under ``all`` the stack's own layout wins: it is one self-contained host.
    whole = local_children(_settings(tmp_path), LocalSecrets("k1:x", "s1:y", "a", "p"))
    assert whole[0].ports == [("127.0.0.1", EPG_PORT)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("all", ("all",), id="all"),
        pytest.param("epg", ("epg",), id="one"),
        pytest.param(" epg, subscriber,epg ", ("epg", "subscriber"), id="list"),
    ],
)
def test_parse_roles(text: str, expected: tuple[str, ...]) -> None:
    assert parse_roles(text) == expected


@pytest.mark.parametrize("text", ["cdn", "epg,all", "", "epg,edges"])
def test_parse_roles_refuses_what_is_no_role(text: str) -> None:
    with pytest.raises(ValueError, match="expected all or any of epg"):
        parse_roles(text)


@pytest.mark.parametrize(
    ("role", "missing"),
    [
        pytest.param("frontdoor", "FRONTDOOR_SESSION_KEYS", id="frontdoor-session-keys"),
        pytest.param("frontdoor", "FRONTDOOR_API_KEY", id="frontdoor-api-key"),
        pytest.param("frontdoor", "CDN_SIGNING_KEYS", id="frontdoor-signing-keys"),
        pytest.param("edge", "CDN_SIGNING_KEYS", id="edge-signing-keys"),
        pytest.param("origin", "ORIGIN_EPG_API_KEY", id="origin-epg-key"),
    ],
)
def test_a_role_without_its_secret_is_refused_naming_it(
    tmp_path: Path, role: str, missing: str
) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    with pytest.raises(SettingsError) as caught:
        role_children(_settings(tmp_path), (role,), env)
    assert caught.value.name == missing
    assert f"{missing}_FILE" in str(caught.value)


# Each: a role, what the operator set, the variable refused, the bind variable named with it.
REFUSALS = [
    pytest.param(
        "frontdoor", {"FRONTDOOR_PUBLIC_URL": "https://tv.example.net"},
        "FRONTDOOR_PUBLIC_URL", "CDN_HTTP_HOST=127.0.0.1", id="frontdoor-public-url",
    ),
    pytest.param(
        "frontdoor",
        {"CDN_PUBLIC_URL": "http://203.0.113.10", "FRONTDOOR_PUBLIC_URL": "http://localhost"},
        "CDN_PUBLIC_URL", "CDN_HTTP_HOST=127.0.0.1", id="frontdoor-cdn-public-url",
    ),
    pytest.param(
        "origin", {"CDN_ORIGIN_ADDRESS": "origin-1.internal:8080"},
        "CDN_ORIGIN_ADDRESS", "ORIGIN_HOST=127.0.0.1", id="origin-address",
    ),
    pytest.param(
        "edge", {"CDN_EDGE_PUBLIC_HOST": "10.20.0.7"},
        "CDN_EDGE_PUBLIC_HOST", "CDN_EDGE_HOST=127.0.0.1", id="edge-address",
    ),
    pytest.param(
        "edge", {"HEADEND_HOST": "::1", "CDN_EDGE_PUBLIC_HOST": "2001:db8::7"},
        "CDN_EDGE_PUBLIC_HOST", "CDN_EDGE_HOST=::1", id="edge-ipv6-loopback",
    ),
    pytest.param(
        "edge", {"HEADEND_HOST": "0.0.0.0"},  # registered as 0.0.0.0: boxes sent nowhere
        "CDN_EDGE_PUBLIC_HOST", "bind-anywhere", id="edge-unspecified-public-host",
    ),
    pytest.param(
        "frontdoor", {"HEADEND_HOST": "0.0.0.0"},
        "FRONTDOOR_PUBLIC_URL", "bind-anywhere", id="frontdoor-unspecified-public-url",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("role", "env", "refused", "named"), REFUSALS)
def test_a_public_role_bound_to_loopback_is_refused(
    tmp_path: Path, role: str, env: dict[str, str], refused: str, named: str
) -> None:
    settings = _settings(tmp_path, **env)
    with pytest.raises(SettingsError) as caught:
        role_children(settings, (role,), {**SECRETS, **env})
    assert caught.value.name == refused
    assert named in str(caught.value)


@pytest.mark.parametrize(
    ("role", "env"),
    [
        pytest.param(
            "frontdoor",
            {"HEADEND_HOST": "0.0.0.0", "FRONTDOOR_PUBLIC_URL": "https://tv.example.net",
             "CDN_PUBLIC_URL": "https://tv.example.net"},
            id="frontdoor-everywhere",
        ),
        pytest.param(
            "frontdoor",
            {"CDN_HTTP_HOST": "198.51.100.4", "FRONTDOOR_PUBLIC_URL": "http://198.51.100.4"},
            id="frontdoor-one-address",
        ),
        pytest.param(
            "origin",
            {"ORIGIN_HOST": "0.0.0.0", "CDN_ORIGIN_ADDRESS": "origin-1.internal:8080"},
            id="origin",
        ),
        pytest.param(
            "edge", {"CDN_EDGE_HOST": "0.0.0.0", "CDN_EDGE_PUBLIC_HOST": "10.20.0.7"}, id="edge"
        ),
        pytest.param("edge", {}, id="edge-all-loopback"),
    ],
)  # fmt: skip
def test_a_public_role_bound_where_it_is_reached_starts(
    tmp_path: Path, role: str, env: dict[str, str]
) -> None:
    settings = _settings(tmp_path, **env)
    [child] = role_children(settings, (role,), {**SECRETS, **env})
    assert child.ports


def _run_headend(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [sys.executable, "-m", "headend", *args], env={**base, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_a_refused_role_starts_nothing(tmp_path: Path, shared_redis: RedisServer) -> None:
    var = tmp_path / "var"
    run = _run_headend(
        "up", "--role", "frontdoor", REDIS_URL=shared_redis.url, HEADEND_VAR_DIR=str(var),
        HEADEND_BASE_PORT="21500", FRONTDOOR_PUBLIC_URL="https://tv.example.net", **SECRETS,
    )  # fmt: skip
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert "FRONTDOOR_PUBLIC_URL" in last
    assert "CDN_HTTP_HOST" in last
    assert not var.exists()  # no log dir, no embedded Redis


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        pytest.param(("--role", "epg"), {}, "REDIS_URL", id="no-redis"),
        pytest.param(("--role", "nope"), {}, "unknown role nope", id="unknown-role"),
        pytest.param(("--role", "edge"), {"REDIS_URL": "redis://127.0.0.1:1/0"},
                     "CDN_SIGNING_KEYS", id="no-secret"),
        pytest.param(("--role", "epg", "--tls"), {"REDIS_URL": "redis://127.0.0.1:1/0"},
                     "TLS_CERT_FILE", id="no-private-ca"),
    ],
)  # fmt: skip
def test_role_start_up_errors_are_one_clear_line(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    base = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    run = subprocess.run(
        [sys.executable, "-m", "headend", "up", *args],
        env={**base, "HEADEND_VAR_DIR": str(tmp_path / "var"), **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 2
    assert expected in run.stderr.strip().splitlines()[-1]


def _secret_file(path: Path, value: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")  # as `echo` or a Kubernetes secret leave it
    path.chmod(0o600)
    return str(path)


def _key(kid: str) -> str:
    return f"{kid}:{base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b'=').decode()}"


def test_roles_on_separate_hosts_share_one_redis(tmp_path: Path, shared_redis: RedisServer) -> None:
    """epg, subscriber and the front door as three ``headend up --role`` processes, each
    with its own state dir and port range as if on its own host; the front door's secrets
    come from files and it reaches the other two through their addresses."""
    created = _run_headend("keys", "create", "--role", "playback", REDIS_URL=shared_redis.url)
    assert created.returncode == 0, created.stderr
    playback = next(
        line.split()[1] for line in created.stdout.splitlines() if line.startswith("token:")
    )
    shared = {"REDIS_URL": shared_redis.url, "HEADEND_RESTART_LIMIT": "0"}
    ups: list[Up] = []
    try:
        epg = start_up(tmp_path / "host-a", (21200, 21220), "--role", "epg", **shared)
        ups.append(epg)
        sub = start_up(tmp_path / "host-b", (21240, 21260), "--role", "subscriber", **shared)
        ups.append(sub)
        box_face = start_up(
            tmp_path / "host-c", (21280, 21300), "--role", "frontdoor", **shared,
            FRONTDOOR_EPG_TARGET=f"127.0.0.1:{epg.port(EPG_PORT)}",
            FRONTDOOR_SUBSCRIBER_TARGET=f"127.0.0.1:{sub.port(SUBSCRIBER_PORT)}",
            CDN_SIGNING_KEYS_FILE=_secret_file(tmp_path / "secrets/cdn", _key("k1")),
            FRONTDOOR_SESSION_KEYS_FILE=_secret_file(tmp_path / "secrets/session", _key("s1")),
            FRONTDOOR_API_KEY_FILE=_secret_file(tmp_path / "secrets/api", playback),
        )  # fmt: skip
        ups.append(box_face)
        ports = [epg.port(EPG_PORT), sub.port(SUBSCRIBER_PORT), box_face.port(CDN_GRPC_PORT)]
        assert grpc_not_serving(ports) == set()
        front_door = f"http://127.0.0.1:{box_face.port(FRONT_DOOR_PORT)}"
        assert http_ok(f"{front_door}/healthz")
        # A login reaches the subscriber "host" with the key from the file: an unknown box
        # is refused by the subscriber service (401), not left unanswered (503).
        login = urllib.request.Request(
            f"{front_door}/api/login",
            data=json.dumps({"mac": "02:00:00:00:00:99", "secret": "wrong"}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(login, timeout=10)
        assert refused.value.code == 401
        # Each host ran only its role and never an embedded Redis or secrets.env.
        for up, child in ((epg, "epg"), (sub, "subscriber"), (box_face, "cdn")):
            up.child(child)
            assert not (up.var / "redis").exists()
            assert not (up.var / "secrets.env").exists()
        assert any('"msg"' in line for line in epg.err)  # the child's log lines reach us
    finally:
        for up in reversed(ups):
            up.stop()
