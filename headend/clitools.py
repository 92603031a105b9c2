"""What every ``headend <noun>`` command that talks gRPC shares: credentials, channels, exit codes.

Exit status 0 on success, 1 when a service refused the call (its status and
details printed, from a raw stub's error or a service client's domain error),
2 when the command's arguments or environment cannot work.
Commands dial with :func:`open_channel`, which speaks TLS (mTLS with a client
pair) when the ``GRPC_CLIENT_*`` variables are set, plaintext otherwise.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine, Mapping
from typing import Any

import grpc

from headend.errors import HeadendError, InvalidArgument
from headend.rpc import ClientTls, bearer, client_channel, error_details, status_code
from headend.settings import SettingsError, env_secret


class CliError(Exception):
    """Raised when a command's arguments or environment cannot work; exit status 2."""


def api_key(env: Mapping[str, str], target_var: str, default_target: str) -> tuple[str, str]:
    """The service address (``target_var`` or the default) and the ``HEADEND_API_KEY``
    (or the file ``HEADEND_API_KEY_FILE`` names)."""
    try:
        key = env_secret(env, "HEADEND_API_KEY")
    except SettingsError as err:
        raise CliError(str(err)) from err
    if not key:
        raise CliError("HEADEND_API_KEY is not set")
    return env.get(target_var, "") or default_target, key


def credentials(
    env: Mapping[str, str], target_var: str, default_target: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The service address (``target_var`` or the default) and ``HEADEND_API_KEY`` metadata."""
    target, key = api_key(env, target_var, default_target)
    return target, bearer(key)


def client_tls(env: Mapping[str, str]) -> ClientTls | None:
    """The ``GRPC_CLIENT_*`` TLS settings (None: plaintext); a bad one is a ``CliError``."""
    try:
        return ClientTls.from_env(env)
    except SettingsError as err:
        raise CliError(str(err)) from err


def open_channel(env: Mapping[str, str], target: str) -> grpc.aio.Channel:
    """A channel to ``target``, over TLS when the ``GRPC_CLIENT_*`` variables ask for it."""
    return client_channel(target, tls=client_tls(env))


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


def run_command(command: Coroutine[Any, Any, int | None], *, prog: str) -> int:
    """Run a command's coroutine and turn its failures into a message and an exit status."""
    try:
        return int(asyncio.run(command) or 0)
    except CliError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 2
    except grpc.aio.AioRpcError as err:
        print(f"{prog}: {describe_rpc_error(err)}", file=sys.stderr)
        return 1
    except HeadendError as err:  # a service client's error (``epg.client``, ...)
        print(f"{prog}: {describe_error(err)}", file=sys.stderr)
        return 1
