"""``headend content-keys list|rotate|revoke|audit``: operator controls over content keys.

Like ``headend keys`` it talks to Redis directly and needs no KEK: it lists keys without
their bytes, forces a rotation, revokes a key id and reads the audit log, never reading a
key. A scope is ``channel/<id>`` or ``asset/<id>``. Every change is audited with the
principal ``cli:<login name>``. An unknown key id or a malformed scope exits 2, Redis
unreachable 3 (``headend.clitools``).
"""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import sys
from collections.abc import Callable

from headend.clitools import CliError, env_help, redis_env, run
from headend.contentkeys.domain import check_scope
from headend.contentkeys.store import ContentKeyStore
from headend.output import add_output, emit
from headend.redisconn import RedisSettings, connect
from headend.settings import environ
from headend.stack import StackSettings

KEY_COLUMNS = ("key_id", "period", "generation", "not_before", "not_after", "kek_id",
               "current", "revoked")  # fmt: skip
AUDIT_COLUMNS = ("at", "principal", "action", "scope", "key_id", "detail")


def _principal() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli:unknown"


async def _run(url: str, args: argparse.Namespace) -> int:
    client = connect(url, RedisSettings.from_env(environ()), name="headend-content-keys")
    store = ContentKeyStore(client, None)
    try:
        command = args.content_keys_command
        if command == "audit":
            if args.limit < 1:
                raise CliError(f"--limit {args.limit}: must be at least 1")
            rows = [dataclasses.asdict(e) for e in await store.audit(limit=args.limit)]
            emit(rows, AUDIT_COLUMNS, args.output)
            return 0
        scope = check_scope(args.scope)
        if command == "list":
            infos = await store.list_keys(scope)
            if not infos and args.output == "table":
                print(f"no content keys in {scope}", file=sys.stderr)
                return 0
            emit((dataclasses.asdict(i) for i in infos), KEY_COLUMNS, args.output)
        elif command == "rotate":
            await store.rotate_now(scope, principal=_principal())
            print(f"rotated {scope}: new segments get new keys")
        else:
            await store.revoke(scope, args.key_id, principal=_principal())
            print(f"revoked {args.key_id} of {scope}; new segments get new keys")
    finally:
        await client.aclose()
    return 0


def register(subparsers: argparse._SubParsersAction, redis_url: Callable[[], str]) -> None:
    """Add ``headend content-keys ...``; ``redis_url`` is read when a command runs."""
    env = env_help(redis_env(StackSettings.from_env({}).var_dir))
    top = subparsers.add_parser(
        "content-keys", help="list, rotate and revoke content keys; the audit (talks to Redis)",
        **env,
    )  # fmt: skip
    commands = top.add_subparsers(dest="content_keys_command", required=True)
    scope_help = "channel/<id> or asset/<id>"
    listing = commands.add_parser("list", help="a scope's keys (never the keys)", **env)
    listing.add_argument("scope", help=scope_help)
    add_output(listing)
    rotate = commands.add_parser("rotate", help="give new segments a new key now", **env)
    rotate.add_argument("scope", help=scope_help)
    revoke = commands.add_parser(
        "revoke", help="refuse a key id to every box from now on (and rotate)", **env
    )
    revoke.add_argument("scope", help=scope_help)
    revoke.add_argument("key_id", help="32 hex digits, as `list` shows it")
    audit = commands.add_parser("audit", help="recorded changes, newest first", **env)
    audit.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    add_output(audit)
    top.set_defaults(func=lambda a: run(_run(redis_url(), a)))
