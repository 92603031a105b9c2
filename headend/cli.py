"""The ``headend`` command: the local stack, API keys, and each package's commands."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import version

from headend import demo, logs, redisconn
from headend.auth import ROLES, UNSCOPED, KeyInfo, KeyStore, Principal
from headend.clitools import (
    EXIT_NAMES,
    env_help,
    noting_interrupts,
    redis_env,
    report_failure,
    run,
)
from headend.local import ROLE_ALL, ROLE_NAMES, local_children, parse_roles, role_children
from headend.local_secrets import LocalSecrets, load_pki, load_secrets, tls_client_env
from headend.output import add_output, emit
from headend.pki import PkiError
from headend.rpc import StartupError
from headend.settings import environ
from headend.stack import GaveUp, Stack, StackSettings

# Packages that contribute subcommands through ``register(subparsers)``.
COMMAND_MODULES: tuple[str, ...] = (
    "epg.cli", "epg.cli_cues", "subscriber.cli", "subscriber.reports.cli", "transcode.cli",
    "cdn_ctl.cli",
)  # fmt: skip
LOG_LEVEL_VAR = "LOG_LEVEL"
DEFAULT_LOG_LEVEL = "info"
KEY_COLUMNS = ("key_id", "principal", "created_at")


def _redis_url() -> str:
    settings = StackSettings.from_env(environ())
    return settings.redis_url or settings.default_redis_url()


def _key_row(info: KeyInfo) -> dict[str, object]:
    principal = info.principal
    return {"key_id": info.key_id, "principal": str(principal), "role": principal.role,
            "tenant": principal.tenant, "created_at": info.created_at}  # fmt: skip


async def _keys(args: argparse.Namespace) -> int:
    client = redisconn.connect(_redis_url(), redisconn.RedisSettings.from_env(environ()))
    store = KeyStore(client)
    try:
        if args.keys_command == "create":
            text = args.role if args.role in UNSCOPED else f"{args.role}:{args.tenant or ''}"
            info, token = await store.create(Principal.parse(text))
            print(f"key id:    {info.key_id}\nprincipal: {info.principal}\ntoken:     {token}")
            print("The token is shown once; store it now.", file=sys.stderr)
        elif args.keys_command == "list":
            emit(map(_key_row, await store.list_keys()), KEY_COLUMNS, args.output)
        else:
            await store.revoke(args.key_id)
            print(f"revoked {args.key_id}")
    finally:
        await client.aclose()
    return 0


def _start(settings: StackSettings, *, tls: bool = False) -> tuple[Stack, LocalSecrets]:
    try:
        pki = load_pki(settings) if tls else None
    except (PkiError, OSError) as err:
        raise StartupError(f"cannot set up TLS under {settings.var_dir / 'pki'}: {err}") from err
    stack = Stack(settings)
    try:
        stack.start_redis()
        secrets = load_secrets(settings.var_dir, stack.redis_url)
        stack.start(local_children(settings, secrets, tls=pki))
    except BaseException:  # a failed start or a Ctrl-C meanwhile: stop what did start
        stack.stop()
        raise
    if pki is not None:
        exports = " ".join(f"{k}={v}" for k, v in tls_client_env(pki).items())
        print(f"{'tls':<10} mTLS on every gRPC server (CA {pki.ca_file})", flush=True)
        print(f"{'':<10} callers: export {exports}", flush=True)
    return stack, secrets


def _serve_until_stopped(stack: Stack) -> int:
    """Keep the children running (restarting any that exit) until a signal or a give-up."""
    outcome = stack.supervise(lambda: print("headend is up; Ctrl-C stops everything.", flush=True))
    if isinstance(outcome, GaveUp):
        print(
            f"headend: giving up on {outcome.child} ({outcome.status}): {outcome.reason}",
            file=sys.stderr,
        )
        if outcome.log_path is not None:  # else its output is above, on our stderr
            print(f"headend: last lines of {outcome.log_path}:", file=sys.stderr)
            for line in outcome.log_tail or ("(no output)",):
                print(f"  {line}", file=sys.stderr)
        print(f"stopping ({outcome.child} keeps exiting)", flush=True)
    else:
        print(f"stopping ({outcome.name})", flush=True)
    stack.stop()
    return 1 if isinstance(outcome, GaveUp) else 0


def _up(args: argparse.Namespace) -> int:
    try:
        roles = parse_roles(args.role)
    except ValueError as err:
        raise StartupError(f"--role {args.role}: {err}") from err
    settings = StackSettings.from_env(environ())
    if roles == (ROLE_ALL,):
        stack, _ = _start(settings, tls=args.tls)
    else:
        stack = _start_roles(settings, roles, tls=args.tls)
    return _serve_until_stopped(stack)


def _start_roles(settings: StackSettings, roles: Sequence[str], *, tls: bool) -> Stack:
    """Only ``roles``, on the platform's shared Redis (``REDIS_URL``; never an embedded one),
    with settings and secrets from the environment; children log to our stderr."""
    what = f"headend up --role {','.join(roles)}"
    if settings.redis_url is None:
        raise StartupError(
            f"{what} needs REDIS_URL: the platform's Redis, shared with the roles on the "
            "other hosts (a role never starts an embedded one)"
        )
    if tls:
        raise StartupError(
            f"{what}: --tls makes a private CA on this host only; give the roles "
            "TLS_CERT_FILE/TLS_KEY_FILE/TLS_CLIENT_CA_FILE and GRPC_CLIENT_* instead"
        )
    children = role_children(settings, roles, environ())  # refuses before anything starts
    stack = Stack(settings, log_files=False)
    try:
        stack.start_redis()  # checks that the shared Redis answers
        stack.start(children)
    except BaseException:
        stack.stop()
        raise
    return stack


def _demo(args: argparse.Namespace) -> int:
    settings = StackSettings.from_env(environ())
    if args.reset:
        deleted = demo.reset(settings)  # its refusals (files it did not make, a stack running): 2
        what = f"({', '.join(deleted)})" if deleted else "(nothing there)"
        print(f"deleted {settings.var_dir} {what}", flush=True)
    stack, secrets = _start(settings)
    try:
        demo.run(settings, secrets)
    except BaseException:
        stack.stop()
        raise
    return _serve_until_stopped(stack)


def _log_level(text: str) -> str:
    if text.upper() not in logging.getLevelNamesMapping():
        raise argparse.ArgumentTypeError(f"{text!r} is not a log level (debug, info, warning...)")
    return text


def _stack_env() -> dict[str, str]:
    """What ``headend up`` and ``headend demo`` read, with the defaults of an empty environment."""
    defaults = StackSettings.from_env({})
    return {
        **redis_env(defaults.var_dir),
        "REDIS_APPENDFSYNC": f"the embedded Redis's fsync: always or everysec "
        f"(default {defaults.appendfsync})",
        "HEADEND_HOST": f"the address every listener binds (default {defaults.host})",
        "HEADEND_BASE_PORT": "shift every port so that 8000 becomes this (default: unset, "
        "the services' own ports)",
        "HEADEND_STOP_GRACE_SECONDS": "how long children get to stop before SIGKILL "
        f"(default {defaults.stop_grace_seconds:g})",
        "HEADEND_RESTART_LIMIT": "restarts of one child within the window before giving up "
        f"(default {defaults.restart_limit})",
        "HEADEND_RESTART_WINDOW_SECONDS": f"that window (default "
        f"{defaults.restart_window_seconds:g})",
    }


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    exits = ", ".join(f"{code} {name}" for code, name in EXIT_NAMES)
    parser = argparse.ArgumentParser(
        prog="headend",
        description=__doc__,
        **env_help(
            {LOG_LEVEL_VAR: f"the default of --log-level (default {DEFAULT_LOG_LEVEL})"},
            note=f"exit status: {exits}; every failure is one line on stderr.",
        ),
    )
    parser.add_argument("--version", action="version", version=f"headend {version('headend')}")
    parser.add_argument(
        "--log-level",
        type=_log_level,
        default=os.environ.get(LOG_LEVEL_VAR) or DEFAULT_LOG_LEVEL,
        help=f"debug, info, warning or error (default: {LOG_LEVEL_VAR} or {DEFAULT_LOG_LEVEL})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    stack_env = env_help(_stack_env())
    up = sub.add_parser(
        "up",
        help="run the whole platform locally, or some roles of it, until Ctrl-C or SIGTERM",
        **stack_env,
    )
    up.add_argument(
        "--tls",
        action="store_true",
        help="mTLS between the services, from a private CA kept under <var>/pki/",
    )
    up.add_argument(
        "--role",
        default=ROLE_ALL,
        metavar="NAME[,NAME]",
        help=f"{ROLE_ALL}: the whole platform on this host (default); or any of "
        f"{', '.join(ROLE_NAMES)}: only those, on the shared Redis (REDIS_URL), with settings and "
        "secrets from the environment (NAME or NAME_FILE), for one host of many",
    )
    up.set_defaults(func=_up)
    demo_cmd = sub.add_parser(
        "demo",
        help="run the platform, seed demo data and walk a set-top box's journey",
        **stack_env,
    )
    demo_cmd.add_argument(
        "--reset",
        action="store_true",
        help="first delete the demo's state dir (HEADEND_VAR_DIR): start from empty",
    )
    demo_cmd.set_defaults(func=_demo)

    redis = env_help(redis_env(StackSettings.from_env({}).var_dir))
    keys = sub.add_parser("keys", help="create, list and revoke API keys (talks to Redis)", **redis)
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key; the token is shown once", **redis)
    create.add_argument("--role", choices=[r for r in ROLES if r != "device"], required=True)
    create.add_argument("--tenant", help="broadcaster, carrier or agency id (not for admin)")
    add_output(keys_sub.add_parser("list", help="list keys (never their secrets)", **redis))
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id", **redis)
    revoke.add_argument("key_id")
    keys.set_defaults(func=lambda a: run(_keys(a)))

    for module in COMMAND_MODULES:
        importlib.import_module(module).register(sub)

    # `headend ratelimit`: operators list and clear lockouts (talks to Redis, like `keys`).
    from headend import ratelimit_cli

    ratelimit_cli.register(sub, _redis_url)
    # `headend backup` / `headend restore`: the restore drill (talks to Redis, like `keys`).
    from headend import backup_cli

    backup_cli.register(sub, _redis_url)
    # `headend content-keys`: list, rotate and revoke content keys (talks to Redis, like `keys`).
    from headend.contentkeys import cli as content_keys_cli

    content_keys_cli.register(sub, _redis_url)
    # `headend alert`: emergency alerts; its dry run also reads viewing figures and edges.
    from headend import alert_cli

    alert_cli.register(sub)
    # `headend completion bash|zsh`: last, so the script it walks out of `parser` has it all.
    from headend import completion

    completion.register(sub, parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``headend`` console script: every command's failure ends here or in
    ``run_command``, as one line and the exit status of its kind (``headend.clitools``)."""
    with noting_interrupts():
        try:
            args = build_parser().parse_args(argv)
            logs.configure("headend", args.log_level)
            return int(args.func(args) or 0)
        except (Exception, KeyboardInterrupt) as err:
            return report_failure(err, prog="headend")


if __name__ == "__main__":
    sys.exit(main())
