"""What every ``headend subscribers`` command shares: its client, its carrier, its printing.

A command is a coroutine ``(Context, args) -> exit code``; :func:`run` dials the
service (``--target``, else ``SUBSCRIBER_TARGET``) with ``HEADEND_API_KEY`` and ends it
as :mod:`headend.clitools` says. Results print through :func:`headend.output.emit`, one
row per domain value with its fields as they are named in ``protos/subscriber.proto``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from headend.clitools import CliError, api_key, client_tls, run_command
from headend.output import emit
from headend.settings import environ
from subscriber.client import SubscriberClient
from subscriber.domain import Device, Subscriber
from subscriber.importfile import CsvError, parse_moment

TARGET_VAR = "SUBSCRIBER_TARGET"
DEFAULT_TARGET = "127.0.0.1:50052"
PROG = "headend subscribers"

SUBSCRIBER_COLUMNS = (
    "subscriber_id", "display_name", "region_code", "status", "service_end", "max_streams",
    "version",
)  # fmt: skip
# Every field a subscriber has on the wire: what ``export`` writes.
SUBSCRIBER_FIELDS = (
    "carrier_id", "subscriber_id", "display_name", "region_code", "status", "service_end",
    "max_streams", "contact_phone", "contact_email", "version", "created_at", "updated_at",
)  # fmt: skip
DEVICE_COLUMNS = ("mac", "subscriber_id", "status", "serial", "model", "activated_at")


@dataclass(frozen=True)
class Context:
    """A command's client, with the carrier it acts for."""

    client: SubscriberClient

    async def carrier(self, given: str) -> str:
        """``--carrier``, else the API key's own carrier (an admin key must name one)."""
        if given:
            return given
        me = await self.client.whoami()
        if me.role != "carrier":
            raise CliError("--carrier is required with an admin key")
        return me.tenant


Command = Callable[[Context, argparse.Namespace], Coroutine[Any, Any, int]]


class AddCommand(Protocol):
    """``add(name, command, help)``: a sub-command with ``--carrier`` and ``--idempotency-key``."""

    def __call__(self, name: str, command: Command, help_text: str) -> argparse.ArgumentParser: ...


def run(command: Command) -> Callable[[argparse.Namespace], int]:
    """``args.func`` for ``command``: dial, run, end with the exit status of what happened."""

    def go_sync(args: argparse.Namespace) -> int:
        async def go() -> int:
            env = environ()
            target, key = api_key(env, TARGET_VAR, DEFAULT_TARGET, target=args.target)
            async with SubscriberClient(target, key, tls=client_tls(env)) as client:
                return await command(Context(client), args)

        return run_command(go(), prog=PROG)

    return go_sync


def moment(text: str, option: str, *, end_of_day: bool) -> datetime | None:
    """An option's date or time (:func:`parse_moment`); one that cannot be read is a usage error."""
    try:
        return parse_moment(text, option, end_of_day=end_of_day)
    except CsvError as err:
        raise CliError(f"--{option.replace('_', '-')}: {err.reason}") from err


def record(value: Any) -> dict[str, Any]:
    """A domain value (a dataclass) as one output row: its fields, never a secret's digest."""
    row = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.repr}
    if isinstance(value, Subscriber):  # the wire's Subscriber carries neither
        del row["entitlements"], row["device_macs"]
    return row


def show_subscribers(subs: Iterable[Subscriber], args: argparse.Namespace) -> None:
    """Print subscribers: the usual columns in a table, every field in JSON and CSV."""
    columns = SUBSCRIBER_COLUMNS if args.output == "table" else SUBSCRIBER_FIELDS
    emit((record(s) for s in subs), columns, args.output)


def show_devices(devices: Iterable[Device], args: argparse.Namespace) -> None:
    """Print boxes."""
    emit((record(d) for d in devices), DEVICE_COLUMNS, args.output)


async def emit_pages(pages: AsyncIterator[Sequence[Any]], columns: Sequence[str], fmt: str) -> None:
    """``emit`` rows fetched a page at a time: ``emit`` runs in a worker thread and pulls
    each next page from this event loop, so a page is all the CSV writer ever holds."""
    loop = asyncio.get_running_loop()

    async def next_page() -> Sequence[Any] | None:
        return await anext(pages, None)

    def rows() -> Iterator[dict[str, Any]]:
        while (page := asyncio.run_coroutine_threadsafe(next_page(), loop).result()) is not None:
            yield from (record(value) for value in page)

    await asyncio.to_thread(emit, rows(), columns, fmt)
