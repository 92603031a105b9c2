"""``headend backup`` and ``headend restore``: the restore drill's two commands.

Exit status (``headend.clitools``) 0 when done, 1 when a restore finished but its
counts differ from the manifest (a table of the differences is printed), 2 when
nothing could be done safely: a bad directory, a checksum mismatch, a non-empty
target without ``--force``; 3 when Redis cannot be reached (``headend.cli`` prints
those errors).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from headend.backup import Difference, backup, restore_to_data_dir, restore_to_url
from headend.clitools import env_help, redis_env, run
from headend.redisconn import RedisSettings
from headend.settings import environ
from headend.stack import StackSettings


def _say(line: str) -> None:
    print(line, flush=True)


def _var_dir() -> Path:
    return StackSettings.from_env(environ()).var_dir


def _backup(args: argparse.Namespace, redis_url: Callable[[], str]) -> int:
    url = args.redis_url or redis_url()
    settings = RedisSettings.from_env(environ())
    run(backup(url, _var_dir(), args.out.resolve(), settings=settings, out=_say))
    return 0


def _restore(args: argparse.Namespace) -> int:
    folder, var_dir = args.from_dir.resolve(), _var_dir()
    if args.data_dir is not None:
        diffs = run(
            restore_to_data_dir(
                folder, args.data_dir.resolve(), var_dir, force=args.force, out=_say
            )
        )
    else:
        settings = RedisSettings.from_env(environ())
        diffs = run(
            restore_to_url(
                folder, args.redis_url, var_dir, settings=settings, force=args.force, out=_say
            )
        )
    if diffs:
        _table(diffs)
        return 1
    _say("restored: every count matches the manifest")
    return 0


def _table(diffs: list[Difference]) -> None:
    print("counts differ from the manifest:", file=sys.stderr)
    print(f"  {'entity':<14} {'manifest':>10} {'restored':>10}", file=sys.stderr)
    for d in diffs:
        print(f"  {d.name:<14} {d.expected:>10} {d.found:>10}", file=sys.stderr)


def register(subparsers: argparse._SubParsersAction, redis_url: Callable[[], str]) -> None:
    """Add ``headend backup`` and ``headend restore``; ``redis_url`` (the platform's
    Redis) is read when ``backup`` runs without ``--redis-url``."""
    env = env_help(redis_env(StackSettings.from_env({}).var_dir))
    up = subparsers.add_parser(
        "backup",
        help="snapshot Redis (redis-cli --rdb) with secrets.env and pki/ into a new directory",
        **env,
    )
    up.add_argument("--out", type=Path, required=True, help="a directory that does not exist yet")
    up.add_argument("--redis-url", help="back up this server (default: the platform's Redis)")
    up.set_defaults(func=lambda a: _backup(a, redis_url))

    down = subparsers.add_parser(
        "restore",
        help="check a backup's checksums, rebuild Redis and <var> key material, compare counts",
        **env,
    )
    down.add_argument("--from", dest="from_dir", type=Path, required=True, help="a backup dir")
    target = down.add_mutually_exclusive_group(required=True)
    target.add_argument("--redis-url", help="an empty running Redis to replay the snapshot into")
    target.add_argument(
        "--data-dir",
        type=Path,
        help="the data dir of a Redis not running yet (headend up's embedded one: <var>/redis)",
    )
    down.add_argument(
        "--force",
        action="store_true",
        help="empty a non-empty target first and replace differing secrets.env / pki",
    )
    down.set_defaults(func=_restore)
