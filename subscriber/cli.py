"""``headend subscribers ...``: a carrier's provisioning engineer's commands, over gRPC.

Talks to ``--target``, else ``SUBSCRIBER_TARGET``, with the API key in
``HEADEND_API_KEY`` (``--help`` lists them with their defaults). ``--carrier``
defaults to the key's own carrier. Every command that prints takes ``-o
table|json|csv`` (:mod:`headend.output`). Failures end as :mod:`headend.clitools`
says (one line, the exit status of their kind). The commands live by subject:
:mod:`subscriber.cli_accounts` (create, get, list, export, update, status, entitle,
revoke), :mod:`subscriber.cli_devices` (bind, activate, unbind, block, replace,
why-not), :mod:`subscriber.cli_profiles` (device-profile define, get, list, delete),
:mod:`subscriber.cli_admin` (packages, define-package, create-carrier,
audit), :mod:`subscriber.cli_helpdesk` (device-events, counts, provisioning-errors) and
:mod:`subscriber.cli_import` (import, ``--dry-run``, ``--rejects``).

``headend subscribers import FILE.csv`` reads UTF-8 CSV with a header row.
Columns (only the first three are required; order is free):

==================  =========================================================
subscriber_id       the carrier's account id (``[A-Za-z0-9._:-]``, <= 64)
display_name        the account holder's name
region_code         6-digit administrative division code, e.g. ``440305``
status              active (default), suspended or terminated
service_end         ``YYYY-MM-DD`` (service runs through that day, UTC+08:00)
                    or an ISO-8601 time with offset; empty = open-ended
max_streams         concurrent streams, 1-16; empty = the service default
contact_phone       optional
contact_email       optional
mac                 the box's MAC in any common notation; empty = no box
serial, model       the box's serial number and model
packages            package ids separated by ``;`` (entitlements upserted)
entitled_from       ``YYYY-MM-DD`` or ISO time; empty = now (or the start
                    already stored, so re-runs change nothing)
entitled_until      last day (inclusive) or exclusive ISO time; empty = open
==================  =========================================================

Row numbers in the report are CSV line numbers (the header is line 1). One
record per line; unreadable lines and cells are reported per row (rules:
:mod:`subscriber.importfile`), never as a traceback.
The file is read a row at a time; rows are sent in calls of ``--rows-per-call``;
each call is acknowledged once its rows are stored, and the progress bar counts
acknowledged rows.
Imports are idempotent upserts: after an interruption, run the same file
again; rows already stored are reported as unchanged.
"""

from __future__ import annotations

import argparse

from headend.clitools import add_target, env_help, service_env
from subscriber import (
    cli_accounts,
    cli_admin,
    cli_devices,
    cli_helpdesk,
    cli_import,
    cli_profiles,
)
from subscriber.cli_common import DEFAULT_TARGET, TARGET_VAR, Command, run
from subscriber.cli_import import import_rows
from subscriber.importfile import CsvError, read_csv

__all__ = ["CsvError", "import_rows", "read_csv", "register"]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``headend subscribers ...``; each command sets ``func(args) -> exit code``."""
    env = env_help(service_env(TARGET_VAR, DEFAULT_TARGET, "subscriber"))
    top = subparsers.add_parser(
        "subscribers", help="carriers' subscribers, boxes and packages", **env
    )
    commands = top.add_subparsers(dest="subscribers_command", required=True)

    def add(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, **env)
        parser.set_defaults(func=run(command))
        parser.add_argument("--carrier", default="", help="carrier id (default: the key's own)")
        parser.add_argument("--idempotency-key", default="", help="makes a retry safe")
        return parser

    cli_import.add_commands(add)
    cli_accounts.add_commands(add)
    cli_devices.add_commands(add)
    cli_profiles.add_commands(add)
    cli_admin.add_commands(add)
    cli_helpdesk.add_commands(add)
    add_target(top, TARGET_VAR, DEFAULT_TARGET)
