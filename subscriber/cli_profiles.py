"""``headend subscribers device-profile define|get|list|delete``: what a carrier's box
models play (formats, codecs, tallest picture).

``define`` creates or replaces a profile: ``--format`` and ``--codec`` are
comma-separated, most preferred first (``--format hls-cmaf,hls-ts --codec hevc,h264``),
``--model`` is repeated once per model (none for the id ``default``, which covers every
model no profile names), ``--max-height 0`` is any size. A model another profile names
is refused naming that profile (exit status of a refused request).
"""

from __future__ import annotations

import argparse
from typing import cast

from headend.clitools import CliError
from headend.output import add_output, emit
from headend.settings import split_list
from subscriber.cli_common import AddCommand, Command, Context, record, run
from subscriber.domain import (
    DELIVERY_FORMATS,
    VIDEO_CODECS,
    DeliveryFormat,
    DeviceProfile,
    VideoCodec,
)

PROFILE_COLUMNS = ("profile_id", "display_name", "models", "formats", "codecs", "max_height",
                   "updated_at")  # fmt: skip


def _words(text: str, allowed: tuple[str, ...], option: str) -> tuple[str, ...]:
    """A comma-separated option's words, each one of ``allowed`` (a usage error otherwise)."""
    words = split_list(text)
    for word in words:
        if word not in allowed:
            raise CliError(f"--{option}: {word!r} is not one of {', '.join(allowed)}")
    return words


def _show(profiles: list[DeviceProfile], args: argparse.Namespace) -> None:
    emit([record(p) for p in profiles], PROFILE_COLUMNS, args.output)


async def _define(ctx: Context, args: argparse.Namespace) -> int:
    profile = DeviceProfile(
        carrier_id=await ctx.carrier(args.carrier),
        profile_id=args.id,
        display_name=args.name,
        models=tuple(args.model),
        formats=cast("tuple[DeliveryFormat, ...]", _words(args.format, DELIVERY_FORMATS, "format")),
        codecs=cast("tuple[VideoCodec, ...]", _words(args.codec, VIDEO_CODECS, "codec")),
        max_height=args.max_height,
    )
    defined = await ctx.client.define_device_profile(profile, idempotency_key=args.idempotency_key)
    _show([defined], args)
    return 0


async def _get(ctx: Context, args: argparse.Namespace) -> int:
    _show([await ctx.client.get_device_profile(await ctx.carrier(args.carrier), args.id)], args)
    return 0


async def _list(ctx: Context, args: argparse.Namespace) -> int:
    _show(await ctx.client.list_device_profiles(await ctx.carrier(args.carrier)), args)
    return 0


async def _delete(ctx: Context, args: argparse.Namespace) -> int:
    removed = await ctx.client.delete_device_profile(
        await ctx.carrier(args.carrier), args.id, idempotency_key=args.idempotency_key
    )
    _show([removed], args)
    return 0


def add_commands(add: AddCommand) -> None:
    """``device-profile`` and its four actions."""
    top = add("device-profile", _list, "a carrier's device profiles: what its box models play")
    actions = top.add_subparsers(dest="profile_command", required=True)

    def action(name: str, command: Command, help_text: str) -> argparse.ArgumentParser:
        # The same environment help as every command (``add`` gave it to ``top``).
        parser = actions.add_parser(
            name, help=help_text, epilog=top.epilog, formatter_class=top.formatter_class
        )
        parser.set_defaults(func=run(command))
        # Also after the action; SUPPRESS keeps a value given before it.
        parser.add_argument("--carrier", default=argparse.SUPPRESS, help="carrier id")
        parser.add_argument("--idempotency-key", default=argparse.SUPPRESS, help="retry-safe")
        add_output(parser)
        return parser

    p = action("define", _define, "create or replace a device profile")
    p.add_argument("id", help="the profile id ('default': models no profile names)")
    p.add_argument("--name", default="", help="display name")
    p.add_argument("--model", action="append", default=[], help="a model it covers (repeat)")
    p.add_argument(
        "--format", required=True, help=f"most preferred first: {','.join(DELIVERY_FORMATS)}"
    )
    p.add_argument("--codec", required=True, help=f"most preferred first: {','.join(VIDEO_CODECS)}")
    p.add_argument("--max-height", type=int, default=0, help="tallest picture (0: any)")

    p = action("get", _get, "one device profile")
    p.add_argument("id")

    action("list", _list, "the carrier's device profiles, by id")

    p = action("delete", _delete, "remove a device profile (its models fall back)")
    p.add_argument("id")
