"""``headend ratelimit locked|clear``: operators list and lift lockouts (talks to Redis).

``locked`` prints through :mod:`headend.output` (``-o table|json|csv``); an empty table
prints nothing on stdout and says so on stderr, while JSON and CSV print their empty
array or bare header, which a program can still parse.

``headend.cli`` turns their failures into one line and an exit status (``headend.clitools``);
``clear`` of a key that was not locked exits 1.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from headend.clitools import env_help, redis_env, run
from headend.output import add_output, emit
from headend.ratelimit import clear_lockout, lockouts
from headend.redisconn import RedisSettings, connect
from headend.settings import environ
from headend.stack import StackSettings

COLUMNS = ("name", "key", "retry_after_seconds")


async def _locked(url: str, name: str | None, fmt: str) -> int:
    client = connect(url, RedisSettings.from_env(environ()), name="headend-ratelimit")
    try:
        found = await lockouts(client, name=name)
    finally:
        await client.aclose()
    if not found and fmt == "table":
        print("no locked keys", file=sys.stderr)
        return 0
    rows = [
        {"name": lock.name, "key": lock.key, "retry_after_seconds": round(lock.retry_after_seconds)}
        for lock in found
    ]
    emit(rows, COLUMNS, fmt)
    return 0


async def _clear(url: str, name: str, key: str) -> int:
    client = connect(url, RedisSettings.from_env(environ()), name="headend-ratelimit")
    try:
        was_locked = await clear_lockout(client, name, key)
    finally:
        await client.aclose()
    if not was_locked:
        print(f"{name} {key!r} was not locked (its failure count is reset)", file=sys.stderr)
        return 1
    print(f"cleared the lockout of {name} {key!r}")
    return 0


def register(subparsers: argparse._SubParsersAction, redis_url: Callable[[], str]) -> None:
    """Add ``headend ratelimit ...``; ``redis_url`` is read when a command runs."""
    env = env_help(redis_env(StackSettings.from_env({}).var_dir))
    top = subparsers.add_parser("ratelimit", help="list and clear lockouts (talks to Redis)", **env)
    commands = top.add_subparsers(dest="ratelimit_command", required=True)
    locked = commands.add_parser("locked", help="list locked keys with the time left", **env)
    locked.add_argument("--name", help="only this limiter (e.g. login)")
    add_output(locked)
    locked.set_defaults(func=lambda a: run(_locked(redis_url(), a.name, a.output)))
    clear = commands.add_parser("clear", help="lift a lockout (and reset its failure count)", **env)
    clear.add_argument("name", help="the limiter, e.g. login")
    clear.add_argument("key", help="the locked key, as `locked` lists it")
    clear.set_defaults(func=lambda a: run(_clear(redis_url(), a.name, a.key)))
