"""Every ``headend`` command ends as one line and the exit status of its kind (``clitools``).

The console script runs as an operator runs it, in its own process, against real
servers, a real Redis and ports nothing listens on; the table of categories is
checked on the mapping itself with real exception types.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from cdn_ctl import cli as cdn_cli
from epg import cli as epg_cli
from headend import cli
from headend.auth import KeyStore, Principal
from headend.clitools import (
    EXIT_AUTH,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_REFUSED,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliError,
    classify,
    report_failure,
)
from headend.errors import NotFound, Unauthenticated
from headend.redisconn import RedisUnreachable
from headend.redisproc import RedisServer
from headend.rpc import ServiceUnavailable, StartupError
from headend.settings import SettingsError
from subscriber import cli as subscriber_cli
from tests.support.subscriber import ManualClock, lease_settings, seed_world, serve
from tests.support.tokens import Tokens
from transcode import cli as transcode_cli

HEADEND = str(Path(sys.executable).with_name("headend"))
# Variables the caller's shell may hold that would change what a command does.
_CLEARED = ("HEADEND_API_KEY", "HEADEND_API_KEY_FILE", "HEADEND_DEBUG", "REDIS_URL", "LOG_LEVEL")


def _env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return {**base, **extra}


def _headend(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [HEADEND, *args], env=_env(**env), capture_output=True, text=True, check=False
    )


async def _headend_async(*args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        HEADEND, *args, env=_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.2)
        yield listener


# --- the console script, end to end ----------------------------------------------------------


def test_keys_list_without_redis_is_one_line_exit_3(closed_port: int) -> None:
    run = _headend("keys", "list", REDIS_URL=f"redis://127.0.0.1:{closed_port}/0")
    assert run.returncode == EXIT_UNAVAILABLE
    assert "Traceback" not in run.stderr
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith("headend: Redis unavailable: ")
    assert str(closed_port) in run.stderr


def test_epg_against_a_closed_port_is_one_line_exit_3(closed_port: int) -> None:
    run = _headend("epg", "export", EPG_TARGET=f"127.0.0.1:{closed_port}", HEADEND_API_KEY="hk_0_x")
    assert run.returncode == EXIT_UNAVAILABLE
    assert run.stderr.splitlines() == [run.stderr.strip()]
    assert run.stderr.startswith("headend epg: epg unavailable: ")
    assert run.stdout == ""


@pytest.mark.parametrize(
    ("args", "prog"),
    [
        pytest.param(("epg", "export"), "headend epg", id="epg"),
        pytest.param(("subscribers", "get", "--id", "x"), "headend subscribers", id="subscribers"),
        pytest.param(("transcode", "jobs"), "headend", id="transcode"),
        pytest.param(("cdn", "edges"), "headend cdn", id="cdn"),
    ],
)
def test_a_missing_api_key_is_usage_exit_2(args: tuple[str, ...], prog: str) -> None:
    # Nothing was presented, so nothing refused a key: the environment is incomplete (2);
    # 4 is for a key a service refused (below).
    run = _headend(*args)
    assert run.returncode == EXIT_USAGE
    assert run.stderr == f"{prog}: HEADEND_API_KEY is not set\n"


def test_version_is_the_installed_distributions() -> None:
    run = _headend("--version")
    assert run.returncode == 0
    assert run.stdout == f"headend {version('headend')}\n"


def test_epg_help_names_its_variables_and_their_defaults() -> None:
    run = _headend("epg", "--help")
    assert run.returncode == 0
    text = " ".join(run.stdout.split())
    assert f"EPG_TARGET the EPG service's address (default {epg_cli.DEFAULT_TARGET})" in text
    for name in ("HEADEND_API_KEY", "HEADEND_API_KEY_FILE", "GRPC_CLIENT_CA_FILE",
                 "GRPC_CLIENT_CERT_FILE", "GRPC_CLIENT_KEY_FILE", "HEADEND_DEBUG"):  # fmt: skip
        assert name in run.stdout


async def test_internal_error_is_one_line_and_debug_shows_the_traceback(
    redis_server: RedisServer,
) -> None:
    # A key record that is not a hash: Redis answers WRONGTYPE, which no category covers.
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.set("auth:key:broken", "not a hash")
        code, _, err = await _headend_async("keys", "list", REDIS_URL=redis_server.url)
        debug_code, _, debug_err = await _headend_async(
            "keys", "list", REDIS_URL=redis_server.url, HEADEND_DEBUG="1"
        )
    finally:
        await client.delete("auth:key:broken")
        await client.aclose()
    assert code == EXIT_INTERNAL
    assert err.splitlines() == [err.strip()]
    assert err.startswith("headend: internal error: ResponseError: WRONGTYPE")
    assert err.endswith("(rerun with HEADEND_DEBUG=1 to see the traceback)\n")
    assert debug_code == EXIT_INTERNAL
    assert debug_err.startswith("Traceback (most recent call last):")
    assert "in list_keys" in debug_err
    assert debug_err.splitlines()[-1].startswith("headend: internal error: ResponseError:")


async def test_service_refusal_exits_1_and_a_refused_key_4(
    redis: aioredis.Redis, keys: KeyStore, tokens: Tokens
) -> None:
    async with serve(redis, keys, tokens, ManualClock(), lease_settings()) as api:
        await seed_world(api)
        target = f"127.0.0.1:{api.port}"
        code, out, err = await _headend_async(
            "subscribers", "get", "--id", "nobody",
            SUBSCRIBER_TARGET=target, HEADEND_API_KEY=await tokens("carrier:acme"),
        )  # fmt: skip
        refused_code, _, refused_err = await _headend_async(
            "subscribers", "get", "--id", "alice",
            SUBSCRIBER_TARGET=target, HEADEND_API_KEY="hk_0123456789abcdef_not-a-key",
        )  # fmt: skip
    assert (code, out) == (EXIT_REFUSED, "")
    assert err.startswith("headend subscribers: NOT_FOUND: ")
    assert "nobody" in err
    assert refused_code == EXIT_AUTH
    assert refused_err.splitlines() == [refused_err.strip()]
    assert refused_err.startswith("headend subscribers: UNAUTHENTICATED: ")


def test_ctrl_c_is_one_line_exit_130(silent_listener: socket.socket) -> None:
    port = silent_listener.getsockname()[1]
    proc = subprocess.Popen(
        [HEADEND, "keys", "list"], env=_env(REDIS_URL=f"redis://127.0.0.1:{port}/0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        conn = None
        while conn is None:  # the command is waiting on Redis once it has connected
            try:
                conn, _ = silent_listener.accept()
            except TimeoutError:
                if proc.poll() is not None:
                    pytest.fail(f"exited {proc.returncode} before connecting: {proc.communicate()}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
        conn.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == EXIT_INTERRUPTED
    assert (out, err) == ("", "headend: interrupted\n")


# --- every command's help ---------------------------------------------------------------------


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*path, name))


def test_every_command_lists_the_environment_it_reads() -> None:
    commands = dict(_commands(cli.build_parser()))
    assert len(commands) > 30
    for path, parser in commands.items():
        assert "environment:\n" in parser.format_help(), path
        assert "HEADEND_DEBUG" in parser.format_help(), path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        pytest.param((), ["LOG_LEVEL", "exit status: 0 done, 1 refused, 2 usage"], id="top"),
        pytest.param(("epg", "import"),
                     ["EPG_TARGET", f"(default {epg_cli.DEFAULT_TARGET})"], id="epg-import"),
        pytest.param(("subscribers", "get"), ["SUBSCRIBER_TARGET",
                     f"(default {subscriber_cli.DEFAULT_TARGET})"], id="subscribers"),
        pytest.param(("transcode", "submit"), ["TRANSCODE_TARGET",
                     f"(default {transcode_cli.DEFAULT_TARGET})"], id="transcode"),
        pytest.param(("channel", "start"), ["TRANSCODE_TARGET"], id="channel"),
        pytest.param(("cdn", "drain"), ["CDN_TARGET", f"(default {cdn_cli.DEFAULT_TARGET})"],
                     id="cdn"),
        pytest.param(("keys", "create"), ["REDIS_URL", "HEADEND_VAR_DIR", "(default var)"],
                     id="keys"),
        pytest.param(("ratelimit", "clear"), ["REDIS_URL"], id="ratelimit"),
        pytest.param(("restore",), ["REDIS_URL", "HEADEND_VAR_DIR"], id="restore"),
        pytest.param(("up",), ["HEADEND_BASE_PORT", "HEADEND_RESTART_LIMIT", "(default 5)"],
                     id="up"),
        pytest.param(("worker",), ["REDIS_URL", "ORIGIN_ROOT", "TC_*"], id="worker"),
    ],
)  # fmt: skip
def test_help_names_the_variables_with_their_defaults(
    path: tuple[str, ...], expected: list[str]
) -> None:
    text = " ".join(dict(_commands(cli.build_parser()))[path].format_help().split())
    for needle in expected:
        assert needle in text, (path, needle)


# --- the mapping: one table of categories -----------------------------------------------------


def _rpc_error(code: grpc.StatusCode, details: str = "said the server") -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


def _from(err: BaseException, cause: BaseException) -> BaseException:
    """``err`` as ``raise err from cause`` leaves it."""
    err.__cause__ = cause
    return err


@pytest.mark.parametrize(
    ("err", "status"),
    [
        pytest.param(RuntimeError("boom"), EXIT_INTERNAL, id="bug"),
        pytest.param(KeyError("digest"), EXIT_INTERNAL, id="bug-keyerror"),
        pytest.param(KeyboardInterrupt(), EXIT_INTERRUPTED, id="ctrl-c"),
        pytest.param(CliError("HEADEND_API_KEY is not set"), EXIT_USAGE, id="cli-error"),
        pytest.param(SettingsError("REDIS_URL", "bad"), EXIT_USAGE, id="settings"),
        pytest.param(StartupError("ports already in use"), EXIT_USAGE, id="startup"),
        pytest.param(_from(StartupError("cannot reach Redis"), RedisUnreachable("down")),
                     EXIT_UNAVAILABLE, id="startup-redis-down"),
        pytest.param(FileNotFoundError(2, "No such file or directory"), EXIT_USAGE, id="no-file"),
        pytest.param(ConnectionRefusedError(111, "Connection refused"), EXIT_UNAVAILABLE,
                     id="refused-connection"),
        pytest.param(redis.exceptions.ConnectionError("Error 111"), EXIT_UNAVAILABLE,
                     id="redis-down"),
        pytest.param(redis.exceptions.TimeoutError("Timeout"), EXIT_UNAVAILABLE,
                     id="redis-timeout"),
        pytest.param(redis.exceptions.AuthenticationError("WRONGPASS"), EXIT_AUTH,
                     id="redis-password"),
        pytest.param(redis.exceptions.ResponseError("WRONGTYPE"), EXIT_INTERNAL,
                     id="redis-other"),
        pytest.param(NotFound("no API key x"), EXIT_USAGE, id="own-check"),
        pytest.param(_from(NotFound("no subscriber"), _rpc_error(grpc.StatusCode.NOT_FOUND)),
                     EXIT_REFUSED, id="service-refusal"),
        pytest.param(_from(Unauthenticated("revoked"),
                           _rpc_error(grpc.StatusCode.UNAUTHENTICATED)), EXIT_AUTH,
                     id="service-unauthenticated"),
        pytest.param(ServiceUnavailable("epg", "down", reason="UNAVAILABLE",
                                        retry_delay_seconds=None), EXIT_UNAVAILABLE,
                     id="service-unavailable"),
        pytest.param(_rpc_error(grpc.StatusCode.INVALID_ARGUMENT), EXIT_REFUSED, id="raw-invalid"),
        pytest.param(_rpc_error(grpc.StatusCode.PERMISSION_DENIED), EXIT_REFUSED,
                     id="raw-permission"),
        pytest.param(_rpc_error(grpc.StatusCode.UNAVAILABLE), EXIT_UNAVAILABLE,
                     id="raw-unavailable"),
        pytest.param(_rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), EXIT_UNAVAILABLE,
                     id="raw-deadline"),
        pytest.param(_rpc_error(grpc.StatusCode.UNAUTHENTICATED), EXIT_AUTH, id="raw-auth"),
    ],
)  # fmt: skip
def test_each_kind_of_failure_has_its_exit_status(err: BaseException, status: int) -> None:
    code, text = classify(err)
    assert code == status
    assert text


def test_an_unexpected_exception_is_one_line_then_a_traceback_on_request(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HEADEND_DEBUG", raising=False)
    with pytest.raises(RuntimeError) as raised:
        raise RuntimeError("the unexpected")
    assert report_failure(raised.value, prog="headend") == EXIT_INTERNAL
    assert capsys.readouterr().err == (
        "headend: internal error: RuntimeError: the unexpected "
        "(rerun with HEADEND_DEBUG=1 to see the traceback)\n"
    )
    monkeypatch.setenv("HEADEND_DEBUG", "1")
    assert report_failure(raised.value, prog="headend") == EXIT_INTERNAL
    said = capsys.readouterr().err.splitlines()
    assert said[0] == "Traceback (most recent call last):"
    assert 'raise RuntimeError("the unexpected")' in "\n".join(said)
    assert said[-1] == "headend: internal error: RuntimeError: the unexpected"


def test_a_service_refusal_keeps_its_detail_lines() -> None:
    err = _from(NotFound("no subscriber x", details={"carrier": "acme"}),
                _rpc_error(grpc.StatusCode.NOT_FOUND))  # fmt: skip
    assert classify(err) == (EXIT_REFUSED, "NOT_FOUND: no subscriber x\n  carrier: acme")


async def test_keys_list_prints_a_table_json_or_csv(redis_server: RedisServer) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    store = KeyStore(client)
    made = [(await store.create(Principal.parse(p)))[0] for p in ("admin", "carrier:ct-sh")]
    try:
        runs = {fmt: await _headend_async("keys", "list", "-o", fmt, REDIS_URL=redis_server.url)
                for fmt in ("table", "json", "csv")}  # fmt: skip
    finally:
        for info in made:
            await store.revoke(info.key_id)
        await client.aclose()
    assert {code for code, _, _ in runs.values()} == {0}
    header, *lines = runs["table"][1].splitlines()
    assert header.split() == ["KEY_ID", "PRINCIPAL", "CREATED_AT"]
    mine = {line.split()[0]: line.split()[1] for line in lines}
    assert {mine[info.key_id] for info in made} == {"admin", "carrier:ct-sh"}
    listed = {row["key_id"]: row for row in json.loads(runs["json"][1])}
    carrier = listed[made[1].key_id]
    assert (carrier["role"], carrier["tenant"]) == ("carrier", "ct-sh")
    assert carrier["created_at"] == made[1].created_at.isoformat()
    reader = csv.DictReader(io.StringIO(runs["csv"][1]))
    assert reader.fieldnames == ["key_id", "principal", "created_at"]
    assert {row["key_id"]: row["principal"] for row in reader}[made[0].key_id] == "admin"
