"""What every ``headend`` command shares: how it ends, its credentials and channels, its help.

Every command ends through :func:`report_failure` (the console script's ``main``
and :func:`run_command` both call it), so a failure is one line on stderr, never
a traceback, and the exit status says which kind of failure it was:

====  =========================================================================
code  meaning
====  =========================================================================
0     done
1     refused: a service refused the call (INVALID_ARGUMENT, NOT_FOUND,
      PERMISSION_DENIED, ALREADY_EXISTS, FAILED_PRECONDITION,
      RESOURCE_EXHAUSTED ...; the fields and details it attached follow on
      indented lines), or the command ran and reports that part of its work
      failed (rows or programmes rejected, a job failed, a restore's counts
      differ from its manifest, ``headend up`` gave up on a child)
2     usage: the arguments, environment or local state cannot work: argparse's
      errors, :class:`CliError` (a missing ``HEADEND_API_KEY`` included: no
      key was presented, so nothing refused one), ``SettingsError`` naming the
      variable, a server that cannot start (port in use), a file that cannot
      be read, and every check a command makes itself before or without a
      service (``backup --out`` exists, ``keys revoke`` of an unknown id)
3     unavailable: a service or Redis cannot be reached or cannot answer now
      (UNAVAILABLE, DEADLINE_EXCEEDED, a service failing internally, a Redis
      connection error or timeout, a refused connection); retry later
4     authentication: a service refused the API key (UNAUTHENTICATED), or
      Redis the password in ``REDIS_URL``
70    internal error (``EX_SOFTWARE``): any other exception, a bug. One line
      names it; ``HEADEND_DEBUG=1`` prints its traceback too (for any failure)
130   interrupted (Ctrl-C)
====  =========================================================================

A domain error counts as a service's refusal (1) when a service client rebuilt
it from the call's status (``headend.rpc.ServiceClient`` chains it ``from`` the
gRPC error); raised by the command itself it is a usage error (2).

``headend worker`` is a service process, not a client: it ends with the
services' exit codes (``headend.rpc.server``). Commands dial with
:func:`open_channel`, which speaks TLS (mTLS with a client pair) when the
``GRPC_CLIENT_*`` variables are set, plaintext otherwise. :func:`env_help` puts the
variables a command reads, with their defaults, at the end of its ``--help``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Coroutine, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import grpc
from redis.exceptions import AuthenticationError as RedisAuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from headend.errors import HeadendError, InvalidArgument, Unauthenticated, Unavailable
from headend.rpc import (
    ClientTls,
    StartupError,
    client_channel,
    domain_error,
    error_details,
    status_code,
)
from headend.rpc.client import CLIENT_TLS_VARS
from headend.settings import SettingsError, env_bool, env_secret, environ

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_AUTH = 4
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for a Ctrl-C
# For the top-level ``--help``; the table above says what each means.
EXIT_NAMES = (
    (0, "done"),
    (EXIT_REFUSED, "refused"),
    (EXIT_USAGE, "usage"),
    (EXIT_UNAVAILABLE, "unavailable"),
    (EXIT_AUTH, "authentication"),
    (EXIT_INTERNAL, "internal error"),
    (EXIT_INTERRUPTED, "interrupted"),
)

API_KEY_VAR = "HEADEND_API_KEY"
DEBUG_VAR = "HEADEND_DEBUG"
_HELP_WIDTH = 79
_HELP_NAME_WIDTH = 23


class CliError(Exception):
    """Raised when a command's arguments or environment cannot work; exit status 2."""


def when(text: str) -> datetime:
    """An ISO 8601 time with its UTC offset, as UTC (an argparse ``type``)."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from err
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. +08:00)")
    return value.astimezone(UTC)


def api_key(
    env: Mapping[str, str], target_var: str, default_target: str, *, target: str | None = None
) -> tuple[str, str]:
    """The service address (``--target``, else ``target_var``, else the default) and the
    ``HEADEND_API_KEY`` (or the file ``HEADEND_API_KEY_FILE`` names)."""
    try:
        key = env_secret(env, API_KEY_VAR)
    except SettingsError as err:
        raise CliError(str(err)) from err
    if not key:
        raise CliError(f"{API_KEY_VAR} is not set")
    return target or env.get(target_var, "") or default_target, key


def add_target(parser: argparse.ArgumentParser, target_var: str, default_target: str) -> None:
    """``--target HOST:PORT`` on a service's command group (read by :func:`api_key`) and on
    every command below it, so it may come before or after the command's name. Call it once
    the group's commands are added."""
    help_text = f"the service's address (default: {target_var}, else {default_target})"
    parser.add_argument("--target", metavar="HOST:PORT", default=None, help=help_text)
    pending = [parser]
    while pending:
        group = pending.pop()
        for action in group._actions:
            if isinstance(action, argparse._SubParsersAction):
                for command in dict.fromkeys(action.choices.values()):
                    # SUPPRESS: a command that was not given it keeps the group's value.
                    command.add_argument(
                        "--target", metavar="HOST:PORT", default=argparse.SUPPRESS, help=help_text
                    )
                    pending.append(command)


def client_tls(env: Mapping[str, str]) -> ClientTls | None:
    """The ``GRPC_CLIENT_*`` TLS settings (None: plaintext); a bad one is a ``CliError``."""
    try:
        return ClientTls.from_env(env)
    except SettingsError as err:
        raise CliError(str(err)) from err


def open_channel(env: Mapping[str, str], target: str) -> grpc.aio.Channel:
    """A channel to ``target``, over TLS when the ``GRPC_CLIENT_*`` variables ask for it."""
    return client_channel(target, tls=client_tls(env))


def service_env(target_var: str, default_target: str, service: str) -> dict[str, str]:
    """What a command that calls ``service`` reads: its address, the API key, TLS."""
    ca, cert, key, name = CLIENT_TLS_VARS
    return {
        target_var: f"the {service} service's address (default {default_target})",
        API_KEY_VAR: f"your API key, or {API_KEY_VAR}_FILE: a file holding it (required)",
        ca: "the CA that signed the service's certificate: dial over TLS (default: plaintext)",
        cert: f"mTLS: this caller's certificate, with {key} (default: none)",
        key: f"mTLS: this caller's private key, with {cert} (default: none)",
        name: "the name to check the service's certificate against (default: its address)",
    }


def redis_env(var_dir: Path) -> dict[str, str]:
    """What a command that talks to Redis directly reads: ``REDIS_URL``, else the Redis of the
    local stack in ``HEADEND_VAR_DIR`` (``var_dir`` when unset: ``StackSettings``' default)."""
    return {
        "REDIS_URL": "the platform's Redis, or REDIS_URL_FILE: a file holding it "
        "(default: headend up's own, in HEADEND_VAR_DIR)",
        "HEADEND_VAR_DIR": f"headend up's state directory (default {os.path.relpath(var_dir)})",
        "REDIS_*": "the Redis client's timeouts and retries (README: Configuration)",
    }


def env_help(variables: Mapping[str, str], *, note: str = "") -> dict[str, Any]:
    """``add_parser`` keywords that end a command's ``--help`` with the environment variables it
    reads (name -> what it is, with its default), ``HEADEND_DEBUG`` last, then ``note``."""
    rows = {**variables, DEBUG_VAR: "1: print a failure's traceback too (default: one line)"}
    # As argparse lays out options: a name too long for the column puts its text below it.
    column = min(max(len(name) for name in rows), _HELP_NAME_WIDTH) + 4
    lines = ["environment:"]
    for name, what in rows.items():
        fits = len(name) <= column - 4
        if not fits:
            lines.append(f"  {name}")
        first = f"  {name:<{column - 4}}  " if fits else " " * column
        lines.append(textwrap.fill(what, _HELP_WIDTH, initial_indent=first,
                                   subsequent_indent=" " * column))  # fmt: skip
    if note:
        lines += ["", textwrap.fill(note, _HELP_WIDTH)]
    return {"epilog": "\n".join(lines), "formatter_class": argparse.RawDescriptionHelpFormatter}


def describe_rpc_error(err: grpc.aio.AioRpcError) -> str:
    """``CODE: message`` and, one per line, the fields and metadata the server attached."""
    details = error_details(err)
    extra = "".join(f"\n  {k}: {v}" for k, v in {**details.fields, **details.metadata}.items())
    return f"{err.code().name}: {err.details()}{extra}"


def describe_error(err: HeadendError) -> str:
    """``CODE: message`` and, one per line, the field and details a service's error carries."""
    fields = {err.field: err.reason} if isinstance(err, InvalidArgument) else {}
    extra = "".join(f"\n  {k}: {v}" for k, v in {**fields, **err.details}.items())
    return f"{status_code(err).name}: {err.message}{extra}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _status(err: HeadendError, *, from_service: bool) -> int:
    if isinstance(err, Unavailable):
        return EXIT_UNAVAILABLE
    if isinstance(err, Unauthenticated):
        return EXIT_AUTH
    return EXIT_REFUSED if from_service else EXIT_USAGE


def classify(err: BaseException) -> tuple[int, str]:
    """The exit status of ``err``'s category (the table above) and the text that says it."""
    if isinstance(err, KeyboardInterrupt):
        return EXIT_INTERRUPTED, "interrupted"
    if isinstance(err, grpc.aio.AioRpcError):  # a raw stub's call: as a client would see it
        known = domain_error(err, service="service", root=HeadendError)
        return _status(known, from_service=True), describe_rpc_error(err)
    if isinstance(err, HeadendError):
        # A service client rebuilds the service's error from the call's status, chained from it.
        from_service = isinstance(err.__cause__, grpc.RpcError)
        status = _status(err, from_service=from_service)
        if from_service and status != EXIT_UNAVAILABLE:
            return status, describe_error(err)
        return status, _one_line(str(err))
    if isinstance(err, StartupError):  # e.g. ``headend up`` with REDIS_URL unreachable
        unavailable = isinstance(err.__cause__, Unavailable)
        return EXIT_UNAVAILABLE if unavailable else EXIT_USAGE, _one_line(str(err))
    if isinstance(err, CliError | SettingsError):
        return EXIT_USAGE, _one_line(str(err))
    if isinstance(err, RedisAuthenticationError):  # before its base, ConnectionError
        return EXIT_AUTH, _one_line(f"Redis refused the credentials in REDIS_URL: {err}")
    if isinstance(err, RedisConnectionError | RedisTimeoutError):
        return EXIT_UNAVAILABLE, _one_line(f"Redis unavailable: {err}")
    if isinstance(err, ConnectionError | TimeoutError):
        return EXIT_UNAVAILABLE, _one_line(str(err))
    if isinstance(err, OSError):  # a file or directory the command was given or needs
        return EXIT_USAGE, _one_line(str(err))
    return EXIT_INTERNAL, _one_line(f"internal error: {type(err).__name__}: {err}")


def _debug() -> bool:
    try:
        return env_bool(environ(), DEBUG_VAR, False)
    except SettingsError:  # set, but to neither true nor false: it asks for more, not less
        return True


T = TypeVar("T")
# How often a command a Ctrl-C cancelled is cancelled again until it ends.
RECANCEL_SECONDS = 0.5

# Set by a Ctrl-C under :func:`noting_interrupts` or :func:`run`.
_INTERRUPTED = threading.Event()


@contextlib.contextmanager
def noting_interrupts() -> Iterator[None]:
    """Within it (the console script's ``main``), a Ctrl-C is remembered before it raises
    ``KeyboardInterrupt``: a command it cuts short then ends as interrupted (130) whatever
    error the cut left behind (a client library may turn it into a lost connection)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        _INTERRUPTED.set()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def report_failure(err: BaseException, *, prog: str) -> int:
    """Print ``err`` as ``prog: ...`` on stderr (its traceback too with ``HEADEND_DEBUG=1``)
    and return its exit status."""
    status, text = classify(KeyboardInterrupt() if _INTERRUPTED.is_set() else err)
    if _debug():
        traceback.print_exception(err, file=sys.stderr)
    elif status == EXIT_INTERNAL:
        text += f" (rerun with {DEBUG_VAR}=1 to see the traceback)"
    print(f"{prog}: {text}", file=sys.stderr)
    return status


def run_command(command: Coroutine[Any, Any, int | None], *, prog: str) -> int:
    """Run a command's coroutine; a failure becomes a message and its exit status."""
    try:
        return int(run(command) or 0)
    except (Exception, KeyboardInterrupt) as err:
        return report_failure(err, prog=prog)


def run(command: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(command)`` with a Ctrl-C cancelling it at its next await, then ending
    as ``KeyboardInterrupt``: every console command's coroutine runs this way. Raised
    wherever the loop happens to be instead (Python's own handling), the interrupt can
    leave a transport half built: a hung exit, or garbage on stderr at shutdown."""
    try:
        return asyncio.run(_cancelled_by_ctrl_c(command))
    except asyncio.CancelledError:
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt from None
        raise


async def _cancelled_by_ctrl_c(command: Coroutine[Any, Any, T]) -> T:
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def interrupt() -> None:
        # Again every half second until it ends: a library may swallow one cancellation
        # (redis-py's connect, asyncio.wait_for on 3.11) and go on waiting.
        _INTERRUPTED.set()
        if task is not None and not task.done():
            task.cancel()
            loop.call_later(RECANCEL_SECONDS, interrupt)

    try:
        loop.add_signal_handler(signal.SIGINT, interrupt)
    except (RuntimeError, ValueError):  # not the main thread: Python's own handling
        return await command
    try:
        return await command
    finally:
        loop.remove_signal_handler(signal.SIGINT)
